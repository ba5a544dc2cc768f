"""``netfast bench live`` with trafgen in real namespaces (root): every frame trafgen says it
sent is one the kernel in A took, and is either delivered to B or lost at a counted place, in
both modes, flat out and paced; the namespaces are gone afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from netfast.bench import live
from netfast.bench.live.measure import ModeRun, TrialSettings, run_trial

SKIP_REASON = live.check_environment() or (
    "trafgen is not installed (netsniff-ng)" if shutil.which("trafgen") is None else None
)
pytestmark = [
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.netns,
    pytest.mark.slow,
]

PACKETS = 20_000
RATE = 4_000.0


def _our_namespaces() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"nfl{os.getpid()}x")]


def _check_accounting(r: ModeRun, packets: int = PACKETS) -> None:
    assert r.generator == "trafgen"
    assert 0 < r.sent <= packets and r.send_errors == 0 and r.send_seconds > 0
    # trafgen's own count is the kernel's count of what A took from it.
    assert r.sent == r.a_sent, r.kernel
    losses = r.losses()
    assert all(n >= 0 for n in losses.values()), losses
    # Delivered or lost at a named place: nothing unaccounted.
    assert r.sent == r.delivered + sum(losses.values()), (losses, r.kernel, r.netfast)
    assert r.unaccounted == 0
    assert 0 < r.delivered <= r.entered <= r.sent


def test_trials_account_for_every_frame() -> None:
    gen = live.choose_generator("trafgen", flows=4)
    settings = TrialSettings(gen, batch_size=64)
    with live.Topology() as topo:
        flat = {
            mode: run_trial(topo, mode, settings, packets=PACKETS, seconds=1.0)
            for mode in live.MODES
        }
        paced = {
            mode: run_trial(
                topo, mode, settings, packets=PACKETS, seconds=0.5, rate=RATE, round_no=1
            )
            for mode in live.MODES
        }
    assert _our_namespaces() == []
    for r in (*flat.values(), *paced.values()):
        _check_accounting(r)
    k, n = flat["kernel"], flat["netfast"]
    assert k.requested_pps is None and k.netfast is None
    # The kernel's IP forwarded what it delivered: its MIB agrees with B's counter.
    assert k.kernel.ip_mib["ForwDatagrams"] >= k.delivered
    nf = n.netfast
    assert nf is not None and 0 < nf.frames_in <= n.entered
    assert nf.vector_frames + nf.scalar_frames == nf.frames_in
    assert n.delivered <= nf.forwarded <= nf.frames_in
    assert nf.links.get("rx.frames") == nf.frames_in
    for r in paced.values():
        # Paced through A's qdisc: about the rate asked for, spread over the trial (trafgen's
        # own --rate would have sent the lot in one burst), and nothing dropped in the queue.
        assert r.requested_pps == RATE
        assert 0.7 * RATE <= r.offered_pps <= 1.3 * RATE, r.offered_pps
        assert r.send_seconds >= 0.3
        assert r.kernel.a_qdisc_drops == 0


def test_measure_with_a_short_search() -> None:
    res = live.measure(
        packets=30_000,
        seconds=0.5,
        rounds=1,
        generator="trafgen",
        flows=2,
        search=live.SearchSettings(trial_seconds=0.3, max_trials=2, budget=8.0),
    )
    assert _our_namespaces() == []
    assert res.generator == "trafgen" and res.flows == 2
    assert set(res.throughput) == set(live.MODES)
    for mode, search in res.throughput.items():
        top = res.best(mode)
        assert top is not None and search.top is top
        assert search.done and len(search.steps) <= 2
        offered = [top.offered_pps] + [t.offered_pps for _, t in search.steps]
        assert 0 <= search.throughput <= max(offered)
        for rate, trial in search.steps:
            assert trial.mode == mode and trial.requested_pps == rate
            _check_accounting(trial, packets=round(rate * 0.3) + 1)


def test_two_workers_trial_accounts_for_every_frame() -> None:
    """netfast as two forwarding processes (PACKET_FANOUT): their figures, read through the
    probes and summed, account for every frame as one worker's do."""
    gen = live.choose_generator("trafgen", flows=8)
    settings = TrialSettings(gen, batch_size=64, workers=2)
    with live.Topology() as topo:
        runs = [
            run_trial(topo, "netfast", settings, packets=PACKETS, seconds=1.0),
            run_trial(topo, "netfast", settings, packets=PACKETS, seconds=0.5, rate=RATE),
        ]
    assert _our_namespaces() == []
    for r in runs:
        _check_accounting(r)
        nf = r.netfast
        assert nf is not None and 0 < nf.frames_in <= r.entered
        assert nf.vector_frames + nf.scalar_frames == nf.frames_in
        assert r.delivered <= nf.forwarded <= nf.frames_in
        assert nf.links.get("rx.frames") == nf.frames_in
    # paced, nothing lost: every frame went through one of the workers
    assert runs[1].delivered == runs[1].sent


def test_measure_reports_the_two_worker_target() -> None:
    from netfast.bench.live.report import targets

    res = live.measure(
        packets=10_000, seconds=0.5, rounds=1, generator="trafgen", flows=8, workers=2
    )
    assert _our_namespaces() == []
    assert res.workers == 2 and res.netfast_cpu is None
    row = next(r for r in targets(res) if r.name == "two workers, delivered")
    assert row.netfast_pps is not None and row.ratio is not None
    assert row.status in ("met", "not met")
    best = res.best("netfast")
    assert best is not None and row.netfast_pps == best.delivered_pps


def test_a_router_stalled_after_its_first_batch_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch after the first may still compile (a cold numba cache in a fresh clone): the
    trial starts only once the rings hold no unread warm-up frame, so no warm-up frame is
    counted as the trial's."""
    from netfast.router.engine import Engine

    original = Engine.process_batch
    calls = [0]

    def stalls_once(self: Engine, *args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 2:
            time.sleep(1.5)  # longer than the settle's quiet period
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "process_batch", stalls_once)
    gen = live.choose_generator("trafgen", flows=4)
    with live.Topology() as topo:
        r = run_trial(topo, "netfast", TrialSettings(gen, batch_size=64), packets=PACKETS,
                      seconds=1.0)  # fmt: skip
    assert calls[0] > 2
    _check_accounting(r)
    assert r.netfast is not None and r.netfast.links.get("rx.frames") == r.netfast.frames_in
