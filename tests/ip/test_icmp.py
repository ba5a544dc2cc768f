"""ICMP errors (netfast.ip.icmp): bytes checked with scapy, the RFC 1812 4.3.2.7 suppression
rules, the 576-byte quote, and the token bucket driven by a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, IPerror
from scapy.utils import checksum as scapy_checksum

from netfast.ip.icmp import (
    MAX_ERROR_LEN,
    IcmpErrors,
    TokenBucket,
    error_suppressed,
    icmp_error_packet,
)
from netfast.ip.iface import IfAddr, Interface
from netfast.ip.local import LocalAddrs
from netfast.wire.icmpv4 import Icmpv4Echo
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str

ROUTER = ip_from_str("198.18.0.1")
HOST = ip_from_str("198.18.0.10")
FAR = ip_from_str("198.19.5.5")
LOCAL = LocalAddrs([Interface(0, "if0", bytes(6), (IfAddr(ROUTER, 24),))])


def original(
    payload: bytes = bytes(range(40)), *, proto: int = IpProtocol.UDP, **kw: object
) -> bytes:
    fields: dict[str, object] = dict(
        src=HOST, dst=FAR, protocol=proto, payload_len=len(payload), ttl=1, identification=99
    )
    fields.update(kw)
    return Ipv4Repr(**fields).to_bytes(payload)  # type: ignore[arg-type]


def check_valid(packet: bytes) -> IP:
    ip = IP(packet)
    assert scapy_checksum(packet[:10] + b"\0\0" + packet[12:20]) == ip.chksum
    icmp = packet[20 : ip.len]
    assert scapy_checksum(icmp[:2] + b"\0\0" + icmp[4:]) == ip[ICMP].chksum
    return ip


@pytest.mark.parametrize(
    ("icmp_type", "code"),
    [(11, 0), (11, 1), (3, 0), (3, 1), (3, 2), (3, 3), (3, 13)],
    ids=["ttl", "reassembly", "net", "host", "proto", "port", "prohibited"],
)
def test_error_bytes(icmp_type: int, code: int) -> None:
    orig = original()
    ip = check_valid(icmp_error_packet(orig, icmp_type, code, ROUTER, ident=5))
    assert (ip.src, ip.dst, ip.ttl, ip.id, ip.proto, ip.tos) == (
        "198.18.0.1",
        "198.18.0.10",
        64,
        5,
        1,
        0xC0,
    )
    assert (ip[ICMP].type, ip[ICMP].code) == (icmp_type, code)
    assert icmp_error_packet(orig, icmp_type, code, ROUTER)[24:28] == bytes(4)  # unused
    quoted = ip[IPerror]
    assert (quoted.src, quoted.dst, quoted.id, quoted.ttl) == ("198.18.0.10", "198.19.5.5", 99, 1)
    assert IP(bytes(ip))[ICMP].payload.original == orig  # the whole small packet is quoted


def test_frag_needed_carries_mtu() -> None:
    error = icmp_error_packet(original(), 3, 4, ROUTER, next_hop_mtu=1280)
    ip = check_valid(error)
    assert (ip[ICMP].type, ip[ICMP].code, ip[ICMP].nexthopmtu) == (3, 4, 1280)
    assert error[24:26] == b"\0\0"  # RFC 1191: the unused half of the rest of the header


@given(st.integers(0, 3000), st.integers(0, 40))
def test_quote_length(payload_len: int, padding: int) -> None:
    """RFC 792: header + at least 8 bytes; RFC 1812 4.3.2.3: up to 576 in all; never the link
    padding after the total length."""
    orig = original(bytes(payload_len))
    error = icmp_error_packet(orig + b"\xee" * padding, 3, 1, ROUTER)
    assert len(error) == min(MAX_ERROR_LEN, 28 + len(orig))
    assert error[28:] == orig[: len(error) - 28]
    assert len(error) - 28 >= min(len(orig), 28)  # header + 8 bytes at least


def test_builder_refuses_misuse() -> None:
    with pytest.raises(ValueError):
        icmp_error_packet(b"\x45" + bytes(10), 3, 1, ROUTER)
    with pytest.raises(ValueError):
        icmp_error_packet(original(), 8, 0, ROUTER)


# --- suppression -------------------------------------------------------------------------------


def test_error_allowed_about_plain_packets_and_queries() -> None:
    assert error_suppressed(original(), LOCAL) is None
    echo = Icmpv4Echo(1, 1, b"x").to_bytes()
    assert error_suppressed(original(echo, proto=IpProtocol.ICMP), LOCAL) is None


@pytest.mark.parametrize(
    ("orig", "link_broadcast", "reason"),
    [
        (original(bytes((3, 1)) + bytes(30), proto=1), False, "icmp.out.about_error"),
        (original(bytes((11, 0)) + bytes(30), proto=1), False, "icmp.out.about_error"),
        (original(bytes((42, 0)) + bytes(30), proto=1), False, "icmp.out.about_error"),
        (original(b"", proto=1), False, "icmp.out.about_error"),
        (original(dst=ip_from_str("255.255.255.255")), False, "icmp.out.about_broadcast"),
        (original(dst=ip_from_str("198.18.0.255")), False, "icmp.out.about_broadcast"),
        (original(dst=ip_from_str("224.0.0.9")), False, "icmp.out.about_broadcast"),
        (original(), True, "icmp.out.about_broadcast"),
        (original(frag_offset=8), False, "icmp.out.about_fragment"),
        (original(src=ip_from_str("0.0.0.0")), False, "icmp.out.about_martian"),
        (original(src=ip_from_str("127.0.0.1")), False, "icmp.out.about_martian"),
        (original(src=ip_from_str("230.1.1.1")), False, "icmp.out.about_martian"),
        (original(src=ip_from_str("198.18.0.255")), False, "icmp.out.about_martian"),
    ],
)
def test_suppressed(orig: bytes, link_broadcast: bool, reason: str) -> None:
    assert error_suppressed(orig, LOCAL, link_broadcast=link_broadcast) == reason
    counters: Counter[str] = Counter()
    errors = IcmpErrors(LOCAL, counters)
    assert errors.icmp_error(orig, 11, 0, ROUTER, 0.0, link_broadcast=link_broadcast) is None
    assert counters == Counter({reason: 1})


def test_first_fragment_is_not_suppressed() -> None:
    assert error_suppressed(original(more_frags=True), LOCAL) is None


# --- rate limit --------------------------------------------------------------------------------


def test_token_bucket() -> None:
    b = TokenBucket(rate=10.0, burst=2)
    assert [b.take(5.0) for _ in range(3)] == [True, True, False]
    assert not b.take(5.05)  # half a token
    assert b.take(5.1)
    assert not b.take(4.0)  # the clock going back refills nothing
    assert [b.take(100.0) for _ in range(3)] == [True, True, False]  # capped at the burst


def test_zero_rate_disables_the_limit() -> None:
    b = TokenBucket(rate=0, burst=0)
    assert all(b.take(0.0) for _ in range(1000))


def test_icmp_errors_rate_limited_and_counted() -> None:
    counters: Counter[str] = Counter()
    errors = IcmpErrors(LOCAL, counters, rate=1.0, burst=2)
    sent = [errors.icmp_error(original(), 11, 0, ROUTER, 0.0) for _ in range(4)]
    assert [s is not None for s in sent] == [True, True, False, False]
    assert errors.icmp_error(original(), 3, 4, ROUTER, 1.0, next_hop_mtu=1400) is not None
    assert counters == Counter(
        {"icmp.out.time_exceeded": 2, "icmp.out.rate_limited": 2, "icmp.out.dest_unreachable": 1}
    )
    ids = {IP(s).id for s in sent if s is not None}
    assert len(ids) == 2  # each error gets its own identification
