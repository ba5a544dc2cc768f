"""ARP view and repr against scapy and the real ARP captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ARP, RawPcapReader

from netfast.wire.arp import HEADER_LEN, ArpOperation, ArpPacket, ArpRepr
from netfast.wire.errors import MalformedError, TruncatedError, WireError
from netfast.wire.ethernet import mac_from_str, mac_to_str
from netfast.wire.ipv4 import ip_from_str, ip_to_str


def arp_packets(shared_data: Path) -> list[bytes]:
    packets = []
    for name in ("arp-request-reply.pcap", "arp-gratuitous.pcap"):
        for data, _meta in RawPcapReader(str(shared_data / "pcap" / name)):
            assert data[12:14] == b"\x08\x06"
            packets.append(bytes(data[14:]))
    return packets


def test_real_packets_match_scapy(shared_data: Path) -> None:
    packets = arp_packets(shared_data)
    assert len(packets) == 3
    operations = []
    for raw in packets:
        packet = ArpPacket.new_checked(raw)
        oracle = ARP(raw)
        assert (packet.htype, packet.ptype, packet.hlen, packet.plen) == (
            oracle.hwtype,
            oracle.ptype,
            oracle.hwlen,
            oracle.plen,
        )
        header = ArpRepr.parse(packet)
        assert header.operation == oracle.op
        assert mac_to_str(header.sender_hw) == oracle.hwsrc
        assert ip_to_str(header.sender_ip) == oracle.psrc
        assert mac_to_str(header.target_hw) == oracle.hwdst
        assert ip_to_str(header.target_ip) == oracle.pdst
        # parse -> emit reproduces the packet; the frame's padding is not part of it.
        assert header.to_bytes() == raw[:HEADER_LEN]
        operations.append(header.operation)
    assert ArpOperation.REQUEST in operations and ArpOperation.REPLY in operations


def test_gratuitous_arp_announces_its_own_address(shared_data: Path) -> None:
    data, _meta = next(iter(RawPcapReader(str(shared_data / "pcap" / "arp-gratuitous.pcap"))))
    header = ArpRepr.parse(ArpPacket.new_checked(data[14:]))
    assert header.sender_ip == header.target_ip


reprs = st.builds(
    ArpRepr,
    st.sampled_from(ArpOperation),
    st.binary(min_size=6, max_size=6),
    st.integers(0, 0xFFFFFFFF),
    st.binary(min_size=6, max_size=6),
    st.integers(0, 0xFFFFFFFF),
)


@given(reprs)
def test_emit_then_parse(header: ArpRepr) -> None:
    raw = header.to_bytes()
    assert len(raw) == header.buffer_len() == HEADER_LEN
    assert ArpRepr.parse(ArpPacket.new_checked(raw)) == header


@given(reprs)
def test_emit_matches_scapy(header: ArpRepr) -> None:
    expected = ARP(
        op=int(header.operation),
        hwsrc=mac_to_str(header.sender_hw),
        psrc=ip_to_str(header.sender_ip),
        hwdst=mac_to_str(header.target_hw),
        pdst=ip_to_str(header.target_ip),
    )
    assert header.to_bytes() == bytes(expected)


@given(st.binary(min_size=20, max_size=20), st.sampled_from([1, 2]))
def test_parse_then_emit(addresses: bytes, operation: int) -> None:
    raw = b"\x00\x01\x08\x00\x06\x04" + operation.to_bytes(2, "big") + addresses
    assert ArpRepr.parse(ArpPacket.new_checked(raw)).to_bytes() == raw


def test_emit_into_prefilled_buffer_leaves_no_a5() -> None:
    header = ArpRepr(
        ArpOperation.REPLY,
        mac_from_str("02:00:00:00:00:01"),
        ip_from_str("198.18.0.1"),
        mac_from_str("02:00:00:00:00:02"),
        ip_from_str("198.18.0.2"),
    )
    buf = bytearray(b"\xa5" * (HEADER_LEN + 4))
    header.emit(ArpPacket(buf))
    assert 0xA5 not in buf[:HEADER_LEN]
    assert buf[HEADER_LEN:] == b"\xa5" * 4


def test_emit_errors_are_api_misuse() -> None:
    header = ArpRepr(ArpOperation.REQUEST, bytes(6), 1, bytes(6), 2)
    with pytest.raises(ValueError) as info:
        header.emit(ArpPacket(bytearray(27)))
    assert not isinstance(info.value, WireError)
    with pytest.raises(ValueError):
        ArpRepr(ArpOperation.REQUEST, bytes(5), 1, bytes(6), 2)
    with pytest.raises(ValueError):
        ArpRepr(3, bytes(6), 1, bytes(6), 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (1, 6, r"^arp\.htype = 6: not Ethernet"),
        (2, 0x86, r"^arp\.ptype = 34525: not IPv4"),
        (4, 8, r"^arp\.hlen = 8: an Ethernet address is 6 bytes"),
        (5, 16, r"^arp\.plen = 16: an IPv4 address is 4 bytes"),
        (7, 3, r"^arp\.operation = 3: neither request"),
    ],
)
def test_sanity_errors_name_the_field(offset: int, value: int, message: str) -> None:
    buf = bytearray(bytes(ARP(op=1)))
    buf[offset] = value
    if offset == 2:
        buf[3] = 0xDD
    packet = ArpPacket(buf + bytes(32))  # room for the longer addresses the packet claims
    packet.check_len()
    with pytest.raises(MalformedError, match=message):
        ArpRepr.parse(packet)


def test_truncated() -> None:
    raw = bytes(ARP())
    with pytest.raises(TruncatedError, match=r"^arp: truncated: need 28 bytes, have 27"):
        ArpPacket.new_checked(raw[:27])
    claims_more = bytearray(raw)
    claims_more[5] = 16  # plen 16: 8 + 2 * (6 + 16) = 52 bytes claimed
    with pytest.raises(TruncatedError, match=r"need 52 bytes, have 28"):
        ArpPacket.new_checked(claims_more)


def test_view_setters_match_scapy() -> None:
    buf = bytearray(HEADER_LEN)
    packet = ArpPacket(buf)
    packet.htype, packet.ptype, packet.hlen, packet.plen = 1, 0x0800, 6, 4
    packet.operation = ArpOperation.REPLY
    packet.sender_hw = mac_from_str("02:00:00:00:00:01")
    packet.sender_ip = ip_from_str("198.18.0.1")
    packet.target_hw = mac_from_str("02:00:00:00:00:02")
    packet.target_ip = ip_from_str("198.18.0.2")
    oracle = ARP(bytes(buf))
    assert (oracle.op, oracle.hwsrc, oracle.psrc, oracle.hwdst, oracle.pdst) == (
        2,
        "02:00:00:00:00:01",
        "198.18.0.1",
        "02:00:00:00:00:02",
        "198.18.0.2",
    )
