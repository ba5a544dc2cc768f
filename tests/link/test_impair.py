"""The impairment layer: rates within binomial bounds, timing with a fake clock, seeding."""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.link.base import Link
from netfast.link.impair import ImpairedLink, Impairment, ImpairmentStage, make_rng
from netfast.link.memory import MemoryLink

N = 20_000
SIGMAS = 5.0


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def frame(n: int, size: int = 60) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + n.to_bytes(4, "big")
    return head + bytes(size - len(head))


def seq(f: bytes) -> int:
    return int.from_bytes(f[14:18], "big")


def assert_binomial(observed: int, n: int, p: float) -> None:
    mean = n * p
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(observed - mean) <= SIGMAS * sigma, (
        f"observed {observed} of {n}, expected {mean:.0f} +- {SIGMAS * sigma:.0f}"
    )


def run_stage(imp: Impairment, n: int = N, seed: int = 7) -> tuple[list[bytes], ImpairmentStage]:
    """Push n numbered frames through a stage at time 0 and drain it (late enough for every
    hold and delay to end).  The stage's limit is raised to hold them all at once."""
    stage = ImpairmentStage(replace(imp, limit=3 * n), make_rng(seed, "test"))
    stage.push((frame(i) for i in range(n)), 0.0)
    out = stage.pop_due(0.0)
    out += stage.pop_due(1e6)
    return out, stage


def test_noop_passes_everything_unchanged() -> None:
    out, stage = run_stage(Impairment(), n=1000)
    assert out == [frame(i) for i in range(1000)]
    assert Impairment().is_noop
    assert stage.counters["impair.in"] == stage.counters["impair.out"] == 1000


@pytest.mark.parametrize("p", [0.01, 0.1, 0.3])
def test_loss_rate(p: float) -> None:
    out, stage = run_stage(Impairment(loss=p))
    lost = N - len(out)
    assert_binomial(lost, N, p)
    assert stage.counters["impair.loss"] == lost
    seqs = [seq(f) for f in out]
    assert seqs == sorted(seqs)  # loss alone never reorders


@pytest.mark.parametrize("p", [0.05, 0.25])
def test_duplicate_rate(p: float) -> None:
    out, stage = run_stage(Impairment(duplicate=p))
    copies = Counter(seq(f) for f in out)
    assert set(copies) == set(range(N))
    doubled = sum(1 for c in copies.values() if c == 2)
    assert max(copies.values()) <= 2
    assert_binomial(doubled, N, p)
    assert stage.counters["impair.dup"] == doubled == len(out) - N


