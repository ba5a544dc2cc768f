"""The paper's routing table: four 8-bit strides of dense linear arrays, lock-free lookups.

Design ("Routing Packets", Oppermann)
-------------------------------------
The 32-bit destination is split into four 8-bit strides.  Each *stride bucket* is a dense
array of entries; an entry holds the stride part of a prefix (``bits``), its mask length inside
the stride (``masklen`` 1..8), a route id and optionally a child bucket.  A prefix of length
``L > 0`` lives at level ``(L - 1) // 8`` with in-stride mask length ``L - 8 * level``; the
default route ``/0`` has a slot of its own.  Only an entry matching all 8 bits of its stride
(``masklen == 8``) can have a child: the bucket for the next 8 address bits.

A lookup scans the *whole* bucket of a level linearly, remembers the most specific matching
route, and descends into the child of the full-8-bit match.  It never backtracks: a match at a
deeper level always beats any shallower one, so at most four buckets are touched.

Representation
--------------
- ``pool``: one big ``uint64`` array holding every bucket's entries.  An entry is packed into one
  word -- ``bits:8 | masklen:4 | rid+1:26 | child:26`` (high to low) -- so any change to an entry
  is ONE aligned 64-bit store, atomic on x86-64 and on every 64-bit target numba supports.
  ``rid+1 == 0`` means "no route here" (a pure link to a child, or an invalidated entry) and
  ``child == 0`` means "no child".  ``pool[0]`` is the default-route word (``rid+1``);
  ``pool[1:16]`` is a permanently poisoned region (see *debug mode*).
- ``buckets``: a table of ``uint64`` descriptors ``capacity:16 | count:16 | offset:32``, indexed
  by bucket id; the child field of an entry is a bucket id.  A descriptor is the parent's stride
  pointer: a bucket is replaced by building the new one elsewhere in the pool and storing the
  new descriptor -- again one store.  Bucket id 1 is the level-0 root; 0 means "none".
- Bucket storage comes in size classes with per-class free lists; the pool grows by allocating a
  larger array, copying, and swapping the (pool, buckets) pair behind ONE Python reference, so a
  reader that picked up the old pair keeps a consistent, frozen snapshot.

Updates (one writer at a time, serialized by ``self._lock``)
------------------------------------------------------------
- next-hop change: nothing in the FIB -- it is ``rib.value_id[rid] = vid``, one store in the RIB;
- invalidation of a prefix: store its entry with ``rid+1 = 0``;
- (re)validation of an existing entry, adding or removing a child link: one entry store;
- insertion into a bucket with free space: write the entry into the free slot first, then
  publish the new count with one descriptor store;
- every other change (bucket full, compaction of invalidated entries) builds a new bucket and
  swaps the descriptor; a new chain of child buckets is built bottom-up, unpublished, and linked
  in by the one store that sets the parent entry's child.
The linear variant also reuses an invalidated slot for a new entry with one store, and compacts
a bucket by copy-and-swap once a quarter of it is dead.  Entry and descriptor stores are numpy
scalar stores into aligned ``uint64`` arrays: one 8-byte ``mov``.
Every update therefore has a single linearization point: a concurrent lookup sees the table
either before or after it, never a torn entry and never a half-built bucket.

Grace-period reclamation (epochs) and the memory-ordering argument
------------------------------------------------------------------
An orphaned bucket (old storage after a copy-and-swap, or a bucket unlinked from its parent)
may still be read by a lookup that loaded the old descriptor.  It is *retired* with the current
writer epoch ``E`` and the epoch is then incremented; it is freed (returned to the free list and,
in debug mode, poisoned) only once no reader slot holds an epoch ``<= E``.

Each reader thread owns a slot.  ``lookup``/``lookup_batch`` store the current epoch into the
slot, call the ``nogil`` numba kernel, and clear the slot afterwards.  The slot stores and the
writer's descriptor stores, epoch increments and slot scans all happen while holding the GIL;
only the kernel body runs without it.  Releasing the GIL when the kernel starts and re-acquiring
it when it returns are a release/acquire pair on the GIL's mutex (a full barrier on x86-64:
locked instructions), so the GIL totally orders the reader's slot publication against the
writer's swap store:

- swap before publication: the writer released the GIL after the swap, the reader acquired it
  before publishing, and its kernel starts later still -- it loads the new descriptor and never
  touches the retired bucket;
- publication before swap: the writer acquires the GIL after the reader released it on entering
  the kernel, so the writer's slot scan sees the slot, which holds an epoch read before the
  writer's increment, i.e. ``<= E``; the bucket stays allocated until the slot is cleared, and
  the clearing store follows (in the reader's program order, after the GIL re-acquire) every load
  the kernel made.

A reader that read the epoch and was preempted before publishing its slot read the epoch
before the increment, so its slot is ``<= E`` too (it delays reclamation, safely), or the
writer swapped before its publication (first case).  Writer-side helper kernels keep the GIL,
so none of the writer's stores escape this ordering.

Per-call overhead
-----------------
The scalar ``lookup`` passes the arrays' addresses as plain integers (turned back into
``uint64*`` inside the kernel) because numba's dispatcher unboxes an int much faster than an
ndarray; the wrapper keeps the arrays alive by holding their :class:`_Arrays` for the call.

Debug mode
----------
``debug=True`` poisons freed storage with :data:`POISON` (its masklen nibble, 10, is impossible)
and points freed bucket ids at the poisoned region; the lookup kernels count every poisoned
word they read in ``poisoned_reads`` (the check is always compiled in: a predictable compare).
``reclaimed`` counts buckets freed after their grace period.

Two variants
------------
:class:`StrideFib` (``"stride"``) is the paper's table as written.  With /24-heavy tables the
level-2 buckets hold hundreds of entries and the linear scan dominates, so
:class:`StrideSortedFib` (``"stride-fast"``) keeps the four strides, the no-backtracking
descent, lock-free reads, single-store invalidation, copy-and-swap buckets and epochs, but each
bucket keeps its entries sorted by (masklen, bits) behind a 510-bit presence bitmap (one bit per
possible (masklen, bits) pair of a stride) and cumulative popcounts: a stride is searched by at
most eight bit tests and one popcount instead of a scan.  The price: inserting a *new* key always
copies the bucket (there is no "append into free space" when order matters).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from netfast.route.rib import Rib, format_prefix
from netfast.sync import ReaderSlots

__all__ = ["POISON", "StrideFib", "StrideSortedFib", "StrideStats"]

# -- entry layout -------------------------------------------------------------------------
_BITS_SHIFT = 56
_ML_SHIFT = 52
_RID_SHIFT = 26
_FIELD_MASK = (1 << 26) - 1
MAX_RID = _FIELD_MASK - 1  # rid + 1 must fit in 26 bits
MAX_BUCKETS = _FIELD_MASK

# kernel constants are typed so that numba never mixes uint64 with int64 (which gives float64)
_U8 = np.uint64(8)
_U0xFF = np.uint64(0xFF)
_U0xF = np.uint64(0xF)
_UBITS = np.uint64(_BITS_SHIFT)
_UML = np.uint64(_ML_SHIFT)
_URID = np.uint64(_RID_SHIFT)
_UFIELD = np.uint64(_FIELD_MASK)
_U32 = np.uint64(32)
_ULOW32 = np.uint64(0xFFFFFFFF)
_ULOW16 = np.uint64(0xFFFF)
_U16 = np.uint64(16)
_U63 = np.uint64(63)
_U6 = np.uint64(6)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_UZERO = np.uint64(0)

#: Written over freed storage in debug mode; masklen nibble 0xA is impossible in a live entry.
POISON = 0xDEADA11C0DEDF00D
_UPOISON = np.uint64(POISON)

_DEFAULT_SLOT = 0
_POISON_OFF = 1
_RESERVED = 16  # default word + a poisoned region at least as long as a bitmap header
_ROOT = 1
_FAST_HEADER = 10  # 8 bitmap words + 2 words of cumulative popcounts (4 x 16 bits each)

#: Bucket capacities (entries); a bucket holds at most 2 + 4 + ... + 256 = 510 entries.
_CLASSES = np.array(
    [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512], dtype=np.int64
)


def _size_class(count: int) -> int:
    return int(_CLASSES[int(np.searchsorted(_CLASSES, count))])


def _entry(bits: int, ml: int, rid1: int, child: int) -> int:
    return (bits << _BITS_SHIFT) | (ml << _ML_SHIFT) | (rid1 << _RID_SHIFT) | child


def _descriptor(off: int, count: int, cap: int) -> int:
    return (cap << 48) | (count << 32) | off


# -- numba kernels --------------------------------------------------------------------------


def _u64_ptr_typer(typingctx: Any, addr: Any) -> Any:
    """An integer address as a ``uint64*`` (so the scalar call passes ints, not arrays)."""
    sig = types.CPointer(types.uint64)(types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


_u64_ptr: Any = intrinsic(_u64_ptr_typer)


def _i64_ptr_typer(typingctx: Any, addr: Any) -> Any:
    sig = types.CPointer(types.int64)(types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


_i64_ptr: Any = intrinsic(_i64_ptr_typer)


def _popcount_typer(typingctx: Any, x: Any) -> Any:
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


_popcount: Any = intrinsic(_popcount_typer)


@njit(nogil=True, cache=True, inline="always")
def _scan_linear(pool: Any, buckets: Any, bid: Any, addr: Any, level: Any, poisoned: Any) -> Any:
    """One level of the paper's lookup: returns (rid+1 of the best match in this bucket, child)."""
    d = buckets[bid]
    off = d & _ULOW32
    cnt = (d >> _U32) & _ULOW16
    b = (addr >> (np.uint64(24) - _U8 * level)) & _U0xFF
    best = _UZERO
    best_ml = _UZERO
    child = _UZERO
    for i in range(off, off + cnt):
        e = pool[i]
        if e == _UPOISON:
            poisoned[0] += 1
            continue
        ml = (e >> _UML) & _U0xF
        if ((e >> _UBITS) ^ b) >> (_U8 - ml) == _UZERO:
            r = (e >> _URID) & _UFIELD
            if r != _UZERO and ml > best_ml:
                best_ml = ml
                best = r
            if ml == _U8:
                child = e & _UFIELD
    return best, child


