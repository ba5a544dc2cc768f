"""TCP segments: real frames from the shared captures compared field by field with scapy, checksums
against scapy's ``in4_chksum``, round trips, the 0xa5 pre-fill test, and error reporting."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, TCP, rdpcap
from scapy.layers.inet import in4_chksum

from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError, WireError
from netfast.wire.tcp import HEADER_LEN, TcpFlags, TcpRepr, TcpSegment
from netfast.wire.tcp_options import (
    ExperimentalOption,
    FastOpenOption,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOptions,
    TimestampsOption,
    TtcpCookies,
    UnknownOption,
    WindowScaleOption,
)

SRC_IP = 0xC6120001  # 198.18.0.1
DST_IP = 0xC6120002  # 198.18.0.2

# Bad TCP checksums per capture, as counted in shared/data/pcap/SOURCES.md (frames whose
# capture is shorter than the IP total length are counted apart).
BAD_CHECKSUMS = {"http-espn-pageload.pcap": 63, "tcp-loss-reorder-overlap.pcap": 10}
TCP_CAPTURES = [
    "http-espn-pageload.pcap",
    "http-google-get.pcap",
    "tcp-dupack-retransmit.pcap",
    "tcp-handshake-captured-reordered.pcap",
    "tcp-handshake.pcap",
    "tcp-loss-reorder-overlap.pcap",
    "tcp-retransmissions-rto.pcap",
    "tcp-rst-refused.pcap",
    "tcp-teardown-fin.pcap",
    "wireshark-http.pcap",
]


def tcp_segments(path: Path) -> Iterator[tuple[bytes, int, int, bool, Any]]:
    """(segment, src ip, dst ip, short capture?, scapy IP layer) per unfragmented TCP/IPv4 frame;
    Ethernet and IPv4 headers sliced off here, not by the code under test."""
    for pkt in rdpcap(str(path)):
        frame = bytes(pkt)
        if frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        if int.from_bytes(frame[20:22], "big") & 0x3FFF:  # MF or a fragment offset
            continue
        ihl = (frame[14] & 0x0F) * 4
        total = int.from_bytes(frame[16:18], "big")
        segment = frame[14 + ihl : 14 + total]
        src, dst = struct.unpack_from("!II", frame, 26)
        yield segment, src, dst, 14 + total > len(frame), IP(frame[14 : 14 + total])


def scapy_options(options: TcpOptions) -> list[tuple[object, object]]:
    """Our typed options written the way scapy's TCPOptionsField lists them."""
    out: list[tuple[object, object]] = []
    for o in options:
        if isinstance(o, NopOption):
            out.append(("NOP", None))
        elif isinstance(o, MssOption):
            out.append(("MSS", o.value))
        elif isinstance(o, WindowScaleOption):
            out.append(("WScale", o.shift))
        elif isinstance(o, SackPermittedOption):
            out.append(("SAckOK", b""))
        elif isinstance(o, SackOption):
            out.append(("SAck", tuple(e for block in o.blocks for e in block)))
        elif isinstance(o, TimestampsOption):
            out.append(("Timestamp", (o.tsval, o.tsecr)))
        elif isinstance(o, FastOpenOption):
            c = o.cookie
            out.append(("TFO", struct.unpack("!II", c) if len(c) == 8 else c))
        else:  # experimental / T/TCPv2 / unknown: scapy keeps (kind, bytes after kind+length)
            out.append((o.kind, o.to_bytes()[2:]))
    return out


def scapy_list(tcp: Any) -> list[tuple[object, object]]:
    opts = list(tcp.options)
    while opts and opts[-1][0] == "EOL":  # we do not list EOL: it ends the list
        opts.pop()
    return opts


