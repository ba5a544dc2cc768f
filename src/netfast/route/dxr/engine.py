"""The :class:`Dxr` engine: bulk build, the lookup front (scalar and batch calls into the guarded
kernels), copy-on-write updates published with one release store, pool growth and epoch-based
reclamation, and the memory accounting.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from netfast.route.dxr.encode import _encode_all, _is_short, _write_bitmap, _write_long
from netfast.route.dxr.epoch import EpochSlots
from netfast.route.dxr.intrinsics import publish_i64, publish_u32
from netfast.route.dxr.layout import (
    _LONG_FLAGS,
    _MAX_POOL_WORDS,
    _SHORT_FLAG,
    I32,
    I64,
    MAX_RID,
    U32,
)
from netfast.route.dxr.lookup import _lookup_batch_guarded, _lookup_one_guarded
from netfast.route.dxr.pool import WordPool
from netfast.route.dxr.ranges import global_ranges
from netfast.route.dxr.shadow import SlotShadow
from netfast.route.rib import Rib, prefix_mask


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
        and looks up (package docstring); the wrapper only passes integers.
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