@njit(nogil=True, cache=True, inline="always")
def _scan_bitmap(pool: Any, buckets: Any, bid: Any, addr: Any, level: Any, poisoned: Any) -> Any:
    """One level of the sorted variant: at most 8 bit tests and one popcount."""
    d = buckets[bid]
    off = d & _ULOW32
    cnt = (d >> _U32) & _ULOW16
    if cnt == _UZERO:
        return _UZERO, _UZERO
    b = (addr >> (np.uint64(24) - _U8 * level)) & _U0xFF
    child = _UZERO
    ml = _U8
    while ml > _UZERO:
        p = (_U1 << ml) - _U2 + (b >> (_U8 - ml))
        w = p >> _U6
        word = pool[off + w]
        if word == _UPOISON:
            poisoned[0] += 1
            return _UZERO, _UZERO
        bit = p & _U63
        if (word >> bit) & _U1:
            cum = (pool[off + _U8 + (w >> _U2)] >> (_U16 * (w & _U3))) & _ULOW16
            idx = cum + _popcount(word & ((_U1 << bit) - _U1))
            e = pool[off + np.uint64(_FAST_HEADER) + idx]
            if e == _UPOISON:
                poisoned[0] += 1
                return _UZERO, _UZERO
            if ml == _U8:
                child = e & _UFIELD
            r = (e >> _URID) & _UFIELD
            if r != _UZERO:
                return r, child
        ml -= _U1
    return _UZERO, child