def dotted(ip: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", ip))


def scapy_checksum(ip_layer: Any, segment: bytes) -> int:
    zeroed = segment[:16] + b"\0\0" + segment[18:]
    return int(in4_chksum(6, ip_layer, zeroed))


# --- real captures ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TCP_CAPTURES)
def test_real_segments_match_scapy(shared_data: Path, name: str) -> None:
    checked = bad = 0
    for segment, src, dst, short, ip_layer in tcp_segments(shared_data / "pcap" / name):
        tcp = ip_layer[TCP]
        view = TcpSegment.new_checked(segment)
        assert view.src_port == tcp.sport
        assert view.dst_port == tcp.dport
        assert view.seq == tcp.seq
        assert view.ack == tcp.ack
        assert view.data_offset == tcp.dataofs
        assert view.header_len == tcp.dataofs * 4
        assert view.reserved == tcp.reserved
        assert view.flags == int(tcp.flags)
        assert view.window == tcp.window
        assert view.checksum == tcp.chksum
        assert view.urgent == tcp.urgptr
        assert bytes(view.payload) == bytes(tcp.payload)

        if short:
            # scapy's pseudo-header takes the IP total length, ours the bytes we have: a short
            # capture can only fail, and the expected value is not comparable.
            assert not view.verify_checksum(src, dst)
            continue
        expected = scapy_checksum(ip_layer, segment)
        ok = view.checksum == expected
        assert view.verify_checksum(src, dst) == ok
        assert view.compute_checksum(src, dst) == expected
        bad += not ok

        r = TcpRepr.parse(view, src, dst, verify_checksum=False)
        assert (r.src_port, r.dst_port, r.seq, r.ack) == (tcp.sport, tcp.dport, tcp.seq, tcp.ack)
        assert (r.flags, r.window, r.urgent) == (int(tcp.flags), tcp.window, tcp.urgptr)
        assert scapy_options(r.options) == scapy_list(tcp)
        assert bytes(r.payload) == bytes(tcp.payload)
        if ok:
            assert TcpRepr.parse(view, src, dst) == r
        else:
            with pytest.raises(ChecksumError) as info:
                TcpRepr.parse(view, src, dst)
            assert (info.value.found, info.value.expected) == (tcp.chksum, expected)

        # parse -> emit reproduces the segment, with a correct checksum.
        emitted = r.to_bytes(src, dst)
        assert emitted[:16] + emitted[18:] == segment[:16] + segment[18:]
        assert struct.unpack_from("!H", emitted, 16)[0] == expected
        checked += 1
    assert checked > 0
    assert bad == BAD_CHECKSUMS.get(name, 0)


def test_handshake_capture_options(shared_data: Path) -> None:
    segs = list(tcp_segments(shared_data / "pcap" / "tcp-handshake.pcap"))
    syn = TcpRepr.parse(TcpSegment(segs[0][0]), segs[0][1], segs[0][2])
    synack = TcpRepr.parse(TcpSegment(segs[1][0]), segs[1][1], segs[1][2])
    assert syn.flags == TcpFlags.SYN
    assert synack.flags == TcpFlags.SYN | TcpFlags.ACK
    assert synack.ack == (syn.seq + syn.segment_len) % 2**32
    for r, ip in ((syn, segs[0][4]), (synack, segs[1][4])):
        opts = dict(o for o in ip[TCP].options if o[0] != "NOP")
        assert r.options.mss == opts["MSS"]
        assert r.options.sack_permitted == ("SAckOK" in opts)
        assert r.options.wscale == opts.get("WScale")


# --- building segments that scapy reads ---------------------------------------------------------


def test_syn_with_every_option_parses_identically_in_scapy() -> None:
    opts = TcpOptions.build(
        mss=1460, sack_permitted=True, timestamps=(123456, 0), wscale=7, tfo_cookie=b"\x11" * 8
    )
    syn = TcpRepr(40000, 80, 0xFFFFFF00, 0, TcpFlags.SYN, 64240, options=opts)
    wire = syn.to_bytes(SRC_IP, DST_IP)
    ip = IP(src="198.18.0.1", dst="198.18.0.2", proto=6) / TCP(wire)
    tcp = IP(bytes(ip))[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (40000, 80, 0xFFFFFF00, 0)
    assert tcp.flags == "S" and tcp.window == 64240 and tcp.urgptr == 0 and tcp.reserved == 0
    assert tcp.dataofs * 4 == len(wire) == syn.header_len()
    assert scapy_list(tcp) == [
        ("MSS", 1460),
        ("SAckOK", b""),
        ("Timestamp", (123456, 0)),
        ("NOP", None),
        ("WScale", 7),
        ("NOP", None),
        ("NOP", None),
        ("TFO", (0x11111111, 0x11111111)),
    ]
    assert tcp.chksum == scapy_checksum(IP(bytes(ip)), wire)


def test_scapy_built_syn_parses_identically() -> None:
    ip = IP(src="198.18.0.2", dst="198.18.0.1") / TCP(
        sport=443,
        dport=51000,
        seq=7,
        ack=2**32 - 1,
        flags="SAEC",
        window=65535,
        options=[
            ("MSS", 1400),
            ("NOP", None),
            ("WScale", 15),
            ("SAckOK", b""),
            ("Timestamp", (1, 2)),
            ("TFO", b""),
            (253, b"\x54\x32" + bytes.fromhex("0102030405060a0b0c0d0e0f")),
        ],
    )
    wire = bytes(ip)[20:]
    r = TcpRepr.parse(TcpSegment(wire), DST_IP, SRC_IP)
    assert r.flags == TcpFlags.SYN | TcpFlags.ACK | TcpFlags.ECE | TcpFlags.CWR
    assert (r.src_port, r.dst_port, r.seq, r.ack, r.window) == (443, 51000, 7, 2**32 - 1, 65535)
    assert r.options.mss == 1400
    assert r.options.window_scale == WindowScaleOption(15)
    assert r.options.wscale == 14
    assert r.options.sack_permitted
    assert r.options.timestamps == TimestampsOption(1, 2)
    assert r.options.tfo_cookie == b""
    assert r.options.ttcp == TtcpCookies(0x010203040506, 0x0A0B0C0D0E0F)
    assert scapy_options(r.options) == scapy_list(IP(bytes(ip))[TCP])
    assert r.to_bytes(DST_IP, SRC_IP) == wire


def test_flag_bits_match_scapy() -> None:
    names = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG"}
    names |= {"E": "ECE", "C": "CWR", "N": "NS"}
    for letter, name in names.items():
        assert int(TCP(flags=letter).flags) == TcpFlags[name]


# --- emission -----------------------------------------------------------------------------------


def test_emit_writes_every_header_byte() -> None:
    # Options of 7 bytes need one byte of padding: it must be written too.
    opts = TcpOptions((MssOption(1460), WindowScaleOption(3)))
    r = TcpRepr(1, 2, 3, 4, TcpFlags.SYN | TcpFlags.NS, 5, 6, opts, b"\x00\x01\x02")
    buf = bytearray(b"\xa5" * (r.buffer_len() + 8))
    r.emit(TcpSegment(buf), SRC_IP, DST_IP)
    assert r.header_len() == 28
    assert 0xA5 not in buf[: r.header_len()]
    assert buf[r.header_len() : r.buffer_len()] == b"\x00\x01\x02"
    assert buf[r.buffer_len() :] == b"\xa5" * 8  # nothing written past the segment
    view = TcpSegment(buf[: r.buffer_len()])
    assert view.verify_checksum(SRC_IP, DST_IP)
    assert TcpRepr.parse(view, SRC_IP, DST_IP) == r


def test_emit_misuse_is_a_plain_value_error() -> None:
    r = TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 5, payload=b"xyz")
    with pytest.raises(ValueError, match="too small") as info:
        r.emit(TcpSegment(bytearray(22)), SRC_IP, DST_IP)
    assert not isinstance(info.value, WireError)
    for bad, name in (
        (TcpRepr(65536, 2, 3, 4, TcpFlags.ACK, 5), "src_port"),
        (TcpRepr(1, -1, 3, 4, TcpFlags.ACK, 5), "dst_port"),
        (TcpRepr(1, 2, 2**32, 4, TcpFlags.ACK, 5), "seq"),
        (TcpRepr(1, 2, 3, 2**32, TcpFlags.ACK, 5), "ack"),
        (TcpRepr(1, 2, 3, 4, TcpFlags(0x200), 5), "flags"),
        (TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 65536), "window"),
        (TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 5, 65536), "urgent"),
    ):
        with pytest.raises(ValueError, match=f"tcp.{name}") as info:
            bad.to_bytes(SRC_IP, DST_IP)
        assert not isinstance(info.value, WireError)


