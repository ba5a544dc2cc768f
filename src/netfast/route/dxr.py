"""DXR: a compiled batch longest-prefix-match engine for full Internet tables.

This is netfast's "beyond the paper" FIB.  The paper's stride table (:mod:`netfast.route.stride`)
keeps lookups lock-free by building every change aside and publishing it with one atomic store;
DXR (Zec, Rizzo, Mikuc, "DXR: towards a billion routing lookups per second in software", 2012)
keeps that update discipline but flattens the table so that a lookup costs one direct-table load
and, for real tables, two more loads (a bitmap word and a rid) from arrays of about 7.5 MB.

Structure
---------
The prefixes are flattened into *ranges*: the address space cut at every point where the longest
match changes, each piece labelled with the route id (rid) of that match.  The top ``k`` bits of
an address (``k = 16`` or ``18``, the *direct bits*) index a direct table of ``2**k`` uint32
entries.  An entry either

- holds a rid directly (bit 31 clear; rid in the low 24 bits, ``0xFFFFFF`` = no route), when one
  route covers the whole slot, or
- points to a *chunk* holding the ranges of that slot (bit 31 set).

A chunk whose range edges all fall on /24 boundaries -- every chunk of a real DFZ table, which
carries nothing longer than /24 -- is a *bitmap chunk* (bit 30 clear, block number in bits
0..29).  Its bitmap has one bit per /24 of the slot (256 for D16, 64 for D18), set where a range
starts; it is stored as 32-bit halves of uint64 words whose upper halves hold the pool index of
the first range of the word.  The lookup is ``rid = pool[upper + popcount(lower & upto) - 1]``:
Poptrie's leaf compression applied to DXR's ranges, so three dependent loads and no search.
Any other chunk is a *long chunk* (bits 31 and 30 set, pool offset in bits 0..29): a size word,
the left edges (offsets inside the slot), then the rids, found by binary search on the edges.

The measured alternative, DXR's classic short format (``edge << 24 | rid`` words searched by
binary search), used 25% less memory but ran 3x slower on the 2026 table, so it was dropped.
The batch kernel is software-pipelined over groups of eight addresses: eight direct entries are
loaded, then eight bitmap words, then eight rids, so cache misses overlap instead of queueing.
Route ids are limited to 24 bits (16.7M routes handed out over a RIB's life).

Updates and reclamation
-----------------------
The engine keeps a control-plane shadow of its prefixes: the prefixes of at most ``k`` bits
(which decide the *cover*, the default route of each slot) and, per slot, the longer ones.  An
insert or delete recomputes the ranges of each affected slot from that shadow, writes the new
chunk into free pool words no reader can be using, and publishes it with one aligned uint32 store
into the direct table -- lookups running concurrently in other threads (the kernels release the
GIL) see either the old chunk or the new one, never a mix.  Writers are serialized by a lock.

The old chunk is *retired*, not freed: a lookup that read the old direct entry may still be
searching it.  Reclamation is epoch based (:class:`EpochSlots`): every lookup wrapper publishes
the global epoch into its thread's slot before it reads the table and clears the slot when the
kernel returns; a writer stamps each retired chunk with the current epoch and then advances the
epoch.  A retired chunk is reused only once every slot is either idle or holds a later epoch,
so no reader that could have seen it is still running.  When the pool runs out of room the
writer copies table and pool into larger arrays and publishes the pair as a new state object
(a single reference store); readers holding the previous pair keep a consistent, older view.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from numba import njit, types
from numba.extending import intrinsic

from netfast.route.rib import NO_ROUTE, Rib, prefix_mask

RID_NONE = 0xFFFFFF
"""The 24-bit rid stored for "no route"; rids must be below it."""

MAX_RID = RID_NONE - 1
_SHORT_FLAG = 0x80000000  # bitmap chunk
_LONG_FLAGS = 0xC0000000
_MAX_POOL_WORDS = 1 << 22  # the short-format offset field is 22 bits wide

U32 = npt.NDArray[np.uint32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# Epoch-based grace periods
# --------------------------------------------------------------------------------------------


class _SlotLease:
    """Returns a thread's epoch slot to the free list when the thread's locals are dropped."""

    __slots__ = ("index", "owner")

    def __init__(self, owner: EpochSlots, index: int) -> None:
        self.owner = owner
        self.index = index

    def __del__(self) -> None:
        self.owner._release(self.index)


class EpochSlots:
    """One slot per reader thread; a slot holds 0 (idle) or the epoch its reader entered in.

    Readers call :meth:`enter` before touching the lookup arrays and :meth:`leave` after the
    kernel returns.  The writer retires memory with :meth:`retire_epoch` and asks
    :meth:`safe_epoch` which retired memory no reader can still hold.
    """

    def __init__(self, nslots: int = 128) -> None:
        self.slots: npt.NDArray[np.int64] = np.zeros(nslots, np.int64)
        self.epoch = 1
        self._free = list(range(nslots - 1, -1, -1))
        self._lock = threading.Lock()
        self._local = threading.local()

    def enter(self) -> int:
        lease: _SlotLease | None = getattr(self._local, "lease", None)
        if lease is None:
            with self._lock:
                if not self._free:
                    raise RuntimeError("more concurrent reader threads than epoch slots")
                lease = _SlotLease(self, self._free.pop())
            self._local.lease = lease
        # The slot store happens before the caller loads the table state (program order under
        # the GIL), so a writer that sees this slot idle knows the reader has not started.
        self.slots[lease.index] = self.epoch
        return lease.index

    def leave(self, index: int) -> None:
        self.slots[index] = 0

    def _release(self, index: int) -> None:
        self.slots[index] = 0
        with self._lock:
            self._free.append(index)

    def retire_epoch(self) -> int:
        """Stamp for memory unpublished just now; advances the global epoch."""
        stamp = self.epoch
        self.epoch = stamp + 1
        return stamp

    def safe_epoch(self) -> int:
        """Memory retired with a stamp below this value is unreachable by every reader."""
        active = self.slots[self.slots != 0]
        return int(active.min()) if len(active) else self.epoch


# --------------------------------------------------------------------------------------------
# Kernels shared by the engines
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The control-plane shadow shared by the slot-based engines (DXR here, Poptrie next door)
# --------------------------------------------------------------------------------------------


class SlotShadow:
    """The prefixes an engine holds, indexed so that one slot's ranges are cheap to recompute.

    Prefixes of at most ``k`` bits live in a dict and determine ``cover_rid``/``cover_plen``,
    the longest of them covering each slot.  Longer prefixes start in sorted arrays (from the
    bulk build) and move into a per-slot dict the first time their slot changes.
    """

    def __init__(self, k: int, net: U32, plen: npt.NDArray[np.uint8], rid: I32) -> None:
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
        self.base_net = net[longer][order]
        self.base_plen = plen[longer][order]
        self.base_rid = rid[longer][order]
        self.base_bounds = np.searchsorted(
            self.base_net >> np.uint32(self.shift), np.arange((1 << k) + 1)
        ).astype(np.int64)
        self.overrides: dict[int, dict[tuple[int, int], int]] = {}

    def slot_prefixes(self, slot: int) -> tuple[I64, I64, I64]:
        """``(start, end, rid)`` of the prefixes longer than ``k`` bits in ``slot``, sorted."""
        over = self.overrides.get(slot)
        if over is None:
            a, b = self.base_bounds[slot], self.base_bounds[slot + 1]
            start = self.base_net[a:b].astype(np.int64)
            end = start + (np.int64(1) << (32 - self.base_plen[a:b].astype(np.int64)))
            return start, end, self.base_rid[a:b].astype(np.int64)
        items = sorted(over.items())
        start = np.array([n for (n, _), _ in items], np.int64)
        end = np.array([n + (1 << (32 - p)) for (n, p), _ in items], np.int64)
        return start, end, np.array([r for _, r in items], np.int64)

    def has_longer(self, slot: int) -> bool:
        """Whether ``slot`` holds any prefix longer than ``k`` bits."""
        over = self.overrides.get(slot)
        if over is None:
            return bool(self.base_bounds[slot] != self.base_bounds[slot + 1])
        return bool(over)

    def _slot_dict(self, slot: int) -> dict[tuple[int, int], int]:
        over = self.overrides.get(slot)
        if over is None:
            a, b = self.base_bounds[slot], self.base_bounds[slot + 1]
            over = {
                (int(n), int(p)): int(r)
                for n, p, r in zip(
                    self.base_net[a:b], self.base_plen[a:b], self.base_rid[a:b], strict=True
                )
            }
            self.overrides[slot] = over
        return over

    def contains(self, net: int, plen: int) -> bool:
        if plen <= self.k:
            return (net, plen) in self.short
        return (net, plen) in self._slot_dict(net >> self.shift)

    def set(self, net: int, plen: int, rid: int) -> range:
        """Add or replace a prefix; returns the slots whose ranges may have changed."""
        slot = net >> self.shift
        if plen > self.k:
            self._slot_dict(slot)[(net, plen)] = rid
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
            del self._slot_dict(slot)[(net, plen)]
            return range(slot, slot + 1)
        del self.short[(net, plen)]
        parent_rid, parent_plen = RID_NONE, -1
        for p in range(plen - 1, -1, -1):
            r = self.short.get((net & prefix_mask(p), p))
            if r is not None:
                parent_rid, parent_plen = r, p
                break
        span = slice(slot, slot + (1 << (self.k - plen)))
        take = self.cover_plen[span] == plen  # exactly the slots this prefix was the cover of
        self.cover_rid[span][take] = parent_rid
        self.cover_plen[span][take] = parent_plen
        return range(span.start, span.stop)

    def slot_ranges(self, slot: int) -> tuple[I64, I64]:
        """Left edges and rids of ``slot``'s ranges (edges absolute, as 32-bit addresses)."""
        start, end, rid = self.slot_prefixes(slot)
        lo = slot << self.shift
        edge = np.empty(2 * len(start) + 1, np.int64)
        rids = np.empty(2 * len(start) + 1, np.int64)
        m = flatten_ranges(
            start, end, rid, lo, lo + (1 << self.shift), int(self.cover_rid[slot]), edge, rids
        )
        return edge[:m], rids[:m]

    def control_bytes(self) -> int:
        """Approximate bytes of the shadow (sorted arrays + cover; dicts estimated)."""
        arrays = (
            self.base_net.nbytes
            + self.base_plen.nbytes
            + self.base_rid.nbytes
            + self.base_bounds.nbytes
            + self.cover_rid.nbytes
            + self.cover_plen.nbytes
        )
        entries = len(self.short) + sum(len(d) for d in self.overrides.values())
        return arrays + 100 * entries


