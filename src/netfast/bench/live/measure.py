"""One trial of ``netfast bench live`` (:func:`run_trial`) and the whole run (:func:`measure`):
flat-out rounds, then the RFC 2544 throughput search, both modes alternating, in one topology.

A trial of a mode: M set to the mode (netfast started in M when it is netfast's), a warm-up
burst (and, for netfast, a wait until it has finished a frame of it -- its first batch compiles
the vector path -- and until its rings hold no unread warm-up frame), the counters read once
the network is idle, the generator's run, the
counters read again once idle.  :class:`ModeRun` keeps the differences, so a trial accounts
for every frame the generator sent: delivered to B, or lost at a named place
(:meth:`ModeRun.losses`), or ``unaccounted`` -- lost where no counter saw it, which should be 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netfast.bench.live.generators import Generator, choose_generator
from netfast.bench.live.middle import NetfastFigures, NetfastRouter, WorkersRouter, figures
from netfast.bench.live.search import LOSS_LIMIT, ThroughputSearch, alternate
from netfast.bench.live.topology import (
    FRAME_LEN,
    IF_A,
    IF_B,
    IF_MA,
    IF_MB,
    IP_DISCARDS,
    MODES,
    SETTLE_LIMIT,
    UDP_PAYLOAD,
    Counters,
    Topology,
)

__all__ = ["LiveResult", "ModeRun", "SearchSettings", "measure", "run_trial"]

WARMUP_PACKETS = 2000
WARMUP_SECONDS = 1.0
#: The longest netfast may take to read its first frame: its first batch compiles the vector
#: path (numba), which takes tens of seconds when the compile cache is cold.
FIRST_FRAME_LIMIT = 120.0


@dataclass(frozen=True, slots=True)
class ModeRun:
    """One trial of one mode.

    Attributes
    ----------
    mode, round, generator
        Which mode, which round of the run, which generator.
    requested_pps
        The rate asked of the generator; None for flat out.
    sent, send_errors, send_seconds
        The generator's own report.
    kernel
        The kernel's counters over the trial: the veth ends and M's IP MIB.
    netfast
        netfast's own counters over the trial (netfast mode only).
    """

    mode: str
    round: int
    generator: str
    requested_pps: float | None
    sent: int
    send_errors: int
    send_seconds: float
    kernel: Counters
    netfast: NetfastFigures | None = None

    @property
    def a_sent(self) -> int:
        """Frames the kernel in A took from the generator, by its own count: ``a0``'s
        transmitted and dropped frames and its qdisc's drops."""
        a0 = self.kernel.end(IF_A)
        return a0.tx_packets + a0.tx_dropped + self.kernel.a_qdisc_drops

    @property
    def entered(self) -> int:
        """Frames the middle's ingress ``am`` received."""
        return self.kernel.end(IF_MA).rx_packets

    @property
    def delivered(self) -> int:
        """Frames B's ``b0`` received."""
        return self.kernel.end(IF_B).rx_packets

    @property
    def offered_pps(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.delivered / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def loss(self) -> float:
        """Share of the sent frames B did not receive."""
        return 1.0 - self.delivered / self.sent if self.sent else 0.0

    def losses(self) -> dict[str, int]:
        """Lost frames by place, in path order.

        - ``a0 qdisc drops``, ``a0 tx_dropped``, ``am rx_dropped``: the kernel's counters of A's
          pacing queue and of the veth into M (``a0 tx_dropped`` counts what M's backlog
          refused).
        - kernel mode: ``not received by M's IP`` (``am`` rx minus ``Ip InReceives``) and M's
          IP MIB discards (``M Ip <counter>``).
        - netfast mode: ``not read by netfast`` (``am`` rx minus the frames netfast read: its
          socket buffer or ring was full), ``netfast router drops`` (read minus forwarded; the
          reasons are in :attr:`NetfastFigures.router_drops`), ``not sent by netfast's links``
          (forwarded minus the links' ``tx.frames``; the reasons in their ``drop.*``).
        - ``bm tx_dropped``, ``b0 rx_dropped``: the veth into B.
        """
        k = self.kernel
        a0, am, bm, b0 = k.end(IF_A), k.end(IF_MA), k.end(IF_MB), k.end(IF_B)
        out = {
            "a0 qdisc drops": k.a_qdisc_drops,
            "a0 tx_dropped": a0.tx_dropped,
            "am rx_dropped": am.rx_dropped,
        }
        nf = self.netfast
        if self.mode == "kernel":
            out["not received by M's IP"] = self.entered - k.ip_mib.get("InReceives", 0)
            for name in IP_DISCARDS:
                out[f"M Ip {name}"] = k.ip_mib.get(name, 0)
        elif nf is not None:
            out["not read by netfast"] = self.entered - nf.frames_in
            out["netfast router drops"] = nf.frames_in - nf.forwarded
            out["not sent by netfast's links"] = nf.forwarded - nf.link_tx_frames
        out["bm tx_dropped"] = bm.tx_dropped
        out["b0 rx_dropped"] = b0.rx_dropped
        return out

    @property
    def unaccounted(self) -> int:
        """Sent frames neither delivered nor in :meth:`losses` (0 when the counters agree)."""
        return self.sent - self.delivered - sum(self.losses().values())

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "round": self.round,
            "generator": self.generator,
            "requested_pps": self.requested_pps,
            "sent": self.sent,
            "send_errors": self.send_errors,
            "send_seconds": self.send_seconds,
            "a_sent": self.a_sent,
            "entered": self.entered,
            "delivered": self.delivered,
            "offered_pps": self.offered_pps,
            "delivered_pps": self.delivered_pps,
            "loss": self.loss,
            "losses": self.losses(),
            "unaccounted": self.unaccounted,
            "kernel": {
                "ends": {name: vars_of(c) for name, c in self.kernel.ends.items()},
                "ip_mib": {k: v for k, v in self.kernel.ip_mib.items() if v},
                "a_qdisc_drops": self.kernel.a_qdisc_drops,
            },
            "netfast": None if self.netfast is None else self.netfast.to_json(),
        }


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """The throughput search's settings (see :mod:`netfast.bench.live.search`); ``budget`` is
    the most seconds the search may take (no trial starts after it)."""

    trial_seconds: float = 1.0
    max_trials: int = 6
    loss_limit: float = LOSS_LIMIT
    resolution: float = 0.05
    budget: float = 75.0