def test_segment_len_counts_syn_and_fin() -> None:
    assert TcpRepr(1, 2, 3, 4, TcpFlags.SYN, 5).segment_len == 1
    assert TcpRepr(1, 2, 3, 4, TcpFlags.FIN | TcpFlags.ACK, 5, payload=b"ab").segment_len == 3
    assert TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 5).segment_len == 0


def test_view_setters_write_in_place() -> None:
    buf = bytearray(24)
    view = TcpSegment(buf)
    view.src_port, view.dst_port, view.seq, view.ack = 1234, 80, 2**32 - 2, 99
    view.data_offset = 6
    view.flags = TcpFlags.PSH | TcpFlags.ACK | TcpFlags.NS
    view.window, view.urgent = 4096, 7
    buf[20:24] = b"\x02\x04\x05\xb4"
    view.fill_checksum(SRC_IP, DST_IP)
    tcp = TCP(bytes(buf))
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (1234, 80, 2**32 - 2, 99)
    assert tcp.dataofs == 6 and tcp.flags == "PAN" and tcp.reserved == 0
    assert (tcp.window, tcp.urgptr) == (4096, 7)
    assert tcp.options == [("MSS", 1460)]
    ip = IP(src="198.18.0.1", dst="198.18.0.2", proto=6) / tcp
    assert view.checksum == scapy_checksum(IP(bytes(ip)), bytes(buf))
    assert view.verify_checksum(SRC_IP, DST_IP)
    assert not view.verify_checksum(SRC_IP, DST_IP + 1)
    assert bytes(view.options) == b"\x02\x04\x05\xb4" and bytes(view.payload) == b""
    with pytest.raises(ValueError):
        view.data_offset = 16
    with pytest.raises(ValueError):
        view.flags = 0x200


