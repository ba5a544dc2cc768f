"""The DXR lookup kernels: one address, a batch software-pipelined over groups of eight, the
unguarded batch kernels (the caller holds a grace period), and the guarded kernels that run the
whole reader protocol in one ``nogil`` call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from netfast.route.dxr.intrinsics import (
    _i64_ptr,
    _load_acquire,
    _store_release,
    _store_seq_cst,
    _u32_ptr,
    _u64_ptr,
    popcount64,
)


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


# The guarded kernels run the whole reader protocol (package docstring): publish the epoch with a
# seq_cst store, load the published root, look up, clear the slot with a release store.  The
# root is an int64[4] record: direct, bits and pool addresses, and k.


# ``nogil`` although the call lasts tens of nanoseconds: holding the GIL would be ~10% faster
# from Python (3.3 vs 3.0 M lookups/s measured), but a thread looping over scalar lookups then
# gives the GIL up only when forced, every switch interval, and a writer preempted mid-update
# waited those 5 ms (worst update 5 ms instead of ~0.5 ms).  Safety does not depend on the
# GIL either way (package docstring).
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
