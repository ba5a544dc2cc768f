"""The router's vector path: a whole batch of frames forwarded with numpy/numba, exceptions punted.

Why batches (the paper's "Cache Prefetch" section)
-------------------------------------------------
Oppermann's point is that a router spends its time waiting for memory: the first touch of every
packet header misses the cache, and prefetching the next packet's header while working on this
one hides that latency.  Python cannot issue prefetches, and its per-packet interpreter overhead
(a microsecond or more) would dwarf a cache miss anyway.  Batching is how Python gets the same
effect: one compiled pass walks the batch's headers in order (a predictable stride the hardware
prefetcher follows) and copies the fields every stage needs into dense columns; from then on each
stage is one numpy/numba operation over a column, with no per-packet Python work and no second
touch of the frames until the rewrite.

Contract (docs/ROUTER.md, "Vector path")
----------------------------------------
:meth:`VectorForwarder.forward` takes a :class:`~netfast.wire.batch.FrameBatch` received on one
interface and returns a :class:`VectorResult`:

- ``out``: per egress ifindex, a new FrameBatch of the forwarded frames, rewritten exactly as
  :meth:`netfast.ip.router.Router.input` would (destination MAC of the next hop, the egress
  interface's source MAC, TTL - 1 with the RFC 1624 incremental checksum update, link padding
  removed), in input order within each egress; ``out_rows`` gives each output frame's input row;
- ``punt``: the rows the scalar path must handle (``router.input`` on each, in order);
- ``drops``: the counters the scalar path would have counted for every row *not* punted (its
  drops, and ``ip.fwd.forwarded`` for what was forwarded), with the scalar path's names.  The
  caller adds them to its totals; :meth:`forward` never touches ``router.counters``.

So "vector path + punted rows through ``router.input``" ends with the same frames and the same
counters as ``router.input`` on every row (tests/ip/test_vector_differential.py).

Stages, in the scalar path's order (RFC 1812 5.2.2 checks first):

1. shape: untagged IPv4, IHL 5, whole header present, ``total_length`` within the frame, a unicast
   destination MAC (else punt);
2. integrity: total length below the header, bad header checksum, martian source/destination --
   dropped and counted here, like the scalar path (``ip.in.bad_len``, ``ip.in.bad_checksum``,
   ``ip.in.martian_src``, ``ip.in.martian_dst``);
3. not forwardable here (punt): fragments, local or broadcast or multicast destinations, TTL <= 1
   (the scalar path sends time exceeded);
4. FIB: ``RoutingTable.lookup_batch`` (no route: punt);
5. next hop: route id -> value id -> egress ifindex / gateway through per-value arrays rebuilt
   when the RIB interns new values (a value that is not a NextHop of a known interface: punt);
6. MTU: too big for the egress (punt: frag needed or fragmentation);
7. ARP: the next hop's MAC, looked up once per distinct next hop of the batch (unresolved: punt,
   the scalar path holds the packet and asks);
8. pfil: when the router's heads have hooks, every hook must offer ``evaluate_batch`` (an ipfw
   :class:`~netfast.pfil.ipfw.Ruleset`), else the rows are punted; IN, FORWARD and OUT are run in
   order, DROP is counted (``pfil.<head>.drop``), PUNT punts;
9. rewrite and group by egress: one compiled kernel copies each forwarded frame into its egress's
   output batch and rewrites it there.

Stages 1-8 run over chunks of :data:`CHUNK` rows so a chunk's columns stay in cache; stages 1-3
are one compiled walk over the headers (prefetching a few frames ahead, the paper's point), 5-7
another over the candidates; the FIB and the firewall are one call each per chunk.  ARP is looked
up once per distinct next hop of the whole batch.

Batch semantics
---------------
The batch is decided against the state at its start: ARP entries, the firewall's dynamic states.
A punted row handled afterwards by the scalar path may change that state (a keep-state rule
creating a state, an ARP reply changing a MAC); rows of the same batch already decided here do
not see the change, later batches do -- as in any batching router.  Static ARP entries and
stateless rules give results identical to the scalar path packet for packet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from netfast.ip.iface import Interface, NextHop
from netfast.ip.input import IN_BAD_CHECKSUM, IN_BAD_LEN, IN_MARTIAN_DST, IN_MARTIAN_SRC
from netfast.pfil import BatchHook, Direction, Verdict
from netfast.wire.batch import ETH_LEN, L4_OFF, FrameBatch

__all__ = ["VectorForwarder", "VectorResult", "FORWARDED_COUNTERS"]

# Counter names of the scalar path (netfast.ip.router); kept literal here so the vector path does
# not import the scalar one.  The differential test checks they agree.
ETH_FRAMES = "eth.in.frames"
IN_RECEIVED = "ip.in.received"
FWD_FORWARDED = "ip.fwd.forwarded"
#: What the scalar path counts for one frame it forwards.
FORWARDED_COUNTERS: tuple[str, ...] = (ETH_FRAMES, IN_RECEIVED, FWD_FORWARDED)
_PFIL_DROP = {
    Direction.IN: "pfil.in.drop",
    Direction.FORWARD: "pfil.forward.drop",
    Direction.OUT: "pfil.out.drop",
}
#: Integrity drops decided here, in the scalar path's check order.
_INTEGRITY_DROPS = (IN_BAD_LEN, IN_BAD_CHECKSUM, IN_MARTIAN_SRC, IN_MARTIAN_DST)

#: ``evaluate_batch`` verdicts (netfast.pfil.ipfw).
_V_PASS = int(Verdict.PASS)
_V_DROP = int(Verdict.DROP)
_V_PUNT = int(Verdict.PUNT)

_IPPROTO_ICMP = 1
_IPPROTO_TCP = 6
_IPPROTO_UDP = 17
_FRAG_ANY = 0x3FFF  # MF or a fragment offset
_LIMITED_BROADCAST = 0xFFFFFFFF

BatchEvaluator = Callable[..., npt.NDArray[np.uint8]]


@dataclass(slots=True)
class VectorResult:
    """What :meth:`VectorForwarder.forward` decided for one batch (see the module docstring)."""

    out: dict[int, FrameBatch]
    punt: npt.NDArray[np.intp]
    drops: Counter[str]
    out_rows: dict[int, npt.NDArray[np.intp]] = field(default_factory=dict)

    @property
    def forwarded(self) -> int:
        return sum(len(b) for b in self.out.values())


@dataclass(slots=True)
class _Columns:
    """The fields every stage needs, one dense array each (one pass over the frames)."""

    ethertype: npt.NDArray[np.uint16]
    ver_ihl: npt.NDArray[np.uint8]
    total_length: npt.NDArray[np.uint16]
    frag: npt.NDArray[np.uint16]
    ttl: npt.NDArray[np.uint8]
    proto: npt.NDArray[np.uint8]
    src: npt.NDArray[np.uint32]
    dst: npt.NDArray[np.uint32]
    header_sum: npt.NDArray[np.uint16]
    mac_group: npt.NDArray[np.bool_]


@numba.njit(nogil=True, cache=True)
def _gather_kernel(
    data: Any,
    length: Any,
    ethertype: Any,
    ver_ihl: Any,
    total_length: Any,
    frag: Any,
    ttl: Any,
    proto: Any,
    src: Any,
    dst: Any,
    header_sum: Any,
    mac_group: Any,
) -> None:  # pragma: no cover - compiled
    """One in-order walk over the headers: the prefetch-friendly pass the stages then reuse."""
    for i in range(data.shape[0]):
        row = data[i]
        mac_group[i] = (row[0] & 1) != 0
        ethertype[i] = (np.uint16(row[12]) << 8) | row[13]
        ver_ihl[i] = row[14]
        total_length[i] = (np.uint16(row[16]) << 8) | row[17]
        frag[i] = (np.uint16(row[20]) << 8) | row[21]
        ttl[i] = row[22]
        proto[i] = row[23]
        src[i] = (
            (np.uint32(row[26]) << 24)
            | (np.uint32(row[27]) << 16)
            | (np.uint32(row[28]) << 8)
            | np.uint32(row[29])
        )
        dst[i] = (
            (np.uint32(row[30]) << 24)
            | (np.uint32(row[31]) << 16)
            | (np.uint32(row[32]) << 8)
            | np.uint32(row[33])
        )
        # The 20-byte header's one's complement sum (0xFFFF when it verifies); only rows of the
        # right shape are looked at afterwards, so the sum is taken whatever IHL says.
        s = np.uint32(0)
        if length[i] >= 34:
            for j in range(14, 34, 2):
                s += (np.uint32(row[j]) << 8) | np.uint32(row[j + 1])
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
        header_sum[i] = s


#: Rows decided per pass of the stages: small enough that a chunk's columns stay in L2 next to
#: the FIB's hot lines (a 64k-row batch in one pass ran at less than half the rate).
CHUNK = 16384
#: How many rows ahead the header-touching kernels prefetch.
_PREFETCH_AHEAD = 16

# Per-row state of a batch (forward's ``state`` array).
_ROW_PUNT = 0
_ROW_DROPPED = 1
_ROW_FORWARDED = 2


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


@numba.njit(nogil=True, cache=True)
def _classify_kernel(
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
    """Stages 1-3 for rows ``lo:hi`` in one walk over their headers: shape (else punt),
    integrity and martians (dropped: ``state`` and ``counts`` in _INTEGRITY_DROPS order),
    fragments, TTL, multicast and local/broadcast destinations (punt; ``local`` is sorted).
    The rows left are written to ``cand`` (row, destination, total length); returns how many."""
    k = 0
    n_local = local.shape[0]
    for i in range(lo, hi):
        if i + _PREFETCH_AHEAD < hi:
            _prefetch_row(data, i + _PREFETCH_AHEAD)
        ln = np.int64(length[i])
        if (
            ln < L4_OFF
            or (data[i, 0] & 1) != 0
            or data[i, 12] != 0x08
            or data[i, 13] != 0x00
            or data[i, 14] != 0x45
        ):
            continue
        total = (np.int64(data[i, 16]) << 8) | np.int64(data[i, 17])
        if total + ETH_LEN > ln:
            continue
        if total < 20:
            counts[0] += 1
            state[i] = _ROW_DROPPED
            continue
        s = np.uint32(0)
        for j in range(14, 34, 2):
            s += (np.uint32(data[i, j]) << 8) | np.uint32(data[i, j + 1])
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        if s != 0xFFFF:
            counts[1] += 1
            state[i] = _ROW_DROPPED
            continue
        top = data[i, 26]
        if top == 0 or top == 127 or top >= 224:
            counts[2] += 1
            state[i] = _ROW_DROPPED
            continue
        dst = (
            (np.uint32(data[i, 30]) << 24)
            | (np.uint32(data[i, 31]) << 16)
            | (np.uint32(data[i, 32]) << 8)
            | np.uint32(data[i, 33])
        )
        top = data[i, 30]
        if top == 0 or top == 127 or (top >= 240 and dst != _LIMITED_BROADCAST):
            counts[3] += 1
            state[i] = _ROW_DROPPED
            continue
        if (data[i, 20] & 0x3F) != 0 or data[i, 21] != 0 or data[i, 22] <= 1 or (top >> 4) == 0xE:
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
def _nexthop_kernel(
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
def _mac_kernel(
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
def _pfil_kernel(data: Any, rows: Any, total: Any, out: Any) -> None:  # pragma: no cover
    """The columns ipfw's ``evaluate_batch`` reads, into ``out`` (10, n) int64, in the order of
    _PFIL_COLUMNS: src, dst, proto, ttl, length, then the transport fields, -1 where the scalar
    path's PfilPacket leaves them unset (transport bytes not all there)."""
    for j in range(rows.shape[0]):
        r = rows[j]
        if j + _PREFETCH_AHEAD < rows.shape[0]:
            _prefetch_row(data, rows[j + _PREFETCH_AHEAD])
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
        l4 = t - 20
        for k in range(5, 10):
            out[k, j] = -1
        if (p == _IPPROTO_TCP and l4 >= 14) or (p == _IPPROTO_UDP and l4 >= 4):
            out[5, j] = (np.int64(data[r, 34]) << 8) | data[r, 35]
            out[6, j] = (np.int64(data[r, 36]) << 8) | data[r, 37]
            if p == _IPPROTO_TCP:
                out[7, j] = data[r, 47]
        elif p == _IPPROTO_ICMP and l4 >= 2:
            out[8, j] = data[r, 34]
            out[9, j] = data[r, 35]


