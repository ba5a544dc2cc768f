"""Hostile captures (issue 17): what a damaged or cut capture may do to the codecs, the dissector
and ``netfast pcap show``.

The promise under test: a bad file gives one clear error naming the file and byte offset (exit
status 2), a packet that is odd but readable is shown with the reason, and nothing raises.  The
inputs are the real captures of ``shared/data/pcap``, converted, cut and mutated here.
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import random
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.cli import CliError, main
from netfast.cli.pcap import format_time, show
from netfast.link.pcap import read_capture
from netfast.wire.capture import (
    MAX_TIMESTAMP_NS,
    MIN_TIMESTAMP_NS,
    PcapError,
    PcapRecord,
    PcapTimestampError,
)
from netfast.wire.dissect import dissect, summary
from netfast.wire.pcap import PcapWriter, open_capture_stream

# --- building pcapng files from real records ---------------------------------------------------


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _pcapng(records: list[PcapRecord], *, tsresol: int = 6, tsoffset: int = 0) -> bytes:
    """A little-endian pcapng of ``records``: an SHB, an IDB with ``if_tsresol`` (decimal) and
    ``if_tsoffset``, and one EPB per record, timestamped so that the records' times read back."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = struct.pack("<HHB3xHHqHH", 9, 1, tsresol, 14, 8, tsoffset, 0, 0)
    out += _block(1, struct.pack("<HHI", 1, 0, 0) + options)
    for r in records:
        units = (r.timestamp_ns - tsoffset * 10**9) * 10**tsresol // 10**9
        head = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(r.data), r.orig_len)
        out += _block(6, head + r.data)
    return out


# Offsets in a file made by ``_pcapng``: the SHB takes 28 bytes; the IDB (44 bytes) has its
# 8-byte fixed part, then option if_tsresol (4 + 4 bytes), if_tsoffset (4 + 8), end of options.
_IDB = 28
_TSRESOL_VALUE = _IDB + 8 + 8 + 4
_TSOFFSET_VALUE = _IDB + 8 + 8 + 8 + 4
_FIRST_EPB = _IDB + 44


def _dns(shared_data: Path) -> list[PcapRecord]:
    return list(read_capture(shared_data / "pcap" / "udp-dns-query-response.pcap"))


def _show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["pcap", "show", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_pcapng_builder_round_trips(shared_data: Path) -> None:
    records = _dns(shared_data)
    data = _pcapng(records, tsresol=9, tsoffset=1000)
    assert data[_TSRESOL_VALUE] == 9
    assert struct.unpack_from("<q", data, _TSOFFSET_VALUE)[0] == 1000
    back = list(open_capture_stream(io.BytesIO(data)))
    assert [(r.timestamp_ns, r.data) for r in back] == [(r.timestamp_ns, r.data) for r in records]


# --- 1. pcapng timestamps outside the calendar -------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("tsresol", 0, "if_tsresol 10^-0 s"),  # 6 -> 0: microseconds read as seconds
        ("tsresol", 0x94, None),  # 2^-20 s, about a microsecond: in range, simply read
        ("tsoffset", -(2**40), "if_tsoffset -1099511627776 s"),
        ("tsoffset", 2**40, "if_tsoffset 1099511627776 s"),
        ("tsoffset", -(2**63), "if_tsoffset"),
    ],
)
def test_pcapng_timestamp_out_of_range_is_refused_with_offset(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: int,
    problem: str | None,
) -> None:
    data = bytearray(_pcapng(_dns(shared_data)))
    if field == "tsresol":
        data[_TSRESOL_VALUE] = value
    else:
        struct.pack_into("<q", data, _TSOFFSET_VALUE, value)
    path = tmp_path / "bad-time.pcapng"
    path.write_bytes(bytes(data))
    status, out, err = _show(capsys, str(path))
    if problem is None:
        assert status == 0 and err == "" and len(out.splitlines()) == 2
        return
    assert status == 2
    assert err.startswith(f"netfast: error: {path}: offset {_FIRST_EPB}: EPB timestamp ")
    assert problem in err and "outside the years 1677 to 2262" in err
    assert err.count("\n") == 1  # one line, no traceback
    with pytest.raises(PcapError, match=f"offset {_FIRST_EPB}: ") as info:
        list(open_capture_stream(io.BytesIO(bytes(data)), "x.pcapng"))
    assert info.value.offset == _FIRST_EPB


