"""IPv4 input checks (netfast.ip.input): each RFC 1812 5.2.2 check and the 5.3.7 martian filter,
the order they run in, and agreement with scapy on every packet they accept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.utils import checksum as scapy_checksum

from netfast.ip.facts import martian_dst, martian_src
from netfast.ip.input import INPUT_DROPS, Ipv4Header, ip_input_check
from netfast.wire import checksum
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str


def packet(**kw: object) -> bytearray:
    fields: dict[str, object] = dict(
        src=ip_from_str("198.18.0.10"),
        dst=ip_from_str("198.18.1.20"),
        protocol=IpProtocol.UDP,
        payload_len=12,
    )
    fields.update(kw)
    return bytearray(Ipv4Repr(**fields).to_bytes(bytes(range(12))))  # type: ignore[arg-type]


def fix(p: bytearray) -> bytearray:
    hl = (p[0] & 0x0F) * 4
    p[10:12] = b"\0\0"
    p[10:12] = checksum.internet_checksum(p[:hl]).to_bytes(2, "big")
    return p


def test_valid_packet_returns_header_fields() -> None:
    p = packet(ttl=9, identification=77, dont_frag=True)
    h = ip_input_check(bytes(p))
    assert isinstance(h, Ipv4Header)
    s = IP(bytes(p))
    assert (h.total_length, h.ident, h.ttl, h.proto, h.checksum) == (s.len, s.id, 9, 17, s.chksum)
    assert h.frag == 0x4000 and h.header_len == 20
    assert h.src == ip_from_str(s.src) and h.dst == ip_from_str(s.dst)


def test_offset_and_padding() -> None:
    p = bytes(packet())
    assert isinstance(ip_input_check(b"\xaa" * 14 + p + bytes(30), 14), Ipv4Header)
    assert isinstance(ip_input_check(memoryview(b"\xaa" * 14 + p), 14), Ipv4Header)


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (b"", "ip.in.too_short"),
        (bytes(packet())[:19], "ip.in.too_short"),
        (bytes(fix(bytearray(b"\x55") + packet()[1:])), "ip.in.bad_version"),
        (bytes(fix(bytearray(b"\x60") + packet()[1:])), "ip.in.bad_version"),
        (bytes(fix(bytearray(b"\x44") + packet()[1:])), "ip.in.bad_hlen"),
        (bytes(fix(bytearray(b"\x40") + packet()[1:])), "ip.in.bad_hlen"),
        (bytes(packet())[:-1], "ip.in.bad_len"),
        (bytes(fix(packet()[:2] + b"\x00\x10" + packet()[4:])), "ip.in.bad_len"),
        # IHL 15 (60 bytes) with a total length of 32: the header cannot fit the packet.
        (bytes(fix(bytearray(b"\x4f") + packet()[1:])), "ip.in.bad_len"),
        (bytes(packet()[:10] + b"\x00\x00" + packet()[12:]), "ip.in.bad_checksum"),
        (bytes(packet(src=ip_from_str("127.0.0.1"))), "ip.in.martian_src"),
        (bytes(packet(dst=ip_from_str("0.0.0.0"))), "ip.in.martian_dst"),
    ],
)
def test_each_check(data: bytes, counter: str) -> None:
    assert ip_input_check(data) == counter


def test_cheapest_first_order() -> None:
    """A packet wrong in every way is reported by the first check in INPUT_DROPS order."""
    p = packet(src=ip_from_str("127.0.0.1"), dst=ip_from_str("0.0.0.1"))
    assert ip_input_check(bytes(p)) == "ip.in.martian_src"
    p[10] ^= 1
    assert ip_input_check(bytes(p)) == "ip.in.bad_checksum"
    p[2:4] = b"\xff\xff"
    assert ip_input_check(bytes(p)) == "ip.in.bad_len"
    p[0] = 0x43
    assert ip_input_check(bytes(p)) == "ip.in.bad_hlen"
    p[0] = 0x33
    assert ip_input_check(bytes(p)) == "ip.in.bad_version"
    assert list(INPUT_DROPS).index("ip.in.bad_version") < list(INPUT_DROPS).index(
        "ip.in.bad_checksum"
    )


@pytest.mark.parametrize(
    ("addr", "src", "dst"),
    [
        ("0.0.0.0", True, True),
        ("0.255.1.1", True, True),
        ("127.0.0.1", True, True),
        ("224.0.0.1", True, False),
        ("239.255.255.255", True, False),
        ("240.0.0.0", True, True),
        ("255.255.255.255", True, False),
        ("1.0.0.0", False, False),
        ("198.18.0.1", False, False),
        ("223.255.255.255", False, False),
    ],
)
def test_martians(addr: str, src: bool, dst: bool) -> None:
    assert martian_src(ip_from_str(addr)) is src
    assert martian_dst(ip_from_str(addr)) is dst


@given(st.binary(max_size=80), st.integers(0, 20))
def test_never_raises(data: bytes, offset: int) -> None:
    result = ip_input_check(data, offset)
    assert isinstance(result, Ipv4Header) or result in INPUT_DROPS


@given(st.binary(min_size=20, max_size=80))
def test_accepted_packets_agree_with_scapy(data: bytes) -> None:
    """Force version 4 and a valid checksum so many inputs pass; what passes, scapy reads the
    same way and finds the checksum right."""
    p = bytearray(data)
    p[0] = 0x40 | (p[0] & 0x0F)
    hl = (p[0] & 0x0F) * 4
    if hl <= len(p):
        p[2:4] = min(len(p), max(hl, int.from_bytes(p[2:4], "big"))).to_bytes(2, "big")
        fix(p)
    result = ip_input_check(bytes(p))
    if isinstance(result, Ipv4Header):
        s = IP(bytes(p))
        assert s.version == 4 and s.ihl * 4 == result.header_len <= s.len <= len(p)
        assert s.chksum == result.checksum
        zeroed = bytes(p[:10]) + b"\0\0" + bytes(p[12:hl])
        assert scapy_checksum(zeroed) == result.checksum
        assert not martian_src(result.src) and not martian_dst(result.dst)
