"""What both variants share: the (pool, buckets) pair, readers' epoch slots and lookup
wrappers, the writer's allocator, grace-period reclamation, insert and delete."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from netfast.route.rib import Rib, format_prefix
from netfast.route.stride.build import bulk_build
from netfast.route.stride.kernels import _find_key
from netfast.route.stride.layout import (
    _DEFAULT_SLOT,
    _FIELD_MASK,
    _POISON_OFF,
    _RESERVED,
    _RID_SHIFT,
    _ROOT,
    MAX_BUCKETS,
    MAX_RID,
    POISON,
    _descriptor,
    _entry,
)
from netfast.sync import ReaderSlots


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
        pool, buckets, sizes, used, top = bulk_build(rib, self._a.pool, cls._header)
        self._bucket_sizes = sizes
        self._pool_top = used
        self._bucket_top = top
        self._a = _arrays(pool, buckets)
        return self

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
