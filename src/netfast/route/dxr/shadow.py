"""The control-plane shadow of a slot-based engine's prefixes (:class:`SlotShadow`): the short
prefixes that decide each slot's cover, and per slot the longer ones as sorted arrays, changed
by compiled copy-with-insert/-delete kernels so that recomputing a slot's ranges is cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route.dxr.layout import I32, I64, RID_NONE, U8, U32
from netfast.route.dxr.ranges import _flatten_slot
from netfast.route.rib import prefix_mask


@njit(cache=True)
def _lower_bound(net: Any, plen: Any, key_net: int, key_plen: int) -> int:
    """Index of ``(key_net, key_plen)`` in arrays sorted by (net, plen); ``-(insertion point)
    - 1`` when absent."""
    lo = 0
    hi = len(net)
    while lo < hi:
        mid = (lo + hi) >> 1
        if net[mid] < key_net or (net[mid] == key_net and plen[mid] < key_plen):
            lo = mid + 1
        else:
            hi = mid
    if lo < len(net) and net[lo] == key_net and plen[lo] == key_plen:
        return lo
    return -lo - 1


@njit(cache=True)
def _sorted_with(net: Any, plen: Any, rid: Any, i: int, key_net: int, key_plen: int, r: int) -> Any:
    """Copies of the arrays with ``(key_net, key_plen) -> r`` inserted at index ``i``."""
    n = len(net)
    net2 = np.empty(n + 1, net.dtype)
    plen2 = np.empty(n + 1, plen.dtype)
    rid2 = np.empty(n + 1, rid.dtype)
    net2[:i] = net[:i]
    plen2[:i] = plen[:i]
    rid2[:i] = rid[:i]
    net2[i] = key_net
    plen2[i] = key_plen
    rid2[i] = r
    net2[i + 1 :] = net[i:]
    plen2[i + 1 :] = plen[i:]
    rid2[i + 1 :] = rid[i:]
    return net2, plen2, rid2


@njit(cache=True)
def _sorted_without(net: Any, plen: Any, rid: Any, i: int) -> Any:
    """Copies of the arrays without index ``i``."""
    n = len(net)
    net2 = np.empty(n - 1, net.dtype)
    plen2 = np.empty(n - 1, plen.dtype)
    rid2 = np.empty(n - 1, rid.dtype)
    net2[:i] = net[:i]
    plen2[:i] = plen[:i]
    rid2[:i] = rid[:i]
    net2[i:] = net[i + 1 :]
    plen2[i:] = plen[i + 1 :]
    rid2[i:] = rid[i + 1 :]
    return net2, plen2, rid2


@njit(cache=True)
def _paint_cover(
    net: Any, plen: Any, rid: Any, shift: int, cover_rid: Any, cover_plen: Any
) -> None:
    # prefixes sorted by length, so a longer prefix paints over the shorter ones it nests in
    for i in range(len(net)):
        first = net[i] >> shift
        count = 1 << (32 - shift - plen[i])
        for s in range(first, first + count):
            cover_rid[s] = rid[i]
            cover_plen[s] = plen[i]


_SlotArrays = tuple[U32, U8, I32]

# Rough CPython costs for the control_bytes estimate: a dict entry with a (net, plen) tuple key
# and an int value, and the fixed part of one per-slot override (three ndarray headers, a tuple
# and a dict entry).
_DICT_ENTRY_BYTES = 150
_OVERRIDE_BYTES = 3 * 112 + 64 + 100


class SlotShadow:
    """The prefixes an engine holds, indexed so that one slot's ranges are cheap to recompute.

    Prefixes of at most ``k`` bits live in a dict and determine ``cover_rid``/``cover_plen``,
    the longest of them covering each slot.  Longer prefixes start in sorted arrays (from the
    bulk build); the first change to a slot gives it its own sorted ``(net, plen, rid)`` arrays
    (``overrides``), replaced by a compiled copy-with-insert/-delete on every later change, so
    no Python loop ever walks a slot's prefixes.
    """

    def __init__(self, k: int, net: U32, plen: U8, rid: I32) -> None:
        self.k = k
        self.shift = 32 - k
        short = plen <= k
        order = np.lexsort((plen[short], net[short]))
        self.short: dict[tuple[int, int], int] = {
            (int(n), int(p)): int(r)
            for n, p, r in zip(
                net[short][order], plen[short][order], rid[short][order], strict=True
            )
        }
        self.cover_rid: U32 = np.full(1 << k, RID_NONE, np.uint32)
        self.cover_plen: npt.NDArray[np.int8] = np.full(1 << k, -1, np.int8)
        by_len = np.argsort(plen[short], kind="stable")
        _paint_cover(
            net[short][by_len].astype(np.int64),
            plen[short][by_len].astype(np.int64),
            rid[short][by_len].astype(np.int64),
            self.shift,
            self.cover_rid,
            self.cover_plen,
        )
        longer = ~short
        order = np.lexsort((plen[longer], net[longer]))
        self.base_net: U32 = np.ascontiguousarray(net[longer][order], np.uint32)
        self.base_plen: U8 = np.ascontiguousarray(plen[longer][order], np.uint8)
        self.base_rid: I32 = np.ascontiguousarray(rid[longer][order], np.int32)
        self.base_bounds = np.searchsorted(
            self.base_net >> np.uint32(self.shift), np.arange((1 << k) + 1)
        ).astype(np.int64)
        self.overrides: dict[int, _SlotArrays] = {}
        # scratch for slot_ranges (grown on demand): every slot is flattened into these
        self._edge: I64 = np.empty(1025, np.int64)
        self._rids: I64 = np.empty(1025, np.int64)

    def slot_arrays(self, slot: int) -> _SlotArrays:
        """``(net, plen, rid)`` of the prefixes longer than ``k`` bits in ``slot``, sorted by
        (net, plen); read-only views."""
        over = self.overrides.get(slot)
        if over is not None:
            return over
        a, b = int(self.base_bounds[slot]), int(self.base_bounds[slot + 1])
        return self.base_net[a:b], self.base_plen[a:b], self.base_rid[a:b]

    def slot_prefixes(self, slot: int) -> tuple[I64, I64, I64]:
        """``(start, end, rid)`` of the prefixes longer than ``k`` bits in ``slot``, sorted."""
        net, plen, rid = self.slot_arrays(slot)
        start = net.astype(np.int64)
        end = start + (np.int64(1) << (32 - plen.astype(np.int64)))
        return start, end, rid.astype(np.int64)

    def has_longer(self, slot: int) -> bool:
        """Whether ``slot`` holds any prefix longer than ``k`` bits."""
        over = self.overrides.get(slot)
        if over is None:
            return bool(self.base_bounds[slot] != self.base_bounds[slot + 1])
        return len(over[0]) > 0

    def contains(self, net: int, plen: int) -> bool:
        if plen <= self.k:
            return (net, plen) in self.short
        a, p, _ = self.slot_arrays(net >> self.shift)
        return bool(_lower_bound(a, p, net, plen) >= 0)

    def set(self, net: int, plen: int, rid: int) -> range:
        """Add or replace a prefix; returns the slots whose ranges may have changed."""
        slot = net >> self.shift
        if plen > self.k:
            a, p, r = self.slot_arrays(slot)
            i = _lower_bound(a, p, net, plen)
            if i >= 0:
                r = r.copy()  # the arrays may be views of the shared base
                r[i] = rid
                self.overrides[slot] = (a, p, r)
            else:
                self.overrides[slot] = _sorted_with(a, p, r, -i - 1, net, plen, rid)
            return range(slot, slot + 1)
        self.short[(net, plen)] = rid
        span = slice(slot, slot + (1 << (self.k - plen)))
        take = self.cover_plen[span] <= plen
        self.cover_rid[span][take] = rid
        self.cover_plen[span][take] = plen
        return range(span.start, span.stop)

    def remove(self, net: int, plen: int) -> range:
        """Remove a prefix (KeyError if absent); returns the slots that may have changed."""
        slot = net >> self.shift
        if plen > self.k:
            a, p, r = self.slot_arrays(slot)
            i = _lower_bound(a, p, net, plen)
            if i < 0:
                raise KeyError((net, plen))
            self.overrides[slot] = _sorted_without(a, p, r, i)
            return range(slot, slot + 1)
        del self.short[(net, plen)]
        parent_rid, parent_plen = RID_NONE, -1
        for q in range(plen - 1, -1, -1):
            got = self.short.get((net & prefix_mask(q), q))
            if got is not None:
                parent_rid, parent_plen = got, q
                break
        span = slice(slot, slot + (1 << (self.k - plen)))
        take = self.cover_plen[span] == plen  # exactly the slots this prefix was the cover of
        self.cover_rid[span][take] = parent_rid
        self.cover_plen[span][take] = parent_plen
        return range(span.start, span.stop)

    def slot_ranges_scratch(self, slot: int) -> tuple[I64, I64]:
        """As :meth:`slot_ranges`, but views of scratch arrays valid until the next call."""
        net, plen, rid = self.slot_arrays(slot)
        need = 2 * len(net) + 1
        if need > len(self._edge):
            self._edge = np.empty(2 * need, np.int64)
            self._rids = np.empty(2 * need, np.int64)
        lo = slot << self.shift
        m = _flatten_slot(
            net,
            plen,
            rid,
            lo,
            lo + (1 << self.shift),
            int(self.cover_rid[slot]),
            self._edge,
            self._rids,
        )
        return self._edge[:m], self._rids[:m]

    def slot_ranges(self, slot: int) -> tuple[I64, I64]:
        """Left edges and rids of ``slot``'s ranges (edges absolute, as 32-bit addresses)."""
        edge, rids = self.slot_ranges_scratch(slot)
        return edge.copy(), rids.copy()

    def control_bytes(self) -> int:
        """Approximate bytes of the shadow: arrays exactly, Python containers estimated."""
        arrays = (
            self.base_net.nbytes
            + self.base_plen.nbytes
            + self.base_rid.nbytes
            + self.base_bounds.nbytes
            + self.cover_rid.nbytes
            + self.cover_plen.nbytes
            + self._edge.nbytes
            + self._rids.nbytes
        )
        over = 0
        for net, plen, rid in self.overrides.values():
            # a slice of the base costs only its header; copies own their data
            own = sum(x.nbytes for x in (net, plen, rid) if x.base is None)
            over += own + _OVERRIDE_BYTES
        return arrays + over + _DICT_ENTRY_BYTES * len(self.short)
