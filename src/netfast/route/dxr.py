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

Memory: :meth:`Dxr.memory_bytes` is the lookup structure (direct table, bitmap words, pool,
spare room included) -- what the 8 MB target is about; :meth:`Dxr.control_bytes` is the
writer-side bookkeeping (the prefix shadow, per-slot block table, allocator), which lookups
never touch.

Updates
-------
The engine keeps a control-plane shadow of its prefixes (:class:`SlotShadow`): the prefixes of
at most ``k`` bits (which decide the *cover*, the default route of each slot) and, per slot, the
longer ones as sorted numpy arrays (so recomputing a slot is a few compiled calls, not Python
loops over its prefixes).  An insert or delete recomputes the ranges of each affected slot,
writes the new chunk into free pool words no reader can be using, and publishes it with one
aligned uint32 release store into the direct table -- lookups running concurrently in other
threads (the kernels release the GIL) see either the old chunk or the new one, never a mix.
Writers are serialized by a lock.  Pool space is managed by :class:`WordPool` (exact-size reuse,
then best-fit with splitting, coalescing on release), so churn does not fragment the pool into
growth.  When the pool does run out of room the writer copies table and pool into larger arrays
and publishes the triple as a new state with one 8-byte release store.

Reclamation and the reader protocol
-----------------------------------
A replaced chunk (or a whole replaced state) is *retired*, not freed: a lookup that read the old
direct entry may still be reading it.  Reclamation is epoch based (:class:`EpochSlots`).  Every
lookup -- scalar or batch -- is one ``nogil`` kernel call that, before it touches the table,

1. loads the global epoch ``e`` and stores it into its thread's slot with a sequentially
   consistent atomic store (``xchg`` on x86-64: a full barrier),
2. only then loads the address of the current state (direct table, bitmap words, pool) from
   the published root word, and looks up,
3. clears its slot with a release store after its last table load.

The writer unpublishes a chunk (release store of the new direct entry, or of the new root),
stamps it with the current epoch ``E`` and advances the epoch; before scanning the slots it
issues a full fence.  With full barriers on both sides, the reader's slot store and the writer's
unpublishing store are ordered one way or the other: if the reader can have loaded the old
entry or root, its slot store came first, so the writer's scan sees the slot holding an epoch
``e <= E`` (it was loaded before the slot store); the chunk stays allocated until the slot is
cleared, and that clearing store follows every load the kernel made.  Otherwise the reader loads
the new entry and never touches the chunk.  Memory stamped ``E`` is reused only once every slot
is idle or holds an epoch above ``E``.  Old states are kept referenced on the same terms, so the
arrays a kernel reads through raw addresses stay alive while any reader may use them.