def test_payload_is_zero_copy() -> None:
    buf = bytearray(TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 5, payload=b"hello").to_bytes(1, 2))
    r = TcpRepr.parse(TcpSegment(buf), 1, 2)
    buf[-5:] = b"HELLO"
    assert bytes(r.payload) == b"HELLO"


# --- errors -------------------------------------------------------------------------------------


def _header(offset: int, total: int) -> bytearray:
    buf = bytearray(total)
    buf[12] = offset << 4
    return buf


@pytest.mark.parametrize("length", [0, 1, 19])
def test_shorter_than_the_fixed_header(length: int) -> None:
    with pytest.raises(TruncatedError) as info:
        TcpSegment.new_checked(bytes(length))
    assert (info.value.need, info.value.have) == (20, length)
    assert str(info.value) == f"tcp: truncated: need 20 bytes, have {length}"


@pytest.mark.parametrize(("offset", "total"), [(6, 20), (15, 59), (15, 40), (8, 31)])
def test_data_offset_past_the_end(offset: int, total: int) -> None:
    for call in (
        lambda: TcpSegment.new_checked(_header(offset, total)),
        lambda: TcpRepr.parse(TcpSegment(_header(offset, total)), 0, 0, verify_checksum=False),
    ):
        with pytest.raises(TruncatedError) as info:
            call()
        assert info.value.field == "data_offset"
        assert (info.value.need, info.value.have) == (offset * 4, total)
        assert str(info.value).startswith("tcp.data_offset:")


@pytest.mark.parametrize("offset", [0, 1, 4])
def test_data_offset_below_five(offset: int) -> None:
    view = TcpSegment.new_checked(_header(offset, 40))  # integrity holds; sanity does not
    assert bytes(view.options) == b"" and len(view.payload) == 20
    with pytest.raises(MalformedError) as info:
        TcpRepr.parse(view, 0, 0, verify_checksum=False)
    assert str(info.value) == f"tcp.data_offset = {offset}: below the minimum of 5"


def test_malformed_option_in_a_segment() -> None:
    buf = _header(6, 24)
    buf[20:24] = b"\x08\x06\x00\x00"
    view = TcpSegment(buf)
    view.fill_checksum(SRC_IP, DST_IP)
    with pytest.raises(MalformedError) as info:
        TcpRepr.parse(view, SRC_IP, DST_IP)
    assert info.value.field == "options.length"
    assert "tcp.options.length = 6" in str(info.value)


def test_corrupted_segment_fails_its_checksum() -> None:
    good = TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 5, payload=b"data").to_bytes(SRC_IP, DST_IP)
    (right,) = struct.unpack_from("!H", good, 16)
    bad = bytearray(good)
    bad[-1] ^= 0x40
    view = TcpSegment(bad)
    assert not view.verify_checksum(SRC_IP, DST_IP)
    with pytest.raises(ChecksumError) as info:
        TcpRepr.parse(view, SRC_IP, DST_IP)
    assert info.value.found == right
    assert info.value.expected == scapy_checksum(IP(src="198.18.0.1", dst="198.18.0.2"), bad)
    assert TcpRepr.parse(view, SRC_IP, DST_IP, verify_checksum=False).payload == b"dat!"