@njit(nogil=True, cache=True, inline="always")
def _lookup_linear(pool: Any, buckets: Any, addr: Any, poisoned: Any) -> Any:
    best = pool[_DEFAULT_SLOT]
    bid = np.uint64(_ROOT)
    for level in range(4):
        r, child = _scan_linear(pool, buckets, bid, addr, np.uint64(level), poisoned)
        if r != _UZERO:
            best = r
        if child == _UZERO:
            break
        bid = child
    return np.int64(best) - 1


@njit(nogil=True, cache=True, inline="always")
def _lookup_bitmap(pool: Any, buckets: Any, addr: Any, poisoned: Any) -> Any:
    best = pool[_DEFAULT_SLOT]
    bid = np.uint64(_ROOT)
    for level in range(4):
        r, child = _scan_bitmap(pool, buckets, bid, addr, np.uint64(level), poisoned)
        if r != _UZERO:
            best = r
        if child == _UZERO:
            break
        bid = child
    return np.int64(best) - 1


@njit(nogil=True, cache=True)
def _one_linear(pool_addr: int, buckets_addr: int, poisoned_addr: int, addr: int) -> int:
    return _lookup_linear(
        _u64_ptr(pool_addr), _u64_ptr(buckets_addr), np.uint64(addr), _i64_ptr(poisoned_addr)
    )


