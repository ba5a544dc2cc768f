"""The routing-table benchmark (``netfast bench route``): every FIB algorithm, and pytricia and
py-radix as external anchors, measured in the same run on real BGP tables and update streams.

What is measured, per table and algorithm:

- ``load_s``: reading the table file into the RIB (same for every algorithm);
- ``build_s``, ``memory_bytes``, ``bytes_per_prefix``;
- ``scalar_lps``: ``lookup(addr)`` called from a Python loop;
- ``batch_lps_inside`` / ``batch_lps_skewed`` / ``batch_lps_uniform``: ``lookup_batch`` on one
  core over 1M addresses drawn uniformly inside announced prefixes, with a Zipf-skewed choice of
  prefix (trace-like: a few prefixes get most packets), and uniformly over the address space;
- ``updates_per_s``: replaying the real BGP update streams (announce = add/replace, withdraw =
  delete) through the routing table's writer path; an update is done when lookups see it;
- ``batch_lps_during_updates`` and ``max_reader_pause_ms``: a reader thread doing batch lookups
  while a writer thread replays the streams -- only for algorithms with lock-free reads;
  ``update_latency_us``: the writer's time per update in that run (from the call until the change
  is visible to readers), as percentiles ``p50``, ``p99``, ``p999`` and ``max``.

Measurement: warm JIT, best of several rounds (the machines are shared and noisy); the
competitors and a calibration gather are measured in the same run, so ratios are meaningful even
when absolute figures move.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.route.loaders import iter_updates, load_table
from netfast.route.loaders.base import Update
from netfast.route.rib import Rib, format_prefix
from netfast.route.table import RoutingTable, algorithms

U32 = npt.NDArray[np.uint32]

#: Update streams replayed (IPv4 events only), in ../shared/data/bgp-updates.
UPDATE_STREAMS = (
    "ris-rrc01-updates.20070211.0141.mrt.gz",
    "ris-rrc21-updates.20160811.1600.mrt.gz",
)

#: Targets from the issue, checked and printed next to the measurements.
TARGET_ENGINE_LPS = 100e6
TARGET_ENGINE_MEMORY = 8 * 1024 * 1024
TARGET_STRIDE_VS_LCTRIE_MEMORY = 1.5
TARGET_STRIDE_VS_RADIX_SPEED = 10.0
TARGET_SCALAR_LPS = 1e6
TARGET_LOAD_BUILD_S = 5.0
TARGET_UPDATES_PER_S = 100e3


@dataclass
class AlgoResult:
    name: str
    lock_free_updates: bool
    build_s: float = 0.0
    memory_bytes: int | None = None
    bytes_per_prefix: float | None = None
    scalar_lps: float = 0.0
    batch_lps_inside: float = 0.0
    batch_lps_skewed: float = 0.0
    batch_lps_uniform: float = 0.0
    updates_per_s: float | None = None
    updates_applied: int = 0
    batch_lps_during_updates: float | None = None
    updates_per_s_with_reader: float | None = None
    max_reader_pause_ms: float | None = None
    update_latency_us: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TableResult:
    table: str
    prefixes: int
    load_s: float
    algorithms: list[AlgoResult]
    calibration_gather_lps: float


def _best_rate(fn: Callable[[], object], count: int, rounds: int) -> float:
    """Items per second of ``fn`` (which processes ``count`` items): best of ``rounds``."""
    fn()  # warm up (JIT, caches)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return count / best


def address_sets(rib: Rib, n: int, seed: int = 1) -> dict[str, U32]:
    """The three address distributions (see the module docstring)."""
    rng = np.random.default_rng(seed)
    nets, plens, _ = rib.live_arrays()
    nets = nets.astype(np.uint64)
    host_bits = (32 - plens.astype(np.int64)).astype(np.uint64)
    span = np.left_shift(np.uint64(1), host_bits)

    def inside(idx: npt.NDArray[np.int64]) -> U32:
        offs = rng.integers(0, np.iinfo(np.int64).max, len(idx)).astype(np.uint64) % span[idx]
        return (nets[idx] + offs).astype(np.uint32)

    uniform_idx = rng.integers(0, len(nets), n)
    # Zipf ranks over a random order of prefixes: rank 1 is the busiest prefix.
    order = rng.permutation(len(nets))
    ranks = rng.zipf(1.2, n)
    skewed_idx = order[(ranks - 1) % len(nets)]
    return {
        "inside": inside(uniform_idx),
        "skewed": inside(skewed_idx),
        "uniform": rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
    }


def load_updates(update_dir: Path, limit: int | None = None) -> list[Update]:
    """The update streams' events in order; with ``limit``, the first ``limit`` of them."""
    events: list[Update] = []
    for name in UPDATE_STREAMS:
        path = update_dir / name
        if limit is not None and len(events) >= limit:
            break
        if path.exists():
            stream = iter_updates(path)
            if limit is not None:
                stream = itertools.islice(stream, limit - len(events))
            events.extend(stream)
    return events


