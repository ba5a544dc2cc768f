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

from netfast.route.stride.base import StrideStats
from netfast.route.stride.layout import POISON
from netfast.route.stride.variants import StrideFib, StrideSortedFib

__all__ = ["POISON", "StrideFib", "StrideSortedFib", "StrideStats"]
