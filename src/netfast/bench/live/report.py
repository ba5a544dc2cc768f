"""The figures ``netfast bench live`` reports against the live-router issue's targets.

The targets (issue 10):

- netfast's RFC 2544 throughput (zero loss; here less than 0.1 % by default) at least the
  kernel's;
- at least 1 Mpps delivered by netfast (at the generator's maximum offered rate);
- with two workers (``netfast bench live --workers 2``: the workers of ``netfast forward
  --live --workers N``, :mod:`netfast.router.workers`), at least 1.5x the kernel delivered; a
  run with one worker reports this one as not measured.

:func:`targets` computes each row from a :class:`~netfast.bench.live.measure.LiveResult`: the
kernel's and netfast's figures, their ratio, the goal and whether it is met.  A figure bound by
the generator (the device lost nothing at the most the generator offered) is a lower bound on
the device's capacity; a comparison against such a figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from netfast.bench.live.measure import LiveResult, ModeRun
from netfast.bench.live.search import LOSS_LIMIT

__all__ = ["DELIVERED_TARGET_PPS", "TargetRow", "loss_summary", "targets"]

DELIVERED_TARGET_PPS = 1_000_000.0
THROUGHPUT_RATIO_TARGET = 1.0
TWO_WORKERS_RATIO_TARGET = 1.5


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target: the figures compared, their ratio, the goal and the verdict.

    ``status`` is ``"met"``, ``"not met"``, ``"open"`` (the figures cannot decide it, e.g. the
    kernel's figure is only a lower bound) or ``"not measured"``; ``note`` says why when it is
    not plain.
    """

    name: str
    kernel_pps: float | None
    netfast_pps: float | None
    ratio: float | None
    goal: str
    status: str
    note: str = ""


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def targets(res: LiveResult) -> list[TargetRow]:
    """The issue's targets, checked against ``res`` (see the module docstring)."""
    rows = [_throughput_row(res)]
    kb, nb = res.best("kernel"), res.best("netfast")
    k_pps = None if kb is None else kb.delivered_pps
    n_pps = None if nb is None else nb.delivered_pps
    note = ""
    if n_pps is None:
        status = "not measured"
    elif n_pps >= DELIVERED_TARGET_PPS:
        status = "met"
    else:
        status = "not met"
        if nb is not None and nb.offered_pps < DELIVERED_TARGET_PPS:
            note = f"the generator offered {nb.offered_pps / 1e3:,.0f} kpps"
    goal = f">= {DELIVERED_TARGET_PPS / 1e6:g} Mpps"
    name = "delivered at the maximum offered rate"
    rows.append(TargetRow(name, k_pps, n_pps, _ratio(n_pps, k_pps), goal, status, note))
    goal = f">= {TWO_WORKERS_RATIO_TARGET:.1f}x kernel"
    name = "two workers, delivered"
    if res.workers < 2:
        rows.append(
            TargetRow(name, k_pps, None, None, goal, "not measured", "run with --workers 2")
        )
        return rows
    ratio = _ratio(n_pps, k_pps)
    status = (
        "not measured"
        if ratio is None
        else "met"
        if ratio >= TWO_WORKERS_RATIO_TARGET
        else "not met"
    )
    note = f"{res.workers} workers" if res.workers != 2 else ""
    rows.append(TargetRow(name, k_pps, n_pps, ratio, goal, status, note))
    return rows


def _throughput_row(res: LiveResult) -> TargetRow:
    limit = LOSS_LIMIT if res.search is None else res.search.loss_limit
    name = f"RFC 2544 throughput (loss < {100 * limit:g} %)"
    goal = f">= {THROUGHPUT_RATIO_TARGET:.2f}x kernel"
    ks, ns = res.throughput.get("kernel"), res.throughput.get("netfast")
    if ks is None or ns is None:
        return TargetRow(name, None, None, None, goal, "not measured", "no search ran")
    k, n = ks.throughput, ns.throughput
    ratio = _ratio(n, k)
    note = ""
    if ratio is None:
        status, note = "open", "the kernel's throughput is 0"
    elif ratio < THROUGHPUT_RATIO_TARGET:
        status = "not met"
        if ns.bound == "generator":
            status, note = "open", "netfast's figure is bound by the generator"
    elif ks.bound == "generator":
        status, note = "open", "the kernel's figure is bound by the generator"
    else:
        status = "met"
    return TargetRow(name, k, n, ratio, goal, status, note)


def loss_summary(run: ModeRun) -> str:
    """Where ``run`` lost frames, the places with losses only, then what no counter saw."""
    parts = [f"{place} {n:,}" for place, n in run.losses().items() if n]
    if run.unaccounted:
        parts.append(f"unaccounted {run.unaccounted:,}")
    return "; ".join(parts) or "none"