def global_ranges(net: U32, plen: npt.NDArray[np.uint8], rid: I32) -> tuple[I64, I64]:
    """Flatten a whole table into ranges over the 32-bit space (bulk builds)."""
    order = np.lexsort((plen, net))
    start = net[order].astype(np.int64)
    end = start + (np.int64(1) << (32 - plen[order].astype(np.int64)))
    edge = np.empty(2 * len(start) + 1, np.int64)
    rids = np.empty(2 * len(start) + 1, np.int64)
    m = flatten_ranges(start, end, rid[order].astype(np.int64), 0, 1 << 32, RID_NONE, edge, rids)
    return edge[:m], rids[:m]


class WordPool:
    """Free-space bookkeeping for variable-size blocks in a growable word array.

    Freed blocks are kept on exact-size free lists (chunks come in few distinct sizes); new
    space comes from a bump pointer.  The engine owns the array itself.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self.free: dict[int, list[int]] = {}
        self.free_words = 0

    def alloc(self, n: int) -> int:
        spare = self.free.get(n)
        if spare:
            self.free_words -= n
            return spare.pop()
        off = self.top
        self.top += n
        return off

    def release(self, off: int, n: int) -> None:
        if off + n == self.top:
            self.top = off
        else:
            self.free.setdefault(n, []).append(off)
            self.free_words += n


# --------------------------------------------------------------------------------------------
# DXR kernels
# --------------------------------------------------------------------------------------------


def _popcount64(typingctx: Any, x: Any) -> Any:
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


popcount64: Any = intrinsic(_popcount64)
"""The CPU's population count of a uint64 (LLVM ``ctpop``), callable from kernels."""


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


