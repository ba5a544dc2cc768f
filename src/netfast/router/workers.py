"""Several forwarding workers on one set of ports: one process per core, flows spread by the kernel.

:func:`run_workers` forks ``n`` processes from a built router (so the routing table -- the FIB's
arrays, the RIB -- is shared copy-on-write, read-only, never rebuilt), and each worker opens its
own links to every port, joins each port's PACKET_FANOUT group (:mod:`netfast.link.fanout`,
hash mode: a flow's frames reach one worker, in order) and runs
:func:`netfast.router.run.run_live` until the deadline, the packet bound or ``stop``.  Workers join
the groups one after the other, so worker k is member k of every group and both directions of a
flow (the kernel's own flow hash is symmetric) meet at the same worker -- which keeps a stateful
firewall's states where their packets are.  Each worker has its own copy of the mutable state
(ARP cache, firewall states and counters, ICMP rate limiter): like FreeBSD's per-CPU counters,
the figures are summed at the end (:class:`WorkersSummary`), and a rule change reaches only
workers forked after it.

A watcher (``netfast bench live``) may pass :class:`WorkerProbes`: each worker then publishes
its frames in and done every 10 ms in shared memory and answers a request for its full figures
(engine counters, links' counters) from a thread beside its loop.

Failures: a worker that cannot open or join its links reports the error and the others are
stopped; :func:`run_workers` raises ``OSError`` naming the worker.  Every wait is bounded.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netfast.link.base import Link, WaitableLink
from netfast.link.fanout import group_id, join_fanout
from netfast.router.engine import Engine, ForwardStats
from netfast.router.run import LiveSummary

if TYPE_CHECKING:
    from netfast.router.build import BuiltRouter

__all__ = ["WorkerProbes", "WorkersSummary", "engine_figures", "run_workers", "sum_stats"]

#: Seconds a worker may take to open and join its links, and the parent to hear from one at the
#: end beyond the run's own duration.
START_TIMEOUT = 30.0
END_GRACE = 30.0


@dataclass
class WorkersSummary:
    """The workers' :class:`LiveSummary` values, and their sums."""

    workers: list[LiveSummary]
    stats: ForwardStats
    counters: Counter[str]
    link_counters: dict[int, Counter[str]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max((w.seconds for w in self.workers), default=0.0)


#: How often a probed worker publishes its progress counts.
PROBE_PERIOD = 0.01


def engine_figures(engine: Engine, links: Mapping[int, Link]) -> dict[str, Any]:
    """An engine's figures and its links' counters summed over the links, as plain values (read
    from another thread while the loop runs: the caller reads until two reads agree)."""
    s = engine.stats
    link_counters: Counter[str] = Counter()
    for link in links.values():
        link_counters.update(dict(link.counters))
    return {
        "frames_in": s.frames_in,
        "vector_frames": s.vector_frames,
        "scalar_frames": s.scalar_frames,
        "vector_seconds": s.vector_seconds,
        "scalar_seconds": s.scalar_seconds,
        "counters": Counter(engine.counters),
        "links": link_counters,
    }


def add_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of several :func:`engine_figures` values."""
    total: dict[str, Any] = {
        "frames_in": 0, "vector_frames": 0, "scalar_frames": 0, "vector_seconds": 0.0,
        "scalar_seconds": 0.0, "counters": Counter(), "links": Counter(),
    }  # fmt: skip
    for part in parts:
        for key, value in part.items():
            if isinstance(value, Counter):
                total[key].update(value)
            else:
                total[key] += value
    return total


class WorkerProbes:
    """What a watcher reads of running workers (see the module docstring); make it before
    :func:`run_workers` and pass it in."""

    def __init__(self, workers: int) -> None:
        ctx = mp.get_context("fork")
        self.workers = workers
        self.progress: Any = ctx.Array("q", 2 * workers, lock=False)
        self.requests: list[Any] = [ctx.Queue() for _ in range(workers)]
        self.replies: Any = ctx.Queue()
        self._asked = 0

    def frames_in(self) -> int:
        """Frames the workers took from their links (as of their last publication)."""
        return sum(self.progress[0::2])

    def frames_done(self) -> int:
        """Frames a path of a worker has finished."""
        return sum(self.progress[1::2])

    def read(self, timeout: float = 5.0) -> dict[str, Any]:
        """Every worker's :func:`engine_figures`, summed (``OSError`` when one does not
        answer within ``timeout``)."""
        self._asked += 1
        ticket = self._asked
        for q in self.requests:
            q.put(ticket)
        parts: dict[int, dict[str, Any]] = {}
        end = time.monotonic() + timeout
        while len(parts) < self.workers:
            left = end - time.monotonic()
            if left <= 0:
                raise OSError(f"{self.workers - len(parts)} worker(s) did not answer a probe")
            try:
                k, got, figures = self.replies.get(timeout=left)
            except queue.Empty:
                continue
            if got == ticket:
                parts[k] = figures
        return add_figures(list(parts.values()))

    def serve(
        self, k: int, engine: Engine, links: Mapping[int, Link], end: threading.Event
    ) -> None:
        """Worker ``k``'s side, in a thread of the worker until ``end`` is set."""
        while not end.is_set():
            s = engine.stats
            self.progress[2 * k] = s.frames_in
            self.progress[2 * k + 1] = s.vector_frames + s.scalar_frames
            try:
                ticket = self.requests[k].get(timeout=PROBE_PERIOD)
            except queue.Empty:
                continue
            self.replies.put((k, ticket, engine_figures(engine, links)))


