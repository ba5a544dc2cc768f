"""The runner: batches to the vector path, punts and giants to the scalar path, captures written
whole or not at all, and the live loop's stop conditions.

The router and vector forwarder here are small stand-ins with the contract's shape
(docs/ROUTER.md), so these tests pin the runner's own behaviour; tests/router/test_live_router.py
and test_forward_cli.py run the real ones.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from netfast.ip.iface import IfAddr, Interface
from netfast.link.memory import MemoryLink
from netfast.link.pcap import read_capture
from netfast.router.engine import Engine
from netfast.router.run import run_capture, run_live
from netfast.wire.batch import FrameBatch
from netfast.wire.ethernet import EthernetRepr, EtherType
from netfast.wire.icmpv4 import Icmpv4DestUnreachable
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str
from netfast.wire.pcap import PcapWriter

MAC0 = bytes.fromhex("020000000001")
MAC1 = bytes.fromhex("020000000002")
PEER = bytes.fromhex("02000000aaaa")
ROUTER_IP = ip_from_str("198.18.0.1")


def frame(n: int, size: int = 100, dst: str = "198.18.1.9") -> bytes:
    """An IPv4/UDP-ish frame numbered ``n`` (in its IP identification)."""
    ip = Ipv4Repr(ip_from_str("198.18.0.2"), ip_from_str(dst), IpProtocol.UDP, size - 34)
    ip = Ipv4Repr(ip.src, ip.dst, ip.protocol, ip.payload_len, identification=n)
    return EthernetRepr(MAC0, PEER, EtherType.IPV4).to_bytes(ip.to_bytes(bytes(size - 34)))


def ident(f: bytes) -> int:
    return int.from_bytes(f[18:20], "big")


class FakeRouter:
    """Forwards IPv4 to 198.18.1.0/24 out of port 1; answers anything else with an ICMP
    unreachable from its own address back out of the port it came in on."""

    def __init__(self) -> None:
        self.interfaces = {
            0: Interface(0, "inside", MAC0, (IfAddr(ROUTER_IP, 24),)),
            1: Interface(1, "outside", MAC1, (IfAddr(ip_from_str("198.18.1.1"), 24),)),
        }
        self.counters: Counter[str] = Counter()
        self.seen: list[tuple[int, int, float]] = []
        self.polls: list[float] = []

    class local:  # shaped like the router's LocalAddrs
        unicast = frozenset({ROUTER_IP})

    def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
        self.seen.append((ifindex, ident(f), now))
        if f[30:33] == bytes([198, 18, 1]):
            self.counters["ip.fwd.forwarded"] += 1
            return [(1, f)]
        self.counters["ip.fwd.no_route"] += 1
        icmp = Icmpv4DestUnreachable(0, f[14:]).to_bytes()
        ip = Ipv4Repr(ROUTER_IP, int.from_bytes(f[26:30], "big"), IpProtocol.ICMP, len(icmp))
        return [(ifindex, EthernetRepr(PEER, MAC0, EtherType.IPV4).to_bytes(ip.to_bytes(icmp)))]

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        self.polls.append(now)
        return []


class Result:
    def __init__(self, out: dict[int, FrameBatch], punt: np.ndarray, drops: Counter[str]) -> None:
        self.out, self.punt, self.drops = out, punt, drops


class FakeVector:
    """Forwards rows with an even identification to port 1, punts the rest."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def forward(self, batch: FrameBatch, ifindex: int, now: float) -> Result:
        self.batches.append(len(batch))
        even = (batch.headers["ident"] % 2) == 0
        return Result(
            {1: batch.select(even)},
            np.flatnonzero(~even),
            Counter({"ip.fwd.forwarded": int(even.sum())}),
        )


def write_pcap(path: Path, frames: list[bytes], start_ns: int = 1_000_000_000) -> None:
    with open(path, "wb") as f:
        w = PcapWriter(f, nanosecond=True)
        for i, fr in enumerate(frames):
            w.write(fr, start_ns + i * 1000)


def test_engine_vector_then_punts_and_giants() -> None:
    router, vector = FakeRouter(), FakeVector()
    engine = Engine(router, vector, slot=256)
    frames = [frame(i) for i in range(10)] + [frame(10, size=400)]  # the last is a giant
    out = engine.process(0, frames, 5.0)
    assert vector.batches == [10]
    assert [ident(f) for f in out[1]] == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 10]
    assert [i for _, i, _ in router.seen] == [1, 3, 5, 7, 9, 10]
    s = engine.stats
    assert (s.frames_in, s.vector_frames, s.scalar_frames) == (11, 5, 6)
    assert s.out[1] == 11
    assert engine.counters["ip.fwd.forwarded"] == 11


