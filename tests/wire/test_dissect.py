"""Whole-frame dissection of every real capture, field by field against scapy's dissection of the
same bytes; and dissection never raises, whatever the bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.link.pcap import read_capture
from netfast.wire.dissect import BAD, OK, UNVERIFIED, dissect, summary, tcp_flags_str
from netfast.wire.ipv4 import ip_to_str
from netfast.wire.tcp_options import (
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TimestampsOption,
    WindowScaleOption,
)

from ..conftest import pcap_files  # type: ignore[import-not-found]


def _scapy_checksum_valid(pkt, layer) -> bool:  # type: ignore[no-untyped-def]
    """scapy's verdict: rebuild the packet with the layer's checksum cleared and compare."""
    from scapy.layers.inet import IP

    ip = IP(bytes(pkt[IP]))
    ip[layer].chksum = None
    return bool(IP(bytes(ip))[layer].chksum == pkt[layer].chksum)


def _scapy_options(tcp) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    return [(name, value) for name, value in tcp.options if name != "EOL"]


def _our_options(options) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    out: list[tuple[str, object]] = []
    for o in options.items:
        if isinstance(o, NopOption):
            out.append(("NOP", None))
        elif isinstance(o, MssOption):
            out.append(("MSS", o.value))
        elif isinstance(o, WindowScaleOption):
            out.append(("WScale", o.shift))
        elif isinstance(o, SackPermittedOption):
            out.append(("SAckOK", b""))
        elif isinstance(o, SackOption):
            out.append(("SAck", tuple(x for block in o.blocks for x in block)))
        elif isinstance(o, TimestampsOption):
            out.append(("Timestamp", (o.tsval, o.tsecr)))
        else:
            out.append((type(o).__name__, None))
    return out


@pytest.mark.parametrize("path", pcap_files(), ids=lambda p: p.name)
def test_every_packet_agrees_with_scapy(path: Path) -> None:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    from scapy.packet import Padding

    records = list(read_capture(path))
    assert records
    for n, rec in enumerate(records):
        d = dissect(rec.data)
        pkt = Ether(rec.data)
        where = f"{path.name} packet {n + 1}"
        assert d.ethernet is not None, where
        assert d.ethernet.src == bytes.fromhex(pkt.src.replace(":", "")), where
        assert d.ethernet.dst == bytes.fromhex(pkt.dst.replace(":", "")), where
        if ARP in pkt:
            a = pkt[ARP]
            assert d.arp is not None, where
            assert (ip_to_str(d.arp.sender_ip), ip_to_str(d.arp.target_ip)) == (a.psrc, a.pdst)
            assert int(d.arp.operation) == a.op
            continue
        if IP not in pkt:
            continue
        ip = pkt[IP]
        assert d.ipv4 is not None, where
        assert (ip_to_str(d.ipv4.src), ip_to_str(d.ipv4.dst)) == (ip.src, ip.dst), where
        assert d.ipv4.total_length == ip.len, where
        assert d.ipv4.ttl == ip.ttl and d.ipv4.protocol == ip.proto, where
        assert d.ipv4.identification == ip.id and d.ipv4.frag_offset == ip.frag * 8, where
        assert d.ipv4.more_frags == bool(ip.flags.MF) and d.ipv4.dont_frag == bool(ip.flags.DF)
        assert (d.checksums["ip"] == OK) == _scapy_checksum_valid(pkt, IP), where
        cut = 14 + ip.len > len(rec.data)
        assert d.truncated == cut, where
        if ip.frag != 0:
            assert d.tcp is None and d.udp is None and d.icmp is None
            continue
        whole = not cut and not ip.flags.MF
        if TCP in pkt:
            t = pkt[TCP]
            assert d.tcp is not None, where
            assert (d.tcp.src_port, d.tcp.dst_port) == (t.sport, t.dport), where
            assert (d.tcp.seq, d.tcp.ack, d.tcp.window) == (t.seq, t.ack, t.window), where
            assert int(d.tcp.flags) == int(t.flags), where
            assert _our_options(d.tcp.options) == _scapy_options(t), where
            padding = len(t[Padding]) if Padding in t else 0  # Ethernet padding, not TCP data
            assert len(d.tcp.payload) == len(t.payload) - padding, where
            if whole:
                assert (d.checksums["tcp"] == OK) == _scapy_checksum_valid(pkt, TCP), where
            else:
                assert d.checksums["tcp"] == UNVERIFIED, where
        elif UDP in pkt:
            u = pkt[UDP]
            assert d.udp is not None, where
            assert (d.udp.src_port, d.udp.dst_port, d.udp.length) == (u.sport, u.dport, u.len)
            if whole and u.chksum:
                assert (d.checksums["udp"] == OK) == _scapy_checksum_valid(pkt, UDP), where
        elif ICMP in pkt:
            assert d.icmp is not None, where
            assert int(d.icmp.msg_type) == pkt[ICMP].type, where
            if whole:
                assert (d.checksums["icmp"] == OK) == _scapy_checksum_valid(pkt, ICMP), where
        assert summary(d)  # renders


def test_bad_checksum_captures_are_reported_not_rejected(shared_data: Path) -> None:
    """The counts SOURCES.md gives for the offload-damaged captures."""
    pcap = shared_data / "pcap"

    def bad(name: str, layer: str) -> int:
        return sum(dissect(r.data).checksums.get(layer) == BAD for r in read_capture(pcap / name))

    assert bad("http-espn-pageload.pcap", "tcp") == 63
    assert bad("http-espn-pageload.pcap", "udp") == 14
    assert bad("tcp-loss-reorder-overlap.pcap", "tcp") == 10
    assert bad("ipv4-fragments-icmp.pcap", "ip") == 3
    cut = [dissect(r.data).truncated for r in read_capture(pcap / "tcp-loss-reorder-overlap.pcap")]
    assert sum(cut) == 5


@given(st.binary(max_size=300))
def test_dissect_never_raises(frame: bytes) -> None:
    d = dissect(frame)
    assert summary(d)


@given(st.binary(min_size=0, max_size=120))
def test_dissect_survives_garbage_after_valid_headers(tail: bytes) -> None:
    """An Ethernet+IPv4 header claiming TCP with garbage behind it never raises."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    head = bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2", proto=6, len=20 + len(tail)))
    d = dissect(head[:34] + tail)
    assert d.ipv4 is not None
    assert summary(d)


def test_tcp_flags_letters() -> None:
    assert tcp_flags_str(0x02) == "S"
    assert tcp_flags_str(0x12) == "S."
    assert tcp_flags_str(0x18) == "P."
    assert tcp_flags_str(0x11) == "F."
    assert tcp_flags_str(0x04) == "R"
    assert tcp_flags_str(0) == "none"
