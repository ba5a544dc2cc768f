"""Range flattening: prefixes cut into maximal ranges of equal longest match, for one slot
(compiled, from sorted ``(net, plen, rid)`` arrays) or for a whole table (bulk builds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route.dxr.layout import I32, I64, RID_NONE, U32


@njit(cache=True)
def _emit(edge: Any, rid: Any, m: int, pos: int, r: int) -> int:
    if edge[m - 1] == pos:
        rid[m - 1] = r
        if m >= 2 and rid[m - 2] == r:
            return m - 1
        return m
    if rid[m - 1] == r:
        return m
    edge[m] = pos
    rid[m] = r
    return m + 1


@njit(cache=True)
def flatten_ranges(
    start: Any, end: Any, rid: Any, lo: int, hi: int, default: int, out_edge: Any, out_rid: Any
) -> int:
    """Cut ``[lo, hi)`` into maximal ranges of equal longest match.

    The prefixes (``[start, end)`` with ``rid``) must lie inside ``[lo, hi)`` and be sorted by
    start, outer prefixes before the prefixes nested in them; ``default`` labels addresses no
    prefix covers.  Writes left edges and rids to the outputs (room for ``2 * n + 1``) and
    returns the number of ranges.  Prefixes are laminar, so a stack of open prefixes suffices.
    """
    stack_end = np.empty(40, np.int64)
    stack_rid = np.empty(40, np.int64)
    sp = 0
    stack_end[0] = hi
    stack_rid[0] = default
    out_edge[0] = lo
    out_rid[0] = default
    m = 1
    for i in range(len(start)):
        s = start[i]
        while stack_end[sp] <= s:
            e = stack_end[sp]
            sp -= 1
            m = _emit(out_edge, out_rid, m, e, stack_rid[sp])
        m = _emit(out_edge, out_rid, m, s, rid[i])
        sp += 1
        stack_end[sp] = end[i]
        stack_rid[sp] = rid[i]
    while sp > 0:
        e = stack_end[sp]
        sp -= 1
        if e < hi:
            m = _emit(out_edge, out_rid, m, e, stack_rid[sp])
    return m


@njit(cache=True)
def _flatten_slot(
    net: Any, plen: Any, rid: Any, lo: int, hi: int, default: int, out_edge: Any, out_rid: Any
) -> int:
    """:func:`flatten_ranges` of prefixes given as sorted ``(net, plen, rid)`` arrays."""
    n = len(net)
    start = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    for i in range(n):
        start[i] = net[i]
        end[i] = np.int64(net[i]) + (np.int64(1) << (32 - np.int64(plen[i])))
    return flatten_ranges(start, end, rid, lo, hi, default, out_edge, out_rid)


def global_ranges(net: U32, plen: npt.NDArray[np.uint8], rid: I32) -> tuple[I64, I64]:
    """Flatten a whole table into ranges over the 32-bit space (bulk builds)."""
    order = np.lexsort((plen, net))
    start = net[order].astype(np.int64)
    end = start + (np.int64(1) << (32 - plen[order].astype(np.int64)))
    edge = np.empty(2 * len(start) + 1, np.int64)
    rids = np.empty(2 * len(start) + 1, np.int64)
    m = flatten_ranges(start, end, rid[order].astype(np.int64), 0, 1 << 32, RID_NONE, edge, rids)
    return edge[:m], rids[:m]