@njit(nogil=True, cache=True)
def _one_bitmap(pool_addr: int, buckets_addr: int, poisoned_addr: int, addr: int) -> int:
    return _lookup_bitmap(
        _u64_ptr(pool_addr), _u64_ptr(buckets_addr), np.uint64(addr), _i64_ptr(poisoned_addr)
    )


@njit(nogil=True, cache=True)
def _batch_linear(pool: Any, buckets: Any, addrs: Any, out: Any, poisoned: Any) -> None:
    for i in range(addrs.size):
        out[i] = _lookup_linear(pool, buckets, np.uint64(addrs[i]), poisoned)


@njit(nogil=True, cache=True)
def _batch_bitmap(pool: Any, buckets: Any, addrs: Any, out: Any, poisoned: Any) -> None:
    for i in range(addrs.size):
        out[i] = _lookup_bitmap(pool, buckets, np.uint64(addrs[i]), poisoned)


@njit(cache=True)
def _find_key(pool: Any, start: int, count: int, key: int) -> int:
    """Writer helper (keeps the GIL): slot of the entry with (bits, masklen) == key, or -1."""
    k = np.uint64(key)
    for i in range(start, start + count):
        if (pool[i] >> _UML) == k:
            return i
    return -1


# -- the structure ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Arrays:
    """The arrays a reader needs, swapped together behind one reference on growth."""

    pool: npt.NDArray[np.uint64]
    buckets: npt.NDArray[np.uint64]
    pool_addr: int
    buckets_addr: int


@dataclass(frozen=True, slots=True)
class StrideStats:
    buckets: int
    entries: int
    pool_words: int
    pool_used: int
    retired_pending: int
    reclaimed: int
    poisoned_reads: int
    pool_grows: int


def _arrays(pool: npt.NDArray[np.uint64], buckets: npt.NDArray[np.uint64]) -> _Arrays:
    return _Arrays(pool, buckets, int(pool.ctypes.data), int(buckets.ctypes.data))


