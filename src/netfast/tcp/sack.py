"""The sender's SACK scoreboard (RFC 6675 section 4; RFC 2018).

Contract
--------
A :class:`SackScoreboard` holds what the receiver reported SACKed as disjoint, sorted,
non-adjacent half-open ranges ``[start, end)`` of send positions (unwrapped integers, as the
connection counts them: see :mod:`netfast.tcp.conn`), and :attr:`SackScoreboard.sacked_bytes`,
their total.  Its queries are RFC 6675's:

- :meth:`lost_frontier` -- positions below it are ``IsLost()`` unless SACKed: ``DupThresh``
  segments' worth of SACKed bytes, or ``DupThresh`` discontiguous SACKed ranges, lie above;
- :meth:`pipe` -- ``SetPipe()``: outstanding bytes neither SACKed nor deemed lost, plus the lost
  ones already retransmitted (below ``HighRxt``);
- :meth:`next_hole` -- ``NextSeg()`` rule 1's candidate: the first unSACKed range from a position
  below a limit.

Validating blocks against ``SND.UNA``/``SND.NXT`` (and unwrapping them) is the caller's job;
:meth:`add` takes any ``lo < hi``.  Nothing here allocates per query beyond the list rebuilt by
:meth:`add` and :meth:`trim`.  ``tests/tcp/test_sack_scoreboard.py`` checks every operation
against a set-of-positions model.
"""

from __future__ import annotations

#: RFC 6675's DupThresh.
DUP_THRESH = 3


class SackScoreboard:
    """SACKed ranges of one connection's send space (see the module docstring)."""

    __slots__ = ("blocks", "sacked_bytes")

    def __init__(self) -> None:
        self.blocks: list[list[int]] = []
        """Disjoint sorted ``[start, end)`` positions."""
        self.sacked_bytes = 0

    def clear(self) -> None:
        """Forget everything (the receiver reneged: RFC 2018 section 8)."""
        self.blocks = []
        self.sacked_bytes = 0

    def add(self, lo: int, hi: int) -> None:
        """Record ``[lo, hi)`` as SACKed, merging it with the ranges it touches."""
        sb = self.blocks
        merged: list[list[int]] = []
        i = 0
        while i < len(sb) and sb[i][1] < lo:
            merged.append(sb[i])
            i += 1
        while i < len(sb) and sb[i][0] <= hi:
            lo = min(lo, sb[i][0])
            hi = max(hi, sb[i][1])
            i += 1
        merged.append([lo, hi])
        merged.extend(sb[i:])
        self.blocks = merged
        self.sacked_bytes = sum(b - a for a, b in merged)

    def trim(self, una: int) -> None:
        """Drop what lies below the cumulative ACK ``una``."""
        if self.blocks and self.blocks[0][0] < una:
            sb = [b for b in self.blocks if b[1] > una]
            if sb and sb[0][0] < una:
                sb[0] = [una, sb[0][1]]
            self.blocks = sb
            self.sacked_bytes = sum(b - a for a, b in sb)

    def covers(self, pos: int) -> bool:
        """Whether position ``pos`` is SACKed."""
        sb = self.blocks
        return bool(sb) and sb[0][0] <= pos and any(a <= pos < b for a, b in sb)

    def unsacked_between(self, lo: int, hi: int) -> int:
        """Bytes in ``[lo, hi)`` not SACKed."""
        if hi <= lo:
            return 0
        total = hi - lo
        for a, b in self.blocks:
            if b <= lo:
                continue
            if a >= hi:
                break
            total -= min(b, hi) - max(a, lo)
        return total

    def sacked_above(self, pos: int) -> int:
        """SACKed bytes at or above ``pos``."""
        above = 0
        for a, b in reversed(self.blocks):
            if b <= pos:
                break
            above += b - max(a, pos)
        return above

    def lost_frontier(self, una: int, mss: int) -> int:
        """Positions from ``una`` below this are ``IsLost`` unless SACKed (RFC 6675 section 4):
        DupThresh segments' worth of SACKed bytes lie above them, or DupThresh discontiguous
        SACKed ranges do."""
        need = DUP_THRESH * mss
        acc = 0
        by_bytes = una
        for lo, hi in reversed(self.blocks):
            if acc + (hi - lo) >= need:
                by_bytes = hi - (need - acc)
                break
            acc += hi - lo
        sb = self.blocks
        by_ranges = sb[-DUP_THRESH][0] if len(sb) >= DUP_THRESH else una
        return max(by_bytes, by_ranges)

    def pipe(self, una: int, snd_max: int, high_rxt: int, mss: int) -> int:
        """RFC 6675 ``SetPipe()``: outstanding bytes not SACKed and not deemed lost, plus the
        lost ones already retransmitted (below ``high_rxt``)."""
        frontier = self.lost_frontier(una, mss)
        outstanding = snd_max - una - self.sacked_bytes
        lost = self.unsacked_between(una, frontier)
        rxt = self.unsacked_between(una, min(high_rxt, frontier))
        return max(0, outstanding - lost + rxt)

    def next_hole(self, start: int, frontier: int, snd_max: int) -> tuple[int, int] | None:
        """The first unSACKed range at or after ``start`` below ``frontier`` (and ``snd_max``
        once past the last SACKed range)."""
        pos = start
        for a, b in self.blocks:
            if b <= pos:
                continue
            if a > pos:
                end = min(a, frontier)
                return (pos, end) if end > pos else None
            pos = b
        end = min(frontier, snd_max)
        return (pos, end) if end > pos else None
