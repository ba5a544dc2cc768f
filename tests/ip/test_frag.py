"""Fragmentation (netfast.ip.frag): scapy's defragment puts the fragments back together into the
original; offsets, MF flags, copied options and checksums per RFC 791."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, defragment
from scapy.utils import checksum as scapy_checksum

from netfast.ip.frag import copied_options, ip_fragment
from netfast.wire.ipv4 import Ipv4Repr, ip_from_str

SRC = ip_from_str("198.18.0.10")
DST = ip_from_str("198.19.200.9")
# Record route (not copied, 7 bytes + NOP) and loose source route (copied, 7 bytes + NOP).
RECORD_ROUTE = bytes((7, 7, 4)) + bytes(4) + b"\x01"
LSRR = bytes((131, 7, 4)) + bytes.fromhex("c6120001") + b"\x01"


def packet(payload: bytes, *, options: bytes = b"", **kw: object) -> bytes:
    ip = Ipv4Repr(
        src=SRC,
        dst=DST,
        protocol=17,
        payload_len=len(payload),
        ttl=33,
        identification=0xBEEF,
        options=options,
        **kw,  # type: ignore[arg-type]
    )
    return ip.to_bytes(payload)


def check_fragments(fragments: list[bytes], mtu: int) -> list[IP]:
    parsed = [IP(f) for f in fragments]
    for i, (raw, p) in enumerate(zip(fragments, parsed, strict=True)):
        hl = p.ihl * 4
        assert len(raw) == p.len <= mtu
        assert scapy_checksum(raw[:10] + b"\0\0" + raw[12:hl]) == p.chksum
        assert (p.id, p.ttl, p.src, p.dst, p.proto) == (
            0xBEEF,
            33,
            "198.18.0.10",
            "198.19.200.9",
            17,
        )
        assert "DF" not in p.flags
        if i < len(parsed) - 1:
            assert "MF" in p.flags and (p.len - hl) % 8 == 0
            assert parsed[i + 1].frag * 8 == p.frag * 8 + p.len - hl
    return parsed


def test_fits_is_returned_whole() -> None:
    p = packet(bytes(100))
    assert ip_fragment(p + b"pad", 1500) == [p]


def test_fragments_reassemble_with_scapy() -> None:
    payload = bytes(range(256)) * 12
    p = packet(payload)
    fragments = ip_fragment(p, 1000)
    parsed = check_fragments(fragments, 1000)
    assert len(parsed) == 4 and parsed[0].frag == 0 and "MF" not in parsed[-1].flags
    (whole,) = defragment(parsed)
    assert bytes(whole.payload) == payload


def test_options_first_fragment_all_others_copied_only() -> None:
    p = packet(bytes(600), options=RECORD_ROUTE + LSRR)
    fragments = ip_fragment(p, 300)
    parsed = check_fragments(fragments, 300)
    assert fragments[0][20:36] == RECORD_ROUTE + LSRR
    for f in fragments[1:]:
        assert IP(f).ihl == 7 and f[20:28] == LSRR[:7] + b"\0"
    (whole,) = defragment(parsed)
    assert bytes(whole.payload) == bytes(600)


def test_copied_options() -> None:
    assert copied_options(RECORD_ROUTE) == b""
    assert copied_options(LSRR + RECORD_ROUTE) == LSRR[:7] + b"\0"
    assert copied_options(b"\x01\x00\x00\x00") == b""


def test_fragmenting_a_fragment_keeps_offset_and_mf() -> None:
    middle = packet(bytes(800), more_frags=True, frag_offset=1600)
    parts = [IP(f) for f in ip_fragment(middle, 300)]
    assert parts[0].frag * 8 == 1600
    assert all("MF" in p.flags for p in parts)  # the original was not the last piece
    last = packet(bytes(800), frag_offset=1600)
    parts = [IP(f) for f in ip_fragment(last, 300)]
    assert "MF" not in parts[-1].flags and "MF" in parts[0].flags


def test_misuse_raises() -> None:
    with pytest.raises(ValueError, match="DF"):
        ip_fragment(packet(bytes(2000), dont_frag=True), 1500)
    with pytest.raises(ValueError, match="MTU"):
        ip_fragment(packet(bytes(100), options=RECORD_ROUTE + LSRR + bytes(24)), 64)
    with pytest.raises(ValueError):
        ip_fragment(b"\x45\x00", 68)


@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(68, 1500),
    st.sampled_from([b"", RECORD_ROUTE, LSRR, LSRR + RECORD_ROUTE]),
)
def test_any_size_reassembles(payload: bytes, mtu: int, options: bytes) -> None:
    p = packet(payload, options=options)
    fragments = ip_fragment(p, mtu)
    parsed = check_fragments(fragments, mtu)
    if len(fragments) == 1:
        assert fragments[0] == p
        return
    (whole,) = defragment(parsed)
    assert bytes(whole.payload) == payload
    assert sum(len(IP(f).payload) for f in fragments) == len(payload)