_PFIL_COLUMNS = (
    "src", "dst", "proto", "ttl", "length", "sport", "dport", "tcp_flags", "icmp_type", "icmp_code"
)  # fmt: skip


def _gather(batch: FrameBatch) -> _Columns:
    n = len(batch)
    cols = _Columns(
        np.empty(n, np.uint16),
        np.empty(n, np.uint8),
        np.empty(n, np.uint16),
        np.empty(n, np.uint16),
        np.empty(n, np.uint8),
        np.empty(n, np.uint8),
        np.empty(n, np.uint32),
        np.empty(n, np.uint32),
        np.empty(n, np.uint16),
        np.empty(n, np.bool_),
    )
    if n:
        _gather_kernel(
            np.ascontiguousarray(batch.data),
            batch.length,
            cols.ethertype,
            cols.ver_ihl,
            cols.total_length,
            cols.frag,
            cols.ttl,
            cols.proto,
            cols.src,
            cols.dst,
            cols.header_sum,
            cols.mac_group,
        )
    return cols


@numba.njit(nogil=True, cache=True)
def _emit_kernel(
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
        if j + _PREFETCH_AHEAD < rows.shape[0]:
            _prefetch_row(data, rows[j + _PREFETCH_AHEAD])
        r = rows[j]
        o = out[j]
        n = out_len[j]
        for k in range(n):
            o[k] = data[r, k]
        for k in range(n, width):
            o[k] = 0
        m = mac_index[j]
        e = egress[j]
        for k in range(6):
            o[k] = dst_mac[m, k]
            o[6 + k] = src_mac[e, k]
        ttl = np.uint32(o[22])
        word = (ttl << 8) | np.uint32(o[23])
        new_word = word - np.uint32(0x100)
        csum = (np.uint32(o[24]) << 8) | np.uint32(o[25])
        # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), as netfast.wire.checksum.update16.
        s = (~csum & np.uint32(0xFFFF)) + (~word & np.uint32(0xFFFF)) + new_word
        while s > 0xFFFF:
            s = (s & np.uint32(0xFFFF)) + (s >> np.uint32(16))
        new = ~s & np.uint32(0xFFFF)
        o[22] = ttl - 1
        o[24] = new >> 8
        o[25] = new & 0xFF


@numba.njit(nogil=True, cache=True)
def _l4_kernel(
    data: Any, rows: Any, total_length: Any, proto: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """sport, dport, tcp_flags, icmp_type, icmp_code of ``rows`` into ``out`` (5, n), -1 where
    the scalar path's PfilPacket leaves them unset (transport bytes not all there)."""
    for j in range(rows.shape[0]):
        r = rows[j]
        l4 = np.int64(total_length[j]) - 20
        p = proto[j]
        for k in range(5):
            out[k, j] = -1
        if (p == _IPPROTO_TCP and l4 >= 14) or (p == _IPPROTO_UDP and l4 >= 4):
            out[0, j] = (np.int64(data[r, 34]) << 8) | data[r, 35]
            out[1, j] = (np.int64(data[r, 36]) << 8) | data[r, 37]
            if p == _IPPROTO_TCP:
                out[2, j] = data[r, 47]
        elif p == _IPPROTO_ICMP and l4 >= 2:
            out[3, j] = data[r, 34]
            out[4, j] = data[r, 35]


@numba.njit(nogil=True, cache=True)
def _group_kernel(keys: Any, n_keys: int, order: Any, starts: Any) -> None:  # pragma: no cover
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


def _ttl_checksum_update(
    csum: npt.NDArray[np.integer], ttl: npt.NDArray[np.integer], proto: npt.NDArray[np.integer]
) -> npt.NDArray[np.uint16]:
    """Vectorized RFC 1624 update of the header checksum for TTL -> TTL - 1 (the numpy twin of
    the emit kernel's arithmetic, for tests and callers rewriting columns)."""
    word = (ttl.astype(np.uint32) << 8) | proto.astype(np.uint32)
    s = (~csum.astype(np.uint32) & 0xFFFF) + (~word & 0xFFFF) + (word - 0x100)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).astype(np.uint16)


@dataclass(slots=True)
class _NextHops:
    """Per interned RIB value: the egress ifindex (-1: not a usable NextHop), the gateway and
    whether there is one, and the egress MTU."""

    n_values: int
    egress: npt.NDArray[np.int32]
    gateway: npt.NDArray[np.uint32]
    has_gateway: npt.NDArray[np.bool_]
    mtu: npt.NDArray[np.int32]


class VectorForwarder:
    """The vector path of ``router`` (a :class:`netfast.ip.router.Router`): shares its routing
    table, local addresses, pfil heads and ARP cache, and keeps only caches derived from them.

    Parameters
    ----------
    router:
        The scalar router; read through ``interfaces`` (ifindex -> Interface), ``table``,
        ``local``, ``pfil`` and ``arp``.
    """

    def __init__(self, router: Any) -> None:
        self.router = router
        ifaces = router.interfaces
        self.interfaces: dict[int, Interface] = dict(
            ifaces if isinstance(ifaces, Mapping) else {i.index: i for i in ifaces}
        )
        if not self.interfaces:
            raise ValueError("a router without interfaces")
        top = max(self.interfaces) + 1
        if min(self.interfaces) < 0:
            raise ValueError("interface indexes must be >= 0")
        self._src_mac = np.zeros((top, 6), np.uint8)
        self._mtu = np.full(top, -1, np.int32)
        for i, iface in self.interfaces.items():
            self._src_mac[i] = np.frombuffer(iface.mac, np.uint8)
            self._mtu[i] = iface.mtu
        self._nexthops = _NextHops(
            -1,
            np.empty(0, np.int32),
            np.empty(0, np.uint32),
            np.empty(0, np.bool_),
            np.empty(0, np.int32),
        )
        self._local: npt.NDArray[np.uint32] = np.empty(0, np.uint32)
        self._local_key: tuple[int, int] | None = None

    # --- caches ----------------------------------------------------------------------------

    def nexthops(self) -> _NextHops:
        """The per-value next-hop arrays, rebuilt when the RIB has interned new values (values
        are immutable and never removed, so the count is the version)."""
        values = self.router.table.rib.values
        cache = self._nexthops
        if cache.n_values == len(values):
            return cache
        n = len(values)
        egress = np.full(n, -1, np.int32)
        gateway = np.zeros(n, np.uint32)
        has_gateway = np.zeros(n, np.bool_)
        for vid, value in enumerate(values):
            if isinstance(value, NextHop) and value.ifindex in self.interfaces:
                egress[vid] = value.ifindex
                if value.gateway is not None:
                    gateway[vid] = value.gateway
                    has_gateway[vid] = True
        mtu = np.where(egress >= 0, self._mtu[np.maximum(egress, 0)], -1).astype(np.int32)
        self._nexthops = _NextHops(n, egress, gateway, has_gateway, mtu)
        return self._nexthops

    def _local_sorted(self) -> npt.NDArray[np.uint32]:
        """The router's local and broadcast addresses, sorted (for the classify kernel)."""
        local = self.router.local
        key = (id(local.unicast_array), id(local.broadcast_array))
        if self._local_key != key:
            self._local = np.unique(
                np.concatenate([local.unicast_array, local.broadcast_array]).astype(np.uint32)
            )
            self._local_key = key
        return self._local

    # --- pfil ------------------------------------------------------------------------------

    def _pfil_plan(self) -> list[tuple[Direction, int | None, BatchEvaluator, BatchHook]] | None:
        """The hooks to run, in order, as batch evaluators; None when one of them has no
        vector form (every candidate is then punted)."""
        heads = self.router.pfil
        plan: list[tuple[Direction, int | None, BatchEvaluator, BatchHook]] = []
        if heads is None:
            return plan
        for d in (Direction.IN, Direction.FORWARD, Direction.OUT):
            if not heads.has_hooks(d):
                continue
            for info in heads.hooks(d):
                if info.batch is None:
                    return None
                plan.append((d, info.ifindex, info.batch.evaluate_batch, info.batch))
        return plan

    def _pfil_columns(
        self, data: npt.NDArray[np.uint8], rows: npt.NDArray[np.intp], total: npt.NDArray[np.int64]
    ) -> dict[str, npt.NDArray[np.int64]]:
        """The columns ``evaluate_batch`` reads, as the scalar path fills a PfilPacket: ports
        and flags only where the transport header's bytes are there (-1 elsewhere)."""
        out = np.empty((len(_PFIL_COLUMNS), len(rows)), np.int64)
        _pfil_kernel(data, rows, total, out)
        return dict(zip(_PFIL_COLUMNS, out, strict=True))

    def _firewall(
        self,
        plan: list[tuple[Direction, int | None, BatchEvaluator, BatchHook]],
        pcols: dict[str, npt.NDArray[np.int64]],
        ifindex: int,
        egress: npt.NDArray[np.int32],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8]]:
        """Verdict per candidate (PASS/DROP/PUNT) and the head that decided a DROP.

        The scalar path runs IN, FORWARD and OUT in turn; a packet one head passes and a later
        head punts would be counted twice by the earlier head's rules (here, then again by the
        scalar path).  Verdicts are per-packet functions, so when that happens the rule counters
        are restored and the heads rerun without the punted packets."""
        n = len(egress)
        if len(plan) == 1 and plan[0][1] is None:
            # One unbound hook sees every candidate: no later head can punt what it passed.
            d, _, evaluate, _ = plan[0]
            v = np.asarray(evaluate(pcols, d, egress if d == Direction.OUT else ifindex), np.uint8)
            return v, np.where(v == _V_DROP, int(d), -1).astype(np.int8)
        owners = list({id(o): o for *_, o in plan}.values())
        saved = [(o, o.counter_snapshot()) for o in owners]
        late = np.zeros(n, np.bool_)
        while True:
            verdict = np.where(late, _V_PUNT, _V_PASS).astype(np.uint8)
            head = np.full(n, -1, np.int8)
            seen = np.zeros(n, np.bool_)
            new_late = np.zeros(n, np.bool_)
            for d, bound, evaluate, _owner in plan:
                todo = verdict == _V_PASS
                if bound is not None:
                    if d == Direction.OUT:
                        todo &= egress == bound
                    elif bound != ifindex:
                        continue
                sel = np.flatnonzero(todo)
                if len(sel) == 0:
                    continue
                sub = {k: v[sel] for k, v in pcols.items()}
                ifx: Any = egress[sel] if d == Direction.OUT else ifindex
                v = np.asarray(evaluate(sub, d, ifx), np.uint8)
                verdict[sel] = v
                head[sel[v == _V_DROP]] = int(d)
                new_late[sel[(v == _V_PUNT) & seen[sel]]] = True
                seen[sel] = True
            if not new_late.any():
                return verdict, head
            # Each round only removes rows, so this ends (in practice after one rerun).
            for owner, snapshot in saved:
                owner.counter_restore(snapshot)
            late |= new_late

    # --- the path --------------------------------------------------------------------------

    def forward(self, batch: FrameBatch, ifindex: int, now: float) -> VectorResult:
        """Forward what the fast path can of ``batch`` (received on ``ifindex`` at ``now``);
        see the module docstring for the stages and the result.

        Stages 1-8 run over chunks of :data:`CHUNK` rows (one compiled walk for shape,
        integrity, martians and local, the FIB, one walk for next hop and MTU, ARP, the
        firewall), so a chunk's columns stay in cache; the rewrite runs once over the batch."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface with index {ifindex}")
        n = len(batch)
        drops: Counter[str] = Counter()
        if n == 0:
            return VectorResult({}, np.empty(0, np.intp), drops)
        data = np.ascontiguousarray(batch.data)
        length = batch.length
        local = self._local_sorted()
        plan = self._pfil_plan()
        nh = self.nexthops()
        arp = _ArpSnapshot(self.router.arp.lookup, nh, now)
        table = self.router.table
        state = np.zeros(n, np.int8)
        counts = np.zeros(len(_INTEGRITY_DROPS), np.int64)
        m = min(n, CHUNK)
        cand = np.empty(m, np.intp)
        cand_dst = np.empty(m, np.uint32)
        cand_total = np.empty(m, np.int64)
        vid = np.empty(m, np.int32)
        egress = np.empty(m, np.int32)
        hop = np.empty(m, np.uint32)
        pieces: list[tuple[npt.NDArray[Any], ...]] = []
        pfil_drops = [0, 0, 0]
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            # 1-3. shape, integrity and martians, then what only the scalar path forwards
            k = _classify_kernel(
                data, length, lo, hi, local, state, counts, cand, cand_dst, cand_total
            )
            if k == 0 or plan is None:
                continue
            # 4. FIB; 5-6. next hop and MTU
            rid = table.lookup_batch(cand_dst[:k])
            k, direct = _nexthop_kernel(
                k,
                cand,
                cand_dst,
                cand_total,
                rid,
                table.rib.value_id,
                nh.n_values,
                nh.egress,
                nh.mtu,
                nh.has_gateway,
                nh.gateway,
                arp.per_value,
                vid,
                egress,
                hop,
            )
            if k == 0:
                continue
            # 7. ARP
            direct_mac = arp.resolve(vid[:k], egress[:k], hop[:k], direct)
            k = _mac_kernel(
                k, cand, cand_total, vid, egress, nh.has_gateway, arp.per_value, direct_mac
            )
            rows, eg, mac, total = cand[:k], egress[:k], vid[:k], cand_total[:k]
            # 8. pfil
            if plan and k:
                verdict, head = self._firewall(
                    plan, self._pfil_columns(data, rows, total), ifindex, eg
                )
                for d in Direction:
                    pfil_drops[d] += int(np.count_nonzero(head == int(d)))
                state[rows[verdict == _V_DROP]] = _ROW_DROPPED
                keep = verdict == _V_PASS
                rows, eg, mac, total = rows[keep], eg[keep], mac[keep], total[keep]
            if len(rows):
                state[rows] = _ROW_FORWARDED
                single = lo + CHUNK >= n  # the buffers are not reused after the last chunk
                pieces.append(tuple(a if single else a.copy() for a in (rows, eg, mac, total)))
        for name, count in zip(_INTEGRITY_DROPS, counts.tolist(), strict=True):
            if count:
                drops[name] += count
        for d in Direction:
            if pfil_drops[d]:
                drops[_PFIL_DROP[d]] += pfil_drops[d]
        # 9. rewrite into per-egress batches, input order kept within each egress
        if len(pieces) == 1:
            rows, eg, mac, total = pieces[0]
        elif pieces:
            rows, eg, mac, total = (np.concatenate(parts) for parts in zip(*pieces, strict=True))
        else:
            rows, eg, mac, total = (
                np.empty(0, np.intp),
                np.empty(0, np.int32),
                np.empty(0, np.int32),
                np.empty(0, np.int64),
            )
        out, out_rows = self._emit(batch, data, rows, eg, mac, arp.mac_table(), total)
        forwarded = len(rows)
        finished = int(np.count_nonzero(state == _ROW_DROPPED)) + forwarded
        if finished:
            drops[ETH_FRAMES] += finished
            drops[IN_RECEIVED] += finished
        if forwarded:
            drops[FWD_FORWARDED] += forwarded
        return VectorResult(out, np.flatnonzero(state == _ROW_PUNT), drops, out_rows)

    def _emit(
        self,
        batch: FrameBatch,
        data: npt.NDArray[np.uint8],
        idx: npt.NDArray[np.intp],
        egress: npt.NDArray[np.int32],
        mac_index: npt.NDArray[np.int32],
        mac_table: npt.NDArray[np.uint8],
        total: npt.NDArray[np.int64],
    ) -> tuple[dict[int, FrameBatch], dict[int, npt.NDArray[np.intp]]]:
        if len(idx) == 0:
            return {}, {}
        n_if = len(self._mtu)
        order = np.empty(len(idx), np.int64)
        starts = np.zeros(n_if + 1, np.int64)
        _group_kernel(egress, n_if, order, starts)
        rows = idx[order]
        eg = egress[order]
        out_len = total[order] + ETH_LEN
        # Output slots just wide enough for these frames (64-byte multiples): copying whole
        # input slots would move more memory than the forwarding itself.
        width = min(batch.slot, max(64, -(-int(out_len.max()) // 64) * 64))
        out_data = np.empty((len(rows), width), np.uint8)  # every byte written by the kernel
        _emit_kernel(data, rows, out_len, mac_table, mac_index[order], self._src_mac, eg, out_data)
        lengths = out_len.astype(np.uint32)
        stamps = batch.timestamp_ns[rows]
        out: dict[int, FrameBatch] = {}
        out_rows: dict[int, npt.NDArray[np.intp]] = {}
        for key in np.flatnonzero(np.diff(starts)).tolist():
            s, e = int(starts[key]), int(starts[key + 1])
            out[key] = FrameBatch(out_data[s:e], lengths[s:e], stamps[s:e])
            out_rows[key] = rows[s:e]
        return out, out_rows


class _ArpSnapshot:
    """The ARP answers of one batch, each next hop looked up once (per route value for
    gateways, per (egress, destination) on connected routes): MAC indexes into ``macs``, -1 for
    an unresolved next hop."""

    __slots__ = ("direct", "lookup", "macs", "nh", "now", "per_value")

    def __init__(
        self, lookup: Callable[[int, int, float], bytes | None], nh: _NextHops, now: float
    ):
        self.lookup = lookup
        self.nh = nh
        self.now = now
        self.macs: list[bytes] = []
        #: per route value: -2 not needed yet, -3 needed (set by the next-hop kernel), -1
        #: unresolved, else the MAC's index
        self.per_value = np.full(max(nh.n_values, 1), -2, np.int32)
        self.direct: dict[int, int] = {}

    def _index(self, ifindex: int, addr: int) -> int:
        mac = self.lookup(ifindex, addr, self.now)
        if mac is None:
            return -1
        self.macs.append(mac)
        return len(self.macs) - 1

    def resolve(
        self,
        vid: npt.NDArray[np.int32],
        egress: npt.NDArray[np.int32],
        hop: npt.NDArray[np.uint32],
        direct: int,
    ) -> npt.NDArray[np.int32]:
        """Look up the gateway values the kernel marked; returns the MAC index of each row on
        a connected route (``direct`` of them), in row order."""
        nh = self.nh
        for v in np.flatnonzero(self.per_value == -3).tolist():
            self.per_value[v] = self._index(int(nh.egress[v]), int(nh.gateway[v]))
        if not direct:
            return np.empty(0, np.int32)
        sel = ~nh.has_gateway[vid]
        keys = (egress[sel].astype(np.uint64) << np.uint64(32)) | hop[sel]
        uniq, inverse = np.unique(keys, return_inverse=True)
        per_key = np.empty(len(uniq), np.int32)
        for j, key in enumerate(uniq.tolist()):
            index = self.direct.get(key)
            if index is None:
                index = self.direct[key] = self._index(key >> 32, key & 0xFFFFFFFF)
            per_key[j] = index
        return per_key[inverse.reshape(-1)]

    def mac_table(self) -> npt.NDArray[np.uint8]:
        return np.frombuffer(b"".join(self.macs), np.uint8).reshape(-1, 6)
