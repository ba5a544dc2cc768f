"""The RFC 2544 throughput search of ``netfast bench live`` against synthetic devices: a device of
known capacity behind a generator of known limits, so where the search must land is known."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.bench.live.search import LOSS_LIMIT, ThroughputSearch, alternate


@dataclass(frozen=True)
class Trial:
    offered_pps: float
    delivered_pps: float

    @property
    def loss(self) -> float:
        return 1 - self.delivered_pps / self.offered_pps if self.offered_pps else 0.0


@dataclass(frozen=True)
class Device:
    """Forwards up to ``capacity`` pps; past it, only ``overload`` of its capacity (livelock)."""

    capacity: float
    overload: float = 1.0

    def offer(self, rate: float) -> Trial:
        if rate <= self.capacity:
            return Trial(rate, rate)
        return Trial(rate, self.capacity * self.overload)


@dataclass(frozen=True)
class Generator:
    """Offers ``flat_out`` pps unpaced, and at most ``paced_max`` pps when paced."""

    flat_out: float
    paced_max: float = float("inf")

    def paced(self, rate: float) -> float:
        return min(rate, self.paced_max)


def _search(
    dev: Device, gen: Generator, *, max_trials: int = 6, floor_pps: float = 1_000.0
) -> ThroughputSearch[Trial]:
    search = ThroughputSearch(dev.offer(gen.flat_out), max_trials=max_trials, floor_pps=floor_pps)
    for _ in range(100):  # far more than any search takes
        rate = search.next_rate()
        if rate is None:
            break
        search.record(rate, dev.offer(gen.paced(rate)))
    assert search.done
    return search


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.floats(min_value=2_000, max_value=95_000),
    overload=st.sampled_from([1.0, 0.8, 0.3]),
)
def test_converges_on_the_capacity(capacity: float, overload: float) -> None:
    search = _search(Device(capacity, overload), Generator(100_000), max_trials=30)
    assert search.bound == "resolution"
    # Passing means offered <= capacity / (1 - limit); the interval ends within 5 % of hi.
    assert capacity * (1 - search.resolution) <= search.throughput <= capacity / (1 - LOSS_LIMIT)
    assert search.best is not None and search.best.loss < LOSS_LIMIT
    assert search.lo <= search.hi
    # Bisection: a handful of trials, not a sweep.
    assert len(search.steps) <= 10


def test_good_first_guess_converges_in_few_trials() -> None:
    # The forwarding rate under overload equals the capacity: the first trial sits on it.
    search = _search(Device(20_000), Generator(100_000), max_trials=10)
    assert search.steps[0][0] == pytest.approx(20_000)
    assert len(search.steps) <= 5
    assert search.throughput == pytest.approx(20_000, rel=0.05)


def test_step_up_from_a_pass_is_capped_while_hi_is_the_flat_out_rate() -> None:
    search = _search(Device(20_000, overload=0.5), Generator(100_000), max_trials=10)
    first, second = search.steps[0][0], search.steps[1][0]
    assert first == pytest.approx(10_000)  # the delivered rate under overload
    assert second == pytest.approx(12_500)  # +25 %, not the middle of (10k, 100k)


def test_flat_out_without_loss_ends_the_search_at_once() -> None:
    search = _search(Device(1e9), Generator(80_000))
    assert search.bound == "generator" and search.steps == []
    assert search.throughput == 80_000 and search.next_rate() is None


def test_generator_paced_ceiling_is_reported_as_the_bound() -> None:
    # The device could take 60k, but the paced generator never offers more than 30k.
    search = _search(Device(60_000, overload=0.4), Generator(100_000, paced_max=30_000))
    assert search.bound == "generator"
    assert search.throughput == pytest.approx(30_000)


def test_bounds_follow_the_offered_rate_not_the_asked_one() -> None:
    search = ThroughputSearch(Trial(100_000, 10_000), max_trials=5)
    rate = search.next_rate()
    assert rate is not None and rate == pytest.approx(10_000)
    search.record(rate, Trial(8_000, 7_000))  # fell short and lost: hi is what was offered
    assert search.hi == 8_000 and search.lo == 0 and search.hi_paced


def test_a_device_that_forwards_nothing_fails_at_the_floor() -> None:
    search = _search(Device(0.0), Generator(50_000), floor_pps=1_000)
    assert search.bound == "floor" and search.throughput == 0
    assert search.steps[-1][0] == 1_000


def test_trial_limit_is_respected() -> None:
    search = _search(Device(33_333, overload=0.5), Generator(100_000), max_trials=2)
    assert search.bound == "trials" and len(search.steps) == 2
    zero = ThroughputSearch(Trial(100_000, 10_000), max_trials=0)
    assert zero.done and zero.bound == "trials" and zero.next_rate() is None


def test_misuse_raises() -> None:
    search = _search(Device(1e9), Generator(80_000))
    with pytest.raises(RuntimeError, match="over"):
        search.record(1_000, Trial(1_000, 1_000))
    with pytest.raises(ValueError):
        ThroughputSearch(Trial(1, 0), loss_limit=0.0)
    with pytest.raises(ValueError):
        ThroughputSearch(Trial(1, 0), resolution=1.0)
    with pytest.raises(ValueError):
        ThroughputSearch(Trial(1, 0), max_trials=-1)
    with pytest.raises(ValueError):
        ThroughputSearch(Trial(1, 0), floor_pps=0)


def test_alternate_interleaves_modes_and_flips_the_order() -> None:
    devices = {"kernel": Device(40_000, 0.9), "netfast": Device(15_000, 0.4)}
    gen = Generator(100_000)
    searches = {
        name: ThroughputSearch(d.offer(gen.flat_out), max_trials=4) for name, d in devices.items()
    }
    calls: list[tuple[str, int]] = []

    def trial(name: str, rate: float, round_no: int) -> Trial:
        calls.append((name, round_no))
        return devices[name].offer(gen.paced(rate))

    alternate(searches, trial, deadline=float("inf"))
    assert calls[:4] == [("kernel", 0), ("netfast", 0), ("netfast", 1), ("kernel", 1)]
    assert all(s.done for s in searches.values())
    assert all(len(s.steps) <= 4 for s in searches.values())


def test_alternate_starts_no_trial_after_the_deadline() -> None:
    now = [0.0]
    dev = Device(25_000, 0.5)
    searches = {
        m: ThroughputSearch(dev.offer(100_000), max_trials=50) for m in ("kernel", "netfast")
    }

    def trial(name: str, rate: float, round_no: int) -> Trial:
        now[0] += 1.5  # each trial takes 1.5 s of the fake clock
        return dev.offer(rate)

    alternate(searches, trial, deadline=4.0, clock=lambda: now[0])
    # Trials start at 0, 1.5 and 3.0; the one due at 4.5 does not.
    assert sum(len(s.steps) for s in searches.values()) == 3
    assert {s.bound for s in searches.values()} == {"time"}
    # What was found is kept.
    assert searches["kernel"].throughput > 0