@njit(inline="always")
def _search_long(pool: Any, off: int, key: int) -> int:
    n0 = pool[off]
    n = n0
    base = off + 1
    while n > 1:
        half = n >> 1
        if pool[base + half] <= key:
            base += half
        n -= half
    return pool[base + n0]


@njit(inline="always")
def _dxr_one(direct: Any, bits: Any, pool: Any, a: Any, k: int) -> int:
    shift = 32 - k
    e = direct[a >> shift]
    if e < 0x80000000:
        r = e
    elif e < 0xC0000000:
        key = (a >> 8) & ((1 << (24 - k)) - 1)
        w = bits[((e & 0x3FFFFFFF) << (19 - k)) + (key >> 5)]
        upto = (np.uint64(2) << np.uint64(key & 31)) - np.uint64(1)
        r = pool[(w >> np.uint64(32)) + popcount64(w & upto) - np.uint64(1)]
    else:
        r = _search_long(pool, e & 0x3FFFFFFF, a & ((1 << shift) - 1))
    return -1 if r == 0xFFFFFF else r


@njit(nogil=True, cache=True, boundscheck=False)
def dxr_lookup_kernel(direct: Any, bits: Any, pool: Any, addrs: Any, out: Any, k: int) -> None:
    """Longest-prefix match of every address in ``addrs`` into ``out`` (rids, -1: none)."""
    for i in range(len(addrs)):
        out[i] = _dxr_one(direct, bits, pool, addrs[i], k)


