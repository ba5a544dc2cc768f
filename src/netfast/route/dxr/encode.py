"""Chunk encoders: a slot's ranges written as a bitmap chunk (bitmap words plus rids) or a long
chunk (size, edges, rids), and the bulk encoder that cuts a whole table's ranges at slot
boundaries and fills the direct table, bitmap words and pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from netfast.route.dxr.intrinsics import popcount64


@njit(cache=True)
def _write_bitmap(
    bits: Any, boff: int, nwords: int, pool: Any, roff: int, edge: Any, rid: Any, j0: int, n: int
) -> None:
    """Bitmap chunk of ranges ``j0 .. j0+n-1`` (all /24-aligned; the first is taken to start
    at the slot's first address): rids to ``pool[roff:]``, bitmap words to ``bits[boff:]``.

    Bit ``p`` of the bitmap is set when a range starts at the slot's ``p``-th /24.  Word ``w``
    keeps 32 of those bits in its low half and, in its high half, ``roff`` plus the number of
    ranges starting in earlier words, so the rid of /24 number ``p`` sits at pool index
    ``high + popcount(low & bits 0..p%32) - 1`` -- Poptrie's leaf-compression trick applied
    to DXR's range chunks: no search at all.
    """
    lo = edge[j0]
    for w in range(nwords):
        bits[boff + w] = 0
    for t in range(n):
        pool[roff + t] = rid[j0 + t]
        pos = 0 if t == 0 else (edge[j0 + t] - lo) >> 8
        bits[boff + (pos >> 5)] |= np.uint64(1) << np.uint64(pos & 31)
    count = roff
    for w in range(nwords):
        low = bits[boff + w]
        bits[boff + w] = (np.uint64(count) << np.uint64(32)) | low
        count += popcount64(low)


@njit(cache=True)
def _write_long(pool: Any, off: int, edge: Any, rid: Any, j0: int, n: int) -> None:
    """Long chunk: ``[n][left edges relative to the slot][rids]``, binary-searched."""
    lo = edge[j0]
    pool[off] = n
    for t in range(n):
        pool[off + 1 + t] = 0 if t == 0 else edge[j0 + t] - lo
        pool[off + 1 + n + t] = rid[j0 + t]


@njit(cache=True)
def _is_short(edge: Any, j0: int, n: int) -> bool:
    # an explicit loop rather than all(<generator>), which numba cannot compile
    for t in range(j0 + 1, j0 + n):  # noqa: SIM110
        if edge[t] & 0xFF:
            return False
    return True


@njit(cache=True)
def _encode_all(
    edge: Any, rid: Any, k: int, direct: Any, bits: Any, pool: Any, blocks: Any
) -> tuple[int, int]:
    """Bulk build: cut the global ranges at slot boundaries and encode every slot.  Records
    each slot's pool blocks in ``blocks`` (bits offset, pool offset, pool words; -1/0 when
    absent) and returns the words used in ``bits`` and ``pool``."""
    shift = 32 - k
    nwords = 1 << (24 - k - 5)
    m = len(edge)
    j = 0  # the range containing the current slot's first address
    btop = 0
    ptop = 0
    for s in range(1 << k):
        lo = s << shift
        hi = lo + (1 << shift)
        while j + 1 < m and edge[j + 1] <= lo:
            j += 1
        e = j + 1
        while e < m and edge[e] < hi:
            e += 1
        n = e - j
        blocks[s, 0] = -1
        blocks[s, 1] = -1
        blocks[s, 2] = 0
        if n == 1:
            direct[s] = rid[j]
            continue
        saved = edge[j]
        edge[j] = lo  # the first range is clipped to the slot
        if _is_short(edge, j, n):
            _write_bitmap(bits, btop, nwords, pool, ptop, edge, rid, j, n)
            direct[s] = 0x80000000 | (btop // nwords)
            blocks[s, 0] = btop
            blocks[s, 1] = ptop
            blocks[s, 2] = n
            btop += nwords
            ptop += n
        else:
            _write_long(pool, ptop, edge, rid, j, n)
            direct[s] = 0xC0000000 | ptop
            blocks[s, 1] = ptop
            blocks[s, 2] = 2 * n + 1
            ptop += 2 * n + 1
        edge[j] = saved
    return btop, ptop
