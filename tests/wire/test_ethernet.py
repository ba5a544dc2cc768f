"""Ethernet II view and repr against scapy and real captures; MAC helpers; Figure 1 rates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Dot1AD, Dot1Q, Ether, RawPcapReader

from netfast.wire.errors import MalformedError, TruncatedError, WireError
from netfast.wire.ethernet import (
    BROADCAST,
    HEADER_LEN,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    VlanTag,
    figure1_table,
    mac_from_str,
    mac_to_str,
    max_rates,
)


def read_frames(path: Path) -> list[bytes]:
    return [bytes(data) for data, _meta in RawPcapReader(str(path))]


def all_frames(shared_data: Path) -> list[tuple[str, bytes]]:
    return [
        (p.name, frame)
        for p in sorted((shared_data / "pcap").glob("*.pcap"))
        for frame in read_frames(p)
    ]


# --- real frames against scapy -------------------------------------------------------------------


def test_real_frames_match_scapy(shared_data: Path) -> None:
    frames = all_frames(shared_data)
    assert len(frames) > 1000
    for name, raw in frames:
        frame = EthernetFrame.new_checked(raw)
        oracle = Ether(raw)
        assert mac_to_str(frame.dst) == oracle.dst, name
        assert mac_to_str(frame.src) == oracle.src, name
        assert frame.ethertype == oracle.type, name
        assert frame.tag_count == 0 and not frame.has_tag and frame.vlan_id is None
        assert frame.inner_ethertype == oracle.type
        assert bytes(frame.payload) == raw[14:]


def test_real_frames_parse_then_emit_identically(shared_data: Path) -> None:
    for name, raw in all_frames(shared_data):
        frame = EthernetFrame.new_checked(raw)
        header = EthernetRepr.parse(frame)
        assert header.to_bytes(frame.payload) == raw, name


# --- VLAN tags -----------------------------------------------------------------------------------


def test_single_tag_matches_scapy() -> None:
    raw = bytes(
        Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
        / Dot1Q(vlan=1234, prio=5, dei=1)
        / IP(src="198.18.0.1", dst="198.18.0.2")
        / UDP()
    )
    frame = EthernetFrame.new_checked(raw)
    assert frame.has_tag and frame.tag_count == 1
    assert frame.ethertype == EtherType.VLAN
    assert frame.inner_ethertype == EtherType.IPV4
    assert frame.payload_offset == frame.header_len == 18
    assert frame.vlan_id == 1234
    header = EthernetRepr.parse(frame)
    assert header.tags == (VlanTag(vid=1234, pcp=5, dei=True),)
    assert header.vlan == VlanTag(1234, 5, True)
    assert header.ethertype == EtherType.IPV4
    assert bytes(frame.payload) == bytes(Ether(raw)[IP])
    assert header.to_bytes(frame.payload) == raw


def test_qinq_matches_scapy() -> None:
    raw = bytes(
        Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
        / Dot1AD(vlan=100, prio=3, dei=0)
        / Dot1Q(vlan=200, prio=1)
        / IP(src="198.18.0.1", dst="198.18.0.2")
    )
    frame = EthernetFrame.new_checked(raw)
    assert frame.tag_count == 2
    assert frame.ethertype == EtherType.QINQ
    assert frame.inner_ethertype == EtherType.IPV4
    assert frame.payload_offset == 22
    assert frame.vlan_id == 200
    assert frame.tag(0) == VlanTag(100, 3, False, EtherType.QINQ)
    assert frame.tag(1) == VlanTag(200, 1, False, EtherType.VLAN)
    with pytest.raises(IndexError):
        frame.tag(2)
    header = EthernetRepr.parse(frame)
    assert header.vlan == VlanTag(200, 1)
    built = EthernetRepr(
        dst=mac_from_str("02:00:00:00:00:01"),
        src=mac_from_str("02:00:00:00:00:02"),
        ethertype=EtherType.IPV4,
        tags=(VlanTag(100, 3, tpid=EtherType.QINQ), VlanTag(200, 1)),
    )
    assert built.to_bytes(frame.payload) == raw


def test_s_tag_alone() -> None:
    raw = bytes(Ether() / Dot1AD(vlan=7) / IP())
    frame = EthernetFrame.new_checked(raw)
    assert frame.tag_count == 1
    assert frame.inner_ethertype == EtherType.IPV4
    assert EthernetRepr.parse(frame).tags == (VlanTag(7, tpid=EtherType.QINQ),)


def test_third_tag_is_not_walked() -> None:
    raw = bytes(Ether() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP())
    frame = EthernetFrame.new_checked(raw)
    assert frame.tag_count == 2
    assert frame.inner_ethertype == EtherType.VLAN
    assert frame.payload_offset == 22


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (bytes(13), None),
        (bytes(12) + b"\x81\x00" + b"\x00\x01", "vlan"),
        (bytes(12) + b"\x88\xa8" + b"\x00\x01\x81\x00" + b"\x00\x02", "vlan"),
    ],
)
def test_truncated(raw: bytes, field: str | None) -> None:
    with pytest.raises(TruncatedError) as info:
        EthernetFrame.new_checked(raw)
    assert info.value.field == field
    assert str(info.value).startswith("ethernet.vlan" if field else "ethernet:")


def test_llc_length_field_is_malformed() -> None:
    frame = EthernetFrame.new_checked(bytes(12) + b"\x00\x2e" + bytes(46))
    with pytest.raises(MalformedError, match=r"ethernet\.ethertype = 46"):
        EthernetRepr.parse(frame)


# --- round trips ---------------------------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
ethertypes = st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8))
tags = st.builds(VlanTag, st.integers(0, 0xFFF), st.integers(0, 7), st.booleans())
tag_lists = st.one_of(
    st.just(()),
    st.tuples(tags),
    st.tuples(tags.map(lambda t: VlanTag(t.vid, t.pcp, t.dei, EtherType.QINQ))),
    st.tuples(st.sampled_from([0x8100, 0x88A8]), tags, tags).map(
        lambda x: (VlanTag(x[1].vid, x[1].pcp, x[1].dei, x[0]), x[2])
    ),
)
reprs = st.builds(EthernetRepr, macs, macs, ethertypes, tag_lists)


@given(reprs, st.binary(max_size=64))
def test_emit_then_parse(header: EthernetRepr, payload: bytes) -> None:
    raw = header.to_bytes(payload)
    frame = EthernetFrame.new_checked(raw)
    assert EthernetRepr.parse(frame) == header
    assert bytes(frame.payload) == payload
    assert frame.payload_offset == header.buffer_len()


@given(reprs, st.binary(max_size=64))
def test_emit_matches_scapy(header: EthernetRepr, payload: bytes) -> None:
    oracle = Ether(header.to_bytes(payload))
    assert (oracle.dst, oracle.src) == (mac_to_str(header.dst), mac_to_str(header.src))
    layer, next_type = oracle.payload, oracle.type
    for tag in header.tags:
        assert next_type == tag.tpid
        assert (layer.vlan, layer.prio, layer.dei) == (tag.vid, tag.pcp, int(tag.dei))
        layer, next_type = layer.payload, layer.type
    assert next_type == header.ethertype


@given(st.binary(min_size=14, max_size=40))
def test_parse_then_emit(raw: bytes) -> None:
    try:
        frame = EthernetFrame.new_checked(raw)
        header = EthernetRepr.parse(frame)
    except WireError:
        return
    assert header.to_bytes(frame.payload) == raw


@given(reprs)
def test_emit_writes_every_header_byte(header: EthernetRepr) -> None:
    buf = bytearray(b"\xa5" * (header.buffer_len() + 8))
    header.emit(EthernetFrame(buf))
    # 0xa5 is a legal value of a MAC byte, so check the fields' own bytes where it cannot be.
    expected = header.to_bytes(bytes(8))[: header.buffer_len()]
    assert buf[: header.buffer_len()] == expected
    assert buf[header.buffer_len() :] == b"\xa5" * 8


def test_emit_into_prefilled_buffer_leaves_no_a5() -> None:
    header = EthernetRepr(
        BROADCAST, bytes(6), EtherType.ARP, (VlanTag(5, tpid=EtherType.QINQ), VlanTag(6))
    )
    buf = bytearray(b"\xa5" * header.buffer_len())
    header.emit(EthernetFrame(buf))
    assert 0xA5 not in buf


def test_emit_into_short_buffer_is_api_misuse() -> None:
    header = EthernetRepr(BROADCAST, bytes(6), EtherType.IPV4)
    with pytest.raises(ValueError) as info:
        header.emit(EthernetFrame(bytearray(13)))
    assert not isinstance(info.value, WireError)


def test_view_setters_write_in_place() -> None:
    buf = bytearray(bytes(Ether() / Dot1Q(vlan=9) / IP()))
    frame = EthernetFrame(buf)
    frame.dst = mac_from_str("02:00:00:00:00:0a")
    frame.src = mac_from_str("02:00:00:00:00:0b")
    oracle = Ether(bytes(buf))
    assert (oracle.dst, oracle.src) == ("02:00:00:00:00:0a", "02:00:00:00:00:0b")
    frame.ethertype = EtherType.IPV4
    assert Ether(bytes(buf)).type == 0x0800 and frame.tag_count == 0


@pytest.mark.parametrize(
    "kwargs", [{"vid": 4096}, {"vid": -1}, {"vid": 1, "pcp": 8}, {"vid": 1, "tpid": 0x0800}]
)
def test_bad_tag_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        VlanTag(**kwargs)


def test_bad_repr_values() -> None:
    with pytest.raises(ValueError):
        EthernetRepr(bytes(5), bytes(6), EtherType.IPV4)
    with pytest.raises(ValueError):
        EthernetRepr(bytes(6), bytes(6), 0x05FF)
    with pytest.raises(ValueError):
        EthernetRepr(bytes(6), bytes(6), EtherType.IPV4, (VlanTag(1), VlanTag(2), VlanTag(3)))
    with pytest.raises(ValueError):
        EthernetRepr(bytes(6), bytes(6), EtherType.VLAN, (VlanTag(1),))


# --- MAC helpers ---------------------------------------------------------------------------------


@given(macs)
def test_mac_round_trip(mac: bytes) -> None:
    text = mac_to_str(mac)
    assert mac_from_str(text) == mac
    assert mac_from_str(text.upper().replace(":", "-")) == mac
    assert text == Ether(dst=text).dst


def test_broadcast() -> None:
    assert mac_to_str(BROADCAST) == "ff:ff:ff:ff:ff:ff"
    assert HEADER_LEN == 14


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "aa:bb:cc:dd:ee:gg",
        "aa-bb:cc:dd:ee:ff",
        "a:bb:cc:dd:ee:ff",
        "aabbccddeeff",
        " aa:bb:cc:dd:ee:ff",
        "aa:bb:cc:dd:ee:ff\n",
        "aa::bb:cc:dd:ee:ff",
    ],
)
def test_bad_mac_strings(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        mac_from_str(text)


def test_bad_mac_bytes() -> None:
    with pytest.raises(ValueError):
        mac_to_str(b"12345")


# --- Figure 1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bps", "frame_len", "pps"),
    [
        # The well-known line rates: 64-byte frames take 84 byte times, 1518-byte frames 1538.
        (1e9, 64, 1_488_095),
        (10e9, 64, 14_880_952),
        (100e6, 64, 148_809),
        (10e6, 64, 14_880),
        (40e9, 64, 59_523_809),
        (1e9, 1518, 81_274),
        (10e9, 1518, 812_743),
        (40e9, 1518, 3_250_975),
    ],
)
def test_max_rates_line_rates(bps: float, frame_len: int, pps: int) -> None:
    packets, payload = max_rates(bps, frame_len)
    assert int(packets) == pps
    assert payload == pytest.approx(packets * (frame_len - 18))


def test_short_frames_are_padded_to_64() -> None:
    pps_60, payload_60 = max_rates(1e9, 60)
    pps_64, _ = max_rates(1e9, 64)
    assert pps_60 == pps_64
    assert payload_60 == pytest.approx(pps_64 * 42)
    assert max_rates(1e9, 18)[1] == 0


def test_jumbo_frames() -> None:
    pps, payload = max_rates(10e9, 9018)
    assert pps == pytest.approx(10e9 / ((9018 + 20) * 8))
    assert payload == pytest.approx(pps * 9000)
    pps_16k, _ = max_rates(10e9, 16384)
    assert pps_16k == pytest.approx(10e9 / ((16384 + 20) * 8))


@pytest.mark.parametrize(("bps", "frame_len"), [(1e9, 17), (1e9, 16385), (0, 64), (-1e9, 64)])
def test_max_rates_rejects(bps: float, frame_len: int) -> None:
    with pytest.raises(ValueError):
        max_rates(bps, frame_len)


def test_figure1_table() -> None:
    rows = figure1_table()
    assert [r.bits_per_second for r in rows] == [10e6, 100e6, 1e9, 10e9, 40e9]
    one_gig = rows[2]
    assert int(one_gig.pps_64) == 1_488_095
    assert int(one_gig.pps_1500) == 81_274
    # The legible cells of the paper's 40 Gb/s row: 3250975 pps and 39011703511 payload bits/s.
    forty = rows[4]
    assert int(forty.pps_1500) == 3_250_975
    assert int(forty.payload_bps_1500) == 39_011_703_511
    # Each row is the previous speed scaled: rates are proportional to the link speed.
    for row in rows:
        assert row.pps_64 == pytest.approx(one_gig.pps_64 * row.bits_per_second / 1e9)
