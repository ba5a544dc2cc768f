""":class:`WordPool`: free-space bookkeeping (exact-size reuse, best fit with splitting,
coalescing) for the variable-size chunks in the engine's growable word arrays.
"""

from __future__ import annotations

import bisect

from netfast.route.dxr.shadow import _DICT_ENTRY_BYTES


class WordPool:
    """Free-space bookkeeping for variable-size blocks in a growable word array.

    An allocation takes a freed block of exactly its size if there is one (chunks come in few
    distinct sizes), else splits the smallest larger free block (best fit), else bumps ``top``.
    Freed blocks are coalesced with free neighbours (and given back to ``top`` when they end
    there), so delete/re-insert churn -- which shifts chunk sizes by a word or two -- reuses
    space instead of growing the array.  The engine owns the array itself.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self.free: dict[int, set[int]] = {}  # size -> offsets of free blocks of that size
        self.free_words = 0
        self._sizes: list[int] = []  # sorted sizes with a non-empty free set
        self._size_at: dict[int, int] = {}  # free block offset -> size
        self._start_of: dict[int, int] = {}  # free block end -> offset

    def _add(self, off: int, n: int) -> None:
        got = self.free.get(n)
        if got is None:
            got = self.free[n] = set()
        if not got:
            bisect.insort(self._sizes, n)
        got.add(off)
        self._size_at[off] = n
        self._start_of[off + n] = off
        self.free_words += n

    def _remove(self, off: int, n: int) -> None:
        got = self.free[n]
        got.discard(off)
        if not got:
            del self._sizes[bisect.bisect_left(self._sizes, n)]
        del self._size_at[off]
        del self._start_of[off + n]
        self.free_words -= n

    def alloc(self, n: int) -> int:
        spare = self.free.get(n)
        if spare:
            off = next(iter(spare))
            self._remove(off, n)
            return off
        i = bisect.bisect_right(self._sizes, n)
        if i < len(self._sizes):
            size = self._sizes[i]
            off = next(iter(self.free[size]))
            self._remove(off, size)
            self._add(off + n, size - n)
            return off
        off = self.top
        self.top += n
        return off

    def release(self, off: int, n: int) -> None:
        after = self._size_at.get(off + n)
        if after is not None:
            self._remove(off + n, after)
            n += after
        before = self._start_of.get(off)
        if before is not None:
            self._remove(before, off - before)
            n += off - before
            off = before
        if off + n == self.top:
            self.top = off
        else:
            self._add(off, n)

    def bookkeeping_bytes(self) -> int:
        """Rough bytes of the free-block maps."""
        return 3 * _DICT_ENTRY_BYTES * len(self._size_at)