@pytest.mark.parametrize("p", [0.02, 0.2])
def test_corruption_rate_flips_one_bit(p: float) -> None:
    out, stage = run_stage(Impairment(corrupt=p))
    assert len(out) == N
    damaged = 0
    positions: Counter[int] = Counter()
    for i, got in enumerate(out):
        want = frame(i)
        diff = int.from_bytes(got, "big") ^ int.from_bytes(want, "big")
        if diff:
            damaged += 1
            assert diff.bit_count() == 1, f"frame {i}: {diff.bit_count()} bits flipped"
            byte = len(want) - 1 - (diff.bit_length() - 1) // 8
            positions[byte * 4 // len(want)] += 1
    assert_binomial(damaged, N, p)
    assert stage.counters["impair.corrupt"] == damaged
    # The flipped bit is spread evenly over the whole frame: each quarter gets its share.
    assert sorted(positions) == [0, 1, 2, 3]
    for quarter in range(4):
        assert_binomial(positions[quarter], damaged, 0.25)


@pytest.mark.parametrize("p", [0.01, 0.1])
def test_reorder_rate(p: float) -> None:
    out, stage = run_stage(Impairment(reorder=p))
    seqs = [seq(f) for f in out]
    assert sorted(seqs) == list(range(N))  # nothing lost or invented
    late = 0
    highest = -1
    for s in seqs:
        if s < highest:
            late += 1
        highest = max(highest, s)
    assert_binomial(late, N, p)
    # Each late frame was held back; the last frames of a run may be held and never overtaken.
    assert stage.counters["impair.reorder"] - late in (0, 1, 2)


def test_reorder_extent() -> None:
    extent = 3
    out, _ = run_stage(Impairment(reorder=0.01, reorder_extent=extent), n=5000)
    seqs = [seq(f) for f in out]
    overtaken = []
    for pos, s in enumerate(seqs):
        later_before = sum(1 for t in seqs[max(0, pos - 20) : pos] if t > s)
        if later_before:
            overtaken.append(later_before)
    assert overtaken
    # Isolated holds are overtaken by exactly `extent` frames; adjacent holds shift a few.
    assert Counter(overtaken).most_common(1)[0][0] == extent
    assert sum(1 for x in overtaken if x == extent) >= 0.8 * len(overtaken)


def test_reorder_hold_ends_after_reorder_delay() -> None:
    stage = ImpairmentStage(Impairment(reorder=1.0, reorder_delay=0.01), make_rng(1, "x"))
    stage.push([frame(0)], 0.0)
    assert stage.pop_due(0.0) == []
    assert stage.next_due() == pytest.approx(0.01)
    assert stage.pop_due(0.0099) == []
    assert stage.pop_due(0.0101) == [frame(0)]
    assert len(stage) == 0


def test_delay_without_jitter_is_exact() -> None:
    clock = FakeClock()
    a, b = MemoryLink.pair()
    link = ImpairedLink(a, impair_tx=Impairment(delay=0.1), seed=1, clock=clock)
    link.send([frame(0)])
    assert link.poll_at() == pytest.approx(0.1)
    clock.t = 0.0999
    link.poll()
    assert b.recv_batch() == []
    clock.t = 0.1
    assert link.poll() == 1
    assert b.recv_batch() == [frame(0)]
    assert link.poll_at() is None


def test_delay_and_jitter_bounds_and_order() -> None:
    clock = FakeClock()
    a, b = MemoryLink.pair()
    delay, jitter, step = 0.1, 0.02, 0.0005
    link = ImpairedLink(a, impair_tx=Impairment(delay=delay, jitter=jitter), seed=3, clock=clock)
    sent_at: dict[int, float] = {}
    arrived_at: dict[int, float] = {}
    order: list[int] = []
    for tick in range(2000):  # 1 s of fake time, a frame every 2 ms for the first 0.4 s
        clock.t = tick * step
        if tick % 4 == 0 and len(sent_at) < 200:
            sent_at[len(sent_at)] = clock.t
            link.send([frame(len(sent_at) - 1)])
        link.poll()
        for f in b.recv_batch():
            arrived_at[seq(f)] = clock.t
            order.append(seq(f))
    assert order == list(range(200))  # jitter alone never reorders
    delays = [arrived_at[i] - sent_at[i] for i in range(200)]
    assert min(delays) >= delay - jitter - 1e-9
    assert max(delays) <= delay + jitter + step + 1e-9
    spread = max(delays) - min(delays)
    assert spread > jitter  # the jitter really varies the delay


def test_rate_limit_serializes_frames() -> None:
    clock = FakeClock()
    a, b = MemoryLink.pair()
    # 1250-byte frames at 1 Mbit/s: 10 ms each.
    link = ImpairedLink(a, impair_tx=Impairment(rate=1e6, rate_queue=100), seed=1, clock=clock)
    link.send([frame(i, 1250) for i in range(50)])
    received = 0
    for ms in range(1, 601):
        clock.t = ms / 1000
        link.poll()
        received += len(b.recv_batch())
        if ms % 10 == 5:  # sample between departures, away from float ties
            assert received == min(50, ms // 10), f"at {ms} ms"
    assert received == 50
    assert link.counters["tx.impair.rate_drop"] == 0


def test_rate_limit_queue_is_bounded() -> None:
    stage = ImpairmentStage(Impairment(rate=1e6, rate_queue=10), make_rng(1, "x"))
    stage.push([frame(i, 1250) for i in range(100)], 0.0)
    assert stage.counters["impair.rate_drop"] == 90
    out = stage.pop_due(10.0)
    assert [seq(f) for f in out] == list(range(10))


def test_rate_limit_sustained_throughput() -> None:
    clock = FakeClock()
    rate = 1e6
    stage = ImpairmentStage(Impairment(rate=rate, rate_queue=20), make_rng(1, "x"))
    delivered_bytes = 0
    first = last = None
    for ms in range(2000):  # offer 2 Mbit/s (1250 bytes every 5 ms) for 2 s
        clock.t = ms / 1000
        if ms % 5 == 0:
            stage.push([frame(ms, 1250)], clock.t)
        out = stage.pop_due(clock.t)
        if out:
            first = clock.t if first is None else first
            last = clock.t
            delivered_bytes += sum(map(len, out))
    assert first is not None and last is not None
    throughput = 8 * (delivered_bytes - 1250) / (last - first)
    assert throughput == pytest.approx(rate, rel=0.02)
    offered = 400
    assert stage.counters["impair.rate_drop"] == offered - delivered_bytes // 1250 - len(stage)


def test_limit_bounds_the_stage() -> None:
    stage = ImpairmentStage(Impairment(delay=1.0, limit=10), make_rng(1, "x"))
    stage.push([frame(i) for i in range(25)], 0.0)
    assert len(stage) == 10
    assert stage.counters["impair.limit_drop"] == 15


def test_rx_impairment() -> None:
    a, b = MemoryLink.pair()
    link = ImpairedLink(b, impair_rx=Impairment(loss=0.5), seed=11)
    a.send(frame(i) for i in range(1000))
    got: list[bytes] = []
    for _ in range(100):
        got += link.recv_batch(64)
    assert_binomial(1000 - len(got), 1000, 0.5)
    assert link.counters["rx.impair.loss"] == 1000 - len(got)
    assert link.counters["tx.impair.loss"] == 0


ALL = Impairment(
    loss=0.05, duplicate=0.05, corrupt=0.05, reorder=0.05, delay=0.01, jitter=0.005, rate=1e8
)


def through_link(seed: int) -> list[bytes]:
    clock = FakeClock()
    a, b = MemoryLink.pair(capacity=10_000)
    link = ImpairedLink(a, impair_tx=ALL, seed=seed, clock=clock)
    for i in range(2000):
        clock.t = i * 0.0001
        link.send([frame(i)])
    clock.t = 10.0
    link.poll()
    return b.recv_batch(10_000)


def test_same_seed_same_run() -> None:
    first = through_link(5)
    assert len(first) > 1500
    assert through_link(5) == first


def test_other_seed_other_run() -> None:
    assert through_link(5) != through_link(6)


def test_directions_draw_independently() -> None:
    assert make_rng(1, "tx").random() != make_rng(1, "rx").random()
    assert make_rng(1, "tx").random() == make_rng(1, "tx").random()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"loss": 1.5}, "loss"),
        ({"duplicate": -0.1}, "duplicate"),
        ({"delay": -1.0}, "delay"),
        ({"jitter": math.inf}, "jitter"),
        ({"rate_queue": 0}, "rate_queue"),
        ({"reorder_extent": 0}, "reorder_extent"),
    ],
)
def test_bad_impairments_raise(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"impairment.{field} = "):
        Impairment(**kwargs)  # type: ignore[arg-type]


