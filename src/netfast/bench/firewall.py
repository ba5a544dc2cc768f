"""The firewall matcher benchmark (``netfast bench firewall``): the two batch matchers of
:class:`~netfast.pfil.ipfw.Ruleset` -- the rule-major walk and the per-field bitmaps -- and the
scalar path, on the same rules and packets in the same run, from 1 to 1,000 rules.

What is measured
----------------
- Two workloads, each a ruleset of ``n`` rules (the default rule not counted) and 16 batches of
  256 packets (the live router's batch) drawn once with a fixed seed:

  - ``walk-through``: the rules of ``netfast bench forward`` (TCP rules, other sources, other
    ports), which the traffic -- UDP from 198.18.10.10 port 40000 to port 9 at uniform
    destinations -- passes without matching, then ``allow``: every packet pays for every rule.
  - ``border``: rules on prefixes of the bundled 2026 table (``deny``/``allow`` by protocol and
    port, ``count`` by source), then ``deny``; traffic half to addresses inside the rules'
    prefixes, half uniform inside the table, TCP and UDP to a few well-known ports and
    ephemeral ones, so packets stop at every depth of the ruleset.

- ``Ruleset.evaluate_batch`` per matcher: packets/s over the batches, best of ``rounds``
  rounds (matchers and rule counts interleave within a round); the verdicts and rule counters
  of the two matchers are compared on every batch of the run.
- The scalar path (``Ruleset.evaluate``, one packet at a time) on the first batch, for scale.
- The bitmap tables' build time and size.

The figure that matters is how the cost grows with the rule count: the walk's cost per packet is
one pass per rule a packet passes, the bitmaps' five table reads and ``ceil(n / 64)`` words per
field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.bench.forward import ruleset_text
from netfast.pfil import Direction, PfilPacket
from netfast.pfil.ipfw import Ruleset, parse_rules
from netfast.pfil.ipfw.bitmaps import RuleBitmaps
from netfast.route.rib import Rib

RULE_COUNTS = (1, 10, 100, 300, 1000)
WORKLOADS = ("walk-through", "border")
MATCHERS = ("walk", "bitmap")
BATCH = 256
N_BATCHES = 16
SCALAR_PACKETS = 256
_SRC = (198 << 24) | (18 << 16) | (10 << 8) | 10
_PORTS = (22, 25, 53, 80, 123, 443, 8080)

Columns = dict[str, npt.NDArray[np.int64]]


@dataclass
class Cell:
    workload: str
    rules: int
    walk_pps: float
    bitmap_pps: float
    scalar_pps: float
    build_ms: float
    bitmap_bytes: int
    decided: float  # share of packets decided (not punted) by the batch form

    @property
    def ratio(self) -> float:
        return self.bitmap_pps / self.walk_pps if self.walk_pps else 0.0


def _announced(rib: Rib) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    alive = rib.alive[: rib.route_count] != 0
    nets = rib.net[: rib.route_count][alive].astype(np.uint32)
    plens = rib.plen[: rib.route_count][alive].astype(np.uint8)
    keep = plens >= 8
    return nets[keep], plens[keep]


def _inside(
    rng: np.random.Generator, nets: npt.NDArray[np.uint32], plens: npt.NDArray[np.uint8], n: int
) -> npt.NDArray[np.int64]:
    pick = rng.integers(0, len(nets), n)
    host = (np.uint64(1) << (np.uint64(32) - plens[pick].astype(np.uint64))) - np.uint64(1)
    offset = rng.integers(0, 2**32, n, dtype=np.uint64) & host
    return (nets[pick].astype(np.uint64) | offset).astype(np.int64)


def _fmt_prefix(net: int, plen: int) -> str:
    return f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{plen}"


def border_rules(
    rng: np.random.Generator, nets: npt.NDArray[np.uint32], plens: npt.NDArray[np.uint8], n: int
) -> tuple[str, list[tuple[int, int]]]:
    """``n - 1`` rules on prefixes of the table, then ``deny``; returns the text and the
    prefixes the rules name."""
    lines = []
    named: list[tuple[int, int]] = []
    for i in range(max(0, n - 1)):
        j = int(rng.integers(0, len(nets)))
        prefix = (int(nets[j]), int(plens[j]))
        named.append(prefix)
        text = _fmt_prefix(*prefix)
        port = _PORTS[i % len(_PORTS)]
        kind = i % 5
        if kind == 0:
            lines.append(f"allow tcp from any to {text} {port}")
        elif kind == 1:
            lines.append(f"deny udp from any to {text}")
        elif kind == 2:
            lines.append(f"count ip from {text} to any")
        elif kind == 3:
            lines.append(f"allow udp from any to {text} {port}")
        else:
            lines.append(f"deny tcp from {text} to any {port}")
    lines.append("deny ip from any to any")
    return "\n".join(lines) + "\n", named


def _batch(
    rng: np.random.Generator, dst: npt.NDArray[np.int64], src: npt.NDArray[np.int64], udp_only: bool
) -> Columns:
    n = len(dst)
    proto = np.full(n, 17, np.int64) if udp_only else rng.choice([6, 17], n, p=[0.7, 0.3])
    well_known = np.array(_PORTS, np.int64)[rng.integers(0, len(_PORTS), n)]
    ephemeral = rng.integers(1024, 65536, n)
    dport = np.full(n, 9, np.int64) if udp_only else np.where(rng.random(n) < 0.7, well_known,
                                                              ephemeral)  # fmt: skip
    sport = np.full(n, 40000, np.int64) if udp_only else rng.integers(1024, 65536, n)
    return {
        "src": src,
        "dst": dst,
        "proto": proto.astype(np.int64),
        "sport": sport.astype(np.int64),
        "dport": dport.astype(np.int64),
        "tcp_flags": np.where(proto == 6, 0x10, -1).astype(np.int64),
        "icmp_type": np.full(n, -1, np.int64),
        "ttl": np.full(n, 64, np.int64),
        "length": np.full(n, 60, np.int64),
    }


def _numbered(text: str) -> str:
    """Rules numbered 10, 20, ... (automatic numbering steps by 100 and stops at 655 rules)."""
    lines = [line for line in text.splitlines() if line]
    return "".join(f"{10 * (i + 1)} {line}\n" for i, line in enumerate(lines))


def workload(name: str, n_rules: int, rib: Rib, seed: int = 1) -> tuple[str, list[Columns]]:
    """The rule text and the batches of one workload at ``n_rules`` rules."""
    rng = np.random.default_rng(seed)
    nets, plens = _announced(rib)
    batches: list[Columns] = []
    if name == "walk-through":
        text = _numbered(ruleset_text(n_rules))
        for _ in range(N_BATCHES):
            dst = _inside(rng, nets, plens, BATCH)
            batches.append(_batch(rng, dst, np.full(BATCH, _SRC, np.int64), udp_only=True))
        return text, batches
    if name != "border":
        raise ValueError(f"unknown workload {name!r}")
    text, named = border_rules(rng, nets, plens, n_rules)
    text = _numbered(text)
    rn = np.array([p[0] for p in named] or [0], np.uint32)
    rp = np.array([p[1] for p in named] or [32], np.uint8)
    for _ in range(N_BATCHES):
        half = BATCH // 2
        dst = np.concatenate([_inside(rng, rn, rp, half), _inside(rng, nets, plens, BATCH - half)])
        src = np.where(rng.random(BATCH) < 0.2, _inside(rng, rn, rp, BATCH),
                       _inside(rng, nets, plens, BATCH))  # fmt: skip
        batches.append(_batch(rng, dst, src, udp_only=False))
    return text, batches


def _rate(fn: Callable[[], int], seconds: float) -> float:
    fn()  # compiled, caches warm
    done = 0
    start = time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _packets(cols: Columns) -> list[PfilPacket]:
    out = []
    for i in range(len(cols["src"])):
        out.append(
            PfilPacket(
                ifindex=1,
                direction=Direction.IN,
                src=int(cols["src"][i]),
                dst=int(cols["dst"][i]),
                proto=int(cols["proto"][i]),
                ttl=int(cols["ttl"][i]),
                length=int(cols["length"][i]),
                sport=int(cols["sport"][i]),
                dport=int(cols["dport"][i]),
                tcp_flags=int(cols["tcp_flags"][i]),
            )
        )
    return out


def check_equal(walk: Ruleset, bitmap: Ruleset, batches: Sequence[Columns]) -> float:
    """Both matchers over every batch: the same verdicts and counters (raises otherwise);
    returns the share of packets the batch form decided."""
    decided = total = 0
    for cols in batches:
        a = walk.evaluate_batch(cols, Direction.IN, 1)
        b = bitmap.evaluate_batch(cols, Direction.IN, 1)
        if not np.array_equal(a, b):
            raise AssertionError("the walk and the bitmaps gave different verdicts")
        decided += int(np.count_nonzero(a != 3))
        total += len(a)
    if walk.packets.tolist() != bitmap.packets.tolist():
        raise AssertionError("the walk and the bitmaps counted differently")
    return decided / total


def measure(
    rib: Rib,
    workloads: Sequence[str] = WORKLOADS,
    rule_counts: Sequence[int] = RULE_COUNTS,
    seconds: float = 1.0,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[Cell]:
    say = progress or (lambda msg: None)
    sets: dict[tuple[str, int], tuple[dict[str, Ruleset], list[Columns]]] = {}
    cells: dict[tuple[str, int], Cell] = {}
    for name in workloads:
        for n in rule_counts:
            say(f"{name}, {n} rules: building")
            text, batches = workload(name, n, rib)
            by = {m: parse_rules(text, matcher=m) for m in MATCHERS}
            decided = check_equal(by["walk"], by["bitmap"], batches)
            t0 = time.perf_counter()
            bm = RuleBitmaps(by["bitmap"]._table)
            build = (time.perf_counter() - t0) * 1e3
            size = sum(
                getattr(bm, f).nbytes
                for f in RuleBitmaps.__slots__
                if isinstance(getattr(bm, f), np.ndarray)
            )
            scalar = parse_rules(text)
            pkts = _packets(batches[0])[:SCALAR_PACKETS]

            def scalar_run(rs: Ruleset = scalar, pkts: list[PfilPacket] = pkts) -> int:
                for p in pkts:
                    rs.evaluate(p)
                return len(pkts)

            cells[(name, n)] = Cell(name, n, 0.0, 0.0, _rate(scalar_run, seconds / rounds),
                                    build, size, decided)  # fmt: skip
            sets[(name, n)] = (by, batches)
    for r in range(rounds):
        for (name, n), (by, batches) in sets.items():
            for m in MATCHERS:
                say(f"round {r + 1}/{rounds}: {name}, {n} rules, {m}")
                rs = by[m]

                def run(rs: Ruleset = rs, batches: list[Columns] = batches) -> int:
                    for cols in batches:
                        rs.evaluate_batch(cols, Direction.IN, 1)
                    return BATCH * len(batches)

                pps = _rate(run, seconds / rounds)
                cell = cells[(name, n)]
                if m == "walk":
                    cell.walk_pps = max(cell.walk_pps, pps)
                else:
                    cell.bitmap_pps = max(cell.bitmap_pps, pps)
    return list(cells.values())


def growth(cells: Sequence[Cell], workload_name: str) -> dict[str, float]:
    """Per matcher: cost per packet at the most rules over the cost at the fewest, and the
    rule-count ratio it is to be read against."""
    mine = sorted((c for c in cells if c.workload == workload_name), key=lambda c: c.rules)
    if len(mine) < 2:
        return {}
    lo, hi = mine[0], mine[-1]
    return {
        "rules": hi.rules / lo.rules,
        "walk": lo.walk_pps / hi.walk_pps if hi.walk_pps else 0.0,
        "bitmap": lo.bitmap_pps / hi.bitmap_pps if hi.bitmap_pps else 0.0,
    }


def to_json(cells: Sequence[Cell], **meta: Any) -> dict[str, Any]:
    return {
        **meta,
        "cells": [{**asdict(c), "bitmap_over_walk": c.ratio} for c in cells],
        "growth": {w: growth(cells, w) for w in dict.fromkeys(c.workload for c in cells)},
    }
