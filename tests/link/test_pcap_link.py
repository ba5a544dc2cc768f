"""Tests for netfast.link.pcap: reading capture files (plain and gzip), the replay link, and the
writer link (sink and tee), with scapy as the oracle for file contents."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
from scapy.utils import PcapNgWriter, RawPcapReader, rdpcap

from netfast.link.base import Link
from netfast.link.memory import MemoryLink
from netfast.link.pcap import PcapReplayLink, PcapWriterLink, open_capture, read_capture
from netfast.wire.capture import PcapError
from netfast.wire.pcap import PcapWriter


def _scapy_frames(path: Path) -> list[tuple[bytes, int]]:
    """(data, timestamp_ns) of every record of a classic microsecond pcap, read by scapy."""
    reader = RawPcapReader(str(path))
    out = [(data, meta.sec * 10**9 + meta.usec * 1000) for data, meta in reader]
    reader.close()
    return out


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def http(shared_data: Path) -> Path:
    return shared_data / "pcap" / "wireshark-http.pcap"


# --- reading files -----------------------------------------------------------------------------


def test_read_capture_plain_and_gzip(http: Path, tmp_path: Path) -> None:
    expected = _scapy_frames(http)
    gz = tmp_path / "capture.bin"  # gzip is recognised by content, not by name
    gz.write_bytes(gzip.compress(http.read_bytes()))
    for path in (http, gz):
        got = [(r.data, r.timestamp_ns) for r in read_capture(path)]
        assert got == expected


def test_open_capture_pcapng(http: Path, tmp_path: Path) -> None:
    from scapy.all import Ether

    out = tmp_path / "x.pcapng"
    writer = PcapNgWriter(str(out))
    for data, _ in _scapy_frames(http)[:5]:
        writer.write(Ether(data))
    writer.close()
    with open_capture(out) as capture:
        assert capture.reader.format == "pcapng"
        assert [r.data for r in capture] == [d for d, _ in _scapy_frames(http)[:5]]


def test_truncated_gzip(http: Path, tmp_path: Path) -> None:
    raw = http.read_bytes()
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(gzip.compress(raw)[: len(raw) // 4])
    with pytest.raises(PcapError, match=r"cut\.pcap\.gz: offset \d+: "):
        list(read_capture(gz))
    with open_capture(gz, tolerate_truncation=True) as capture:
        records = list(capture)
        assert capture.truncation is not None
    expected = _scapy_frames(http)
    assert 0 < len(records) < len(expected)
    assert [r.data for r in records] == [d for d, _ in expected[: len(records)]]


def test_not_a_capture(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"hello, world\n" * 10)
    with pytest.raises(PcapError, match=r"notes\.txt: offset 0: bad magic 0x68656c6c"):
        open_capture(junk)
    badgz = tmp_path / "bad.gz"
    badgz.write_bytes(b"\x1f\x8b" + b"\0" * 30)
    with pytest.raises(PcapError, match=r"bad\.gz: offset 0: gzip: "):
        open_capture(badgz)


# --- replay ------------------------------------------------------------------------------------


def test_replay_link_delivers_the_capture(http: Path) -> None:
    expected = [d for d, _ in _scapy_frames(http)]
    link = PcapReplayLink(http)
    assert isinstance(link, Link)
    assert link.name == "replay:wireshark-http.pcap"
    assert link.mtu == 1500
    got: list[bytes] = []
    sizes = []
    while not link.exhausted:
        batch = link.recv_batch(10)
        sizes.append(len(batch))
        got.extend(batch)
    assert got == expected
    assert sizes == [10] * (len(expected) // 10) + [len(expected) % 10]
    assert link.recv_batch() == []
    assert link.counters["rx.frames"] == len(expected)
    assert link.counters["rx.bytes"] == sum(map(len, expected))
    assert link.send([b"\0" * 60, b"\1" * 60]) == 0
    assert link.counters["drop.tx"] == 2
    link.close()


def test_replay_close_stops_everything(http: Path) -> None:
    with PcapReplayLink(http) as link:
        assert len(link.recv_batch(3)) == 3
        assert not link.exhausted
    assert link.exhausted
    assert link.recv_batch() == []


def test_replay_pacing(shared_data: Path) -> None:
    path = shared_data / "pcap" / "tcp-retransmissions-rto.pcap"
    frames = _scapy_frames(path)
    first = frames[0][1]
    offsets = [ts - first for _, ts in frames]
    assert offsets == sorted(offsets) and offsets[-1] > 5 * 10**9  # RTO backoff over seconds
    clock = FakeClock(10**12)
    link = PcapReplayLink(path, pace=True, speed=2.0, clock=clock)
    start = clock.now
    assert link.next_due_ns() == 0  # before the first call everything pending is due
    got = link.recv_batch()
    assert got == [frames[0][0]]
    for i in range(1, len(frames)):
        due = start + offsets[i] // 2
        assert link.next_due_ns() == pytest.approx(due, abs=1)
        clock.now = due - 2
        assert link.recv_batch() == []
        clock.now = due + 1
        assert link.recv_batch() == [frames[i][0]]
    assert link.exhausted
    assert link.next_due_ns() is None


def test_replay_skips_other_linktypes_and_oversize(tmp_path: Path) -> None:
    raw_ip = tmp_path / "raw.pcap"
    with raw_ip.open("wb") as f:
        w = PcapWriter(f, linktype=101)
        w.write(b"\x45" + b"\0" * 19, 0)
    link = PcapReplayLink(raw_ip)
    assert link.recv_batch() == []
    assert link.exhausted
    assert link.counters["drop.rx_linktype"] == 1

    big = tmp_path / "big.pcap"
    frames = [b"\xaa" * 1514, b"\xbb" * 1515, b"\xcc" * 9014]
    with big.open("wb") as f:
        w = PcapWriter(f)
        for i, frame in enumerate(frames):
            w.write(frame, i)
    link = PcapReplayLink(big)
    assert link.recv_batch() == [frames[0]]
    assert link.counters["drop.rx_oversize"] == 2
    assert PcapReplayLink(big, mtu=9000).recv_batch() == frames


def test_replay_truncated(http: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(http.read_bytes()[:-5])
    link = PcapReplayLink(cut)
    with pytest.raises(PcapError, match="truncated record data"):
        while not link.exhausted:
            link.recv_batch()
    lenient = PcapReplayLink(cut, tolerate_truncation=True)
    n = 0
    while not lenient.exhausted:
        n += len(lenient.recv_batch())
    assert n == len(_scapy_frames(http)) - 1
    assert lenient.truncation is not None


# --- writer ------------------------------------------------------------------------------------


def _leftovers(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp"))


@pytest.mark.parametrize("nanosecond", [False, True])
def test_sink_writes_what_scapy_reads(tmp_path: Path, nanosecond: bool) -> None:
    out = tmp_path / "sink.pcap"
    clock = FakeClock(1_700_000_000_123_456_789)
    sink = PcapWriterLink(out, clock=clock, nanosecond=nanosecond)
    assert isinstance(sink, Link)
    frames = [bytes([i]) * (60 + i) for i in range(5)]
    assert sink.send(frames[:3]) == 3
    clock.now += 1_500_000_001
    assert sink.send(iter(frames[3:])) == 2  # any iterable
    assert sink.recv_batch() == []
    assert not out.exists()  # nothing at the target until close
    assert len(_leftovers(tmp_path)) == 1
    sink.close()
    assert _leftovers(tmp_path) == []
    packets = rdpcap(str(out))
    assert [bytes(p) for p in packets] == frames
    t0 = 1_700_000_000_123_456_789
    t1 = t0 + 1_500_000_001
    unit = 1 if nanosecond else 1000
    expected = [t0 // unit * unit] * 3 + [t1 // unit * unit] * 2
    assert [int(p.time * 10**9) for p in packets] == expected
    assert sink.counters["capture.tx"] == 5
    assert sink.counters["tx.frames"] == 5
    assert sink.send(frames) == 0
    assert sink.counters["drop.closed"] == 5


def test_tee_over_memory_link(tmp_path: Path) -> None:
    a, b = MemoryLink.pair(names=("left", "right"))
    out = tmp_path / "tee.pcap"
    tee = PcapWriterLink(out, a, capture_received=True, clock=FakeClock(10**9))
    assert (tee.name, tee.mtu) == ("left", 1500)
    sent = [b"\x01" * 64, b"\x02" * 70]
    assert tee.send(sent) == 2
    assert b.recv_batch() == sent
    back = [b"\x03" * 80]
    b.send(back)
    assert tee.recv_batch() == back
    assert tee.counters["capture.tx"] == 2
    assert tee.counters["capture.rx"] == 1
    tee.close()
    assert [d for d, _ in _scapy_frames(out)] == sent + back
    assert a.send([b"\x04" * 64]) == 0  # the inner link was closed with the tee


def test_tee_records_frames_the_inner_link_drops(tmp_path: Path) -> None:
    a, _b = MemoryLink.pair(mtu=100)
    out = tmp_path / "tee.pcap"
    with PcapWriterLink(out, a) as tee:
        assert tee.send([b"\x01" * 64, b"\x02" * 500]) == 1
    assert [len(d) for d, _ in _scapy_frames(out)] == [64, 500]


def test_writer_never_clobbers_on_error(tmp_path: Path, http: Path) -> None:
    out = tmp_path / "precious.pcap"
    shutil.copy(http, out)
    original = out.read_bytes()
    with pytest.raises(RuntimeError), PcapWriterLink(out) as sink:
        sink.send([b"\0" * 60] * 100)
        raise RuntimeError("the program failed half way")
    assert out.read_bytes() == original
    assert _leftovers(tmp_path) == []

    with pytest.raises(FileExistsError):
        PcapWriterLink(out, overwrite=False)
    assert out.read_bytes() == original
    assert _leftovers(tmp_path) == []

    sink = PcapWriterLink(out)
    sink.send([b"\0" * 60])
    sink.abort()
    assert out.read_bytes() == original

    with PcapWriterLink(out) as sink:  # a successful close does replace it
        sink.send([b"\7" * 60])
    assert [d for d, _ in _scapy_frames(out)] == [b"\7" * 60]


def test_dropped_writer_leaves_no_temporary_file(tmp_path: Path) -> None:
    import gc

    sink = PcapWriterLink(tmp_path / "lost.pcap")
    sink.send([b"\0" * 60])
    del sink
    gc.collect()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "lost.pcap").exists()


def test_gzip_writer_and_snaplen(tmp_path: Path) -> None:
    out = tmp_path / "small.pcap.gz"
    with PcapWriterLink(out, snaplen=64, clock=FakeClock(5)) as sink:
        sink.send([b"\x11" * 1000])
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    (record,) = read_capture(out)
    assert (record.data, record.orig_len, record.timestamp_ns) == (b"\x11" * 64, 1000, 0)
    snaplen = struct.unpack_from("<I", gzip.decompress(out.read_bytes()), 16)[0]
    assert snaplen == 64


def test_replay_what_the_writer_wrote(tmp_path: Path, http: Path) -> None:
    out = tmp_path / "again.pcap"
    frames = [d for d, _ in _scapy_frames(http)]
    with PcapWriterLink(out) as sink:
        replay = PcapReplayLink(http)
        while not replay.exhausted:
            sink.send(replay.recv_batch(7))
        replay.close()
    again = PcapReplayLink(out)
    assert again.recv_batch(1000) == frames
    again.close()
