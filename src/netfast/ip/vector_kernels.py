"""The vector path's compiled walks (numba): classify, next hop, MAC, pfil columns, emit.

Contract
--------
These kernels are the inner loops of :class:`netfast.ip.vector.VectorForwarder` (whose module
docstring gives the stages and the paper's "Cache Prefetch" argument behind them); each works on
dense columns of one batch and allocates nothing per row.  They compute the protocol facts
through the shared helpers of :mod:`netfast.ip.facts` (martians, RFC 1812 5.3.7; the header sum,
RFC 1071; TTL - 1 with RFC 1624's update; the transport fields), the same definitions the scalar
path's Python twins are tested against, so the two paths cannot drift apart.

Row states written to ``state`` are :data:`ROW_PUNT`, :data:`ROW_DROPPED` and
:data:`ROW_FORWARDED`; :data:`PFIL_COLUMNS` names the rows of :func:`pfil_kernel`'s output.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from netfast.ip.facts import (
    nb_ipv4_header_sum,
    nb_martian_dst,
    nb_martian_src,
    nb_ttl_decrement_checksum,
)
from netfast.wire.batch import ETH_LEN, L4_OFF
from netfast.wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

__all__ = [
    "PFIL_COLUMNS",
    "PREFETCH_AHEAD",
    "ROW_DROPPED",
    "ROW_FORWARDED",
    "ROW_PUNT",
    "classify_kernel",
    "emit_kernel",
    "group_kernel",
    "mac_kernel",
    "nexthop_kernel",
    "pfil_kernel",
]

#: How many rows ahead the header-touching kernels prefetch.
PREFETCH_AHEAD = 16

# Per-row state of a batch (forward's ``state`` array).
ROW_PUNT = 0
ROW_DROPPED = 1
ROW_FORWARDED = 2


def _prefetch_row_typer(typingctx: Any, arr: Any, row: Any) -> Any:  # pragma: no cover - compiled
    """Prefetch the first cache line of ``arr[row]`` (``llvm.prefetch``, read, keep): the paper's
    cache prefetch, issued a few frames ahead of the one being looked at."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        stride = builder.extract_value(ary.strides, 0)
        base = builder.ptrtoint(ary.data, cgutils.intp_t)
        ptr = builder.inttoptr(builder.add(base, builder.mul(idx, stride)), cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, row), codegen


_prefetch_row: Any = intrinsic(_prefetch_row_typer)


@numba.njit(nogil=True, cache=True, inline="always")
def _u32(data: Any, i: Any, off: int) -> Any:  # pragma: no cover - compiled
    """The big-endian 32-bit word at ``data[i, off:off + 4]`` (an IPv4 address)."""
    return (
        (np.uint32(data[i, off]) << 24)
        | (np.uint32(data[i, off + 1]) << 16)
        | (np.uint32(data[i, off + 2]) << 8)
        | np.uint32(data[i, off + 3])
    )