@dataclass
class LiveResult:
    """Every trial of :func:`measure` and the settings it ran with."""

    packets: int
    seconds: float
    rounds: int
    batch_size: int
    generator: str = "python"
    flows: int = 1
    netfast_cpu: int | None = None
    workers: int = 1
    runs: list[ModeRun] = field(default_factory=list)
    search: SearchSettings | None = None
    throughput: dict[str, ThroughputSearch[ModeRun]] = field(default_factory=dict)
    frame_len: int = FRAME_LEN

    def best(self, mode: str) -> ModeRun | None:
        """The flat-out run of ``mode`` that delivered the most packets per second."""
        runs = [r for r in self.runs if r.mode == mode]
        return max(runs, key=lambda r: r.delivered_pps) if runs else None

    @property
    def ratio(self) -> float | None:
        """netfast's best delivered rate over the kernel's (flat out)."""
        nf, kernel = self.best("netfast"), self.best("kernel")
        if nf is None or kernel is None or kernel.delivered_pps == 0:
            return None
        return nf.delivered_pps / kernel.delivered_pps

    @property
    def throughput_ratio(self) -> float | None:
        """netfast's RFC 2544 throughput over the kernel's."""
        nf, kernel = self.throughput.get("netfast"), self.throughput.get("kernel")
        if nf is None or kernel is None or kernel.throughput == 0:
            return None
        return nf.throughput / kernel.throughput

    def to_json(self, **meta: Any) -> dict[str, Any]:
        best = {m: self.best(m) for m in MODES}
        throughput = {
            mode: {
                "throughput_pps": s.throughput,
                "bound": s.bound,
                "lo_pps": s.lo,
                "hi_pps": s.hi,
                "trials": [{"asked_pps": rate, **t.to_json()} for rate, t in s.steps],
            }
            for mode, s in self.throughput.items()
        }
        return {
            "meta": {
                **meta,
                "generator": self.generator,
                "flows": self.flows,
                "netfast_cpu": self.netfast_cpu,
                "workers": self.workers,
                "frame_len": self.frame_len,
                "wire_len_with_fcs": self.frame_len + 4,
                "udp_payload": UDP_PAYLOAD,
                "packets": self.packets,
                "seconds": self.seconds,
                "rounds": self.rounds,
                "batch_size": self.batch_size,
                "search": None if self.search is None else vars_of(self.search),
            },
            "best": {m: None if r is None else r.to_json() for m, r in best.items()},
            "netfast_over_kernel": self.ratio,
            "throughput": throughput,
            "throughput_netfast_over_kernel": self.throughput_ratio,
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass(frozen=True, slots=True)
class TrialSettings:
    """What every trial of a run shares."""

    generator: Generator
    batch_size: int
    link_type: str = "afpacket"
    netfast_cpu: int | None = None
    workers: int = 1


def run_trial(
    topo: Topology,
    mode: str,
    settings: TrialSettings,
    *,
    packets: int,
    seconds: float,
    rate: float | None = None,
    round_no: int = 0,
) -> ModeRun:
    """One trial of ``mode`` (see the module docstring): at most ``packets`` frames within
    ``seconds``, at ``rate`` pps or flat out.

    Raises
    ------
    RuntimeError
        A command, the generator or the netfast router failed.
    """
    topo.set_mode(mode)
    gen = settings.generator
    router: NetfastRouter | None = None
    if mode == "netfast":
        # The thread's bound: warm-up, the run and every settle, with room to spare.
        bound = WARMUP_SECONDS + FIRST_FRAME_LIMIT + 1.2 * seconds + 4 * SETTLE_LIMIT + 30
        if settings.workers > 1:
            router = WorkersRouter(
                topo.ns_m, bound, settings.batch_size, settings.workers,
                link_type=settings.link_type,
            )  # fmt: skip
        else:
            router = NetfastRouter(
                topo.ns_m,
                bound,
                settings.batch_size,
                link_type=settings.link_type,
                cpu=settings.netfast_cpu,
            )
        router.start()
    try:
        extra = None if router is None else router.frames_in
        gen.send(topo.ns_a, WARMUP_PACKETS, WARMUP_SECONDS)
        if router is not None:
            _wait_first_frame(router)
            _wait_drained(router)
        topo.settle(extra)
        if router is not None and router.error is not None:
            raise RuntimeError(f"the netfast router failed: {router.error}")
        before = topo.counters()
        nf_before = router.snapshot() if router is not None else None
        burst = gen.send(topo.ns_a, packets, seconds, rate)
        topo.settle(extra)
        after = topo.counters()
        nf_after = router.snapshot() if router is not None else None
    finally:
        if router is not None:
            router.stop()
    if router is not None and router.error is not None:
        raise RuntimeError(f"the netfast router failed: {router.error}")
    return ModeRun(
        mode=mode,
        round=round_no,
        generator=gen.name,
        requested_pps=rate,
        sent=burst.sent,
        send_errors=burst.errors,
        send_seconds=burst.seconds,
        kernel=after - before,
        netfast=None if nf_before is None or nf_after is None else figures(nf_before, nf_after),
    )


def _wait_first_frame(router: NetfastRouter) -> None:
    """Wait until netfast has finished a warm-up frame (at most :data:`FIRST_FRAME_LIMIT`): a
    trial must not start while its first batch is still compiling."""
    end = time.monotonic() + FIRST_FRAME_LIMIT
    while router.frames_done() == 0 and router.error is None:
        if time.monotonic() >= end:
            raise RuntimeError(
                f"the netfast router finished no warm-up frame in {FIRST_FRAME_LIMIT:g} s"
            )
        time.sleep(0.05)


def _wait_drained(router: NetfastRouter) -> None:
    """Wait until netfast has read and finished every warm-up frame its rings were offered (at
    most :data:`FIRST_FRAME_LIMIT`): a batch after the first may still compile, and frames of
    the warm-up read after the trial's first snapshot would be counted as the trial's."""
    end = time.monotonic() + FIRST_FRAME_LIMIT
    while router.pending() and router.error is None:
        if time.monotonic() >= end:
            raise RuntimeError(
                f"the netfast router left {router.pending()} warm-up frames unread in "
                f"{FIRST_FRAME_LIMIT:g} s"
            )
        time.sleep(0.05)


def _netfast_cpu() -> int | None:
    """The CPU for netfast's thread: the last one, when there are two or more (trafgen takes
    CPU 0)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) >= 2 and cpus[-1] != 0 else None


def measure(
    *,
    packets: int = 1_000_000,
    seconds: float = 5.0,
    rounds: int = 2,
    batch_size: int = 256,
    generator: str = "auto",
    flows: int = 16,
    search: SearchSettings | None = None,
    link_type: str = "afpacket",
    pin: bool = True,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> LiveResult:
    """Build the topology; run ``rounds`` flat-out trials per mode, then (with ``search``) the
    RFC 2544 throughput search of each mode, alternating modes throughout; remove the topology.

    Parameters
    ----------
    packets, seconds
        Bounds of each flat-out trial (whichever comes first).
    rounds
        Flat-out trials per mode; the modes alternate which goes first.
    batch_size
        Frames netfast reads per port per loop turn (``run_live``'s ``batch_size``).
    generator, flows
        :func:`netfast.bench.live.generators.choose_generator`'s arguments.
    search
        The search's settings; None for no search.  Each mode's search starts from the mode's
        best flat-out trial.
    link_type
        The router config's link type for netfast's ports.
    pin
        Pin netfast's thread to the last CPU (when there are two or more; one worker only).
    workers
        netfast's forwarding processes (:func:`netfast.router.workers.run_workers`); 1 runs
        the router in a thread of this process.

    Raises
    ------
    PermissionError
        Not root (or no ``ip``, ``ethtool``, ``setns``): see :func:`check_environment`.
    RuntimeError
        A setup command, the generator or the netfast router failed.
    """
    from netfast.bench.live import check_environment

    if packets < 1 or rounds < 1 or batch_size < 1 or workers < 1:
        raise ValueError("packets, rounds, batch_size and workers must be at least 1")
    if not seconds > 0:
        raise ValueError(f"seconds = {seconds}: must be positive")
    if search is not None and not (search.trial_seconds > 0 and search.budget > 0):
        raise ValueError("the search's trial_seconds and budget must be positive")
    reason = check_environment()
    if reason is not None:
        raise PermissionError(reason)
    gen = choose_generator(generator, flows=flows)
    cpu = _netfast_cpu() if pin and workers == 1 else None
    settings = TrialSettings(gen, batch_size, link_type, cpu, workers)
    say = progress or (lambda _msg: None)
    result = LiveResult(
        packets=packets,
        seconds=seconds,
        rounds=rounds,
        batch_size=batch_size,
        generator=gen.name,
        flows=flows if gen.name == "trafgen" else 1,
        netfast_cpu=settings.netfast_cpu,
        workers=workers,
        search=search,
    )
    say("building namespaces")
    with Topology() as topo:
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                say(f"round {r + 1}/{rounds}: {mode}, flat out ({gen.name})")
                result.runs.append(
                    run_trial(topo, mode, settings, packets=packets, seconds=seconds, round_no=r)
                )
        if search is None:
            return result
        searches: dict[str, ThroughputSearch[ModeRun]] = {}
        for mode in MODES:
            top = result.best(mode)
            assert top is not None
            searches[mode] = ThroughputSearch(
                top,
                loss_limit=search.loss_limit,
                resolution=search.resolution,
                max_trials=search.max_trials,
            )
        result.throughput = searches

        def trial(mode: str, rate: float, round_no: int) -> ModeRun:
            n = max(1, round(rate * search.trial_seconds))
            return run_trial(
                topo, mode, settings, packets=n, seconds=search.trial_seconds, rate=rate,
                round_no=round_no,
            )  # fmt: skip

        alternate(searches, trial, deadline=time.monotonic() + search.budget, progress=say)
    return result