class _StrideBase:
    """Pool, buckets, writer lock, size classes and epochs shared by both variants."""

    name: ClassVar[str]
    concurrent_updates: ClassVar[bool] = True
    # The variant's lookup kernels: (pool address, buckets address, poison address, addr) -> rid
    # and (pool, buckets, addrs, out, poisoned) -> None.
    _one: ClassVar[Any]
    _batch: ClassVar[Any]
    _header: ClassVar[int]

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self._lock = threading.Lock()
        self._epoch = 1
        self._readers = ReaderSlots()
        # The hot paths store into these directly (see netfast.sync).
        self._slots = self._readers.values
        self._tls = self._readers.local
        self._retired: deque[tuple[int, int, int, int]] = deque()  # (epoch, off, size, bucket id)
        self._free: dict[int, list[int]] = {}  # allocation size -> offsets
        self._free_bids: list[int] = []
        self._pool_top = _RESERVED
        self._bucket_top = _ROOT + 1
        self.reclaimed = 0
        self.pool_grows = 0
        self.poisoned = np.zeros(1, np.int64)
        self._poisoned_addr = int(self.poisoned.ctypes.data)
        pool = np.zeros(1024, np.uint64)
        pool[_POISON_OFF:_RESERVED] = POISON
        buckets = np.zeros(64, np.uint64)
        self._a = _arrays(pool, buckets)
        self._bucket_sizes = np.zeros(64, np.int64)  # writer-side: allocation size per bucket

    # -- building --
    @classmethod
    def build(cls, rib: Rib, debug: bool = False) -> Any:
        """Bulk-build from the RIB's live routes (vectorized; no per-route Python work)."""
        self = cls(debug=debug)
        net, plen, rid = rib.live_arrays()
        if rid.size and int(rid.max()) > MAX_RID:
            raise ValueError(f"route id {int(rid.max())} does not fit in 26 bits")
        pool = self._a.pool
        dflt = rid[plen == 0]
        if dflt.size:
            pool[_DEFAULT_SLOT] = np.uint64(int(dflt[-1]) + 1)
        keep = plen > 0
        net64 = net[keep].astype(np.uint64)
        plen64 = plen[keep].astype(np.int64)
        rid1 = rid[keep].astype(np.uint64) + np.uint64(1)
        level = (plen64 - 1) // 8
        ml = (plen64 - 8 * level).astype(np.uint64)
        byte = (net64 >> (24 - 8 * level).astype(np.uint64)) & np.uint64(0xFF)
        # a bucket is named by (level, the 8*level address bits above it)
        bkey = (level.astype(np.uint64) << np.uint64(32)) | (
            net64 >> (32 - 8 * level).astype(np.uint64)
        )
        bkey[level == 0] = 0
        # every bucket's ancestors must exist
        keys = [np.unique(bkey[level == lv]) for lv in range(4)]
        for lv in range(3, 1, -1):
            parents = ((keys[lv] & np.uint64(0xFFFFFFFF)) >> np.uint64(8)) | np.uint64(
                (lv - 1) << 32
            )
            keys[lv - 1] = np.union1d(keys[lv - 1], parents)
        keys[0] = np.zeros(1, np.uint64)  # the root always exists
        all_keys = np.concatenate(keys)  # sorted: level-major, then address
        nb = all_keys.size
        bucket_of_route = np.searchsorted(all_keys, bkey).astype(np.int64) + _ROOT
        # link entries: each non-root bucket hangs off its parent's full-8-bit entry
        child_keys = all_keys[1:]
        child_level = child_keys >> np.uint64(32)
        child_top = child_keys & np.uint64(0xFFFFFFFF)
        parent_keys = ((child_level - np.uint64(1)) << np.uint64(32)) | (child_top >> np.uint64(8))
        parent_keys[child_level == 1] = 0
        link_bucket = np.searchsorted(all_keys, parent_keys).astype(np.int64) + _ROOT
        link_ids = np.arange(_ROOT + 1, _ROOT + nb, dtype=np.uint64)
        route_words = (
            (byte << np.uint64(_BITS_SHIFT)) | (ml << np.uint64(_ML_SHIFT)) | (rid1 << _URID)
        )
        link_words = (
            ((child_top & np.uint64(0xFF)) << np.uint64(_BITS_SHIFT))
            | (np.uint64(8) << np.uint64(_ML_SHIFT))
            | link_ids
        )
        words = np.concatenate([route_words, link_words])
        owner = np.concatenate([bucket_of_route, link_bucket])
        if nb + _ROOT >= MAX_BUCKETS:
            raise ValueError("too many buckets for 26-bit child ids")
        # sort by (bucket, masklen, bits) and merge a route /8k with the link at the same key
        wml = (words >> np.uint64(_ML_SHIFT)) & np.uint64(0xF)
        wbits = words >> np.uint64(_BITS_SHIFT)
        pos = (np.uint64(1) << wml) - np.uint64(2) + (wbits >> (np.uint64(8) - wml))
        sort_key = (owner.astype(np.uint64) << np.uint64(10)) | pos
        order = np.argsort(sort_key, kind="stable")
        sort_key = sort_key[order]
        words = words[order]
        if words.size:
            starts = np.flatnonzero(np.r_[True, sort_key[1:] != sort_key[:-1]])
            words = np.bitwise_or.reduceat(words, starts)
            sort_key = sort_key[starts]
        owner = (sort_key >> np.uint64(10)).astype(np.int64)
        pos = sort_key & np.uint64(1023)
        counts = np.bincount(owner, minlength=_ROOT + nb)[_ROOT:]
        caps = _CLASSES[np.searchsorted(_CLASSES, np.maximum(counts, 1))]
        sizes = caps + cls._header
        offs = _RESERVED + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        used = _RESERVED + int(sizes.sum())
        pool_len = used + used // 8 + 1024
        new_pool = np.zeros(pool_len, np.uint64)
        new_pool[:_RESERVED] = pool[:_RESERVED]
        first = np.searchsorted(owner, owner)  # index of the bucket's first entry
        rank = np.arange(owner.size) - first
        slot = offs[owner - _ROOT] + cls._header + rank
        new_pool[slot] = words
        if cls._header:
            cls._build_headers(new_pool, offs, owner - _ROOT, pos, nb)
        buckets = np.zeros(_ROOT + nb + nb // 8 + 64, np.uint64)
        buckets[_ROOT : _ROOT + nb] = (
            (caps.astype(np.uint64) << np.uint64(48))
            | (counts.astype(np.uint64) << np.uint64(32))
            | offs.astype(np.uint64)
        )
        self._bucket_sizes = np.zeros(buckets.size, np.int64)
        self._bucket_sizes[_ROOT : _ROOT + nb] = sizes
        self._pool_top = used
        self._bucket_top = _ROOT + nb
        self._a = _arrays(new_pool, buckets)
        return self

    @staticmethod
    def _build_headers(
        pool: npt.NDArray[np.uint64],
        offs: npt.NDArray[np.int64],
        bucket: npt.NDArray[np.int64],
        pos: npt.NDArray[np.uint64],
        nb: int,
    ) -> None:
        word = (pos >> np.uint64(6)).astype(np.int64)
        bitmaps = np.zeros((nb, 8), np.uint64)
        np.bitwise_or.at(bitmaps, (bucket, word), np.uint64(1) << (pos & np.uint64(63)))
        per_word = np.bincount(bucket * 8 + word, minlength=nb * 8).reshape(nb, 8)
        cum = (np.cumsum(per_word, axis=1) - per_word).astype(np.uint64)  # exclusive
        shifts = (np.uint64(16) * (np.arange(4, dtype=np.uint64)))[None, :]
        lo = np.bitwise_or.reduce(cum[:, :4] << shifts, axis=1)
        hi = np.bitwise_or.reduce(cum[:, 4:] << shifts, axis=1)
        rows = offs[:, None] + np.arange(8)[None, :]
        pool[rows] = bitmaps
        pool[offs + 8] = lo
        pool[offs + 9] = hi

    # -- readers --
    def _slot(self) -> int:
        """This thread's epoch slot (allocated on first use, released when the thread ends)."""
        return self._readers.slot()

    def lookup(self, addr: int) -> int:
        """Longest-prefix match of one address: its route id, or -1 (the variant's kernel)."""
        a = self._a
        slots = self._slots
        try:
            i = self._tls.slot
        except AttributeError:
            i = self._slot()
        slots[i] = self._epoch
        r = self._one(a.pool_addr, a.buckets_addr, self._poisoned_addr, addr)
        slots[i] = 0
        return r

    def lookup_batch(
        self, addrs: npt.NDArray[np.uint32], out: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """Route ids of a batch of addresses (one ``nogil`` kernel call)."""
        if out is None:
            out = np.empty(addrs.shape, np.int32)
        a = self._a
        slots = self._slots
        i = self._slot()
        slots[i] = self._epoch
        self._batch(a.pool, a.buckets, addrs, out, self.poisoned)
        slots[i] = 0
        return out

    # -- writer helpers (caller holds self._lock) --
    def _desc(self, bid: int) -> tuple[int, int, int]:
        d = int(self._a.buckets[bid])
        return d & 0xFFFFFFFF, (d >> 32) & 0xFFFF, d >> 48

    def _find(self, bid: int, bits: int, ml: int) -> int:
        off, cnt, _ = self._desc(bid)
        return int(_find_key(self._a.pool, off + self._header, cnt, (bits << 4) | ml))

    def _ensure_pool(self, need: int) -> None:
        a = self._a
        if need <= a.pool.size and self._bucket_top < a.buckets.size:
            return
        pool, buckets = a.pool, a.buckets
        if need > pool.size:
            pool = np.zeros(max(need, pool.size + pool.size // 2), np.uint64)
            pool[: a.pool.size] = a.pool
        else:
            pool = pool.copy()
        if self._bucket_top >= buckets.size:
            buckets = np.zeros(buckets.size + buckets.size // 2 + 64, np.uint64)
            buckets[: a.buckets.size] = a.buckets
            sizes = np.zeros(buckets.size, np.int64)
            sizes[: self._bucket_sizes.size] = self._bucket_sizes
            self._bucket_sizes = sizes
        else:
            buckets = buckets.copy()
        self.pool_grows += 1
        # one reference store: readers see the old pair or the new pair, each consistent
        self._a = _arrays(pool, buckets)

    def _alloc(self, cap: int) -> int:
        size = cap + self._header
        free = self._free.get(size)
        if free:
            return free.pop()
        off = self._pool_top
        self._ensure_pool(off + size)
        self._pool_top = off + size
        return off

    def _new_bid(self) -> int:
        if self._free_bids:
            return self._free_bids.pop()
        bid = self._bucket_top
        if bid >= MAX_BUCKETS:
            raise ValueError("too many buckets for 26-bit child ids")
        self._bucket_top += 1
        self._ensure_pool(0)
        return bid

    def _retire(self, off: int, size: int, bid: int) -> None:
        """Queue storage (and optionally a bucket id) for freeing after a grace period."""
        self._retired.append((self._epoch, off, size, bid))
        self._epoch += 1

    def reclaim(self) -> int:
        """Free every retired bucket that no reader can still see; returns how many.

        Writers call this after every change; call it after readers went quiet to empty the
        queue."""
        with self._lock:
            return self._reclaim()

    def _reclaim(self) -> int:
        if not self._retired:
            return 0
        active = self._readers.active()
        horizon = min(active) if active else self._epoch + 1
        n = 0
        pool, buckets = self._a.pool, self._a.buckets
        # a freed bucket id reads as empty -- or, in debug mode, as the poisoned region
        gone = _descriptor(_POISON_OFF, _RESERVED - _POISON_OFF, 0) if self.debug else 0
        while self._retired and self._retired[0][0] < horizon:
            _, off, size, bid = self._retired.popleft()
            if size:
                if self.debug:
                    pool[off : off + size] = POISON
                self._free.setdefault(size, []).append(off)
            if bid:
                buckets[bid] = gone
                self._free_bids.append(bid)
            n += 1
        self.reclaimed += n
        return n

    def _write_bucket(self, words: list[int]) -> tuple[int, int]:
        """Build a new, unpublished bucket holding ``words``; returns (descriptor, size)."""
        raise NotImplementedError

    def _install(self, bid: int, words: list[int]) -> None:
        """Copy-and-swap: build the bucket anew elsewhere, publish it with one descriptor store,
        retire the old storage."""
        off, _, cap = self._desc(bid)
        desc, size = self._write_bucket(words)
        self._a.buckets[bid] = desc
        self._bucket_sizes[bid] = size
        self._retire(off, cap + self._header, 0)

    def _words(self, bid: int, live_only: bool = True) -> list[int]:
        off, cnt, _ = self._desc(bid)
        seg = self._a.pool[off + self._header : off + self._header + cnt]
        if live_only:
            seg = seg[(seg & np.uint64((1 << 52) - 1)) != 0]  # drop entries with no rid, no child
        return [int(w) for w in seg]

    def _add_entry(self, bid: int, word: int) -> None:
        raise NotImplementedError

    # -- the FIB interface --
    def insert(self, net: int, plen: int, rid: int) -> None:
        """Add the route (or re-point an existing prefix at ``rid``)."""
        if not 0 <= rid <= MAX_RID:
            raise ValueError(f"route id {rid} does not fit in 26 bits")
        with self._lock:
            if plen == 0:
                self._a.pool[_DEFAULT_SLOT] = rid + 1
                return
            level = (plen - 1) // 8
            bid = _ROOT
            for lv in range(level):
                byte = (net >> (24 - 8 * lv)) & 0xFF
                slot = self._find(bid, byte, 8)
                child = int(self._a.pool[slot]) & _FIELD_MASK if slot >= 0 else 0
                if not child:
                    self._link_new_chain(bid, slot, net, plen, rid, lv)
                    self._reclaim()
                    return
                bid = child
            ml = plen - 8 * level
            bits = (net >> (24 - 8 * level)) & 0xFF & ~((1 << (8 - ml)) - 1)
            slot = self._find(bid, bits, ml)
            if slot >= 0:  # invalidated or existing entry: one store
                old = int(self._a.pool[slot])
                self._a.pool[slot] = (old & ~(_FIELD_MASK << _RID_SHIFT)) | ((rid + 1) << 26)
            else:
                self._add_entry(bid, _entry(bits, ml, rid + 1, 0))
            self._reclaim()

    def _link_new_chain(
        self, bid: int, slot: int, net: int, plen: int, rid: int, from_level: int
    ) -> None:
        """Build the missing buckets below ``bid`` bottom-up, then link them with one store."""
        level = (plen - 1) // 8
        ml = plen - 8 * level
        bits = (net >> (24 - 8 * level)) & 0xFF & ~((1 << (8 - ml)) - 1)
        word = _entry(bits, ml, rid + 1, 0)
        for lv in range(level, from_level, -1):
            child = self._new_bid()
            desc, size = self._write_bucket([word])
            self._a.buckets[child] = desc
            self._bucket_sizes[child] = size
            word = _entry((net >> (24 - 8 * (lv - 1))) & 0xFF, 8, 0, child)
        if slot >= 0:  # the full-8-bit entry exists (a route, no child yet): set the child
            pool = self._a.pool
            pool[slot] = int(pool[slot]) | (word & _FIELD_MASK)
        else:
            self._add_entry(bid, word)

    def delete(self, net: int, plen: int) -> None:
        """Invalidate the route (one store); unlink and retire buckets left empty.

        Raises ``KeyError`` when the prefix is not in the table (as every FIB does)."""
        with self._lock:
            if plen == 0:
                if not self._a.pool[_DEFAULT_SLOT]:
                    raise KeyError(format_prefix(net, plen))
                self._a.pool[_DEFAULT_SLOT] = 0
                return
            level = (plen - 1) // 8
            path: list[tuple[int, int]] = []  # (bucket, slot of the link entry in it)
            bid = _ROOT
            for lv in range(level):
                slot = self._find(bid, (net >> (24 - 8 * lv)) & 0xFF, 8)
                child = int(self._a.pool[slot]) & _FIELD_MASK if slot >= 0 else 0
                if not child:
                    raise KeyError(format_prefix(net, plen))
                path.append((bid, slot))
                bid = child
            ml = plen - 8 * level
            bits = (net >> (24 - 8 * level)) & 0xFF & ~((1 << (8 - ml)) - 1)
            slot = self._find(bid, bits, ml)
            if slot < 0 or not (int(self._a.pool[slot]) >> _RID_SHIFT) & _FIELD_MASK:
                raise KeyError(format_prefix(net, plen))
            pool = self._a.pool
            pool[slot] = int(pool[slot]) & ~(_FIELD_MASK << _RID_SHIFT)  # invalidation
            self._tidy(bid, path)
            self._reclaim()

    def _tidy(self, bid: int, path: list[tuple[int, int]]) -> None:
        """Unlink empty buckets upwards; compact a bucket whose dead entries pile up."""
        while True:
            _, cnt, _ = self._desc(bid)
            live = self._words(bid)
            dead = cnt - len(live)
            if not live and bid != _ROOT:
                pbid, pslot = path.pop()
                pool = self._a.pool
                pool[pslot] = int(pool[pslot]) & ~_FIELD_MASK  # unlink: one store
                off, _, cap = self._desc(bid)
                self._retire(off, cap + self._header, bid)
                bid = pbid
                continue
            if dead > 4 and dead * 4 > cnt:
                self._install(bid, live)
            return

    def memory_bytes(self) -> int:
        """Every array the structure uses (pool and bucket table at full allocated size, the
        writer's per-bucket size table, the poison counter)."""
        a = self._a
        return int(
            a.pool.nbytes + a.buckets.nbytes + self._bucket_sizes.nbytes + self.poisoned.nbytes
        )

    @property
    def poisoned_reads(self) -> int:
        return int(self.poisoned[0])

    def stats(self) -> StrideStats:
        """Counts for reports and tests (walks the bucket table: not for the fast path)."""
        d = self._a.buckets[_ROOT : self._bucket_top]
        live = d[(d & np.uint64(0xFFFFFFFF)) >= np.uint64(_RESERVED)]
        return StrideStats(
            buckets=self._bucket_top - _ROOT - len(self._free_bids),
            entries=int(((live >> np.uint64(32)) & np.uint64(0xFFFF)).sum()),
            pool_words=int(self._a.pool.size),
            pool_used=self._pool_top - sum(len(v) * k for k, v in self._free.items()),
            retired_pending=len(self._retired),
            reclaimed=self.reclaimed,
            poisoned_reads=self.poisoned_reads,
            pool_grows=self.pool_grows,
        )


class StrideFib(_StrideBase):
    """The paper's table as written: every bucket is scanned linearly, whole.

    Parameters
    ----------
    debug
        Poison freed buckets and count poisoned reads (see the module docstring).
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
        self._build_headers(pool, np.array([off]), np.zeros(w.size, np.int64), pos, 1)
        pool[off + _FAST_HEADER : off + _FAST_HEADER + w.size] = w
        return _descriptor(off, len(words), cap), cap + _FAST_HEADER

    def _add_entry(self, bid: int, word: int) -> None:
        self._install(bid, [*self._words(bid), word])
