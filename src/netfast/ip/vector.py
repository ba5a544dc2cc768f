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

from netfast.ip.iface import Interface, NextHop
from netfast.ip.input import IN_BAD_CHECKSUM, IN_BAD_LEN, IN_MARTIAN_DST, IN_MARTIAN_SRC
from netfast.pfil import Direction
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
_V_PASS = 0
_V_DROP = 1
_V_PUNT = 3

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
    for j in range(rows.shape[0]):
        r = rows[j]
        o = out[j]
        n = out_len[j]
        for k in range(n):
            o[k] = data[r, k]
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


def _batch_evaluator(hook: Any) -> tuple[BatchEvaluator, Any] | None:
    """The vector form of a pfil hook, and the object owning its counters: a hook that is the
    scalar entry (``hook``/``evaluate``) of an object with ``evaluate_batch``, or a callable
    object with ``evaluate_batch`` itself.  None: the hook can only run per packet."""
    owner = getattr(hook, "__self__", None)
    if owner is not None and getattr(hook, "__name__", "") in ("hook", "evaluate"):
        ev = getattr(owner, "evaluate_batch", None)
        if callable(ev):
            return ev, owner
    ev = getattr(hook, "evaluate_batch", None)
    if callable(ev):
        return ev, hook
    return None


def _counter_state(owners: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Copies of the per-rule counters of hook owners (ipfw's ``packets`` and ``bytes``)."""
    saved = []
    for owner in owners:
        arrays = {
            name: getattr(owner, name).copy()
            for name in ("packets", "bytes")
            if isinstance(getattr(owner, name, None), np.ndarray)
        }
        saved.append((owner, arrays))
    return saved


def _restore(saved: list[tuple[Any, dict[str, Any]]]) -> None:
    for owner, arrays in saved:
        for name, value in arrays.items():
            getattr(owner, name)[...] = value


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

    def _resolve(
        self,
        egress: npt.NDArray[np.int32],
        hop: npt.NDArray[np.uint32],
        vid: npt.NDArray[np.int32],
        via_gateway: npt.NDArray[np.bool_],
        nh: _NextHops,
        now: float,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
        """An array-friendly ARP snapshot: one cache lookup per distinct next hop of the batch
        (per route value for gateways, per destination on connected routes).  Returns each
        row's index into the returned ``(k, 6)`` MAC table, -1 when unresolved."""
        lookup = self.router.arp.lookup
        macs: list[bytes] = []
        index = np.full(len(egress), -1, np.int32)
        if via_gateway.any():
            used = np.flatnonzero(np.bincount(vid[via_gateway], minlength=nh.n_values))
            per_value = np.full(nh.n_values, -1, np.int32)
            for v in used.tolist():
                mac = lookup(int(nh.egress[v]), int(nh.gateway[v]), now)
                if mac is not None:
                    per_value[v] = len(macs)
                    macs.append(mac)
            index[via_gateway] = per_value[vid[via_gateway]]
        direct = ~via_gateway
        if direct.any():
            keys = (egress[direct].astype(np.uint64) << np.uint64(32)) | hop[direct]
            uniq, inverse = np.unique(keys, return_inverse=True)
            per_key = np.full(len(uniq), -1, np.int32)
            for j, key in enumerate(uniq.tolist()):
                mac = lookup(key >> 32, key & 0xFFFFFFFF, now)
                if mac is not None:
                    per_key[j] = len(macs)
                    macs.append(mac)
            index[direct] = per_key[inverse.reshape(-1)]
        table = np.frombuffer(b"".join(macs), np.uint8).reshape(-1, 6)
        return index, table

    # --- pfil ------------------------------------------------------------------------------

    def _pfil_plan(self) -> list[tuple[Direction, int | None, BatchEvaluator, Any]] | None:
        """The hooks to run, in order, as batch evaluators; None when one of them has no
        vector form (every candidate is then punted)."""
        heads = self.router.pfil
        plan: list[tuple[Direction, int | None, BatchEvaluator, Any]] = []
        if heads is None:
            return plan
        for d in (Direction.IN, Direction.FORWARD, Direction.OUT):
            if not heads.has_hooks(d):
                continue
            hooks = getattr(heads, "hooks", None)
            if hooks is None:
                return None
            for info in hooks(d):
                found = _batch_evaluator(info.hook)
                if found is None:
                    return None
                plan.append((d, info.ifindex, found[0], found[1]))
        return plan

    def _pfil_columns(
        self, batch: FrameBatch, rows: npt.NDArray[np.intp], cols: _Columns
    ) -> dict[str, npt.NDArray[np.int64]]:
        """The columns ``evaluate_batch`` reads, as the scalar path fills a PfilPacket: ports
        and flags only where the transport header's bytes are there (-1 elsewhere)."""
        total = cols.total_length[rows]
        proto = cols.proto[rows]
        l4 = np.empty((5, len(rows)), np.int64)
        if len(rows):
            _l4_kernel(np.ascontiguousarray(batch.data), rows, total, proto, l4)
        return {
            "src": cols.src[rows].astype(np.int64),
            "dst": cols.dst[rows].astype(np.int64),
            "proto": proto.astype(np.int64),
            "ttl": cols.ttl[rows].astype(np.int64),
            "length": total.astype(np.int64),
            "sport": l4[0],
            "dport": l4[1],
            "tcp_flags": l4[2],
            "icmp_type": l4[3],
            "icmp_code": l4[4],
        }

    def _firewall(
        self,
        plan: list[tuple[Direction, int | None, BatchEvaluator, Any]],
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
        saved = _counter_state(list({id(o): o for *_, o in plan}.values()))
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
            _restore(saved)
            late |= new_late

    # --- the path --------------------------------------------------------------------------

    def forward(self, batch: FrameBatch, ifindex: int, now: float) -> VectorResult:
        """Forward what the fast path can of ``batch`` (received on ``ifindex`` at ``now``);
        see the module docstring for the stages and the result."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface with index {ifindex}")
        n = len(batch)
        drops: Counter[str] = Counter()
        if n == 0:
            return VectorResult({}, np.empty(0, np.intp), drops)
        length = batch.length.astype(np.int64)
        c = _gather(batch)
        total = c.total_length.astype(np.int64)

        # 1. shape
        shape = (
            (c.ethertype == 0x0800)
            & (c.ver_ihl == 0x45)
            & (length >= L4_OFF)
            & (total + ETH_LEN <= length)
            & ~c.mac_group
        )
        # 2. integrity (RFC 1812 5.2.2) and martians (5.3.7), in the scalar path's order
        top_src = c.src >> 24
        top_dst = c.dst >> 24
        failed = [
            total < 20,
            c.header_sum != 0xFFFF,
            (top_src == 0) | (top_src == 127) | (top_src >= 224),
            (top_dst == 0) | (top_dst == 127) | ((top_dst >= 240) & (c.dst != _LIMITED_BROADCAST)),
        ]
        alive = shape.copy()
        dropped = np.zeros(n, np.bool_)
        for name, bad in zip(_INTEGRITY_DROPS, failed, strict=True):
            hit = alive & bad
            count = int(np.count_nonzero(hit))
            if count:
                drops[name] += count
                dropped |= hit
                alive &= ~hit
        # 3. fragments, TTL, multicast, local and broadcast go to the scalar path
        alive &= ((c.frag & _FRAG_ANY) == 0) & (c.ttl > 1) & ((top_dst >> 4) != 0xE)
        idx = np.flatnonzero(alive)
        dst = c.dst[idx]
        keep = ~self.router.local.local_mask(dst)
        idx, dst = idx[keep], dst[keep]
        # 4. FIB
        rid = self.router.table.lookup_batch(dst)
        keep = rid >= 0
        idx, dst, rid = idx[keep], dst[keep], rid[keep]
        # 5. next hop
        nh = self.nexthops()
        vid = self.router.table.rib.value_id[rid]
        keep = (vid >= 0) & (vid < nh.n_values)
        idx, dst, vid = idx[keep], dst[keep], vid[keep]
        egress = nh.egress[vid]
        # 6. MTU
        keep = (egress >= 0) & (c.total_length[idx] <= nh.mtu[vid])
        idx, dst, vid, egress = idx[keep], dst[keep], vid[keep], egress[keep]
        # 7. ARP
        via_gateway = nh.has_gateway[vid]
        hop = np.where(via_gateway, nh.gateway[vid], dst)
        mac_index, mac_table = self._resolve(egress, hop, vid, via_gateway, nh, now)
        keep = mac_index >= 0
        idx, egress, mac_index = idx[keep], egress[keep], mac_index[keep]
        # 8. pfil
        plan = self._pfil_plan()
        if plan is None:
            idx = idx[:0]
        elif plan and len(idx):
            verdict, head = self._firewall(plan, self._pfil_columns(batch, idx, c), ifindex, egress)
            for d in Direction:
                count = int(np.count_nonzero(head == int(d)))
                if count:
                    drops[_PFIL_DROP[d]] += count
            dropped[idx[verdict == _V_DROP]] = True
            keep = verdict == _V_PASS
            idx, egress, mac_index = idx[keep], egress[keep], mac_index[keep]
        # 9. rewrite into per-egress batches, input order kept within each egress
        out, out_rows = self._emit(batch, idx, egress, mac_index, mac_table, total)
        finished = int(np.count_nonzero(dropped)) + len(idx)
        if finished:
            drops[ETH_FRAMES] += finished
            drops[IN_RECEIVED] += finished
        if len(idx):
            drops[FWD_FORWARDED] += len(idx)
        done = dropped
        done[idx] = True
        return VectorResult(out, np.flatnonzero(~done), drops, out_rows)

    def _emit(
        self,
        batch: FrameBatch,
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
        out_len = (total[rows] + ETH_LEN).astype(np.int64)
        # Output slots just wide enough for these frames (64-byte multiples): copying whole
        # input slots would move more memory than the forwarding itself.
        width = min(batch.slot, max(64, -(-int(out_len.max()) // 64) * 64))
        data = np.zeros((len(rows), width), np.uint8)
        _emit_kernel(
            np.ascontiguousarray(batch.data),
            rows,
            out_len,
            mac_table,
            mac_index[order],
            self._src_mac,
            eg,
            data,
        )
        lengths = out_len.astype(np.uint32)
        stamps = batch.timestamp_ns[rows]
        out: dict[int, FrameBatch] = {}
        out_rows: dict[int, npt.NDArray[np.intp]] = {}
        for key in np.flatnonzero(np.diff(starts)).tolist():
            s, e = int(starts[key]), int(starts[key + 1])
            out[key] = FrameBatch(data[s:e], lengths[s:e], stamps[s:e])
            out_rows[key] = rows[s:e]
        return out, out_rows
