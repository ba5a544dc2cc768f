"""IPv4 view and repr against scapy and real captures; options; incremental TTL update."""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import (
    IP,
    UDP,
    IPOption_LSRR,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    IPOption_SSRR,
    IPOption_Timestamp,
    Raw,
    RawPcapReader,
)
from scapy.utils import checksum as scapy_checksum

from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError, WireError
from netfast.wire.ipv4 import HEADER_LEN, IpProtocol, Ipv4Packet, Ipv4Repr, ip_from_str, ip_to_str
from netfast.wire.ipv4_options import Ipv4Option, Ipv4OptionType, encode_options, iter_options


def ipv4_packets(path: Path) -> list[bytes]:
    """The IPv4 part (Ethernet header stripped, padding kept) of every IPv4 frame in a capture."""
    return [
        bytes(data[14:]) for data, _meta in RawPcapReader(str(path)) if data[12:14] == b"\x08\x00"
    ]


def all_packets(shared_data: Path) -> list[tuple[str, bytes]]:
    return [
        (p.name, packet)
        for p in sorted((shared_data / "pcap").glob("*.pcap"))
        for packet in ipv4_packets(p)
    ]


def oracle_checksum(header: bytes) -> int:
    """scapy's checksum of the header with its checksum field zeroed."""
    return int(scapy_checksum(header[:10] + b"\0\0" + header[12:]))


# --- real captures -------------------------------------------------------------------------------


def test_real_packets_match_scapy(shared_data: Path) -> None:
    checked = 0
    for name, raw in all_packets(shared_data):
        if name == "tcp-loss-reorder-overlap.pcap" and int.from_bytes(raw[2:4]) > len(raw):
            continue  # truncated by the capture; see test_truncated_capture_frames
        packet = Ipv4Packet.new_checked(raw)
        oracle = IP(raw)
        assert packet.version == oracle.version == 4
        assert packet.ihl == oracle.ihl
        assert packet.tos == oracle.tos
        assert (packet.dscp << 2) | packet.ecn == oracle.tos
        assert packet.total_length == oracle.len
        assert packet.identification == oracle.id
        assert packet.flags == int(oracle.flags)
        assert packet.dont_frag == ("DF" in oracle.flags)
        assert packet.more_frags == ("MF" in oracle.flags)
        assert packet.frag_offset == oracle.frag * 8
        assert packet.ttl == oracle.ttl
        assert packet.protocol == oracle.proto
        assert packet.checksum == oracle.chksum
        assert ip_to_str(packet.src) == oracle.src
        assert ip_to_str(packet.dst) == oracle.dst
        assert packet.compute_checksum() == oracle_checksum(bytes(packet.header))
        # Payload sliced by total_length, so Ethernet padding is excluded.
        assert bytes(packet.payload) == raw[packet.header_len : oracle.len]
        checked += 1
    assert checked > 1000


def test_real_checksums_as_documented(shared_data: Path) -> None:
    """SOURCES.md: every IPv4 header checksum is valid except the 3 outgoing fragments of
    ipv4-fragments-icmp.pcap (offload).  Bad ones parse with verify_checksum=False."""
    bad: dict[str, int] = {}
    for name, raw in all_packets(shared_data):
        packet = Ipv4Packet.new_checked_header(raw)
        if packet.verify_checksum():
            Ipv4Repr.parse(packet)
            continue
        bad[name] = bad.get(name, 0) + 1
        assert packet.checksum != oracle_checksum(bytes(packet.header))
        with pytest.raises(ChecksumError) as info:
            Ipv4Repr.parse(packet)
        assert info.value.found == packet.checksum
        assert info.value.expected == oracle_checksum(bytes(packet.header))
        assert "ipv4.checksum" in str(info.value)
        assert Ipv4Repr.parse(packet, verify_checksum=False).ttl == packet.ttl
    assert bad == {"ipv4-fragments-icmp.pcap": 3}


