"""The Internet checksum against an obviously-correct reference, scapy, and RFC 1624's rules."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netfast.wire import checksum as ck


def reference_checksum(data: bytes) -> int:
    """RFC 1071 as written: 16-bit words, end-around carry, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@given(st.binary(max_size=3000))
def test_internet_checksum_matches_reference(data: bytes) -> None:
    assert ck.internet_checksum(data) == reference_checksum(data)


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\0\0", b"\xff\xff", b"\xff", b"\xff\xff" * 7])
def test_zero_and_minus_zero(data: bytes) -> None:
    assert ck.internet_checksum(data) == reference_checksum(data)


def test_rfc1071_example() -> None:
    # RFC 1071 section 3 works the sum of 00 01 f2 03 f4 f5 f6 f7 to 0xddf2.
    assert ck.ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2


@given(st.binary(max_size=600))
def test_matches_scapy(data: bytes) -> None:
    from scapy.utils import checksum as scapy_checksum

    assert ck.internet_checksum(data) == scapy_checksum(data)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_sums_compose(a: bytes, b: bytes) -> None:
    if len(a) % 2:
        a += b"\0"
    assert ck.internet_checksum(a + b) == ck.internet_checksum(b, ck.ones_sum(a))


@given(st.binary(min_size=20, max_size=20))
def test_filled_header_verifies(header: bytes) -> None:
    h = bytearray(header)
    h[10:12] = b"\0\0"
    h[10:12] = ck.internet_checksum(h).to_bytes(2, "big")
    assert ck.verify(h)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from([ck.IPPROTO_TCP, ck.IPPROTO_UDP]),
    st.binary(min_size=8, max_size=300),
)
def test_l4_checksum_matches_scapy(src: int, dst: int, proto: int, seg: bytes) -> None:
    from scapy.layers.inet import IP
    from scapy.utils import checksum as scapy_checksum

    seg = bytearray(seg)
    off = 16 if proto == ck.IPPROTO_TCP and len(seg) >= 18 else 6
    seg[off : off + 2] = b"\0\0"
    ip = IP(
        src=f"{src >> 24}.{src >> 16 & 255}.{src >> 8 & 255}.{src & 255}",
        dst=f"{dst >> 24}.{dst >> 16 & 255}.{dst >> 8 & 255}.{dst & 255}",
        proto=proto,
    )
    from scapy.layers.inet import in4_pseudoheader

    expected = scapy_checksum(in4_pseudoheader(proto, ip, len(seg)) + bytes(seg))
    got = ck.l4_checksum(src, dst, proto, seg)
    assert got == expected
    seg[off : off + 2] = got.to_bytes(2, "big")
    assert ck.l4_verify(src, dst, proto, seg)


def test_udp_zero_is_sent_as_ffff() -> None:
    # Find a payload whose UDP checksum computes to 0: adjust the last word to cancel the sum.
    src, dst = 0xC6120001, 0xC6120002
    seg = bytearray(struct.pack("!HHHH", 1000, 2000, 10, 0) + b"\0\0")
    s = ck.ones_sum(seg, ck.pseudo_header_sum(src, dst, ck.IPPROTO_UDP, len(seg)))
    seg[8:10] = (~s & 0xFFFF).to_bytes(2, "big")  # now the sum is 0xFFFF -> checksum 0
    assert ck.l4_checksum(src, dst, ck.IPPROTO_UDP, seg) == 0
    assert ck.udp_wire_checksum(src, dst, seg) == 0xFFFF


@given(
    st.binary(min_size=20, max_size=60).filter(lambda b: len(b) % 2 == 0),
    st.integers(0, 29),
    st.integers(0, 0xFFFF),
)
def test_update16_equals_recomputation(data: bytes, word: int, new: int) -> None:
    buf = bytearray(data)
    word %= len(buf) // 2
    # Keep the checksum field (word 0 here) out of the changed word.
    if word == 0:
        word = 1
    buf[0:2] = b"\0\0"
    buf[0:2] = ck.internet_checksum(buf).to_bytes(2, "big")
    old = int.from_bytes(buf[2 * word : 2 * word + 2], "big")
    hc = int.from_bytes(buf[0:2], "big")
    buf[2 * word : 2 * word + 2] = new.to_bytes(2, "big")
    # All-zero data is the one case where the incremental form yields -0 (0x0000) while a full
    # recomputation yields 0xFFFF (RFC 1624 section 3); no real header is all zero.
    assume(any(buf[2:]))
    full = bytearray(buf)
    full[0:2] = b"\0\0"
    expected = ck.internet_checksum(full)
    assert ck.update16(hc, old, new) == expected


@given(st.binary(min_size=20, max_size=20), st.integers(0, 2**32 - 1))
def test_update32_equals_recomputation(header: bytes, new_addr: int) -> None:
    buf = bytearray(header)
    buf[0] = 0x45  # a real IPv4 header is never all zero (see test_update16_...)
    buf[10:12] = b"\0\0"
    buf[10:12] = ck.internet_checksum(buf).to_bytes(2, "big")
    hc = int.from_bytes(buf[10:12], "big")
    old = int.from_bytes(buf[16:20], "big")
    buf[16:20] = new_addr.to_bytes(4, "big")
    buf[10:12] = b"\0\0"
    assert ck.update32(hc, old, new_addr) == ck.internet_checksum(buf)


@given(st.binary(min_size=20, max_size=20), st.integers(1, 255))
def test_update_ttl_equals_recomputation(header: bytes, ttl: int) -> None:
    buf = bytearray(header)
    buf[0] = 0x45
    buf[8] = ttl
    buf[10:12] = b"\0\0"
    buf[10:12] = ck.internet_checksum(buf).to_bytes(2, "big")
    hc = int.from_bytes(buf[10:12], "big")
    new = ck.update_ttl(hc, ttl, buf[9], ttl - 1)
    buf[8] = ttl - 1
    buf[10:12] = b"\0\0"
    assert new == ck.internet_checksum(buf)


@given(st.integers(1, 40), st.integers(0, 2**31))
def test_batch_checksum_matches_scalar(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, size=(n, 80), dtype=np.uint8)
    start = rng.integers(0, 40, size=n)
    length = rng.integers(0, 41, size=n)
    initial = rng.integers(0, 0x10000, size=n)
    got = ck.batch_checksum(rows, start, length, initial)
    for i in range(n):
        seg = rows[i, start[i] : start[i] + length[i]].tobytes()
        assert got[i] == ck.internet_checksum(seg, int(initial[i]))


def test_batch_ipv4_header_checksum_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 256, size=(500, 20), dtype=np.uint8)
    got = ck.batch_ipv4_header_checksum(rows)
    for i in range(500):
        h = bytearray(rows[i].tobytes())
        h[10:12] = b"\0\0"
        assert got[i] == ck.internet_checksum(h)


def test_batch_rejects_out_of_row_range() -> None:
    rows = np.zeros((2, 10), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        ck.batch_checksum(rows, 5, 6)
