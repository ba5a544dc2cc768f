"""The numba kernels: nogil lookups (scalar by address, batch by array) of both variants,
and the writer's key search (which keeps the GIL)."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from netfast.route.stride.layout import (
    _DEFAULT_SLOT,
    _FAST_HEADER,
    _ROOT,
    _U1,
    _U2,
    _U3,
    _U6,
    _U8,
    _U16,
    _U32,
    _U63,
    _UBITS,
    _UFIELD,
    _ULOW16,
    _ULOW32,
    _UML,
    _UPOISON,
    _URID,
    _UZERO,
    _U0xF,
    _U0xFF,
)


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