def test_truncated_capture_frames(shared_data: Path) -> None:
    """SOURCES.md: 5 frames of tcp-loss-reorder-overlap.pcap are shorter than their IP length."""
    short = 0
    for raw in ipv4_packets(shared_data / "pcap" / "tcp-loss-reorder-overlap.pcap"):
        try:
            Ipv4Packet.new_checked(raw)
        except TruncatedError as e:
            short += 1
            assert e.field == "total_length"
            assert str(e).startswith("ipv4.total_length: truncated")
            assert e.need == IP(raw).len > e.have == len(raw)
    assert short == 5


def test_real_headers_parse_then_emit_identically(shared_data: Path) -> None:
    for name, raw in all_packets(shared_data):
        packet = Ipv4Packet.new_checked_header(raw)
        header = Ipv4Repr.parse(packet, verify_checksum=False)
        buf = bytearray(header.buffer_len())
        header.emit(Ipv4Packet(buf), fill_checksum=packet.verify_checksum())
        if packet.verify_checksum():
            assert bytes(buf) == bytes(packet.header), name
        else:
            assert bytes(buf[:10]) == raw[:10] and bytes(buf[12:]) == raw[12:20]


def test_padded_frame_payload_is_sliced_by_total_length(shared_data: Path) -> None:
    padded = 0
    for raw in ipv4_packets(shared_data / "pcap" / "http-google-get.pcap"):
        packet = Ipv4Packet.new_checked(raw)
        if packet.total_length < len(raw):
            padded += 1
            assert len(packet.payload) == packet.total_length - packet.header_len
            assert bytes(packet.payload) == bytes(IP(raw).payload)[: len(packet.payload)]
    assert padded > 0


# --- decrement_ttl -------------------------------------------------------------------------------


def test_decrement_ttl_on_real_packets(shared_data: Path) -> None:
    for _name, raw in all_packets(shared_data):
        buf = bytearray(raw)
        packet = Ipv4Packet.new_checked_header(buf)
        if not packet.verify_checksum() or packet.ttl == 0:
            continue
        ttl = packet.ttl
        assert packet.decrement_ttl() == ttl - 1
        assert packet.ttl == ttl - 1
        assert packet.verify_checksum()
        assert packet.checksum == oracle_checksum(bytes(packet.header))
        assert buf[:8] == raw[:8] and buf[9:10] == raw[9:10] and buf[12:] == raw[12:]


# --- byte vectors built by scapy -----------------------------------------------------------------


def test_options_against_scapy() -> None:
    raw = bytes(
        IP(
            src="198.18.0.1",
            dst="198.18.0.2",
            options=[
                IPOption_RR(routers=["198.18.0.9"]),
                IPOption_NOP(),
                IPOption_Router_Alert(),
                IPOption_Timestamp(flg=0, timestamp=123),
                IPOption_LSRR(routers=["198.18.1.1", "198.18.1.2"]),
            ],
        )
        / UDP()
    )
    packet = Ipv4Packet.new_checked(raw)
    header = Ipv4Repr.parse(packet)
    assert header.options == bytes(packet.options) == raw[20 : packet.header_len]
    ours = list(iter_options(header.options))
    theirs = IP(raw).options
    assert ours[-1].type == Ipv4OptionType.EOL
    assert [o.type for o in ours] == [
        (o.copy_flag << 7) | (int(o.optclass) << 5) | int(o.option) for o in theirs
    ]
    assert [o.length for o in ours if o.type > 1] == [o.length for o in theirs if o.option > 1]
    assert ours[0].type == Ipv4OptionType.RECORD_ROUTE and ours[0].data == b"\x04\xc6\x12\x00\x09"
    assert ours[2] == Ipv4Option(Ipv4OptionType.ROUTER_ALERT, 4, b"\0\0")
    assert ours[2].copied and not ours[0].copied
    assert header.to_bytes(packet.payload) == raw


