"""Two forwarding workers on one pair of ports (PACKET_FANOUT), in namespaces the test creates:
trafgen in A sends 16 flows through M to B; both workers take a share of the flows, and the
summed counters account for every frame that entered M."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from netfast.bench import live
from netfast.bench.live.middle import router_config
from netfast.bench.live.topology import IF_MA, enter_netns
from netfast.bench.live.trafgen import bench_frames
from netfast.router.build import build_router
from netfast.router.config import parse_config
from netfast.router.workers import WorkersSummary, run_workers

SKIP_REASON = live.check_environment() or (
    "trafgen is not installed (netsniff-ng)" if shutil.which("trafgen") is None else None
)
pytestmark = [
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.netns,
]

PACKETS = 20_000
RATE = 5_000.0


def test_two_workers_share_the_flows_and_the_counts_add_up() -> None:
    built = build_router(parse_config(router_config(), "workers.toml"))
    # Compiled kernels loaded in the parent, on a spare router: the workers inherit them.
    spare = build_router(built.config, table=built.table)
    spare.new_engine().process(0, bench_frames(16) * 4, 0.0)
    gen = live.choose_generator("trafgen", flows=16)
    with live.Topology() as topo:
        topo.set_mode("netfast")
        before = topo.end_counters()
        ready = threading.Event()
        stop = threading.Event()
        result: list[WorkersSummary] = []
        failure: list[BaseException] = []

        def middle() -> None:
            try:
                enter_netns(topo.ns_m)  # this thread: the workers it forks are in M
                result.append(
                    run_workers(built, 2, stop=stop, duration=60.0, on_ready=ready.set,
                                batch_size=64)
                )  # fmt: skip
            except BaseException as exc:  # reported below
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=middle, daemon=True)
        thread.start()
        try:
            assert ready.wait(60.0) and not failure, failure
            # A first burst while the workers load their compiled ring walks (frames a ring
            # cannot take meanwhile are counted as its drops), then the one measured.
            warm = gen.send(topo.ns_a, 1000, 5.0, rate=1000.0)
            time.sleep(3.0)
            burst = gen.send(topo.ns_a, PACKETS, PACKETS / RATE + 5.0, rate=RATE)
            topo.settle()
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(90.0)
        assert not failure, failure
        entered = topo.end_counters()[IF_MA].rx_packets - before[IF_MA].rx_packets
        delivered = topo.delivered_count()
    (summary,) = result
    assert burst.sent > 0.9 * PACKETS and warm.sent > 0
    per_worker = [w.stats.frames_in for w in summary.workers]
    assert len(per_worker) == 2 and min(per_worker) > 0.1 * (warm.sent + burst.sent), (
        per_worker,
        summary.link_counters,
        [w.seconds for w in summary.workers],
    )
    stats = summary.stats
    assert stats.frames_in == sum(per_worker)
    assert stats.vector_frames + stats.scalar_frames == stats.frames_in
    # Every frame that entered M on am (ifindex 0) was offered to one worker's ring: read there
    # or dropped and counted.
    am = summary.link_counters[0]
    assert am["rx.ring_offered"] == entered, am
    assert am["rx.frames"] + am["rx.outgoing"] + am["drop.rx_ring"] == entered, am
    assert stats.frames_in == sum(c["rx.frames"] for c in summary.link_counters.values())
    forwarded = summary.counters["ip.fwd.forwarded"]
    assert forwarded > 0.9 * burst.sent
    assert delivered >= forwarded * 0.99
