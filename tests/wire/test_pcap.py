"""Tests for netfast.wire.pcap and netfast.wire.pcapng: real captures against scapy, pcapng
blocks built by hand from the specification, round trips, and damaged files at every cut point."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import Ether
from scapy.utils import PcapNgWriter, RawPcapNgReader, RawPcapReader, rdpcap

from netfast.wire.capture import MAX_CAPLEN, PcapError, PcapRecord
from netfast.wire.pcap import PcapReader, PcapWriter, open_capture_stream
from netfast.wire.pcapng import PcapNgReader

# --- helpers -----------------------------------------------------------------------------------


def _scapy_records(path: Path) -> list[tuple[bytes, int, int]]:
    """(data, timestamp_ns, orig_len) of a classic pcap, as scapy reads it."""
    out = []
    reader = RawPcapReader(str(path))
    ns = reader.nano
    for data, meta in reader:
        out.append((data, meta.sec * 10**9 + meta.usec * (1 if ns else 1000), meta.wirelen))
    reader.close()
    return out


def _read(data: bytes, name: str = "test.pcap", **kw: bool) -> list[PcapRecord]:
    return list(open_capture_stream(io.BytesIO(data), name, **kw))


def _triples(records: list[PcapRecord]) -> list[tuple[bytes, int, int]]:
    return [(r.data, r.timestamp_ns, r.orig_len) for r in records]


class _Trickle(io.RawIOBase):
    """A stream that returns one byte per read, as a slow pipe might."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data[self._pos : self._pos + 1]
        self._pos += len(chunk)
        return chunk