@numba.njit(nogil=True, cache=True)
def classify_kernel(
    data: Any,
    length: Any,
    lo: int,
    hi: int,
    local: Any,
    state: Any,
    counts: Any,
    cand: Any,
    cand_dst: Any,
    cand_total: Any,
) -> int:  # pragma: no cover - compiled
    """Stages 1-3 for rows ``lo:hi`` in one walk over their headers: shape (not IPv4 over
    unicast Ethernet, or IP options: punt), integrity and martians (dropped: ``state``, and
    ``counts`` in the order bad length, bad checksum, martian source, martian destination,
    too short, bad version, bad header length -- the scalar path's checks), fragments, TTL,
    multicast and local/broadcast destinations (punt; ``local`` is sorted).
    The rows left are written to ``cand`` (row, destination, total length); returns how many."""
    k = 0
    n_local = local.shape[0]
    for i in range(lo, hi):
        if i + PREFETCH_AHEAD < hi:
            _prefetch_row(data, i + PREFETCH_AHEAD)
        ln = np.int64(length[i])
        if ln < ETH_LEN or (data[i, 0] & 1) != 0 or data[i, 12] != 0x08 or data[i, 13] != 0x00:
            continue
        if ln < L4_OFF:
            counts[4] += 1
            state[i] = ROW_DROPPED
            continue
        vhl = data[i, 14]
        if (vhl >> 4) != 4:
            counts[5] += 1
            state[i] = ROW_DROPPED
            continue
        if (vhl & 0x0F) < 5:
            counts[6] += 1
            state[i] = ROW_DROPPED
            continue
        if vhl != 0x45:
            continue  # options: the scalar path checks and walks them
        total = (np.int64(data[i, 16]) << 8) | np.int64(data[i, 17])
        if total < 20 or total + ETH_LEN > ln:
            counts[0] += 1
            state[i] = ROW_DROPPED
            continue
        if nb_ipv4_header_sum(data[i], ETH_LEN) != 0xFFFF:
            counts[1] += 1
            state[i] = ROW_DROPPED
            continue
        if nb_martian_src(_u32(data, i, 26)):
            counts[2] += 1
            state[i] = ROW_DROPPED
            continue
        dst = _u32(data, i, 30)
        if nb_martian_dst(dst):
            counts[3] += 1
            state[i] = ROW_DROPPED
            continue
        if (data[i, 20] & 0x3F) != 0 or data[i, 21] != 0 or data[i, 22] <= 1 or (dst >> 28) == 0xE:
            continue
        # local or broadcast: binary search of the sorted local addresses
        a, b = 0, n_local
        while a < b:
            m = (a + b) >> 1
            if local[m] < dst:
                a = m + 1
            else:
                b = m
        if a < n_local and local[a] == dst:
            continue
        cand[k] = i
        cand_dst[k] = dst
        cand_total[k] = total
        k += 1
    return k


@numba.njit(nogil=True, cache=True)
def nexthop_kernel(
    k: int,
    cand: Any,
    cand_dst: Any,
    cand_total: Any,
    rid: Any,
    value_id: Any,
    n_values: int,
    nh_egress: Any,
    nh_mtu: Any,
    nh_has_gateway: Any,
    nh_gateway: Any,
    per_value: Any,
    out_vid: Any,
    out_egress: Any,
    out_hop: Any,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Stages 4-6 after the FIB lookup, compacting ``cand``: route found, value a usable
    NextHop, fits the egress MTU.  Marks in ``per_value`` (-2: not looked up yet -> -3) the
    gateway values whose ARP entry is needed; ``out_hop`` is 0 for gateway routes, else the
    destination.  Returns (rows kept, how many of them are on connected routes)."""
    j = 0
    direct = 0
    for i in range(k):
        r = rid[i]
        if r < 0:
            continue
        v = value_id[r]
        if v < 0 or v >= n_values:
            continue
        e = nh_egress[v]
        if e < 0 or cand_total[i] > nh_mtu[v]:
            continue
        cand[j] = cand[i]
        cand_total[j] = cand_total[i]
        out_vid[j] = v
        out_egress[j] = e
        if nh_has_gateway[v]:
            out_hop[j] = 0
            if per_value[v] == -2:
                per_value[v] = -3
        else:
            out_hop[j] = cand_dst[i]
            direct += 1
        j += 1
    return j, direct


@numba.njit(nogil=True, cache=True)
def mac_kernel(
    k: int,
    cand: Any,
    cand_total: Any,
    vid: Any,
    egress: Any,
    nh_has_gateway: Any,
    per_value: Any,
    direct_mac: Any,
) -> int:  # pragma: no cover - compiled
    """Stage 7, compacting: each row's MAC index (``per_value`` for gateway routes,
    ``direct_mac`` in order for connected ones); rows without a resolved MAC are dropped from
    the list (punted).  ``vid`` is overwritten with the MAC index."""
    j = 0
    d = 0
    for i in range(k):
        v = vid[i]
        if nh_has_gateway[v]:
            m = per_value[v]
        else:
            m = direct_mac[d]
            d += 1
        if m < 0:
            continue
        cand[j] = cand[i]
        cand_total[j] = cand_total[i]
        egress[j] = egress[i]
        vid[j] = m
        j += 1
    return j


@numba.njit(nogil=True, cache=True)
def pfil_kernel(data: Any, rows: Any, total: Any, out: Any) -> None:  # pragma: no cover
    """The columns ipfw's ``evaluate_batch`` reads, into ``out`` (10, n) int64, in the order of
    PFIL_COLUMNS: src, dst, proto, ttl, length, then the transport fields, -1 where the scalar
    path's PfilPacket leaves them unset (transport bytes not all there)."""
    for j in range(rows.shape[0]):
        r = rows[j]
        if j + PREFETCH_AHEAD < rows.shape[0]:
            _prefetch_row(data, rows[j + PREFETCH_AHEAD])
        out[0, j] = (
            (np.int64(data[r, 26]) << 24)
            | (np.int64(data[r, 27]) << 16)
            | (np.int64(data[r, 28]) << 8)
            | np.int64(data[r, 29])
        )
        out[1, j] = (
            (np.int64(data[r, 30]) << 24)
            | (np.int64(data[r, 31]) << 16)
            | (np.int64(data[r, 32]) << 8)
            | np.int64(data[r, 33])
        )
        p = data[r, 23]
        out[2, j] = p
        out[3, j] = data[r, 22]
        t = np.int64(total[j])
        out[4, j] = t
        # The transport fields (netfast.ip.facts.l4_fields is the Python twin, tested against
        # this kernel); spelled out because an inlined helper measured 30% slower here.
        l4 = t - 20
        for k in range(5, 10):
            out[k, j] = -1
        if (p == IPPROTO_TCP and l4 >= 14) or (p == IPPROTO_UDP and l4 >= 4):
            out[5, j] = (np.int64(data[r, 34]) << 8) | data[r, 35]
            out[6, j] = (np.int64(data[r, 36]) << 8) | data[r, 37]
            if p == IPPROTO_TCP:
                out[7, j] = data[r, 47]
        elif p == IPPROTO_ICMP and l4 >= 2:
            out[8, j] = data[r, 34]
            out[9, j] = data[r, 35]


