"""The SACK scoreboard alone, against an obviously-correct model: a set of SACKed positions
(a bitmap over a small send space), with RFC 6675's definitions computed byte by byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.tcp.sack import DUP_THRESH, SackScoreboard

SPACE = 200  # send positions 0..SPACE-1
MSS = 10


class Model:
    def __init__(self) -> None:
        self.bits: set[int] = set()

    def add(self, lo: int, hi: int) -> None:
        self.bits |= set(range(lo, hi))

    def trim(self, una: int) -> None:
        self.bits = {p for p in self.bits if p >= una}

    def ranges(self) -> list[list[int]]:
        out: list[list[int]] = []
        for p in sorted(self.bits):
            if out and out[-1][1] == p:
                out[-1][1] = p + 1
            else:
                out.append([p, p + 1])
        return out

    def is_lost(self, pos: int, una: int) -> bool:
        """RFC 6675 IsLost(pos) for a position not SACKed: DupThresh segments' worth of SACKed
        bytes above it, or DupThresh discontiguous SACKed ranges above it."""
        above = [p for p in self.bits if p > pos]
        ranges_above = [r for r in self.ranges() if r[0] > pos]
        return pos >= una and (len(above) >= DUP_THRESH * MSS or len(ranges_above) >= DUP_THRESH)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, SPACE - 1), st.integers(1, 40)),
        st.tuples(st.just("trim"), st.integers(0, SPACE), st.just(0)),
    ),
    max_size=25,
)


def run(seq: list[tuple[str, int, int]]) -> tuple[SackScoreboard, Model, int]:
    sb, model, una = SackScoreboard(), Model(), 0
    for op, a, n in seq:
        if op == "add":
            lo, hi = max(a, una), min(a + n, SPACE)
            if lo < hi:
                sb.add(lo, hi)
                model.add(lo, hi)
        else:
            una = max(una, a)
            sb.trim(una)
            model.trim(una)
    return sb, model, una


@settings(max_examples=300)
@given(ops)
def test_blocks_and_bytes_match_the_bitmap(seq: list[tuple[str, int, int]]) -> None:
    sb, model, _ = run(seq)
    assert sb.blocks == model.ranges()
    assert sb.sacked_bytes == len(model.bits)


@settings(max_examples=300)
@given(ops, st.integers(0, SPACE), st.integers(0, SPACE))
def test_point_and_range_queries_match(seq: list[tuple[str, int, int]], x: int, y: int) -> None:
    sb, model, _ = run(seq)
    lo, hi = min(x, y), max(x, y)
    assert sb.covers(x) == (x in model.bits)
    assert sb.unsacked_between(lo, hi) == len(set(range(lo, hi)) - model.bits)
    assert sb.sacked_above(x) == len([p for p in model.bits if p >= x])


@settings(max_examples=300)
@given(ops, st.integers(0, SPACE), st.integers(0, SPACE))
def test_lost_frontier_pipe_and_next_hole_match_rfc_6675(
    seq: list[tuple[str, int, int]], hr: int, start: int
) -> None:
    sb, model, una = run(seq)
    snd_max = SPACE
    frontier = sb.lost_frontier(una, MSS)
    # Every unSACKed position below the frontier is lost by the RFC's rules ...
    for p in range(una, min(frontier, snd_max)):
        if p not in model.bits:
            assert model.is_lost(p, una), p
    # ... and the frontier is as far as the rules reach: nothing at or past it is lost.
    lost_model = {p for p in range(una, snd_max) if p not in model.bits and model.is_lost(p, una)}
    assert all(p < frontier for p in lost_model)

    high_rxt = max(una, min(hr, snd_max))
    outstanding = [p for p in range(una, snd_max) if p not in model.bits]
    expect_pipe = len([p for p in outstanding if not (p < frontier) or p < min(high_rxt, frontier)])
    assert sb.pipe(una, snd_max, high_rxt, MSS) == expect_pipe

    s = max(start, una)
    hole = sb.next_hole(s, frontier, snd_max)
    first_unsacked = next((p for p in range(s, snd_max) if p not in model.bits), None)
    if first_unsacked is None or first_unsacked >= min(frontier, snd_max):
        assert hole is None
    else:
        assert hole is not None and hole[0] == first_unsacked
        end = hole[1]
        assert all(p not in model.bits for p in range(hole[0], end))
        assert end == min(frontier, snd_max) or end in model.bits