@njit(nogil=True, cache=True, boundscheck=False)
def dxr_lookup_kernel_x8(direct: Any, bits: Any, pool: Any, addrs: Any, out: Any, k: int) -> None:
    """As :func:`dxr_lookup_kernel`, software-pipelined over groups of eight addresses: all
    direct entries of a group are loaded, then all bitmap words, then all rids, so the cache
    misses of one address overlap those of the other seven (the paper's prefetching, done by
    issuing independent loads back to back)."""
    lanes = 8
    shift = 32 - k
    short_mask = (1 << (24 - k)) - 1
    long_mask = (1 << shift) - 1
    entry = np.zeros(lanes, np.uint32)
    word = np.zeros(lanes, np.uint64)
    n = len(addrs)
    i = 0
    while i + lanes <= n:
        for j in range(lanes):
            entry[j] = direct[addrs[i + j] >> shift]
        for j in range(lanes):
            e = entry[j]
            if e >= 0x80000000 and e < 0xC0000000:
                key = (addrs[i + j] >> 8) & short_mask
                word[j] = bits[((e & 0x3FFFFFFF) << (19 - k)) + (key >> 5)]
        for j in range(lanes):
            e = entry[j]
            if e < 0x80000000:
                r = e
            elif e < 0xC0000000:
                key = (addrs[i + j] >> 8) & short_mask
                w = word[j]
                upto = (np.uint64(2) << np.uint64(key & 31)) - np.uint64(1)
                r = pool[(w >> np.uint64(32)) + popcount64(w & upto) - np.uint64(1)]
            else:
                r = _search_long(pool, e & 0x3FFFFFFF, addrs[i + j] & long_mask)
            out[i + j] = -1 if r == 0xFFFFFF else r
        i += lanes
    while i < n:
        out[i] = _dxr_one(direct, bits, pool, addrs[i], k)
        i += 1


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class _DxrState:
    """What a reader needs, published as one reference: direct table, bitmap words, word pool."""

    __slots__ = ("bits", "direct", "pool")

    def __init__(self, direct: U32, bits: npt.NDArray[np.uint64], pool: U32) -> None:
        self.direct = direct
        self.bits = bits
        self.pool = pool


_BITS, _POOL = 0, 1