PFIL_COLUMNS = (
    "src", "dst", "proto", "ttl", "length", "sport", "dport", "tcp_flags", "icmp_type", "icmp_code"
)  # fmt: skip


@numba.njit(nogil=True, cache=True)
def emit_kernel(
    data: Any,
    rows: Any,
    out_len: Any,
    dst_mac: Any,
    mac_index: Any,
    src_mac: Any,
    egress: Any,
    out: Any,
) -> None:  # pragma: no cover - compiled
    """Copy each forwarded frame (Ethernet header + IP packet, link padding dropped) into its
    output row and rewrite it there: MACs, TTL - 1, RFC 1624 checksum update."""
    width = out.shape[1]
    for j in range(rows.shape[0]):
        if j + PREFETCH_AHEAD < rows.shape[0]:
            _prefetch_row(data, rows[j + PREFETCH_AHEAD])
        r = rows[j]
        o = out[j]
        n = out_len[j]
        if n <= 128:  # small frames: a plain loop beats the slice set-up
            for k in range(n):
                o[k] = data[r, k]
            for k in range(n, width):
                o[k] = 0
        else:
            o[:n] = data[r, :n]
            o[n:width] = 0
        m = mac_index[j]
        e = egress[j]
        for k in range(6):
            o[k] = dst_mac[m, k]
            o[6 + k] = src_mac[e, k]
        ttl = o[22]
        csum = (np.uint32(o[24]) << 8) | np.uint32(o[25])
        new = nb_ttl_decrement_checksum(csum, ttl, o[23])
        o[22] = ttl - 1
        o[24] = new >> 8
        o[25] = new & 0xFF


@numba.njit(nogil=True, cache=True)
def group_kernel(keys: Any, n_keys: int, order: Any, starts: Any) -> None:  # pragma: no cover
    """Counting sort of small non-negative ``keys``: ``order`` lists the positions key by key,
    stable within a key; ``starts[k]:starts[k + 1]`` is key k's range."""
    for i in range(keys.shape[0]):
        starts[keys[i] + 1] += 1
    for k in range(n_keys):
        starts[k + 1] += starts[k]
    fill = starts[:-1].copy()
    for i in range(keys.shape[0]):
        k = keys[i]
        order[fill[k]] = i
        fill[k] += 1