def test_engine_counts_what_the_router_originates() -> None:
    router = FakeRouter()
    engine = Engine(router)
    out = engine.process(0, [frame(1, dst="192.0.2.1"), frame(2)], 1.0)
    assert len(out[0]) == 1 and len(out[1]) == 1
    assert engine.stats.emitted == Counter({"icmp.unreachable": 1})
    assert engine.stats.icmp_sent == 1


def test_run_capture_writes_one_capture_per_port(tmp_path: Path) -> None:
    frames = [frame(i) for i in range(7)] + [frame(7, dst="192.0.2.1")]
    write_pcap(tmp_path / "in.pcap", frames)
    router = FakeRouter()
    times: list[float] = []
    summary = run_capture(
        router, tmp_path / "in.pcap", 0, tmp_path / "out", batch_size=3, on_time=times.append
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["inside.pcap", "outside.pcap"]
    outside = list(read_capture(tmp_path / "out" / "outside.pcap"))
    assert [ident(r.data) for r in outside] == list(range(7))
    inside = list(read_capture(tmp_path / "out" / "inside.pcap"))
    assert len(inside) == 1 and inside[0].data[23] == 1  # the ICMP error, back in
    assert summary.per_egress == {"inside": 1, "outside": 7}
    # Batches of 3 get the capture time of their first frame; output records carry it.
    assert sorted({now for _, _, now in router.seen}) == [1.0, 1.000003, 1.000006]
    assert times[0] == 1.0
    assert outside[3].timestamp_ns == 1_000_003_000


def test_run_capture_never_clobbers(tmp_path: Path) -> None:
    write_pcap(tmp_path / "in.pcap", [frame(0)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "outside.pcap").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        run_capture(FakeRouter(), tmp_path / "in.pcap", 0, out)
    assert (out / "outside.pcap").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["outside.pcap"]
    run_capture(FakeRouter(), tmp_path / "in.pcap", 0, out, overwrite=True)
    assert [ident(r.data) for r in read_capture(out / "outside.pcap")] == [0]


def test_run_capture_failure_leaves_old_outputs(tmp_path: Path) -> None:
    write_pcap(tmp_path / "in.pcap", [frame(i) for i in range(5)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "outside.pcap").write_bytes(b"old")

    class Exploding(FakeRouter):
        def input(self, ifindex: int, f: bytes, now: float) -> list[tuple[int, bytes]]:
            if ident(f) == 3:
                raise RuntimeError("boom")
            return super().input(ifindex, f, now)

    with pytest.raises(RuntimeError, match="boom"):
        run_capture(Exploding(), tmp_path / "in.pcap", 0, out, overwrite=True, batch_size=1)
    assert sorted(p.name for p in out.iterdir()) == ["outside.pcap"]  # no temporaries left
    assert (out / "outside.pcap").read_bytes() == b"old"


def test_run_capture_with_vector_path(tmp_path: Path) -> None:
    write_pcap(tmp_path / "in.pcap", [frame(i) for i in range(6)])
    summary = run_capture(
        FakeRouter(), tmp_path / "in.pcap", 0, tmp_path / "o", vector=FakeVector()
    )
    got = [ident(r.data) for r in read_capture(tmp_path / "o" / "outside.pcap")]
    assert got == [0, 2, 4, 1, 3, 5]
    assert summary.stats.vector_frames == 3 and summary.stats.scalar_frames == 3


def test_run_live_forwards_between_links_until_max_packets() -> None:
    a_host, a_router = MemoryLink.pair(names=("a", "ra"))
    b_host, b_router = MemoryLink.pair(names=("b", "rb"))
    a_host.send([frame(i) for i in range(20)] + [frame(99, dst="192.0.2.1")])
    router = FakeRouter()
    summary = run_live(
        router, {0: a_router, 1: b_router}, threading.Event(), max_packets=21, duration=5
    )
    assert summary.stopped_by == "max_packets"
    assert [ident(f) for f in b_host.recv_batch(100)] == list(range(20))
    back = a_host.recv_batch(10)
    assert len(back) == 1 and back[0][23] == 1
    assert summary.stats.frames_in == 21
    assert summary.link_counters[1]["tx.frames"] == 20


def test_run_live_stops_on_event_and_duration_and_polls_timers() -> None:
    _, a_router = MemoryLink.pair()
    stop = threading.Event()
    router = FakeRouter()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    t0 = time.monotonic()
    summary = run_live(router, {0: a_router}, stop, duration=10)
    assert summary.stopped_by == "stop"
    assert time.monotonic() - t0 < 5
    assert len(router.polls) > 2  # timers run on an idle network
    summary = run_live(FakeRouter(), {0: a_router}, threading.Event(), duration=0.2)
    assert summary.stopped_by == "duration"
    assert 0.15 < summary.seconds < 5


def test_run_live_counts_frames_for_ports_without_links() -> None:
    a_host, a_router = MemoryLink.pair()
    a_host.send([frame(1)])
    summary = run_live(FakeRouter(), {0: a_router}, threading.Event(), max_packets=1, duration=5)
    assert summary.counters["runner.out.no_link"] == 1


def test_engine_process_batch_decides_as_process_does() -> None:
    frames = [frame(i) for i in range(10)] + [frame(11, dst="192.0.2.1")]
    by_frames, by_batch = Engine(FakeRouter(), FakeVector()), Engine(FakeRouter(), FakeVector())
    out = by_frames.process(0, frames, 5.0)
    batches, emitted = by_batch.process_batch(0, FrameBatch.from_frames(frames), 5.0)
    assert sorted(batches) == [1]
    assert [ident(f) for f in batches[1].frames()] == [0, 2, 4, 6, 8]
    assert [ident(f) for f in emitted[1]] == [1, 3, 5, 7, 9]
    # On each egress the batch goes first, then the scalar path's frames: process's order.
    assert list(batches[1].frames()) + emitted[1] == out[1] and emitted[0] == out[0]
    untimed = dataclasses.replace(by_batch.stats, vector_seconds=0.0, scalar_seconds=0.0)
    assert untimed == dataclasses.replace(by_frames.stats, vector_seconds=0.0, scalar_seconds=0.0)
    assert by_batch.counters == by_frames.counters
    # Without a vector path every row goes through router.input.
    plain = Engine(FakeRouter())
    batches, emitted = plain.process_batch(0, FrameBatch.from_frames(frames), 5.0)
    assert batches == {} and [ident(f) for f in emitted[1]] == list(range(10))
    assert (plain.stats.frames_in, plain.stats.scalar_frames) == (11, 11)
    assert plain.process_batch(0, FrameBatch.empty(0), 6.0) == ({}, {})


class BatchMemoryLink(MemoryLink):
    """A MemoryLink with the BatchLink methods, recording how it was used."""

    slot = 256

    def __init__(self, name: str, mtu: int, capacity: int) -> None:
        super().__init__(name, mtu, capacity)
        self.calls: Counter[str] = Counter()

    def recv_frame_batch(self, max_frames: int = 256, out: FrameBatch | None = None) -> FrameBatch:
        self.calls["recv_frame_batch"] += 1
        assert out is not None and len(out) >= max_frames  # run_live keeps one per link
        got = FrameBatch.from_frames(self.recv_batch(max_frames), out.slot)
        n = len(got)
        out.data[:n], out.length[:n] = got.data, got.length
        return FrameBatch(out.data[:n], out.length[:n], out.timestamp_ns[:n])

    def send_frame_batch(self, batch: FrameBatch, rows: np.ndarray | None = None) -> int:
        self.calls["send_frame_batch"] += 1
        picked = range(len(batch)) if rows is None else rows
        return self.send([batch.frame(int(i)) for i in picked])


def test_run_live_moves_batches_through_batch_links() -> None:
    from netfast.link.base import BatchLink

    a_host, _ = MemoryLink.pair()
    b_host, _ = MemoryLink.pair()
    ra = BatchMemoryLink("ra", 1500, 1024)
    rb = BatchMemoryLink("rb", 1500, 1024)
    # Wire the batch-capable ends to the hosts' ends.
    a_host._peer, ra._peer = ra, a_host
    b_host._peer, rb._peer = rb, b_host
    assert isinstance(ra, BatchLink) and not isinstance(a_host, BatchLink)
    a_host.send([frame(i) for i in range(20)] + [frame(99, dst="192.0.2.1")])
    summary = run_live(
        FakeRouter(),
        {0: ra, 1: rb},
        threading.Event(),
        vector=FakeVector(),
        max_packets=21,
        duration=5,
        batch_size=32,
    )
    assert summary.stopped_by == "max_packets"
    got = [ident(f) for f in b_host.recv_batch(100)]
    assert got == [*range(0, 20, 2), *range(1, 20, 2)]  # the batch, then the punted rows
    assert len(a_host.recv_batch(10)) == 1  # the ICMP error, as frames
    assert ra.calls["recv_frame_batch"] >= 1 and rb.calls["send_frame_batch"] == 1
    assert summary.stats.vector_frames == 10 and summary.stats.scalar_frames == 11
    assert summary.link_counters[1]["tx.frames"] == 20
    # A forwarded batch for a link without batches goes out as its frames.
    c_host, c_router = MemoryLink.pair()
    a_host.send([frame(i) for i in range(4)])
    run_live(
        FakeRouter(), {0: ra, 1: c_router}, threading.Event(), vector=FakeVector(),
        max_packets=4, duration=5,
    )  # fmt: skip
    assert [ident(f) for f in c_host.recv_batch(10)] == [0, 2, 1, 3]