class Dxr:
    """DXR FIB: direct table on the top ``direct_bits`` bits + per-slot range chunks.

    Build with :meth:`build`; look up with :meth:`lookup` / :meth:`lookup_batch` from any
    number of threads while one thread at a time calls :meth:`insert` / :meth:`delete`.
    """

    name: ClassVar[str] = "dxr"
    concurrent_updates: ClassVar[bool] = True

    def __init__(
        self,
        shadow: SlotShadow,
        state: _DxrState,
        bits_top: int,
        pool_top: int,
        blocks: I64,
    ) -> None:
        self._k = shadow.k
        self._nwords = 1 << (19 - shadow.k)
        self._shadow = shadow
        self._state = state
        self._alloc = (WordPool(bits_top), WordPool(pool_top))
        self._blocks = blocks  # per slot: bits offset (-1: none), pool offset (-1), pool words
        self.epochs = EpochSlots()
        """Reader epoch slots (the grace-period clock)."""
        self._retired: list[tuple[int, int, int, int]] = []  # (epoch stamp, which, off, words)
        self._write_lock = threading.Lock()
        self.reclaimed = 0
        """Retired blocks returned to their pools so far (the grace-period counter)."""
        self.grown = 0
        """Times the arrays were reallocated larger."""

    # -- construction --
    @classmethod
    def build(cls, rib: Rib, direct_bits: int = 16, headroom: float = 0.05) -> Dxr:
        """Bulk-build from the RIB's live routes.

        Parameters
        ----------
        rib
            The routes; their rids must be below :data:`MAX_RID` + 1.
        direct_bits
            16 (D16: a 256 KB direct table) or 18 (D18: 1 MB, fewer ranges per chunk).
        headroom
            Spare fraction of each pool kept for copy-on-write updates.
        """
        if direct_bits not in (16, 18):
            raise ValueError(f"direct_bits = {direct_bits}: must be 16 or 18")
        net, plen, rid = rib.live_arrays()
        if len(rid) and int(rid.max()) > MAX_RID:
            raise ValueError(f"rid {int(rid.max())} does not fit the 24-bit rid field")
        edge, rids = global_ranges(net, plen, rid)
        nslot = 1 << direct_bits
        nwords = 1 << (19 - direct_bits)
        direct = np.zeros(nslot, np.uint32)
        bits = np.zeros(nslot * nwords, np.uint64)
        scratch = np.zeros(2 * len(edge) + 3 * nslot + 16, np.uint32)
        blocks = np.zeros((nslot, 3), np.int64)
        bits_top, pool_top = _encode_all(edge, rids, direct_bits, direct, bits, scratch, blocks)
        bits_cap = int(bits_top * (1 + headroom)) + 64 * nwords
        pool_cap = int(pool_top * (1 + headroom)) + 4096
        if pool_cap > _MAX_POOL_WORDS:
            raise MemoryError(f"DXR pool needs {pool_cap} words, above {_MAX_POOL_WORDS}")
        pool = np.zeros(pool_cap, np.uint32)
        pool[:pool_top] = scratch[:pool_top]
        bits = bits[:bits_cap].copy() if bits_cap <= len(bits) else _resized(bits, bits_cap)
        shadow = SlotShadow(direct_bits, net, plen, rid)
        return cls(shadow, _DxrState(direct, bits, pool), bits_top, pool_top, blocks)

    # -- lookups --
    def lookup(self, addr: int) -> int:
        """The rid of the longest prefix matching ``addr`` (-1: no route)."""
        return int(self.lookup_batch(np.array([addr], np.uint32))[0])

    def lookup_batch(self, addrs: U32, out: I32 | None = None) -> I32:
        """Rids of the longest matches of a batch of addresses (-1: no route).

        The kernel runs without the GIL; safe against a concurrent writer.
        """
        addrs = np.ascontiguousarray(addrs, np.uint32)
        if out is None:
            out = np.empty(len(addrs), np.int32)
        elif out.shape != addrs.shape or out.dtype != np.int32:
            raise ValueError("out must be an int32 array shaped like addrs")
        slot = self.epochs.enter()
        try:
            state = self._state
            dxr_lookup_kernel_x8(state.direct, state.bits, state.pool, addrs, out, self._k)
        finally:
            self.epochs.leave(slot)
        return out

    # -- updates --
    def insert(self, net: int, plen: int, rid: int) -> None:
        """Add (or re-point) the route ``net/plen`` with route id ``rid``."""
        _check_prefix(net, plen)
        if not 0 <= rid <= MAX_RID:
            raise ValueError(f"rid {rid} outside 0..{MAX_RID}")
        with self._write_lock:
            self._refresh(self._shadow.set(net, plen, rid))

    def delete(self, net: int, plen: int) -> None:
        """Remove the route ``net/plen``; raises ``KeyError`` if the FIB does not hold it."""
        _check_prefix(net, plen)
        with self._write_lock:
            if not self._shadow.contains(net, plen):
                raise KeyError(f"{net:#010x}/{plen} is not in the FIB")
            self._refresh(self._shadow.remove(net, plen))

    def reclaim(self) -> int:
        """Return retired blocks whose grace period has ended; returns how many."""
        with self._write_lock:
            return self._reclaim()

    def _refresh(self, slots: range) -> None:
        shadow = self._shadow
        for slot in slots:
            if self._blocks[slot, 2] == 0 and not shadow.has_longer(slot):
                # a slot without longer prefixes is a direct rid: one store, nothing to retire
                self._state.direct[slot] = shadow.cover_rid[slot]
                continue
            edge, rid = shadow.slot_ranges(slot)
            self._publish(slot, edge, rid)
        self._reclaim()

    def _publish(self, slot: int, edge: I64, rid: I64) -> None:
        n = len(edge)
        boff, poff, pwords = -1, -1, 0
        if n == 1:
            entry = int(rid[0])
        elif _is_short(edge, 0, n):
            boff = self._take(_BITS, self._nwords)
            poff = self._take(_POOL, n)
            pwords = n
            state = self._state
            _write_bitmap(state.bits, boff, self._nwords, state.pool, poff, edge, rid, 0, n)
            entry = _SHORT_FLAG | (boff // self._nwords)
        else:
            pwords = 2 * n + 1
            poff = self._take(_POOL, pwords)
            _write_long(self._state.pool, poff, edge, rid, 0, n)
            entry = _LONG_FLAGS | poff
        # The publication: one aligned 4-byte store, after every word of the chunk was written.
        self._state.direct[slot] = entry
        old_boff, old_poff, old_pwords = (int(x) for x in self._blocks[slot])
        self._blocks[slot] = (boff, poff, pwords)
        if old_pwords:
            stamp = self.epochs.retire_epoch()
            if old_boff >= 0:
                self._retired.append((stamp, _BITS, old_boff, self._nwords))
            self._retired.append((stamp, _POOL, old_poff, old_pwords))

    def _take(self, which: int, words: int) -> int:
        alloc = self._alloc[which]
        off = alloc.alloc(words)
        if off + words > self._capacity(which):
            alloc.release(off, words)
            self._reclaim()
            off = alloc.alloc(words)
            if off + words > self._capacity(which):
                self._grow(which, off + words)
        return off

    def _capacity(self, which: int) -> int:
        return len(self._state.bits) if which == _BITS else len(self._state.pool)

    def _grow(self, which: int, need: int) -> None:
        state = self._state
        old = state.bits if which == _BITS else state.pool
        size = max(need, len(old) + len(old) // 4 + 4096)
        if which == _POOL:
            size = min(size, _MAX_POOL_WORDS)
            if need > size:
                raise MemoryError(f"DXR pool needs {need} words, above {_MAX_POOL_WORDS}")
        new = _resized(old, size)
        # Readers of the old triple keep a consistent view; new readers take the new one.  The
        # direct table is copied too: entries published from now on may point past the old
        # arrays' ends.
        if which == _BITS:
            self._state = _DxrState(state.direct.copy(), new, state.pool)
        else:
            self._state = _DxrState(state.direct.copy(), state.bits, new)
        self.grown += 1

    def _reclaim(self) -> int:
        if not self._retired:
            return 0
        safe = self.epochs.safe_epoch()
        keep, freed = [], 0
        for item in self._retired:
            if item[0] < safe:
                self._alloc[item[1]].release(item[2], item[3])
                freed += 1
            else:
                keep.append(item)
        self._retired = keep
        self.reclaimed += freed
        return freed

    # -- accounting --
    def memory_bytes(self) -> int:
        """Bytes of the lookup structure (direct table, bitmaps, pool; spare room included)."""
        state = self._state
        return int(state.direct.nbytes + state.bits.nbytes + state.pool.nbytes)

    def stats(self) -> dict[str, int]:
        """Shape of the structure: chunk counts and formats, pool use, pending reclamation."""
        direct = self._state.direct
        bits_alloc, pool_alloc = self._alloc
        return {
            "direct_bits": self._k,
            "chunks": int((direct >= _SHORT_FLAG).sum()),
            "long_chunks": int((direct >= _LONG_FLAGS).sum()),
            "bits_words_used": bits_alloc.top - bits_alloc.free_words,
            "pool_words_used": pool_alloc.top - pool_alloc.free_words,
            "retired_pending": len(self._retired),
            "reclaimed": self.reclaimed,
            "control_bytes": self._shadow.control_bytes(),
        }


def _resized(a: Any, size: int) -> Any:
    new = np.zeros(size, a.dtype)
    n = min(size, len(a))
    new[:n] = a[:n]
    return new


def _check_prefix(net: int, plen: int) -> None:
    if not 0 <= plen <= 32 or not 0 <= net < 2**32 or net & ~prefix_mask(plen) & 0xFFFFFFFF:
        raise ValueError(f"bad prefix {net:#x}/{plen}")


__all__ = [
    "MAX_RID",
    "NO_ROUTE",
    "RID_NONE",
    "Dxr",
    "EpochSlots",
    "SlotShadow",
    "WordPool",
    "dxr_lookup_kernel",
    "dxr_lookup_kernel_x8",
    "flatten_ranges",
    "global_ranges",
    "popcount64",
]
