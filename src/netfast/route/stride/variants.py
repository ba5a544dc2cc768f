"""The two FIB classes: the paper's linear-scan table and the bitmap-indexed sorted one."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from netfast.route.stride.base import _StrideBase
from netfast.route.stride.build import build_headers
from netfast.route.stride.kernels import _batch_bitmap, _batch_linear, _one_bitmap, _one_linear
from netfast.route.stride.layout import _FAST_HEADER, _ML_SHIFT, _UBITS, _descriptor, _size_class


class StrideFib(_StrideBase):
    """The paper's table as written: every bucket is scanned linearly, whole.

    Parameters
    ----------
    debug
        Poison freed buckets and count poisoned reads (see :mod:`netfast.route.stride`).
    """

    name: ClassVar[str] = "stride"
    _header: ClassVar[int] = 0
    _one = staticmethod(_one_linear)
    _batch = staticmethod(_batch_linear)

    def _write_bucket(self, words: list[int]) -> tuple[int, int]:
        cap = _size_class(max(len(words), 1))
        off = self._alloc(cap)
        pool = self._a.pool
        pool[off : off + len(words)] = np.array(words, np.uint64)
        return _descriptor(off, len(words), cap), cap

    def _add_entry(self, bid: int, word: int) -> None:
        off, cnt, cap = self._desc(bid)
        pool, buckets = self._a.pool, self._a.buckets
        if cnt < cap:
            pool[off + cnt] = word  # the entry first ...
            buckets[bid] = _descriptor(off, cnt + 1, cap)  # ... then the count: one store
            return
        seg = pool[off : off + cnt]
        dead = np.flatnonzero((seg & np.uint64((1 << 52) - 1)) == 0)
        if dead.size:  # reuse an invalidated slot: one store
            pool[off + int(dead[0])] = word
            return
        self._install(bid, [*self._words(bid), word])


class StrideSortedFib(_StrideBase):
    """Four 8-bit strides with bitmap-indexed, sorted buckets: O(1) search inside a stride.

    Same descent, concurrency and reclamation as :class:`StrideFib`; a bucket is
    ``[8 bitmap words | 2 words of cumulative popcounts | entries sorted by (masklen, bits)]``.
    Invalidation and changes to existing entries stay single stores; a new key copies the bucket.
    """

    name: ClassVar[str] = "stride-fast"
    _header: ClassVar[int] = _FAST_HEADER
    _one = staticmethod(_one_bitmap)
    _batch = staticmethod(_batch_bitmap)

    def _write_bucket(self, words: list[int]) -> tuple[int, int]:
        w = np.array(words, np.uint64)
        ml = (w >> np.uint64(_ML_SHIFT)) & np.uint64(0xF)
        pos = (np.uint64(1) << ml) - np.uint64(2) + ((w >> _UBITS) >> (np.uint64(8) - ml))
        order = np.argsort(pos)
        w, pos = w[order], pos[order]
        cap = _size_class(max(len(words), 1))
        off = self._alloc(cap)
        pool = self._a.pool
        pool[off : off + _FAST_HEADER] = 0
        build_headers(pool, np.array([off]), np.zeros(w.size, np.int64), pos, 1)
        pool[off + _FAST_HEADER : off + _FAST_HEADER + w.size] = w
        return _descriptor(off, len(words), cap), cap + _FAST_HEADER

    def _add_entry(self, bid: int, word: int) -> None:
        self._install(bid, [*self._words(bid), word])