def _apply(table: RoutingTable, u: Update) -> None:
    if u.kind == "A":
        table.add(u.net, u.plen, u.value)
    else:
        table.delete(u.net, u.plen)


def measure_updates(
    table: RoutingTable, updates: Sequence[Update], budget_s: float
) -> tuple[float, int]:
    """Updates/s replaying ``updates`` (until done or ``budget_s``); for algorithms that rebuild
    on change, an update counts when a lookup has seen it."""
    visible = not table.fib.concurrent_updates
    t0 = time.perf_counter()
    done = 0
    for u in updates:
        _apply(table, u)
        if visible:
            table.lookup(u.net)
        done += 1
        if done % 64 == 0 and time.perf_counter() - t0 > budget_s:
            break
    return done / (time.perf_counter() - t0), done


def latency_percentiles(seconds: npt.NDArray[np.float64]) -> dict[str, float]:
    """``p50``, ``p99``, ``p999`` and ``max`` of per-operation times, in microseconds."""
    if len(seconds) == 0:
        return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    us = seconds * 1e6
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p999": float(p999), "max": float(us.max())}


def measure_concurrent(
    table: RoutingTable, updates: Sequence[Update], addrs: U32, budget_s: float
) -> tuple[float, float, float, int, dict[str, float]]:
    """A reader thread doing ``lookup_batch`` while this thread replays ``updates``.

    Returns (reader lookups/s, writer updates/s, longest reader batch in ms, updates applied,
    per-update latency percentiles in microseconds).
    """
    stop = threading.Event()
    lookups = [0]
    longest = [0.0]
    batch = addrs[: 1 << 16]

    def reader() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            table.lookup_batch(batch)
            longest[0] = max(longest[0], time.perf_counter() - t)
            lookups[0] += len(batch)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    time.sleep(0.05)
    lookups[0] = 0
    longest[0] = 0.0
    times = np.empty(len(updates), dtype=np.float64)
    clock = time.perf_counter
    t0 = clock()
    done = 0
    for u in updates:
        t = clock()
        _apply(table, u)
        times[done] = clock() - t
        done += 1
        if done % 64 == 0 and clock() - t0 > budget_s:
            break
    dt = clock() - t0
    stop.set()
    th.join(timeout=10)
    return lookups[0] / dt, done / dt, longest[0] * 1e3, done, latency_percentiles(times[:done])


