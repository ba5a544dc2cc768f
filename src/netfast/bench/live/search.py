"""The RFC 2544 throughput search of ``netfast bench live`` (RFC 2544 section 26.1, with the
loss tolerance of RFC 1242's definition made explicit).

RFC 2544's throughput is the fastest rate at which the device forwards every frame offered.
Here a trial "passes" when it loses less than ``loss_limit`` of the frames (0.1 % by default,
since a software middle on a shared machine loses the odd frame to scheduling at any rate),
and the search is a bisection over offered rates:

1. The flat-out trial (the generator as fast as it goes) is the upper bound: if it passes, the
   throughput is its offered rate and the search ends -- the device kept up with everything
   the generator could offer, so the figure is a lower bound on the device's capacity
   (``bound = "generator"``).
2. Otherwise the rate that passed last is ``lo`` (none yet: 0) and the rate that failed last
   ``hi`` (at first the flat-out offered rate).  The first paced trial is at the flat-out
   trial's *delivered* rate (the forwarding rate under overload, usually close to the
   throughput); the next ones at the middle of ``(lo, hi)`` -- except that while ``hi`` is
   still the flat-out trial's, a step up from ``lo`` goes at most ``EXPAND`` (25 %) above it,
   since the flat-out rate can be far above the throughput.  Both bounds move to the *offered*
   rate a trial measured, not the one asked for, so a generator that falls short never
   corrupts them.
3. The search ends when ``hi - lo <= resolution * hi`` (``bound = "resolution"``), after
   ``max_trials`` paced trials (``"trials"``), when a passing trial offered clearly less than
   asked for (the generator's paced ceiling: ``"generator"``), when a trial at ``floor_pps``
   fails (``"floor"``: throughput 0, i.e. below the floor), or when the caller's time runs out
   (:func:`alternate`: ``"time"``).

The throughput is ``lo``: the offered rate of the fastest passing trial (0 if none passed).
RFC 2544 asks for 60-second trials; this benchmark's are about a second, which the report says.

:class:`ThroughputSearch` holds no clock and runs nothing: the caller asks :meth:`next_rate`,
runs the trial and hands the result to :meth:`record`, so the searches of two devices can
alternate trial by trial in one run (:func:`alternate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = ["LOSS_LIMIT", "ThroughputSearch", "TrialResult", "alternate"]

#: Largest share of lost frames a passing trial may have (strictly less than).
LOSS_LIMIT = 0.001
#: A paced trial offering less than this share of the rate asked for hit the generator's limit.
SHORTFALL = 0.97
#: The largest step up from a passing rate while the upper bound is the flat-out trial's.
EXPAND = 0.25


class TrialResult(Protocol):
    """What the search needs of a trial."""

    @property
    def offered_pps(self) -> float: ...

    @property
    def delivered_pps(self) -> float: ...

    @property
    def loss(self) -> float: ...


T = TypeVar("T", bound=TrialResult)


@dataclass
class ThroughputSearch(Generic[T]):
    """The bisection of one device (see the module docstring).

    Parameters
    ----------
    top
        The flat-out trial.
    loss_limit, resolution, max_trials, floor_pps
        As in the module docstring.
    """

    top: T
    loss_limit: float = LOSS_LIMIT
    resolution: float = 0.05
    max_trials: int = 6
    floor_pps: float = 1000.0
    #: Paced trials so far, with the rate each asked for, in order.
    steps: list[tuple[float, T]] = field(default_factory=list, init=False)
    #: The fastest passing offered rate so far and the slowest failing one.
    lo: float = field(default=0.0, init=False)
    hi: float = field(default=0.0, init=False)
    #: Why the search ended (None while it runs); the passing trial ``lo`` comes from.
    bound: str | None = field(default=None, init=False)
    best: T | None = field(default=None, init=False)
    #: Whether ``hi`` is a paced trial's (else the flat-out trial's).
    hi_paced: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.loss_limit < 1 or not 0 < self.resolution < 1:
            raise ValueError("loss_limit and resolution must be in (0, 1)")
        if self.max_trials < 0 or not self.floor_pps > 0:
            raise ValueError("max_trials must be at least 0 and floor_pps positive")
        self.hi = self.top.offered_pps
        if self.passed(self.top):
            self.lo, self.best, self.bound = self.hi, self.top, "generator"
        elif self.max_trials == 0:
            self.bound = "trials"
        elif self.hi <= self.floor_pps:
            self.bound = "floor"

    def passed(self, trial: TrialResult) -> bool:
        return trial.offered_pps > 0 and trial.loss < self.loss_limit

    @property
    def done(self) -> bool:
        return self.bound is not None

    @property
    def throughput(self) -> float:
        """The offered rate of the fastest passing trial (0 if none passed)."""
        return self.lo

    def next_rate(self) -> float | None:
        """The rate of the next trial, None when the search is over."""
        if self.done:
            return None
        if not self.steps:
            guess = self.top.delivered_pps
            # Inside (lo, hi) by at least one resolution step from hi, so it can narrow.
            rate = min(max(guess, self.floor_pps), self.hi * (1 - self.resolution))
        else:
            rate = (self.lo + self.hi) / 2
            if self.lo > 0 and not self.hi_paced:
                rate = min(rate, self.lo * (1 + EXPAND))
        return max(rate, self.floor_pps)

    def record(self, rate: float, trial: T) -> None:
        """Take the result of the trial asked for at ``rate``."""
        if self.done:
            raise RuntimeError("the search is over")
        self.steps.append((rate, trial))
        offered = trial.offered_pps
        if self.passed(trial):
            if offered > self.lo:
                self.lo, self.best = offered, trial
            if offered < SHORTFALL * rate:
                self.bound = "generator"
        else:
            if offered > 0:
                self.hi = min(self.hi, offered)
            self.hi_paced = True
            if rate <= self.floor_pps:
                self.bound = "floor"
        if self.bound is None:
            if self.hi - self.lo <= self.resolution * self.hi:
                self.bound = "resolution"
            elif len(self.steps) >= self.max_trials:
                self.bound = "trials"

    def stop(self, bound: str) -> None:
        """End the search from outside (e.g. ``"time"``), keeping what it found."""
        if self.bound is None:
            self.bound = bound


def alternate(
    searches: Mapping[str, ThroughputSearch[T]],
    trial: Callable[[str, float, int], T],
    *,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Run the searches until all are done, one trial each per round, alternating the order
    (the given order in even rounds, reversed in odd ones).

    ``trial(name, rate, round)`` runs one trial.  No trial starts at or after ``deadline`` (by
    ``clock``): the searches still running end with ``bound = "time"``.  Rounds are bounded by
    the searches' ``max_trials``.
    """
    names = list(searches)
    limit = max((s.max_trials for s in searches.values()), default=0)
    for round_no in range(limit):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            search = searches[name]
            rate = search.next_rate()
            if rate is None:
                continue
            if clock() >= deadline:
                search.stop("time")
                continue
            if progress is not None:
                progress(f"throughput search, {name}: trial {len(search.steps) + 1} at "
                         f"{rate / 1e3:,.1f} kpps")  # fmt: skip
            search.record(rate, trial(name, rate, round_no))
        if all(s.done for s in searches.values()):
            return
    for search in searches.values():
        search.stop("trials")
