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

Modules
-------
- :mod:`~netfast.route.dxr.layout`     -- entry flags, rid limits, array aliases.
- :mod:`~netfast.route.dxr.intrinsics` -- raw pointers, atomics, fence, popcount for kernels.
- :mod:`~netfast.route.dxr.epoch`      -- :class:`EpochSlots`, the grace-period clock.
- :mod:`~netfast.route.dxr.ranges`     -- flattening prefixes into ranges.
- :mod:`~netfast.route.dxr.shadow`     -- :class:`SlotShadow`, the writer's prefix shadow.
- :mod:`~netfast.route.dxr.pool`       -- :class:`WordPool`, chunk space allocation.
- :mod:`~netfast.route.dxr.encode`     -- bitmap/long chunk encoders and the bulk encoder.
- :mod:`~netfast.route.dxr.lookup`     -- the lookup kernels, guarded and unguarded.
- :mod:`~netfast.route.dxr.engine`     -- :class:`Dxr`: build, lookups, updates, reclamation.
"""

from netfast.route.dxr.engine import Dxr
from netfast.route.dxr.epoch import EpochSlots
from netfast.route.dxr.intrinsics import full_fence, popcount64, publish_i64, publish_u32
from netfast.route.dxr.layout import MAX_RID, RID_NONE
from netfast.route.dxr.lookup import dxr_lookup_kernel, dxr_lookup_kernel_x8
from netfast.route.dxr.pool import WordPool
from netfast.route.dxr.ranges import flatten_ranges, global_ranges
from netfast.route.dxr.shadow import SlotShadow
from netfast.route.rib import NO_ROUTE

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