def sum_stats(parts: list[ForwardStats]) -> ForwardStats:
    """The sum of several engines' :class:`ForwardStats` (counts and seconds added)."""
    total = ForwardStats()
    for s in parts:
        total.frames_in += s.frames_in
        total.vector_frames += s.vector_frames
        total.scalar_frames += s.scalar_frames
        total.vector_seconds += s.vector_seconds
        total.scalar_seconds += s.scalar_seconds
        total.out.update(s.out)
        total.emitted.update(s.emitted)
        total.vector_counters.update(s.vector_counters)
    return total


def _worker(
    built: BuiltRouter,
    k: int,
    base: int,
    turns: list[Any],
    stop: Any,
    results: Any,
    duration: float | None,
    max_packets: int | None,
    batch_size: int,
    probes: WorkerProbes | None,
) -> None:
    try:
        links = built.open_links()
        try:
            if not turns[k].wait(START_TIMEOUT):
                raise OSError(f"worker {k}: the previous worker did not join in time")
            for ifindex, link in links.items():
                if not isinstance(link, WaitableLink):
                    raise OSError(f"worker {k}: port {built.names[ifindex]} is not a socket")
                try:
                    join_fanout(link, group_id(base, ifindex))
                except OSError as exc:
                    raise OSError(
                        f"worker {k}: port {built.names[ifindex]}: fanout: {exc}"
                    ) from None
            if k + 1 < len(turns):
                turns[k + 1].set()
            results.put((k, "ready", None))
            local = threading.Event()

            def watch() -> None:
                stop.wait()
                local.set()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            engine = built.new_engine()
            finished = threading.Event()
            if probes is not None:
                server = threading.Thread(
                    target=probes.serve, args=(k, engine, links, finished), daemon=True
                )
                server.start()
            try:
                summary = built.run_live(
                    local,
                    duration=duration,
                    max_packets=max_packets,
                    batch_size=batch_size,
                    engine=engine,
                )
            finally:
                finished.set()
            results.put((k, "done", summary))
        finally:
            built.close()
    except Exception as exc:  # reported to the parent, which raises it
        results.put((k, "error", f"{type(exc).__name__}: {exc}"))
        if k + 1 < len(turns):
            turns[k + 1].set()


def run_workers(
    built: BuiltRouter,
    workers: int,
    *,
    stop: threading.Event | None = None,
    duration: float | None = None,
    max_packets: int | None = None,
    batch_size: int = 256,
    on_ready: Any = None,
    probes: WorkerProbes | None = None,
) -> WorkersSummary:
    """Run ``workers`` forwarding processes on ``built``'s live ports (see the module docstring).

    ``max_packets`` bounds each worker; ``stop`` (set from a signal handler, say) ends them
    all; ``on_ready()`` is called once every worker has joined its groups.  ``built`` must not
    have links open (each worker opens its own).  ``probes`` (made for ``workers``) lets
    another thread watch the workers as they run.
    """
    if probes is not None and probes.workers != workers:
        raise ValueError(f"probes for {probes.workers} workers, {workers} asked for")
    if workers < 1:
        raise ValueError(f"workers = {workers}: must be at least 1")
    if built.links:
        raise ValueError("run_workers opens the links itself: close the built router's first")
    ctx = mp.get_context("fork")
    base = os.getpid() & 0x0FFF
    turns = [ctx.Event() for _ in range(workers)]
    turns[0].set()
    done = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(built, k, base, turns, done, results, duration, max_packets, batch_size, probes),
            name=f"netfast-worker-{k}",
            daemon=True,
        )
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    summaries: dict[int, LiveSummary] = {}
    errors: list[str] = []
    ready = 0
    start_deadline = time.monotonic() + START_TIMEOUT * workers
    end_deadline: float | None = None
    try:
        while len(summaries) + len(errors) < workers:
            now = time.monotonic()
            if (errors or (stop is not None and stop.is_set())) and not done.is_set():
                done.set()
                end_deadline = min(end_deadline or now + END_GRACE, now + END_GRACE)
            if ready < workers and now > start_deadline:
                errors.append(f"{workers - ready} worker(s) did not start within the time allowed")
                break
            if end_deadline is not None and now > end_deadline:
                errors.append("workers did not finish within the time allowed")
                break
            try:
                k, what, value = results.get(timeout=0.1)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    errors.append("a worker ended without a result")
                    break
                continue
            if what == "ready":
                ready += 1
                if ready == workers:
                    if duration is not None:
                        end_deadline = time.monotonic() + duration + END_GRACE
                    if on_ready is not None:
                        on_ready()
            elif what == "done":
                summaries[k] = value
            else:
                errors.append(str(value))
    finally:
        done.set()
        for p in procs:
            p.join(END_GRACE)
            if p.is_alive():
                p.kill()
                p.join(5.0)
    if errors:
        raise OSError("; ".join(errors))
    parts = [summaries[k] for k in sorted(summaries)]
    counters: Counter[str] = Counter()
    links: dict[int, Counter[str]] = {}
    for s in parts:
        counters.update(s.counters)
        for i, c in s.link_counters.items():
            links.setdefault(i, Counter()).update(c)
    return WorkersSummary(parts, sum_stats([s.stats for s in parts]), counters, links)
