"""The pfil benchmark (``netfast bench pfil``): the three hook-list designs of
:mod:`netfast.pfil.heads` measured against each other in the same run.

What is measured
----------------
Reader throughput: runs of ``heads.run(FORWARD, pkt)`` per second, summed over the reader
threads, with 1, 3 and 10 hooks of trivial cost (each returns PASS), with 1 and 2 reader threads,
and for each of those

- without churn, and
- under churn: a writer thread that adds a hook to the same head, sleeps ``churn_us``
  microseconds, removes it, sleeps again, and so on (so the head alternates between ``n`` and
  ``n + 1`` hooks for every design alike).  The writer's achieved change rate is reported.

Each (design, cell) figure is the best of ``rounds`` short runs, and the rounds interleave the
designs, so slow phases of the shared machine hit all of them.  The winner is the design with the
highest geometric mean, over all cells, of its throughput relative to the best design in that
cell.

What it can and cannot show under CPython's GIL
-----------------------------------------------
Only one thread executes Python bytecode at a time, so two reader threads do not run hooks in
parallel: their summed throughput is at best that of one thread, and what the second thread adds
is GIL hand-offs (and, for the locked design, waiting on a mutex held by a preempted thread).
The paper's SMP argument -- a lock word written by every CPU for every packet bounces its cache
line between CPUs and stalls them -- therefore cannot be observed here; this measurement neither
confirms nor refutes it.  What it does show is real: the instructions a reader spends per packet
on synchronization.  The RW lock costs two mutex acquire/release pairs and its bookkeeping on
every run; the tuple design costs one reference load; the linked design costs a thread-local
slot lookup and two slot stores, plus a pointer chase per hook.  It also shows how each design
behaves when a writer changes the list under running readers: the locked design makes readers
wait for the writer and the writer for the readers; the linked design's writer waits out a grace
period before its next change; the tuple design never makes anyone wait.

The churn rate a writer achieves is bounded by the GIL: a writer waking from its sleep needs the
GIL back from a busy reader, which gives it up only every switch interval (5 ms by default).  So
during churn measurements the switch interval is lowered to the churn period (1 ms by default)
and restored afterwards, for every design alike; the achieved change rate is reported next to
the throughput (with two busy readers the writer still gets the GIL less often).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.heads import IMPLS, PfilHeads

HOOK_COUNTS = (1, 3, 10)
READER_COUNTS = (1, 2)
#: Default writer period under churn: a hook added or removed every millisecond.
CHURN_US = 1000.0
#: Runs between two looks at the stop flag (keeps the overshoot after the deadline small).
_BATCH = 64

_DIRECTION = Direction.FORWARD


@dataclass(frozen=True, slots=True)
class Cell:
    """One measured figure: a design in one configuration."""

    impl: str
    hooks: int
    readers: int
    churn_us: float | None  # None: no writer
    runs_per_s: float  # summed over the readers, best round
    changes_per_s: float  # the writer's achieved rate in that round (0 without churn)


def _pass_hook(pkt: PfilPacket) -> Verdict:
    return Verdict.PASS


def _packet() -> PfilPacket:
    return PfilPacket(
        ifindex=1,
        direction=_DIRECTION,
        src=0xC6120001,  # 198.18.0.1
        dst=0xC6130001,  # 198.19.0.1
        proto=6,
        ttl=64,
        length=40,
        sport=40000,
        dport=80,
        tcp_flags=0x10,
    )


def measure_once(
    impl: str, hooks: int, readers: int, churn_us: float | None, seconds: float
) -> tuple[float, float]:
    """One round: (runs/s summed over ``readers`` threads, writer changes/s) over ``seconds``."""
    if readers < 1 or hooks < 0 or seconds <= 0:
        raise ValueError("need readers >= 1, hooks >= 0 and seconds > 0")
    heads = PfilHeads(impl)
    for _ in range(hooks):
        heads.add_hook(_DIRECTION, _pass_hook)
    pkt = _packet()
    start = threading.Barrier(readers + 1 + (churn_us is not None))
    stop = threading.Event()
    counts = [0] * readers
    ends = [0.0] * readers
    changes = [0, 0.0]  # count, end time

    def reader(i: int) -> None:
        run = heads.run
        d = _DIRECTION
        batch = range(_BATCH)
        n = 0
        start.wait()
        while not stop.is_set():
            for _ in batch:
                run(d, pkt)
            n += _BATCH
        ends[i] = time.perf_counter()
        counts[i] = n

    def writer(period: float) -> None:
        n = 0
        extra = None
        start.wait()
        while not stop.is_set():
            if extra is None:
                extra = heads.add_hook(_DIRECTION, _pass_hook)
            else:
                heads.remove_hook(extra)
                extra = None
            n += 1
            time.sleep(period)
        changes[0], changes[1] = n, time.perf_counter()

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    if churn_us is not None:
        threads.append(threading.Thread(target=writer, args=(churn_us * 1e-6,), daemon=True))
    interval = sys.getswitchinterval()
    if churn_us is not None:
        # a sleeping writer needs the GIL back from busy readers: let it ask that often
        sys.setswitchinterval(min(interval, churn_us * 1e-6))
    try:
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    runs_per_s = sum(counts) / (max(ends) - t0)
    changes_per_s = changes[0] / (changes[1] - t0) if churn_us is not None else 0.0
    return runs_per_s, changes_per_s


def measure(
    impls: Sequence[str] = IMPLS,
    hook_counts: Sequence[int] = HOOK_COUNTS,
    reader_counts: Sequence[int] = READER_COUNTS,
    churn_us: float = CHURN_US,
    seconds: float = 1.0,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[Cell]:
    """Every design in every configuration; ``seconds`` per (design, configuration), split into
    ``rounds`` interleaved rounds, best round kept."""
    for impl in impls:
        if impl not in IMPLS:
            raise ValueError(f"unknown pfil implementation {impl!r}; choose from {IMPLS}")
    if rounds < 1 or seconds <= 0 or churn_us <= 0:
        raise ValueError("need rounds >= 1, seconds > 0 and churn_us > 0")
    configs = [
        (h, r, c) for c in (None, churn_us) for h in hook_counts for r in reader_counts
    ]  # fmt: skip
    best: dict[tuple[str, int, int, float | None], tuple[float, float]] = {}
    for rnd in range(rounds):
        for k, (h, r, c) in enumerate(configs):
            shift = (rnd + k) % len(impls)  # rotate who goes first
            for impl in [*impls[shift:], *impls[:shift]]:
                if progress is not None:
                    churn = "no churn" if c is None else f"churn {c:g} us"
                    progress(f"round {rnd + 1}/{rounds}: {impl}, {h} hooks, {r} readers, {churn}")
                got = measure_once(impl, h, r, c, seconds / rounds)
                key = (impl, h, r, c)
                if key not in best or got[0] > best[key][0]:
                    best[key] = got
    return [
        Cell(impl, h, r, c, *best[(impl, h, r, c)]) for h, r, c in configs for impl in impls
    ]  # fmt: skip


def scores(cells: Sequence[Cell]) -> dict[str, float]:
    """Per design: geometric mean over configurations of throughput / best throughput there."""
    by_config: dict[tuple[int, int, float | None], list[Cell]] = {}
    for cell in cells:
        by_config.setdefault((cell.hooks, cell.readers, cell.churn_us), []).append(cell)
    logs: dict[str, list[float]] = {}
    for group in by_config.values():
        top = max(c.runs_per_s for c in group)
        for c in group:
            logs.setdefault(c.impl, []).append(math.log(c.runs_per_s / top))
    return {impl: math.exp(sum(v) / len(v)) for impl, v in logs.items()}


def winner(cells: Sequence[Cell]) -> str:
    """The design with the best score (see :func:`scores`)."""
    s = scores(cells)
    return max(s, key=lambda impl: s[impl])


def ratio_vs(cells: Sequence[Cell], baseline: str) -> dict[str, float]:
    """Per design: geometric mean over configurations of its throughput / ``baseline``'s."""
    base = {(c.hooks, c.readers, c.churn_us): c.runs_per_s for c in cells if c.impl == baseline}
    logs: dict[str, list[float]] = {}
    for c in cells:
        ref = base.get((c.hooks, c.readers, c.churn_us))
        if ref:
            logs.setdefault(c.impl, []).append(math.log(c.runs_per_s / ref))
    return {impl: math.exp(sum(v) / len(v)) for impl, v in logs.items()}


def to_json(cells: Sequence[Cell], **meta: Any) -> dict[str, Any]:
    """The figures, the scores and the winner, as ``--json`` writes them."""
    out: dict[str, Any] = dict(meta)
    out["cells"] = [asdict(c) for c in cells]
    out["scores"] = scores(cells)
    if any(c.impl == "rwlock" for c in cells):
        out["vs_rwlock"] = ratio_vs(cells, "rwlock")
    out["winner"] = winner(cells)
    return out