def measure_table(
    path: Path,
    update_dir: Path | None,
    algos: Sequence[str],
    *,
    n_addrs: int = 1 << 20,
    rounds: int = 5,
    update_budget_s: float = 5.0,
    scalar_n: int = 200_000,
    max_updates: int | None = None,
    competitors: bool = True,
    progress: Callable[[str], None] = lambda msg: None,
) -> TableResult:
    progress(f"loading {path.name}")
    t0 = time.perf_counter()
    rib = load_table(path).rib
    load_s = time.perf_counter() - t0
    n_prefixes = len(rib)
    sets = address_sets(rib, n_addrs)
    scalar_addrs = sets["inside"][:scalar_n].tolist()
    updates = load_updates(update_dir, max_updates) if update_dir is not None else []
    known = algorithms()
    gather_table = np.zeros(1 << 16, np.int32)
    calib = _best_rate(lambda: gather_table[sets["inside"] >> 16], n_addrs, rounds)
    results: list[AlgoResult] = []
    for name in algos:
        cls = known[name]
        progress(f"{path.name}: {name}")
        r = AlgoResult(name, bool(cls.concurrent_updates))
        t0 = time.perf_counter()
        table = RoutingTable(rib, cls)
        r.build_s = time.perf_counter() - t0
        fib: Any = table.fib
        r.memory_bytes = int(fib.memory_bytes())
        r.bytes_per_prefix = r.memory_bytes / max(n_prefixes, 1)
        lookup = fib.lookup

        def scalar_loop(lookup: Callable[[int], int] = lookup) -> None:
            for a in scalar_addrs:
                lookup(a)

        r.scalar_lps = _best_rate(scalar_loop, len(scalar_addrs), max(2, rounds // 2))
        for key in ("inside", "skewed", "uniform"):
            addrs = sets[key]
            out = np.empty(len(addrs), np.int32)
            rate = _best_rate(partial(fib.lookup_batch, addrs, out), len(addrs), rounds)
            setattr(r, f"batch_lps_{key}", rate)
        if updates:
            # Each measurement gets a fresh table from a fresh RIB: replays change the RIB.
            work = RoutingTable(load_table(path).rib, cls)
            r.updates_per_s, r.updates_applied = measure_updates(work, updates, update_budget_s)
            if cls.concurrent_updates:
                work = RoutingTable(load_table(path).rib, cls)
                lps, ups, pause, _, latency = measure_concurrent(
                    work, updates, sets["inside"], update_budget_s
                )
                r.batch_lps_during_updates = lps
                r.updates_per_s_with_reader = ups
                r.max_reader_pause_ms = pause
                r.update_latency_us = latency
            else:
                r.notes.append("lookups must be locked out during updates")
        results.append(r)
    if competitors:
        results.extend(_competitors(path, rib, sets["inside"][:scalar_n], rounds, progress))
    return TableResult(path.name, n_prefixes, load_s, results, calib)


def _competitors(
    path: Path, rib: Rib, inside: U32, rounds: int, progress: Callable[[str], None]
) -> list[AlgoResult]:
    """pytricia and py-radix: the Python LPM libraries people reach for.  They have no batch
    call, so their batch figure is their per-address loop."""
    out: list[AlgoResult] = []
    nets, plens, rids = rib.live_arrays()
    prefixes = [format_prefix(n, p) for n, p in zip(nets.tolist(), plens.tolist(), strict=True)]
    dotted = [f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in inside.tolist()]
    try:
        import pytricia

        progress(f"{path.name}: pytricia")
        r = AlgoResult("pytricia (external)", False)
        t0 = time.perf_counter()
        pyt = pytricia.PyTricia(32)
        for p, rid in zip(prefixes, rids.tolist(), strict=True):
            pyt[p] = rid
        r.build_s = time.perf_counter() - t0
        get = pyt.get

        def pyt_loop() -> None:
            for a in dotted:
                get(a)

        r.scalar_lps = r.batch_lps_inside = _best_rate(pyt_loop, len(dotted), max(2, rounds // 2))
        r.notes.append("no batch call: batch = per-address loop; memory not reported")
        out.append(r)
    except ImportError:
        pass
    try:
        import radix

        progress(f"{path.name}: py-radix")
        r = AlgoResult("py-radix (external)", False)
        t0 = time.perf_counter()
        tree = radix.Radix()
        for p in prefixes:
            tree.add(p)
        r.build_s = time.perf_counter() - t0
        best = tree.search_best

        def radix_loop() -> None:
            for a in dotted:
                best(a)

        r.scalar_lps = r.batch_lps_inside = _best_rate(radix_loop, len(dotted), max(2, rounds // 2))
        r.notes.append("no batch call: batch = per-address loop; memory not reported")
        out.append(r)
    except ImportError:
        pass
    return out


def check_targets(result: TableResult) -> list[tuple[str, str, str, bool]]:
    """(target, measured, verdict text, met) rows for the issue's targets on one table."""
    by = {a.name: a for a in result.algorithms}
    rows: list[tuple[str, str, str, bool]] = []
    engines = [a for a in result.algorithms if a.name in ("dxr",)]
    if engines:
        e = engines[0]
        rows.append(
            (
                "fastest engine >= 100M batch lookups/s, one core",
                f"{e.name}: {e.batch_lps_inside / 1e6:,.0f}M/s inside, "
                f"{e.batch_lps_uniform / 1e6:,.0f}M/s uniform",
                "",
                e.batch_lps_inside >= TARGET_ENGINE_LPS,
            )
        )
        rows.append(
            (
                "fastest engine memory <= 8 MB",
                f"{(e.memory_bytes or 0) / 2**20:.2f} MiB",
                "",
                (e.memory_bytes or 0) <= TARGET_ENGINE_MEMORY,
            )
        )
    if "stride" in by and "lctrie" in by:
        s, lc = by["stride"], by["lctrie"]
        ratio = (s.memory_bytes or 0) / max(lc.memory_bytes or 1, 1)
        rows.append(
            (
                "stride memory within 1.5x of lctrie",
                f"{ratio:.2f}x ({(s.memory_bytes or 0) / 2**20:.1f} vs "
                f"{(lc.memory_bytes or 0) / 2**20:.1f} MiB)",
                "",
                ratio <= TARGET_STRIDE_VS_LCTRIE_MEMORY,
            )
        )
    if "stride" in by and "radix" in by:
        s, rx = by["stride"], by["radix"]
        ratio = s.batch_lps_inside / max(rx.batch_lps_inside, 1)
        rows.append(
            (
                "stride lookups >= 10x radix (the paper's claim)",
                f"{ratio:.1f}x ({s.batch_lps_inside / 1e6:.2f} vs "
                f"{rx.batch_lps_inside / 1e6:.2f}M/s)",
                "",
                ratio >= TARGET_STRIDE_VS_RADIX_SPEED,
            )
        )
    fast_scalar = max(result.algorithms, key=lambda a: a.scalar_lps)
    rows.append(
        (
            "scalar lookup() from Python >= 1M/s",
            f"best {fast_scalar.name}: {fast_scalar.scalar_lps / 1e6:.2f}M/s",
            "",
            fast_scalar.scalar_lps >= TARGET_SCALAR_LPS,
        )
    )
    if "dxr" in by:
        total = result.load_s + by["dxr"].build_s
        rows.append(
            (
                "table build from the file < 5 s",
                f"load {result.load_s:.2f} s + dxr build {by['dxr'].build_s:.2f} s",
                "",
                total < TARGET_LOAD_BUILD_S,
            )
        )
        d = by["dxr"]
        if d.updates_per_s_with_reader is not None:
            ups = d.updates_per_s_with_reader
            rows.append(
                (
                    "updates >= 100k/s with lookups running, never blocked",
                    f"dxr: {ups:,.0f} updates/s, reader "
                    f"{(d.batch_lps_during_updates or 0) / 1e6:.1f}M "
                    f"lookups/s, longest reader batch {d.max_reader_pause_ms:.1f} ms",
                    "",
                    ups >= TARGET_UPDATES_PER_S,
                )
            )
    return rows


def to_json(results: list[TableResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