probability = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(
    imp=st.builds(
        Impairment,
        loss=probability,
        duplicate=probability,
        corrupt=probability,
        reorder=probability,
        reorder_extent=st.integers(1, 5),
        delay=st.floats(0.0, 0.1),
        jitter=st.floats(0.0, 0.05),
        rate=st.sampled_from([0.0, 1e5, 1e7]),
        rate_queue=st.integers(1, 50),
        limit=st.integers(1, 200),
    ),
    seed=st.integers(0, 2**32),
    pushes=st.lists(st.integers(0, 20), max_size=30),
)
def test_every_frame_is_accounted_for(imp: Impairment, seed: int, pushes: list[int]) -> None:
    """Frames in, plus duplicates, equal frames out, dropped (by reason) and still inside."""
    stage = ImpairmentStage(imp, make_rng(seed, "prop"))
    out = 0
    n = 0
    for step, count in enumerate(pushes):
        now = step * 0.01
        stage.push([frame(n + i) for i in range(count)], now)
        n += count
        out += len(stage.pop_due(now))
        assert len(stage) <= imp.limit
    c = stage.counters
    dropped = c["impair.loss"] + c["impair.limit_drop"] + c["impair.rate_drop"]
    assert c["impair.in"] == n
    assert c["impair.out"] == out
    assert n + c["impair.dup"] == out + dropped + len(stage)
    out += len(stage.pop_due(1e9))
    assert len(stage) == 0
    # Held frames released late can still meet a full rate queue.
    dropped = c["impair.loss"] + c["impair.limit_drop"] + c["impair.rate_drop"]
    assert n + c["impair.dup"] == out + dropped


@settings(max_examples=100, deadline=None)
@given(
    delay=st.floats(0.0, 0.1),
    jitter=st.floats(0.0, 0.1),
    rate=st.sampled_from([0.0, 1e5, 1e7]),
    seed=st.integers(0, 2**32),
)
def test_timing_alone_keeps_order_and_loses_nothing(
    delay: float, jitter: float, rate: float, seed: int
) -> None:
    imp = Impairment(delay=delay, jitter=jitter, rate=rate, rate_queue=1000)
    stage = ImpairmentStage(imp, make_rng(seed, "order"))
    got: list[bytes] = []
    for i in range(200):
        stage.push([frame(i)], i * 0.001)
        got += stage.pop_due(i * 0.001)
    got += stage.pop_due(1e9)
    assert got == [frame(i) for i in range(200)]


def test_impaired_link_is_a_link() -> None:
    a, _ = MemoryLink.pair(mtu=1400)
    link = ImpairedLink(a, seed=1)
    assert isinstance(link, Link)
    assert (link.name, link.mtu) == ("mem0", 1400)
    with pytest.raises(io.UnsupportedOperation):
        link.fileno()  # a memory link has no descriptor to select on
    link.close()
    assert a.send([frame(0)]) == 0  # closing the wrapper closed the inner link