def test_ssrr_and_eol_padding() -> None:
    raw = bytes(IP(options=[IPOption_SSRR(routers=["1.2.3.4"])]))
    options = list(iter_options(Ipv4Packet(raw).options))
    assert options[0].type == Ipv4OptionType.SSRR and options[0].length == 7
    assert options[-1] == Ipv4Option(Ipv4OptionType.EOL, 1, b"")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", []),
        (b"\x00\xff\xff\xff", [(0, 1, b"")]),  # EOL: what follows is padding, not walked
        (b"\x01\x01\x00\x00", [(1, 1, b""), (1, 1, b""), (0, 1, b"")]),
        (b"\x94\x04\x00\x00", [(148, 4, b"\0\0")]),
        (b"\x1e\x02\x01\x00", [(30, 2, b""), (1, 1, b""), (0, 1, b"")]),
    ],
)
def test_iter_options_vectors(raw: bytes, expected: list[tuple[int, int, bytes]]) -> None:
    assert [tuple(o) for o in iter_options(raw)] == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"\x07",  # no length octet
        b"\x1e\x01\x00\x00",  # length below 2
        b"\x1e\x00\x00\x00",  # length 0 would loop forever
        b"\x07\x09\x04\x00",  # runs past the end
        b"\x07\x02\x00\x00",  # record route without its pointer
        b"\x44\x03\x05\x00",  # timestamp shorter than 4
        b"\x94\x06\x00\x00\x00\x00\x00\x00",  # router alert is exactly 4
    ],
)
def test_iter_options_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedError) as info:
        list(iter_options(raw))
    assert info.value.field == "options"
    assert str(info.value).startswith("ipv4.options")


@given(st.binary(max_size=40))
def test_garbage_options_raise_only_wire_errors(raw: bytes) -> None:
    try:
        walked = list(iter_options(raw))
    except WireError:
        return
    assert sum(o.length for o in walked) <= len(raw)


