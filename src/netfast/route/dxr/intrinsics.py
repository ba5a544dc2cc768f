"""LLVM intrinsics the DXR kernels are written with: raw pointers from integer addresses, atomic
loads and stores, a full fence and popcount; and the compiled fence/publish helpers the writer
calls from Python.  The orderings are the reader protocol's (see :mod:`netfast.route.dxr`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


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


def _popcount64(typingctx: Any, x: Any) -> Any:
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


popcount64: Any = intrinsic(_popcount64)
"""The CPU's population count of a uint64 (LLVM ``ctpop``), callable from kernels."""