# pcapng blocks built straight from the specification (draft-ietf-opsawg-pcapng section 3-4).


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(order: str, block_type: int, body: bytes) -> bytes:
    body = _pad(body)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _shb(order: str, major: int = 1) -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1))


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def _idb(order: str, linktype: int = 1, snaplen: int = 0, options: bytes = b"") -> bytes:
    if options:
        options += _option(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def _epb(order: str, if_id: int, ts: int, data: bytes, orig_len: int | None = None) -> bytes:
    orig = len(data) if orig_len is None else orig_len
    head = struct.pack(order + "IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
    return _block(order, 6, head + data)


def _spb(order: str, data: bytes, orig_len: int | None = None) -> bytes:
    return _block(
        order, 3, struct.pack(order + "I", len(data) if orig_len is None else orig_len) + data
    )


def _opb(order: str, if_id: int, ts: int, data: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", if_id, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return _block(order, 2, head + data)


# --- classic pcap: real captures ---------------------------------------------------------------


def test_every_real_capture_matches_scapy(shared_data: Path) -> None:
    paths = sorted((shared_data / "pcap").glob("*.pcap"))
    assert len(paths) >= 10
    for path in paths:
        with path.open("rb") as f:
            reader = open_capture_stream(f, path.name)
            assert isinstance(reader, PcapReader)
            records = list(reader)
        expected = _scapy_records(path)
        assert len(records) == len(expected), path.name
        assert _triples(records) == expected, path.name
        assert all(r.linktype == 1 and r.interface == 0 for r in records), path.name
        assert reader.records_read == len(records)
        assert reader.truncation is None
        # scapy's dissected packets agree on the timestamp as an exact decimal
        packets = rdpcap(str(path))
        assert [int(p.time * 10**9) for p in packets] == [r.timestamp_ns for r in records]


def test_header_fields(shared_data: Path) -> None:
    path = shared_data / "pcap" / "icmp-echo.pcap"
    reader = PcapReader(path.open("rb"), path.name)
    assert (reader.byte_order, reader.nanosecond, reader.version) == ("<", False, (2, 4))
    assert reader.linktype == 1
    assert reader.snaplen == struct.unpack_from("<I", path.read_bytes(), 16)[0]


def test_one_byte_per_read_stream(shared_data: Path) -> None:
    raw = (shared_data / "pcap" / "tcp-teardown-fin.pcap").read_bytes()
    trickled = list(open_capture_stream(_Trickle(raw), "trickle"))
    assert trickled == _read(raw)
    assert len(trickled) == 4


def _swap_to_big_endian(raw: bytes) -> bytes:
    """Rewrite a little-endian classic pcap in big-endian byte order."""
    out = [struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", raw, 0))]
    pos = 24
    while pos < len(raw):
        sec, frac, caplen, orig = struct.unpack_from("<IIII", raw, pos)
        out.append(struct.pack(">IIII", sec, frac, caplen, orig))
        out.append(raw[pos + 16 : pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


def test_big_endian_classic_matches_scapy(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "pcap" / "icmp-traceroute-ttl-exceeded.pcap"
    big = tmp_path / "big.pcap"
    big.write_bytes(_swap_to_big_endian(src.read_bytes()))
    reader = open_capture_stream(big.open("rb"), big.name)
    assert isinstance(reader, PcapReader)
    assert reader.byte_order == ">"
    assert _triples(list(reader)) == _scapy_records(big) == _scapy_records(src)


# --- classic pcap: writer against scapy --------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True])
def test_scapy_reads_what_we_write(shared_data: Path, tmp_path: Path, nanosecond: bool) -> None:
    src = shared_data / "pcap" / "wireshark-http.pcap"
    records = _read(src.read_bytes())
    out = tmp_path / "out.pcap"
    # shift timestamps so the nanosecond digits are not all zero
    with out.open("wb") as f:
        w = PcapWriter(f, nanosecond=nanosecond, snaplen=1000)
        for i, r in enumerate(records):
            w.write(r.data, r.timestamp_ns + i * 7, r.orig_len)
    scapy_view = _scapy_records(out)
    assert len(scapy_view) == len(records)
    for r, (data, _ts, orig) in zip(records, scapy_view, strict=True):
        assert data == r.data[:1000]
        assert orig == r.orig_len
    shifted = [r.timestamp_ns + i * 7 for i, r in enumerate(records)]
    if nanosecond:
        assert [t for _, t, _ in scapy_view] == shifted
    else:
        assert [t for _, t, _ in scapy_view] == [t // 1000 * 1000 for t in shifted]
    assert _triples(_read(out.read_bytes())) == scapy_view
    assert any(len(r.data) > 1000 for r in records)  # the snaplen cut was exercised


def test_writer_header_matches_scapy_view(tmp_path: Path) -> None:
    out = tmp_path / "raw.pcap"
    with out.open("wb") as f:
        PcapWriter(f, linktype=101, snaplen=96, nanosecond=True).write(b"\x45" * 20, 5)
    reader = RawPcapReader(str(out))
    assert (reader.linktype, reader.snaplen, reader.nano) == (101, 96, True)
    reader.close()


def test_writer_rejects_misuse() -> None:
    w = PcapWriter(io.BytesIO())
    with pytest.raises(ValueError, match="orig_len"):
        w.write(b"abcd", 0, orig_len=3)
    with pytest.raises(ValueError, match="timestamp"):
        w.write(b"abcd", -1)
    with pytest.raises(ValueError, match="timestamp"):
        w.write(b"abcd", 2**32 * 10**9)
    with pytest.raises(ValueError, match="linktype"):
        w.write_record(PcapRecord(0, b"x", 1, 101))
    with pytest.raises(ValueError, match="snaplen"):
        PcapWriter(io.BytesIO(), snaplen=0)


_packets = st.lists(
    st.tuples(
        st.binary(max_size=200),
        st.integers(min_value=0, max_value=2**32 * 10**9 - 1),
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(
    packets=_packets,
    nanosecond=st.booleans(),
    big=st.booleans(),
    snaplen=st.integers(min_value=1, max_value=300),
)
def test_round_trip_write_read(
    packets: list[tuple[bytes, int, int]], nanosecond: bool, big: bool, snaplen: int
) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, nanosecond=nanosecond, snaplen=snaplen, byte_order=">" if big else "<")
    for data, ts, extra in packets:
        w.write(data, ts, len(data) + extra)
    reader = open_capture_stream(io.BytesIO(buf.getvalue()), "rt")
    assert isinstance(reader, PcapReader)
    assert (reader.snaplen, reader.nanosecond) == (snaplen, nanosecond)
    unit = 1 if nanosecond else 1000
    expected = [
        PcapRecord(ts // unit * unit, data[:snaplen], len(data) + extra, 1)
        for data, ts, extra in packets
    ]
    assert list(reader) == expected


# --- classic pcap: damaged files ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["tcp-handshake.pcap", "icmp-echo.pcap"])
def test_every_cut_point(shared_data: Path, name: str) -> None:
    path = shared_data / "pcap" / name
    raw = path.read_bytes()
    expected = _scapy_records(path)
    # record boundaries from scapy's view of the lengths
    boundaries = [24]
    for data, _, _ in expected:
        boundaries.append(boundaries[-1] + 16 + len(data))
    assert boundaries[-1] == len(raw)
    for cut in range(len(raw)):
        data = raw[:cut]
        if cut < 24:
            with pytest.raises(PcapError, match=r"^cut\.pcap: offset 0: truncated file header"):
                _read(data, "cut.pcap", tolerate_truncation=True)
            continue
        whole = max(i for i, b in enumerate(boundaries) if b <= cut)
        if boundaries[whole] == cut:
            assert _triples(_read(data)) == expected[:whole]
            continue
        start = boundaries[whole]
        with pytest.raises(PcapError) as info:
            _read(data, "cut.pcap")
        err = info.value
        assert (err.name, err.offset) == ("cut.pcap", start)
        into = cut - start
        if into < 16:
            assert str(err) == (
                f"cut.pcap: offset {start}: truncated record header: need 16 bytes, have {into}"
            )
        else:
            caplen = len(expected[whole][0])
            assert str(err) == (
                f"cut.pcap: offset {start}: truncated record data: "
                f"need {caplen} bytes, have {into - 16}"
            )
        lenient = open_capture_stream(io.BytesIO(data), "cut.pcap", tolerate_truncation=True)
        assert _triples(list(lenient)) == expected[:whole]
        assert lenient.truncation is not None
        assert str(lenient.truncation) == str(err)


def test_bad_magic() -> None:
    with pytest.raises(PcapError, match=r"^x\.pcap: offset 0: bad magic 0x12345678"):
        _read(b"\x12\x34\x56\x78" + b"\0" * 20, "x.pcap")
    with pytest.raises(PcapError, match=r"bad magic 0x12345678"):
        PcapReader(io.BytesIO(b"\x12\x34\x56\x78" + b"\0" * 20))
    with pytest.raises(PcapError, match=r"^empty: offset 0: truncated file header"):
        _read(b"", "empty")


def test_bad_version(shared_data: Path) -> None:
    raw = bytearray((shared_data / "pcap" / "arp-gratuitous.pcap").read_bytes())
    struct.pack_into("<H", raw, 4, 3)
    with pytest.raises(PcapError, match=r"offset 0: unsupported version 3\.4"):
        _read(bytes(raw))


def test_caplen_beyond_snaplen(shared_data: Path) -> None:
    path = shared_data / "pcap" / "tcp-handshake.pcap"
    raw = bytearray(path.read_bytes())
    snaplen = struct.unpack_from("<I", raw, 16)[0]
    first = _scapy_records(path)[0]
    second = 24 + 16 + len(first[0])
    struct.pack_into("<I", raw, second + 8, snaplen + 1)
    reader = open_capture_stream(io.BytesIO(bytes(raw)), "c.pcap", tolerate_truncation=True)
    assert _triples([next(reader)]) == [first]  # the first record is fine
    with pytest.raises(PcapError) as info:
        next(reader)
    assert str(info.value) == (
        f"c.pcap: offset {second}: record caplen {snaplen + 1} exceeds snaplen {snaplen}"
    )


def test_impossible_caplen_with_zero_snaplen() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0, 1)
    record = struct.pack("<IIII", 0, 0, MAX_CAPLEN + 1, MAX_CAPLEN + 1)
    with pytest.raises(PcapError, match=rf"offset 24: record caplen {MAX_CAPLEN + 1} exceeds"):
        _read(header + record)


def test_orig_len_below_caplen() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 0, 0, 10, 9) + b"x" * 10
    with pytest.raises(PcapError, match="offset 24: record orig_len 9 is smaller than caplen 10"):
        _read(header + record)


# --- pcapng ------------------------------------------------------------------------------------


def test_scapy_pcapng_writer_read_back(shared_data: Path, tmp_path: Path) -> None:
    src = _read((shared_data / "pcap" / "http-google-get.pcap").read_bytes())
    out = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(out))
    for i, r in enumerate(src):
        pkt = Ether(r.data)
        pkt.time = r.timestamp_ns / 10**9
        pkt.sniffed_on = "eth1" if i % 3 == 0 else None  # a second interface
        writer.write(pkt)
    writer.close()
    expected = []
    for data, meta in RawPcapNgReader(str(out)):
        units = (meta.tshigh << 32) | meta.tslow
        expected.append((data, units * 10**9 // meta.tsresol, meta.wirelen))
    reader = open_capture_stream(out.open("rb"), out.name)
    assert isinstance(reader, PcapNgReader)
    records = list(reader)
    assert _triples(records) == expected
    assert [r.data for r in records] == [r.data for r in src]
    assert {r.interface for r in records} == {0, 1}
    assert len(reader.interfaces) == 2


def test_pcapng_both_byte_orders_and_sections() -> None:
    frames = [bytes([i]) * (60 + i) for i in range(5)]
    data = (
        _shb("<")
        + _idb("<", snaplen=1500)
        + _epb("<", 0, 1_000_000, frames[0])
        + _block("<", 0x00000005, b"\0" * 20)  # interface statistics: skipped
        + _shb(">")
        + _idb(">", linktype=101)
        + _idb(">", options=_option(">", 9, bytes([9])))
        + _epb(">", 1, 1_700_000_000_123_456_789, frames[1])
        + _epb(">", 0, 2_000_000, frames[2], orig_len=1000)
        + _block(">", 0x40000BAD, b"custom")  # unknown: skipped
        + _shb("<")
        + _idb("<")
        + _epb("<", 0, 3, frames[3])
    )
    reader = open_capture_stream(io.BytesIO(data), "s.pcapng")
    assert isinstance(reader, PcapNgReader)
    assert list(reader) == [
        PcapRecord(1_000_000_000, frames[0], 60, 1, 0),
        PcapRecord(1_700_000_000_123_456_789, frames[1], 61, 1, 1),
        PcapRecord(2_000_000_000, frames[2], 1000, 101, 0),
        PcapRecord(3000, frames[3], 63, 1, 0),
    ]
    assert reader.byte_order == "<"
    assert len(reader.interfaces) == 1  # the last section's


@pytest.mark.parametrize(
    ("tsresol", "units", "expected_ns"),
    [
        (6, 1_234_567, 1_234_567_000),  # default, written explicitly
        (3, 1_234_567, 1_234_567_000_000),
        (9, 1_234_567, 1_234_567),
        (12, 1_234_567_891, 1_234_567),  # picoseconds: rounded down
        (0, 7, 7_000_000_000),
        (0x80 | 10, 3 * 1024 + 512, 3_500_000_000),  # 2**-10 s
        (0x80 | 30, 2**30 + 1, 1_000_000_000),  # 2**-30 s: 0.93 ns rounded down
        (0x80 | 0, 5, 5_000_000_000),
    ],
)
def test_pcapng_tsresol(tsresol: int, units: int, expected_ns: int) -> None:
    for order in "<>":
        data = (
            _shb(order)
            + _idb(order, options=_option(order, 9, bytes([tsresol])))
            + _epb(order, 0, units, b"x" * 14)
        )
        (record,) = _read(data)
        assert record.timestamp_ns == expected_ns


def test_pcapng_tsoffset_and_default_resolution() -> None:
    order = ">"
    options = _option(order, 2, b"eth0") + _option(order, 14, struct.pack(">q", -100))
    data = _shb(order) + _idb(order, options=options) + _epb(order, 0, 250_000_000, b"y" * 20)
    (record,) = _read(data)
    assert record.timestamp_ns == 150 * 10**9  # 250 s (microsecond default) - 100 s


def test_pcapng_simple_and_obsolete_packet_blocks() -> None:
    for order in "<>":
        data = (
            _shb(order)
            + _idb(order, linktype=1, snaplen=64)
            + _spb(order, b"a" * 61)  # 61 bytes, padded to 64 in the block
            + _spb(order, b"b" * 64, orig_len=1514)  # cut to snaplen
            + _opb(order, 0, 42, b"c" * 50)
        )
        assert _read(data) == [
            PcapRecord(0, b"a" * 61, 61, 1, 0),
            PcapRecord(0, b"b" * 64, 1514, 1, 0),
            PcapRecord(42_000, b"c" * 50, 50, 1, 0),
        ]


def test_pcapng_trickle_matches_whole() -> None:
    data = _shb(">") + _idb(">") + b"".join(_epb(">", 0, i, bytes([i]) * i) for i in range(20))
    assert list(open_capture_stream(_Trickle(data), "t")) == _read(data)


def test_pcapng_every_cut_point() -> None:
    blocks = [_shb("<"), _idb("<")] + [_epb("<", 0, i, b"z" * (i * 7)) for i in range(6)]
    data = b"".join(blocks)
    starts = [0]
    for b in blocks:
        starts.append(starts[-1] + len(b))
    for cut in range(len(data)):
        block = max(i for i, s in enumerate(starts) if s <= cut)
        packets_before = max(0, block - 2)
        if cut < len(blocks[0]):
            with pytest.raises(PcapError, match=r"^n\.pcapng: offset 0: truncated"):
                _read(data[:cut], "n.pcapng", tolerate_truncation=True)
        elif starts[block] == cut:
            assert len(_read(data[:cut])) == packets_before
        else:
            with pytest.raises(PcapError, match=rf"^n\.pcapng: offset {starts[block]}: truncated"):
                _read(data[:cut], "n.pcapng")
            lenient = open_capture_stream(
                io.BytesIO(data[:cut]), "n.pcapng", tolerate_truncation=True
            )
            assert len(list(lenient)) == packets_before
            assert lenient.truncation is not None
            assert lenient.truncation.offset == starts[block]


def _bad(data: bytes, pattern: str) -> None:
    with pytest.raises(PcapError, match=pattern):
        _read(data, "bad.pcapng")


def test_pcapng_damaged_blocks() -> None:
    shb, idb = _shb("<"), _idb("<", snaplen=100)
    epb = _epb("<", 0, 0, b"q" * 40)
    at = len(shb) + len(idb)
    # trailer does not match
    broken = bytearray(shb + idb + epb)
    struct.pack_into("<I", broken, len(broken) - 4, len(epb) + 4)
    _bad(bytes(broken), rf"^bad\.pcapng: offset {at}: block trailer length {len(epb) + 4} ")
    # lengths that are not a multiple of 4, too small, or impossibly large
    for length in (len(epb) + 1, 8, MAX_CAPLEN + 4):
        broken = bytearray(shb + idb + epb)
        struct.pack_into("<I", broken, at + 4, length)
        _bad(bytes(broken), rf"offset {at}: bad block total length {length} ")
    # caplen past the block body, past the snaplen, orig_len below caplen
    _bad(
        shb + idb + _block("<", 6, struct.pack("<IIIII", 0, 0, 0, 41, 41) + b"q" * 40),
        rf"offset {at}: EPB caplen 41 exceeds the block body",
    )
    _bad(
        shb + idb + _epb("<", 0, 0, b"q" * 101),
        rf"offset {at}: EPB caplen 101 exceeds interface snaplen 100",
    )
    _bad(
        shb + idb + _epb("<", 0, 0, b"q" * 40, orig_len=39), "orig_len 39 is smaller than caplen 40"
    )
    # packet for an interface that was never described
    _bad(shb + idb + _epb("<", 1, 0, b"q"), rf"offset {at}: EPB refers to interface 1")
    _bad(shb + _spb("<", b"q"), rf"offset {len(shb)}: SPB refers to interface 0")
    # bad options
    _bad(shb + _idb("<", options=_option("<", 9, b"\x06\x06")), "if_tsresol has length 2")
    _bad(
        shb + _block("<", 1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 2, 200)),
        "IDB option 2 of 200 bytes overruns the block",
    )
    # short fixed parts
    _bad(shb + idb + _block("<", 6, b"\0" * 16), "EPB body of 16 bytes is shorter than 20")


def test_pcapng_damaged_section_header() -> None:
    good = _shb("<")
    bad_bom = bytearray(good)
    bad_bom[8:12] = b"\x11\x22\x33\x44"
    _bad(bytes(bad_bom), r"^bad\.pcapng: offset 0: bad byte-order magic 0x11223344")
    _bad(_shb("<", major=2), r"offset 0: unsupported pcapng version 2\.0")
    # a later section header with a bad byte-order magic
    _bad(good + _idb("<") + bytes(bad_bom), rf"offset {len(good) + len(_idb('<'))}: bad byte-order")
    with pytest.raises(PcapError, match="offset 0: bad magic 0x00000001"):
        PcapNgReader(io.BytesIO(_idb("<")), "bad.pcapng")
    _bad(b"\x0a\x0d", r"offset 0: truncated file header: need 4 bytes, have 2")