The argument needs no GIL (the batch kernel runs without it, concurrently with the writer) and
no x86 ordering assumption: the atomics are LLVM's.  Doing the whole protocol inside one kernel
is also what makes scalar lookups cheap: the Python wrapper passes three plain integers (the
thread's slot address, the control-word address and the address to look up) -- numba's
dispatcher unboxes an int far faster than an ndarray (see :mod:`netfast.route.stride`) -- and
does no numpy slot stores of its own.  The arrays are reached through raw addresses, which is
why replaced states are retired rather than dropped.
:meth:`EpochSlots.enter` / :meth:`EpochSlots.leave` remain for holding a grace period from
Python (a pinned reader, tests); those stores are ordered by the writer's fence and the GIL.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from llvmlite import ir
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
U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# Raw pointers and atomics for the kernels
# --------------------------------------------------------------------------------------------


def _ptr_typer(elem: Any) -> Any:
    def typer(typingctx: Any, addr: Any) -> Any:
        sig = types.CPointer(elem)(types.intp)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return typer


_u32_ptr: Any = intrinsic(_ptr_typer(types.uint32))
_u64_ptr: Any = intrinsic(_ptr_typer(types.uint64))
_i64_ptr: Any = intrinsic(_ptr_typer(types.int64))


def _load_acquire_typer(typingctx: Any, addr: Any) -> Any:
    """``*(int64*)addr`` as an acquire load."""
    sig = types.int64(types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


def _store_i64_typer(ordering: str) -> Any:
    def typer(typingctx: Any, addr: Any, value: Any) -> Any:
        sig = types.void(types.intp, types.int64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
            builder.store_atomic(args[1], ptr, ordering, 8)
            return context.get_dummy_value()

        return sig, codegen

    return typer


def _store_u32_release_typer(typingctx: Any, addr: Any, value: Any) -> Any:
    sig = types.void(types.intp, types.uint32)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ptr = builder.inttoptr(args[0], ir.IntType(32).as_pointer())
        builder.store_atomic(args[1], ptr, "release", 4)
        return context.get_dummy_value()

    return sig, codegen


def _fence_typer(typingctx: Any) -> Any:
    sig = types.void()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


_load_acquire: Any = intrinsic(_load_acquire_typer)
_store_seq_cst: Any = intrinsic(_store_i64_typer("seq_cst"))
_store_release: Any = intrinsic(_store_i64_typer("release"))
_store_u32_release: Any = intrinsic(_store_u32_release_typer)
_fence: Any = intrinsic(_fence_typer)


@njit(cache=True)
def full_fence() -> None:
    """A sequentially consistent fence (``mfence`` on x86-64)."""
    _fence()


@njit(cache=True)
def publish_u32(addr: int, value: int) -> None:
    """Store ``value`` to the uint32 at ``addr`` with release ordering: every store made before
    it is visible to a thread that loads the new value."""
    _store_u32_release(addr, np.uint32(value))


@njit(cache=True)
def publish_i64(addr: int, value: int) -> None:
    """Store ``value`` to the int64 at ``addr`` with release ordering."""
    _store_release(addr, np.int64(value))


# --------------------------------------------------------------------------------------------
# Epoch-based grace periods
# --------------------------------------------------------------------------------------------


class _SlotLease:
    """Returns a thread's epoch slot to the free list when the thread's locals are dropped."""

    __slots__ = ("address", "index", "owner")

    def __init__(self, owner: EpochSlots, index: int) -> None:
        self.owner = owner
        self.index = index
        self.address = int(owner.slots.ctypes.data) + 8 * index

    def __del__(self) -> None:
        self.owner._release(self.index)


class EpochSlots:
    """One slot per reader thread; a slot holds 0 (idle) or the epoch its reader entered in.

    ``ctl[0]`` is the global epoch and ``ctl[1]`` a word the owning engine publishes its current
    state's address in; lookup kernels get the address of ``ctl`` and of their thread's slot
    (:meth:`slot_address`) and run the reader protocol themselves (see the module docstring).
    From Python, :meth:`enter` / :meth:`leave` hold a grace period.  The writer retires memory
    with :meth:`retire_epoch` and asks :meth:`safe_epoch` which retired memory no reader can
    still hold.
    """

    def __init__(self, nslots: int = 128) -> None:
        self.slots: npt.NDArray[np.int64] = np.zeros(nslots, np.int64)
        self.ctl: npt.NDArray[np.int64] = np.zeros(2, np.int64)
        self.ctl[0] = 1
        self.ctl_address = int(self.ctl.ctypes.data)
        self._free = list(range(nslots - 1, -1, -1))
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def epoch(self) -> int:
        return int(self.ctl[0])

    def _lease(self) -> _SlotLease:
        lease: _SlotLease | None = getattr(self._local, "lease", None)
        if lease is None:
            with self._lock:
                if not self._free:
                    raise RuntimeError("more concurrent reader threads than epoch slots")
                lease = _SlotLease(self, self._free.pop())
            self._local.lease = lease
        return lease

    def slot_address(self) -> int:
        """The address of this thread's slot (leased on first use, for the thread's life)."""
        return self._lease().address

    def enter(self) -> int:
        index = self._lease().index
        # The slot store happens before the caller loads the table state (program order under
        # the GIL), so a writer that sees this slot idle knows the reader has not started.
        self.slots[index] = self.ctl[0]
        return index

    def leave(self, index: int) -> None:
        self.slots[index] = 0

    def _release(self, index: int) -> None:
        self.slots[index] = 0
        with self._lock:
            self._free.append(index)

    def retire_epoch(self) -> int:
        """Stamp for memory unpublished just now; advances the global epoch."""
        stamp = int(self.ctl[0])
        self.ctl[0] = stamp + 1
        return stamp

    def safe_epoch(self) -> int:
        """Memory retired with a stamp below this value is unreachable by every reader."""
        # Orders the writer's unpublishing stores before its reads of the slots (the other half
        # of the readers' seq_cst slot store; see the module docstring).
        full_fence()
        slots = self.slots
        active = slots[slots != 0]
        return int(active.min()) if len(active) else int(self.ctl[0])


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


# --------------------------------------------------------------------------------------------
# The control-plane shadow shared by the slot-based engines (DXR here, Poptrie next door)
# --------------------------------------------------------------------------------------------

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


@njit(inline="always")
def _x8_body(direct: Any, bits: Any, pool: Any, addrs: Any, out: Any, k: int) -> None:
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
    issuing independent loads back to back).  Unguarded: the caller holds a grace period."""
    _x8_body(direct, bits, pool, addrs, out, k)


# The guarded kernels run the whole reader protocol (module docstring): publish the epoch with a
# seq_cst store, load the published root, look up, clear the slot with a release store.  The
# root is an int64[4] record: direct, bits and pool addresses, and k.


# ``nogil`` although the call lasts tens of nanoseconds: holding the GIL would be ~10% faster
# from Python (3.3 vs 3.0 M lookups/s measured), but a thread looping over scalar lookups then
# gives the GIL up only when forced, every switch interval, and a writer preempted mid-update
# waited those 5 ms (worst update 5 ms instead of ~0.5 ms).  Safety does not depend on the
# GIL either way (module docstring).
@njit(nogil=True, cache=True)
def _lookup_one_guarded(slot_addr: int, ctl_addr: int, addr: int) -> int:
    if addr < 0 or addr > 0xFFFFFFFF:
        return -2
    _store_seq_cst(slot_addr, _load_acquire(ctl_addr))
    rec = _i64_ptr(_load_acquire(ctl_addr + 8))
    r = _dxr_one(_u32_ptr(rec[0]), _u64_ptr(rec[1]), _u32_ptr(rec[2]), np.uint32(addr), rec[3])
    _store_release(slot_addr, 0)
    return r


@njit(nogil=True, cache=True, boundscheck=False)
def _lookup_batch_guarded(slot_addr: int, ctl_addr: int, addrs: Any, out: Any) -> None:
    _store_seq_cst(slot_addr, _load_acquire(ctl_addr))
    rec = _i64_ptr(_load_acquire(ctl_addr + 8))
    _x8_body(_u32_ptr(rec[0]), _u64_ptr(rec[1]), _u32_ptr(rec[2]), addrs, out, rec[3])
    _store_release(slot_addr, 0)


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class _DxrState:
    """What a reader needs: direct table, bitmap words, word pool, and the int64[4] record of
    their addresses (and k) that the root word points at."""

    __slots__ = ("bits", "direct", "direct_address", "pool", "rec", "rec_address")

    def __init__(self, direct: U32, bits: npt.NDArray[np.uint64], pool: U32, k: int) -> None:
        self.direct = direct
        self.bits = bits
        self.pool = pool
        self.direct_address = int(direct.ctypes.data)
        self.rec = np.array(
            [self.direct_address, int(bits.ctypes.data), int(pool.ctypes.data), k], np.int64
        )
        self.rec_address = int(self.rec.ctypes.data)


_BITS, _POOL = 0, 1

_warmed = False


def _warm_up() -> None:
    """Compile (or load from numba's cache) every kernel an update or lookup calls, with the
    argument types they get at run time, so that the first update after a build does not pay
    milliseconds of JIT loading."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    rib = Rib()
    for i in range(4):
        rib.add(0x0A000000 | (i << 8), 24, i)
    rib.add(0x0B000000, 8, "eight")
    for k in (16, 18):
        fib = Dxr.build(rib, direct_bits=k)
        for net, plen in ((0x0A000400, 24), (0x0A000410, 28), (0x0C000000, 8), (0x0D000000, 16)):
            fib.insert(net, plen, 7)
            fib.lookup(net)
            fib.lookup_batch(np.array([net], np.uint32))
            fib.delete(net, plen)
        fib.delete(0x0A000000, 24)
        fib.delete(0x0B000000, 8)
        fib.reclaim()
        fib._grow(_BITS, len(fib._state.bits) + 1)
        fib._grow(_POOL, len(fib._state.pool) + 1)


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
        self.epochs = EpochSlots()
        """Reader epoch slots (the grace-period clock)."""
        self._ctl_address = self.epochs.ctl_address
        self._tls = threading.local()
        self._state = state
        publish_i64(self._ctl_address + 8, state.rec_address)
        self._alloc = (WordPool(bits_top), WordPool(pool_top))
        self._blocks = blocks  # per slot: bits offset (-1: none), pool offset (-1), pool words
        # (epoch stamp, which, off, words), in stamp order
        self._retired: deque[tuple[int, int, int, int]] = deque()
        # replaced states: kept alive until no kernel can still read them through raw addresses
        self._retired_states: deque[tuple[int, _DxrState]] = deque()
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
        _warm_up()
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
        state = _DxrState(direct, bits, pool, direct_bits)
        return cls(shadow, state, bits_top, pool_top, blocks)

    # -- lookups --
    def lookup(self, addr: int) -> int:
        """The rid of the longest prefix matching ``addr`` (-1: no route).

        One ``nogil`` kernel call that publishes this thread's epoch, reads the current state
        and looks up (module docstring); the wrapper only passes integers.
        """
        try:
            slot = self._tls.slot
        except AttributeError:
            slot = self._tls.slot = self.epochs.slot_address()
        r: int = _lookup_one_guarded(slot, self._ctl_address, addr)
        if r < -1:
            raise ValueError(f"address {addr!r} is not a 32-bit unsigned integer")
        return r

    def lookup_batch(self, addrs: U32, out: I32 | None = None) -> I32:
        """Rids of the longest matches of a batch of addresses (-1: no route).

        The kernel runs without the GIL; safe against a concurrent writer.
        """
        addrs = np.ascontiguousarray(addrs, np.uint32)
        if out is None:
            out = np.empty(len(addrs), np.int32)
        elif out.shape != addrs.shape or out.dtype != np.int32:
            raise ValueError("out must be an int32 array shaped like addrs")
        try:
            slot = self._tls.slot
        except AttributeError:
            slot = self._tls.slot = self.epochs.slot_address()
        _lookup_batch_guarded(slot, self._ctl_address, addrs, out)
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
        blocks = self._blocks
        for slot in slots:
            if blocks[slot, 2] == 0 and not shadow.has_longer(slot):
                # a slot without longer prefixes is a direct rid: one store, nothing to retire
                publish_u32(self._state.direct_address + 4 * slot, int(shadow.cover_rid[slot]))
                continue
            edge, rid = shadow.slot_ranges_scratch(slot)
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
        # The publication: one aligned 4-byte release store, after every word of the chunk.
        publish_u32(self._state.direct_address + 4 * slot, entry)
        row = self._blocks[slot]
        old_boff, old_poff, old_pwords = int(row[0]), int(row[1]), int(row[2])
        row[0], row[1], row[2] = boff, poff, pwords
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
        # +1/8: one growth after the build's headroom keeps a full table's lookup structure
        # under 8 MiB, and growths are rare enough (each copies the array: ~1 ms for the pool).
        size = max(need, len(old) + len(old) // 8 + 4096)
        if which == _POOL:
            size = min(size, _MAX_POOL_WORDS)
            if need > size:
                raise MemoryError(f"DXR pool needs {need} words, above {_MAX_POOL_WORDS}")
        new = _resized(old, size)
        # Readers of the old triple keep a consistent view; new readers take the new one.  The
        # direct table is copied too: entries published from now on may point past the old
        # arrays' ends.
        if which == _BITS:
            fresh = _DxrState(state.direct.copy(), new, state.pool, self._k)
        else:
            fresh = _DxrState(state.direct.copy(), state.bits, new, self._k)
        self._state = fresh
        publish_i64(self._ctl_address + 8, fresh.rec_address)
        self._retired_states.append((self.epochs.retire_epoch(), state))
        self.grown += 1

    def _reclaim(self) -> int:
        retired, states = self._retired, self._retired_states
        if not retired and not states:
            return 0
        safe = self.epochs.safe_epoch()
        freed = 0
        alloc = self._alloc
        while retired and retired[0][0] < safe:
            _, which, off, words = retired.popleft()
            alloc[which].release(off, words)
            freed += 1
        while states and states[0][0] < safe:
            states.popleft()
        self.reclaimed += freed
        return freed

    # -- accounting --
    def memory_bytes(self) -> int:
        """Bytes of the lookup structure (direct table, bitmaps, pool; spare room included).

        This is what lookups read and what the 8 MB target is about.  Writer-side bookkeeping
        is :meth:`control_bytes`; states replaced by a growth and still awaiting their grace
        period are not counted (they are freed once no reader can hold them).
        """
        state = self._state
        return int(state.direct.nbytes + state.bits.nbytes + state.pool.nbytes)

    def control_bytes(self) -> int:
        """Approximate bytes of the writer-side control structures, never read by lookups: the
        prefix shadow, the per-slot block table, the allocators' free maps and the retired
        lists (Python containers estimated)."""
        return int(
            self._shadow.control_bytes()
            + self._blocks.nbytes
            + sum(a.bookkeeping_bytes() for a in self._alloc)
            + 100 * (len(self._retired) + len(self._retired_states))
            + self.epochs.slots.nbytes
        )

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
            "retired_states": len(self._retired_states),
            "reclaimed": self.reclaimed,
            "memory_bytes": self.memory_bytes(),
            "control_bytes": self.control_bytes(),
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
    "full_fence",
    "global_ranges",
    "popcount64",
    "publish_i64",
    "publish_u32",
]
