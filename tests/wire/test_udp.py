"""UDP view and repr against scapy and real captures; pseudo-header checksum."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Raw, RawPcapReader
from scapy.layers.inet import in4_chksum

from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError, WireError
from netfast.wire.ipv4 import Ipv4Packet, ip_from_str, ip_to_str
from netfast.wire.udp import HEADER_LEN, UdpDatagram, UdpRepr


def udp_datagrams(path: Path) -> list[tuple[int, int, bytes, IP]]:
    """(src, dst, datagram, scapy's IP) for every unfragmented UDP packet of a capture."""
    found = []
    for data, _meta in RawPcapReader(str(path)):
        if data[12:14] != b"\x08\x00":
            continue
        packet = Ipv4Packet.new_checked(data[14:])
        if packet.protocol == 17 and not packet.more_frags and packet.frag_offset == 0:
            found.append((packet.src, packet.dst, bytes(packet.payload), IP(data[14:])))
    return found


def oracle_checksum(src: int, dst: int, datagram: bytes) -> int:
    """scapy's UDP checksum of the datagram with its checksum field zeroed (0 sent as 0xffff)."""
    ip = IP(src=ip_to_str(src), dst=ip_to_str(dst), proto=17)
    value = in4_chksum(17, ip, datagram[:6] + b"\0\0" + datagram[8:])
    return value or 0xFFFF


def test_real_datagrams_match_scapy(shared_data: Path) -> None:
    total = 0
    for name in ("udp-dns-query-response.pcap", "wireshark-http.pcap", "http-espn-pageload.pcap"):
        for src, dst, raw, oracle in udp_datagrams(shared_data / "pcap" / name):
            datagram = UdpDatagram.new_checked(raw)
            udp = oracle[UDP]
            assert (datagram.src_port, datagram.dst_port) == (udp.sport, udp.dport)
            assert (datagram.length, datagram.checksum) == (udp.len, udp.chksum)
            assert bytes(datagram.payload) == bytes(udp.payload)
            assert datagram.compute_checksum(src, dst) == oracle_checksum(src, dst, raw)
            total += 1
    assert total == 2 + 2 + 28


def test_real_checksums_as_documented(shared_data: Path) -> None:
    """SOURCES.md: 14 of the 28 UDP datagrams of the ESPN capture have bad checksums (offload);
    every other UDP checksum is valid.  Bad ones are reported, not crashed on."""
    bad = 0
    for name in ("udp-dns-query-response.pcap", "wireshark-http.pcap", "http-espn-pageload.pcap"):
        for src, dst, raw, _oracle in udp_datagrams(shared_data / "pcap" / name):
            datagram = UdpDatagram.new_checked(raw)
            header = UdpRepr.parse(datagram, src, dst, verify_checksum=False)
            if datagram.verify_checksum(src, dst):
                assert UdpRepr.parse(datagram, src, dst) == header
                # parse -> emit reproduces the datagram exactly
                assert header.to_bytes(src, dst, datagram.payload) == raw
                continue
            assert name == "http-espn-pageload.pcap"
            bad += 1
            assert datagram.checksum != oracle_checksum(src, dst, raw)
            with pytest.raises(ChecksumError, match=r"^udp\.checksum: bad checksum") as info:
                UdpRepr.parse(datagram, src, dst)
            assert info.value.expected == oracle_checksum(src, dst, raw)
    assert bad == 14


addresses = st.integers(0, 0xFFFFFFFF)
ports = st.integers(0, 0xFFFF)


@given(ports, ports, addresses, addresses, st.binary(max_size=100))
def test_emit_matches_scapy(
    src_port: int, dst_port: int, src: int, dst: int, payload: bytes
) -> None:
    header = UdpRepr(src_port, dst_port, len(payload))
    expected = IP(src=ip_to_str(src), dst=ip_to_str(dst)) / UDP(sport=src_port, dport=dst_port)
    assert header.to_bytes(src, dst, payload) == bytes(expected / Raw(payload))[20:]


@given(ports, ports, addresses, addresses, st.binary(max_size=100))
def test_emit_then_parse(src_port: int, dst_port: int, src: int, dst: int, payload: bytes) -> None:
    header = UdpRepr(src_port, dst_port, len(payload))
    raw = header.to_bytes(src, dst, payload)
    datagram = UdpDatagram.new_checked(raw)
    assert datagram.checksum != 0
    assert UdpRepr.parse(datagram, src, dst) == header
    assert bytes(datagram.payload) == payload


@given(st.binary(min_size=4, max_size=4), addresses, addresses, st.binary(max_size=60))
def test_parse_then_emit(ports_raw: bytes, src: int, dst: int, payload: bytes) -> None:
    raw = bytearray(ports_raw + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload)
    datagram = UdpDatagram.new_checked(raw)
    datagram.fill_checksum(src, dst)
    header = UdpRepr.parse(datagram, src, dst)
    assert header.to_bytes(src, dst, payload) == bytes(raw)


@given(ports, ports, st.binary(max_size=20))
def test_emit_into_prefilled_buffer(src_port: int, dst_port: int, payload: bytes) -> None:
    header = UdpRepr(src_port, dst_port, len(payload))
    buf = bytearray(b"\xa5" * (header.length + 3))
    header.emit(UdpDatagram(buf), 1, 2, payload)
    assert buf[: header.length] == header.to_bytes(1, 2, payload)
    assert buf[header.length :] == b"\xa5" * 3


def test_emit_into_prefilled_buffer_leaves_no_a5() -> None:
    header = UdpRepr(53, 5353, 0)
    for fill in (True, False):
        buf = bytearray(b"\xa5" * HEADER_LEN)
        header.emit(UdpDatagram(buf), ip_from_str("198.18.0.1"), 2, fill_checksum=fill)
        assert 0xA5 not in buf


def test_zero_checksum_means_none() -> None:
    header = UdpRepr(1000, 2000, 3)
    buf = bytearray(header.length)
    header.emit(UdpDatagram(buf), 1, 2, b"abc", fill_checksum=False)
    datagram = UdpDatagram.new_checked(buf)
    assert datagram.checksum == 0
    assert datagram.verify_checksum(1, 2) and datagram.verify_checksum(3, 4)
    assert UdpRepr.parse(datagram, 3, 4) == header


def test_computed_zero_is_sent_as_ffff() -> None:
    # Choose the payload word so the sum over pseudo-header and header is 0xffff: checksum 0.
    src, dst = ip_from_str("198.18.0.1"), ip_from_str("198.18.0.2")
    probe = UdpRepr(1, 2, 2).to_bytes(src, dst, b"\0\0")
    word = int.from_bytes(probe[6:8], "big")  # ~sum: adding it as payload makes the sum 0xffff
    raw = UdpRepr(1, 2, 2).to_bytes(src, dst, word.to_bytes(2, "big"))
    assert raw[6:8] == b"\xff\xff"
    assert oracle_checksum(src, dst, raw) == 0xFFFF
    assert UdpDatagram(raw).verify_checksum(src, dst)


def test_payload_is_sliced_by_length() -> None:
    raw = UdpRepr(1, 2, 3).to_bytes(5, 6, b"abc") + b"padding"
    datagram = UdpDatagram.new_checked(raw)
    assert bytes(datagram.payload) == b"abc"
    assert datagram.verify_checksum(5, 6)


def test_length_errors_name_the_field() -> None:
    with pytest.raises(TruncatedError, match=r"^udp: truncated: need 8 bytes, have 7"):
        UdpDatagram.new_checked(bytes(7))
    raw = bytearray(UdpRepr(1, 2, 3).to_bytes(5, 6, b"abc"))
    with pytest.raises(TruncatedError, match=r"^udp\.length: truncated: need 11 bytes, have 10"):
        UdpDatagram.new_checked(raw[:10])
    raw[4:6] = (7).to_bytes(2, "big")
    with pytest.raises(MalformedError, match=r"^udp\.length = 7: below the header length of 8"):
        UdpDatagram.new_checked(raw)


def test_emit_errors_are_api_misuse() -> None:
    header = UdpRepr(1, 2, 3)
    for bad in (
        lambda: header.emit(UdpDatagram(bytearray(10)), 1, 2),
        lambda: header.to_bytes(1, 2, b"ab"),
        lambda: UdpRepr(1, 70000, 0),
        lambda: UdpRepr(1, 2, 0xFFF8),
    ):
        with pytest.raises(ValueError) as info:
            bad()
        assert not isinstance(info.value, WireError)


def test_view_setters_match_scapy() -> None:
    buf = bytearray(11)
    datagram = UdpDatagram(buf)
    datagram.src_port, datagram.dst_port, datagram.length = 53, 33000, 11
    buf[8:] = b"xyz"
    datagram.fill_checksum(ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2"))
    oracle = UDP(bytes(buf))
    assert (oracle.sport, oracle.dport, oracle.len) == (53, 33000, 11)
    assert datagram.checksum == oracle_checksum(
        ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2"), bytes(buf)
    )
    datagram.checksum = 0
    assert oracle.chksum != 0 and UDP(bytes(buf)).chksum == 0