# --- properties ---------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
options_strategy = st.builds(
    TcpOptions.build,
    mss=st.none() | u16,
    wscale=st.none() | st.integers(0, 255),
    sack_permitted=st.booleans(),
    timestamps=st.none() | st.tuples(u32, u32),
    sack_blocks=st.lists(st.tuples(u32, u32), max_size=2).map(tuple),
    tfo_cookie=st.none() | st.sampled_from([b"", b"abcd", b"12345678"]),
).filter(lambda o: sum(len(x.to_bytes()) for x in o) <= 40)

reprs = st.builds(
    TcpRepr,
    src_port=u16,
    dst_port=u16,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 0x1FF).map(TcpFlags),
    window=u16,
    urgent=u16,
    options=options_strategy
    | st.builds(
        TcpOptions,
        st.tuples(
            st.builds(
                TtcpCookies, st.integers(0, 2**48 - 1), st.none() | st.integers(0, 2**48 - 1)
            ),
            st.builds(ExperimentalOption, st.sampled_from([253, 254]), st.integers(0, 0x5431)),
            st.builds(UnknownOption, st.integers(9, 33), st.binary(max_size=6)),
        ),
    ),
    payload=st.binary(max_size=64),
)


@given(reprs, u32, u32)
def test_emit_then_parse(r: TcpRepr, src: int, dst: int) -> None:
    wire = r.to_bytes(src, dst)
    assert len(wire) == r.buffer_len() and r.header_len() % 4 == 0
    parsed = TcpRepr.parse(TcpSegment.new_checked(wire), src, dst)
    assert parsed == r
    ip = IP(src=dotted(src), dst=dotted(dst), proto=6, len=20 + len(wire))
    assert struct.unpack_from("!H", wire, 16)[0] == scapy_checksum(ip, wire)


@st.composite
def raw_segments(draw: st.DrawFn) -> bytes:
    """Header bytes packed here with struct (reserved bits zero), options from a few hand-encoded
    pieces, zero padding, any payload and any checksum."""
    pieces = draw(
        st.lists(
            st.sampled_from(
                [
                    b"\x01",
                    b"\x02\x04\x05\xb4",
                    b"\x03\x03\x0e",
                    b"\x04\x02",
                    b"\x08\x0a\x00\x00\x00\x01\xff\xff\xff\xff",
                    b"\x05\x0a\x00\x00\x00\x01\x00\x00\x00\x02",
                    b"\x22\x06\x01\x02\x03\x04",
                    b"\xfd\x0a\x54\x32\x00\x00\x00\x00\x00\x01",
                    b"\x1e\x03\x07",
                ]
            ),
            max_size=8,
        )
    )
    opts = b""
    for p in pieces:
        if len(opts) + len(p) <= 40:
            opts += p
    opts += bytes(-len(opts) % 4)
    head = struct.pack(
        "!HHIIHHHH",
        draw(u16),
        draw(u16),
        draw(u32),
        draw(u32),
        ((5 + len(opts) // 4) << 12) | draw(st.integers(0, 0x1FF)),
        draw(u16),
        draw(u16),
        draw(u16),
    )
    return head + opts + draw(st.binary(max_size=32))


@given(raw_segments(), u32, u32)
def test_parse_then_emit(segment: bytes, src: int, dst: int) -> None:
    r = TcpRepr.parse(TcpSegment.new_checked(segment), src, dst, verify_checksum=False)
    emitted = r.to_bytes(src, dst)
    assert emitted[:16] + emitted[18:] == segment[:16] + segment[18:]
    ip = IP(src=dotted(src), dst=dotted(dst), proto=6, len=20 + len(segment))
    assert struct.unpack_from("!H", emitted, 16)[0] == scapy_checksum(ip, segment)


@given(st.binary(min_size=0, max_size=80))
def test_arbitrary_segments_raise_only_wire_errors(data: bytes) -> None:
    try:
        r = TcpRepr.parse(TcpSegment(data), SRC_IP, DST_IP, verify_checksum=False)
    except WireError:
        return
    view = TcpSegment(data)
    # Re-emitted options never outgrow the received ones (only zero padding after EOL is lost).
    assert HEADER_LEN <= r.header_len() <= view.header_len
    assert bytes(r.payload) == data[view.header_len :]