@given(st.binary(min_size=0, max_size=40).map(lambda b: b + bytes(-len(b) % 4)))
def test_garbage_options_in_a_header_raise_only_wire_errors(options: bytes) -> None:
    header = bytes([0x45 + len(options) // 4]) + bytes(1) + (20 + len(options)).to_bytes(2, "big")
    raw = header + bytes(16) + options
    with contextlib.suppress(WireError):
        Ipv4Repr.parse(Ipv4Packet.new_checked(raw), verify_checksum=False)


options_strategy = st.lists(
    st.one_of(
        st.just(Ipv4Option(1, 1, b"")),
        st.builds(
            lambda t, d: Ipv4Option(t, len(d) + 2, d),
            st.sampled_from([7, 131, 137, 30, 25]),
            st.binary(min_size=1, max_size=8),
        ),
        st.builds(lambda d: Ipv4Option(68, len(d) + 2, d), st.binary(min_size=2, max_size=8)),
        st.just(Ipv4Option(148, 4, b"\0\0")),
    ),
    max_size=4,
)


@given(options_strategy)
def test_encode_then_iter_options(options: list[Ipv4Option]) -> None:
    raw = encode_options(options)
    assert len(raw) % 4 == 0
    walked = list(iter_options(raw))
    if walked and walked[-1].type == 0:
        walked.pop()
    assert walked == options


# --- reprs: round trips --------------------------------------------------------------------------

addresses = st.integers(0, 0xFFFFFFFF)
reprs = st.builds(
    Ipv4Repr,
    src=addresses,
    dst=addresses,
    protocol=st.integers(0, 255),
    payload_len=st.integers(0, 200),
    ttl=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ecn=st.integers(0, 3),
    identification=st.integers(0, 0xFFFF),
    dont_frag=st.booleans(),
    more_frags=st.booleans(),
    frag_offset=st.integers(0, 0x1FFF).map(lambda u: u * 8),
    options=options_strategy.map(encode_options),
)


@given(reprs)
def test_emit_then_parse(header: Ipv4Repr) -> None:
    raw = header.to_bytes(bytes(header.payload_len))
    packet = Ipv4Packet.new_checked(raw)
    assert packet.verify_checksum()
    assert Ipv4Repr.parse(packet) == header
    assert len(packet.payload) == header.payload_len


@given(reprs, st.binary(max_size=40))
def test_emit_matches_scapy(header: Ipv4Repr, payload: bytes) -> None:
    header = Ipv4Repr(
        header.src,
        header.dst,
        IpProtocol.UDP,
        len(payload),
        header.ttl,
        header.dscp,
        header.ecn,
        header.identification,
        header.dont_frag,
        header.more_frags,
        header.frag_offset,
        header.options,
    )
    raw = header.to_bytes(payload)
    oracle = IP(
        src=ip_to_str(header.src),
        dst=ip_to_str(header.dst),
        proto=17,
        ttl=header.ttl,
        tos=(header.dscp << 2) | header.ecn,
        id=header.identification,
        flags=(2 if header.dont_frag else 0) | (1 if header.more_frags else 0),
        frag=header.frag_offset // 8,
        options=[Raw(header.options)] if header.options else [],
    ) / Raw(payload)
    assert raw == bytes(oracle)


@given(st.binary(min_size=60, max_size=60), st.integers(5, 15), st.integers(0, 60))
def test_parse_then_emit(raw: bytes, ihl: int, payload_len: int) -> None:
    buf = bytearray(raw[: ihl * 4]) + bytes(payload_len)
    buf[0] = 0x40 | ihl
    buf[2:4] = len(buf).to_bytes(2, "big")
    buf[6] &= 0x7F
    packet = Ipv4Packet.new_checked(buf)
    packet.fill_checksum()
    try:
        header = Ipv4Repr.parse(packet)
    except MalformedError as e:
        assert e.field == "options"
        return
    assert header.to_bytes(packet.payload) == bytes(buf)


@given(reprs)
def test_emit_into_prefilled_buffer(header: Ipv4Repr) -> None:
    buf = bytearray(b"\xa5" * (header.buffer_len() + 4))
    header.emit(Ipv4Packet(buf))
    assert (
        buf[: header.buffer_len()]
        == header.to_bytes(bytes(header.payload_len))[: header.buffer_len()]
    )
    assert buf[header.buffer_len() :] == b"\xa5" * 4


def test_emit_into_prefilled_buffer_leaves_no_a5() -> None:
    header = Ipv4Repr(
        ip_from_str("198.18.0.1"),
        ip_from_str("198.18.0.2"),
        IpProtocol.TCP,
        0,
        options=encode_options([Ipv4Option(148, 4, b"\0\0")]),
    )
    for fill in (True, False):
        buf = bytearray(b"\xa5" * header.buffer_len())
        header.emit(Ipv4Packet(buf), fill_checksum=fill)
        assert 0xA5 not in buf


def test_emit_errors_are_api_misuse() -> None:
    header = Ipv4Repr(1, 2, IpProtocol.UDP, 4)
    for bad in (lambda: header.emit(Ipv4Packet(bytearray(19))), lambda: header.to_bytes(b"abc")):
        with pytest.raises(ValueError) as info:
            bad()
        assert not isinstance(info.value, WireError)
    for kwargs in ({"ttl": 256}, {"frag_offset": 3}, {"options": b"\x01"}, {"options": bytes(44)}):
        with pytest.raises(ValueError):
            Ipv4Repr(1, 2, IpProtocol.UDP, 4, **kwargs)  # type: ignore[arg-type]


# --- integrity and sanity errors -----------------------------------------------------------------


def valid_header(**fields: int) -> bytearray:
    """A 28-byte packet built by scapy."""
    return bytearray(bytes(IP(src="198.18.0.1", dst="198.18.0.2", **fields) / Raw(b"x" * 8)))


def test_truncated_buffers() -> None:
    with pytest.raises(TruncatedError) as info:
        Ipv4Packet.new_checked(bytes(valid_header())[:19])
    assert info.value.field is None and str(info.value).startswith("ipv4: truncated")
    buf = valid_header()
    buf[0] = 0x4F  # 60-byte header in a 28-byte buffer
    with pytest.raises(TruncatedError, match=r"^ipv4\.ihl: truncated: need 60 bytes, have 28"):
        Ipv4Packet.new_checked(buf)
    with pytest.raises(TruncatedError, match=r"^ipv4\.ihl"):
        Ipv4Packet.new_checked_header(buf)
    buf = valid_header()
    with pytest.raises(TruncatedError, match=r"^ipv4\.total_length: truncated: need 28"):
        Ipv4Packet.new_checked(bytes(buf[:27]))
    assert len(Ipv4Packet.new_checked_header(bytes(buf[:21])).payload) == 1


@pytest.mark.parametrize(
    ("byte", "value", "message"),
    [
        (0, 0x65, r"^ipv4\.version = 6: not IPv4"),
        (0, 0x43, r"^ipv4\.ihl = 3: below the minimum of 5"),
        (3, 19, r"^ipv4\.total_length = 19: below the header length of 20"),
        (6, 0x80, r"^ipv4\.flags = 4: the reserved flag bit is set"),
    ],
)
def test_sanity_errors_name_the_field(byte: int, value: int, message: str) -> None:
    buf = valid_header()
    buf[byte] = value
    packet = Ipv4Packet(buf)
    packet.fill_checksum()
    with pytest.raises(MalformedError, match=message):
        Ipv4Repr.parse(packet)


def test_bad_checksum() -> None:
    buf = valid_header()
    buf[10] ^= 0xFF
    packet = Ipv4Packet.new_checked(buf)
    assert not packet.verify_checksum()
    with pytest.raises(ChecksumError, match=r"^ipv4\.checksum: bad checksum"):
        Ipv4Repr.parse(packet)
    assert Ipv4Repr.parse(packet, verify_checksum=False).src == ip_from_str("198.18.0.1")


def test_view_setters_match_scapy() -> None:
    buf = valid_header()
    packet = Ipv4Packet(buf)
    packet.dscp, packet.ecn = 46, 1
    packet.identification = 0xBEEF
    packet.dont_frag, packet.more_frags = True, True
    packet.frag_offset = 1480
    packet.ttl, packet.protocol = 7, IpProtocol.UDP
    packet.src, packet.dst = ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2")
    packet.fill_checksum()
    oracle = IP(bytes(buf))
    assert (oracle.tos, oracle.id, int(oracle.flags), oracle.frag) == (
        (46 << 2) | 1,
        0xBEEF,
        3,
        185,
    )
    assert (oracle.ttl, oracle.proto, oracle.src, oracle.dst) == (7, 17, "10.0.0.1", "10.0.0.2")
    assert packet.checksum == oracle_checksum(bytes(buf[:20]))
    packet.dont_frag = packet.more_frags = False
    assert int(IP(bytes(buf)).flags) == 0 and packet.frag_offset == 1480


# --- TTL: incremental update equals full recomputation --------------------------------------------


@given(reprs.filter(lambda r: r.ttl > 0))
def test_decrement_ttl_equals_recomputation(header: Ipv4Repr) -> None:
    buf = bytearray(header.to_bytes(bytes(header.payload_len)))
    packet = Ipv4Packet(buf)
    packet.decrement_ttl()
    incremental = packet.checksum
    packet.fill_checksum()
    assert incremental == packet.checksum
    assert incremental == oracle_checksum(bytes(packet.header))
    assert packet.ttl == header.ttl - 1


def test_decrement_ttl_of_zero_is_refused() -> None:
    buf = valid_header(ttl=1)
    packet = Ipv4Packet(buf)
    assert packet.decrement_ttl() == 0
    assert packet.verify_checksum()
    with pytest.raises(ValueError):
        packet.decrement_ttl()


# --- address helpers -----------------------------------------------------------------------------


@given(addresses)
def test_address_round_trip(address: int) -> None:
    text = ip_to_str(address)
    assert text == str(ipaddress.IPv4Address(address))
    assert ip_from_str(text) == address
    assert IP(src=text).src == text


@pytest.mark.parametrize(
    "text", ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", "-1.2.3.4"]
)
def test_bad_address_strings(text: str) -> None:
    with pytest.raises(ValueError):
        ip_from_str(text)


@pytest.mark.parametrize("address", [-1, 2**32])
def test_bad_address_ints(address: int) -> None:
    with pytest.raises(ValueError):
        ip_to_str(address)


def test_constants() -> None:
    assert HEADER_LEN == 20
    assert IpProtocol.TCP == 6 and IpProtocol.UDP == 17 and IpProtocol.ICMP == 1