def test_pcapng_timestamps_at_the_range_ends_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An EPB holds unsigned units, so the earliest times need a negative if_tsoffset.
    ends = [(MIN_TIMESTAMP_NS, -(10**10), "1677-09-21 00:12:43.145224192 ")]
    ends.append((MAX_TIMESTAMP_NS, 0, "2262-04-11 23:47:16.854775807 "))
    for ns, tsoffset, shown in ends:
        path = tmp_path / "end.pcapng"
        path.write_bytes(_pcapng([PcapRecord(ns, bytes(60), 60, 1)], tsresol=9, tsoffset=tsoffset))
        status, out, _ = _show(capsys, "--stats", str(path))
        assert status == 0 and out.startswith(shown)
        # One nanosecond further is refused.
        beyond = ns - 1 if ns < 0 else ns + 1
        data = _pcapng([PcapRecord(beyond, bytes(60), 60, 1)], tsresol=9, tsoffset=tsoffset)
        with pytest.raises(PcapError, match="outside the years"):
            list(open_capture_stream(io.BytesIO(data)))


def test_every_byte_of_the_interface_block_flipped(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One flipped byte anywhere in the SHB or IDB: a clean result, never a traceback.

    ``show`` is called directly (``main`` costs a parser per call); a :class:`CliError` is
    what ``main`` prints as one line with exit status 2.
    """
    data = _pcapng(_dns(shared_data))
    path = tmp_path / "flip.pcapng"
    args = argparse.Namespace(tolerate_truncation=False, count=None, quiet=False, stats=True)
    for pos in range(_FIRST_EPB):
        for value in (0x00, 0x7F, 0x80, 0xFF, data[pos] ^ 0x01):
            mutated = bytearray(data)
            mutated[pos] = value
            path.write_bytes(bytes(mutated))
            try:
                show(path, args, io.StringIO())
            except CliError as exc:
                assert str(exc).startswith(f"{path}: offset "), (pos, value, exc)


_SECOND = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_format_time_never_raises(timestamp_ns: int) -> None:
    text = format_time(timestamp_ns)
    date, clock = text.rsplit(" ", 1)
    assert date.count("-") >= 2 and clock.count(":") == 2


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.integers(min_value=0, max_value=999),
)
def test_format_time_agrees_with_datetime(when: datetime, ns: int) -> None:
    """Within the years ``datetime`` knows, it is the oracle for the calendar."""
    when = when.replace(tzinfo=UTC)
    seconds = (when - datetime(1970, 1, 1, tzinfo=UTC)) // _SECOND
    timestamp_ns = seconds * 10**9 + when.microsecond * 1000 + ns
    expected = when.isoformat(sep=" ", timespec="seconds")[:19]
    text = format_time(timestamp_ns)
    assert text[:19] == expected
    frac = f"{when.microsecond:06d}{ns:03d}" if ns else f"{when.microsecond:06d}"
    assert text[20:] == frac


# --- 2. timestamps a classic pcap cannot hold ---------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [-1, -(10**9), 2**32 * 10**9, 2**64 * 10**9, math.nan, math.inf, 1.5e18, 0.0, True],
    ids=repr,
)
def test_writer_refuses_unwritable_timestamps(timestamp: object) -> None:
    stream = io.BytesIO()
    w = PcapWriter(stream, name="out.pcap")
    w.write(b"\x01" * 20, 10**9)
    before = stream.getvalue()
    with pytest.raises(PcapTimestampError) as info:
        w.write(b"\x02" * 20, timestamp)  # type: ignore[arg-type]
    assert str(info.value).startswith("out.pcap: offset 60: record timestamp ")
    assert info.value.offset == 60
    assert stream.getvalue() == before  # nothing of the refused record was written
    assert w.records_written == 1
    w.write(b"\x03" * 20, 2 * 10**9)  # the writer is still usable
    assert [r.data[0] for r in open_capture_stream(io.BytesIO(stream.getvalue()))] == [1, 3]


@pytest.mark.parametrize("nanosecond", [False, True])
def test_writer_accepts_both_ends_of_the_classic_range(nanosecond: bool) -> None:
    stream = io.BytesIO()
    w = PcapWriter(stream, nanosecond=nanosecond)
    last = 2**32 * 10**9 - 1
    w.write(b"x" * 14, 0)
    w.write(b"y" * 14, last)
    times = [r.timestamp_ns for r in open_capture_stream(io.BytesIO(stream.getvalue()))]
    assert times == [0, last if nanosecond else last - 999]


# --- 3. headers cut by the snapshot length, impossible UDP lengths -----------------------------


def _frames(shared_data: Path) -> dict[tuple[str, str, int], bytes]:
    """The first frame of each kind in the real captures: (protocol, ICMP message kind, IPv4
    header length) -> frame."""
    seen: dict[tuple[str, str, int], bytes] = {}
    for path in sorted((shared_data / "pcap").glob("*.pcap")):
        for r in read_capture(path):
            d = dissect(r.data)
            icmp = type(d.icmp).__name__ if d.icmp is not None else ""
            key = (d.protocol, icmp, d.ipv4.header_len if d.ipv4 is not None else 0)
            seen.setdefault(key, r.data)
    return seen


def _vlan(frame: bytes, vid: int = 42) -> bytes:
    """The frame with an 802.1Q tag."""
    return frame[:12] + struct.pack(">HH", 0x8100, vid) + frame[12:]


def _ip_options(frame: bytes) -> bytes:
    """The IPv4 frame with a Router Alert option (RFC 2113) added: IHL and total length grow by
    4 (the header checksum is left stale, which the dissector reports but does not mind)."""
    ihl = frame[14] & 0x0F
    (total,) = struct.unpack_from(">H", frame, 16)
    head = bytes([0x40 | (ihl + 1), frame[15]]) + struct.pack(">H", total + 4) + frame[18:34]
    return frame[:14] + head + b"\x94\x04\x00\x00" + frame[34:]


def test_every_snapshot_length_shows_a_cut_not_a_crash(shared_data: Path) -> None:
    """Every prefix of one frame of each kind (TCP, UDP, ICMP, ARP, IPv4 with options, 802.1Q),
    recorded with its real original length: never raises, never blames the packet."""
    kinds = _frames(shared_data)
    assert {"TCP", "UDP", "ICMP", "ARP"} <= {protocol for protocol, _, _ in kinds}
    assert len({icmp for _, icmp, _ in kinds}) >= 3  # "", echo, time exceeded
    frames = list(kinds.values())
    with_options = [_ip_options(f) for f in frames if dissect(f).ipv4 is not None]
    assert all(dissect(f).ipv4.header_len == 24 for f in with_options)  # type: ignore[union-attr]
    frames += with_options
    for frame in frames + [_vlan(f) for f in frames]:
        whole = dissect(frame, orig_len=len(frame))
        for snaplen in range(len(frame)):
            d = dissect(frame[:snaplen], orig_len=len(frame))
            where = f"{whole.protocol} frame of {len(frame)} cut at {snaplen}"
            assert summary(d)
            if whole.error is None:
                assert d.error is None, (where, d.error)
            if d.cut is not None:
                assert d.cut.startswith("capture ends inside the "), where
                assert "[truncated: capture ends inside the" in summary(d)


def test_udp_cut_inside_its_header(shared_data: Path) -> None:
    record = _dns(shared_data)[0]
    assert dissect(record.data).udp is not None
    for snaplen in range(34, 42):  # Ethernet 14 + IPv4 20, then 0..7 bytes of UDP header
        d = dissect(record.data[:snaplen])  # no original length: the IP total length tells
        assert d.udp is None and d.error is None and d.truncated
        assert d.cut == f"capture ends inside the udp header: need 8 bytes, have {snaplen - 34}"
        assert d.checksums["udp"] == "unverified"
        assert "[truncated: capture ends inside the udp header" in summary(d)
        assert d.protocol == "UDP"
    d = dissect(record.data[:42])  # the whole header, payload cut: shown with its ports
    assert d.udp is not None and d.udp.dst_port == 53 and d.cut is None


@pytest.mark.parametrize("length", range(8))
@pytest.mark.parametrize("snaplen", [None, 42, 45])
def test_udp_length_below_8_is_malformed(
    shared_data: Path, length: int, snaplen: int | None
) -> None:
    frame = bytearray(_dns(shared_data)[0].data)
    struct.pack_into(">H", frame, 38, length)
    data = bytes(frame if snaplen is None else frame[:snaplen])
    d = dissect(data, orig_len=len(frame))
    assert d.udp is None and d.cut is None
    assert d.error == f"udp.length = {length}: below the header length of 8"
    assert "[malformed: udp.length" in summary(d)


def _snap(records: list[PcapRecord], snaplen: int, path: Path) -> Path:
    with path.open("wb") as f:
        w = PcapWriter(f, snaplen=snaplen)
        for r in records:
            w.write(r.data, r.timestamp_ns, r.orig_len)
    return path


def test_pcap_show_of_a_tcpdump_s38_capture(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [r for p in sorted((shared_data / "pcap").glob("*.pcap")) for r in read_capture(p)]
    path = _snap(records, 38, tmp_path / "s38.pcap")
    status, out, err = _show(capsys, "--stats", str(path))
    assert status == 0 and err == ""
    lines = [line for line in out.splitlines() if " frame 38 (captured 38 of " in line]
    assert len(lines) == len(records)
    udp = [line for line in lines if ": UDP, length " in line]
    cut = "[truncated: capture ends inside the udp header: need 8 bytes, have 4]"
    assert udp and all(cut in line for line in udp)
    assert not any("[malformed" in line for line in lines)
    total = next(line for line in out.splitlines() if line.startswith("│ total"))
    assert total.split("│")[7].strip() == "0"  # malformed
    assert total.split("│")[8].strip() == f"{len(records):,}"  # truncated


@pytest.mark.parametrize("snaplen", [34, 38, 42])
def test_fw_show_runs_a_cut_capture(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], snaplen: int
) -> None:
    records = [r for p in sorted((shared_data / "pcap").glob("*.pcap")) for r in read_capture(p)]
    path = _snap(records, snaplen, tmp_path / f"s{snaplen}.pcap")
    status = main(["fw", "show", "--default-allow", "--pcap", str(path)])
    _, err = capsys.readouterr()
    assert status == 0 and err == ""


# --- the mutation test -------------------------------------------------------------------------


def _corpus(shared_data: Path) -> list[tuple[str, bytes]]:
    """The small real captures as they are, as pcapng (timestamps in ns with an offset), and
    gzip-compressed."""
    out = []
    for path in sorted((shared_data / "pcap").glob("*.pcap")):
        raw = path.read_bytes()
        if len(raw) > 50_000:
            continue
        out.append((path.name, raw))
        records = list(read_capture(path))
        out.append((path.stem + ".pcapng", _pcapng(records, tsresol=9, tsoffset=9 * 10**8)))
    out.append(("dns.pcap.gz", gzip.compress(dict(out)["udp-dns-query-response.pcap"], mtime=0)))
    return out


def _mutate(rng: random.Random, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    name, data = rng.choice(corpus)
    b = bytearray(data)
    steps = [name]
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "byte", "word", "cut", "splice", "header", "idb", "gzip-cut"))
        if not b:
            break
        pos = rng.randrange(len(b))
        if kind == "flip":
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            b[pos] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == "word":
            b[pos : pos + 4] = struct.pack(
                "<I", rng.choice((0, 7, 0xFFFFFFFF, rng.getrandbits(32)))
            )
        elif kind == "cut":
            del b[pos:]
        elif kind == "splice":
            _, other = rng.choice(corpus)
            start = rng.randrange(len(other))
            b[pos:pos] = other[start : start + rng.randint(1, 300)]
        elif kind == "header":  # the file, section and interface headers matter most
            pos = rng.randrange(min(len(b), 80))
            b[pos] = rng.randrange(256)
        elif kind == "idb" and name.endswith(".pcapng") and len(b) > _FIRST_EPB:
            pos = rng.randrange(_IDB, _FIRST_EPB)
            b[pos] = rng.randrange(256)
        elif kind == "gzip-cut" and name.endswith(".gz"):
            del b[max(10, pos) :]
        steps.append(f"{kind}@{pos}")
    return " ".join(steps), bytes(b)


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_real_captures_never_raise(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    """Seeded mutations for a bounded time (about 3 s per seed): exit status 0 or 2, nothing else.

    On failure the message gives the seed, the iteration and the mutations, and the input is
    kept in ``tmp_path`` to reproduce.
    """
    rng = random.Random(seed)
    corpus = _corpus(shared_data)
    deadline = time.monotonic() + 3.0
    iteration = 0
    while time.monotonic() < deadline or iteration < 20:
        iteration += 1
        what, data = _mutate(rng, corpus)
        path = tmp_path / "case.pcap"
        path.write_bytes(data)
        for argv in (["pcap", "show", str(path)], ["pcap", "show", "--stats", str(path)]):
            try:
                status = main(argv)
            except Exception as exc:
                keep = tmp_path / f"failing-{seed}-{iteration}"
                keep.write_bytes(data)
                raise AssertionError(
                    f"seed {seed} iteration {iteration} ({what}): {argv[:-1]} raised "
                    f"{type(exc).__name__}: {exc} (input kept in {keep})"
                ) from exc
            _, err = capsys.readouterr()
            assert status in (0, 2), (seed, iteration, what, status)
            if status == 2:
                assert err.startswith(f"netfast: error: {path}: "), (what, err)
                assert err.count("\n") == 1, (what, err)
