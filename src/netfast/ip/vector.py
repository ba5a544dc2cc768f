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

1. shape: untagged IPv4 to a unicast destination MAC, without IP options (else punt);
2. integrity, in the scalar path's order: no room for a header, a version other than 4, a header
   length below 5 words, a total length below the header or beyond the frame, a bad header
   checksum, a martian source or destination -- dropped and counted here as the scalar path
   counts them (``ip.in.too_short``, ``ip.in.bad_version``, ``ip.in.bad_hlen``,
   ``ip.in.bad_len``, ``ip.in.bad_checksum``, ``ip.in.martian_src``, ``ip.in.martian_dst``), with
   the definitions of :mod:`netfast.ip.facts`;
3. not forwardable here (punt): fragments, local or broadcast or multicast destinations, TTL <= 1
   (the scalar path sends time exceeded);
4. FIB: ``RoutingTable.lookup_batch`` (no route: punt);
5. next hop: route id -> value id -> egress ifindex / gateway through per-value arrays rebuilt
   when the RIB interns new values (a value that is not a NextHop of a known interface: punt);
6. MTU: too big for the egress (punt: frag needed or fragmentation);
7. ARP: the next hop's MAC, looked up once per distinct next hop of the batch (unresolved: punt,
   the scalar path holds the packet and asks);
8. pfil: when the router's heads have hooks, every hook must have a batch form
   (``HookInfo.batch``, a :class:`~netfast.pfil.BatchHook`), else the rows are punted; IN, FORWARD
   and OUT are run in order, DROP is counted (``pfil.<head>.drop``), PUNT punts;
9. rewrite and group by egress: one compiled kernel copies each forwarded frame into its egress's
   output batch and rewrites it there (TTL - 1 and the checksum by
   :func:`netfast.ip.facts.nb_ttl_decrement_checksum`).

Stages 1-8 run over chunks of :data:`CHUNK` rows so a chunk's columns stay in cache; stages 1-3
are one compiled walk over the headers (prefetching a few frames ahead, the paper's point), 5-7
another over the candidates; the FIB and the firewall are one call each per chunk.  ARP is looked
up once per distinct next hop of the whole batch.  The compiled walks are in
:mod:`netfast.ip.vector_kernels`; this module holds the caches and the orchestration, and its
counter names are the scalar path's (:mod:`netfast.ip.router`).

Batch semantics
---------------
Punted rows are handled by the scalar path after the rows decided here.  With one firewall hook
(one head, no interface binding) the firewall runs *ordered*: it is given every row before the
current chunk's end that will be punted (by an earlier stage or chunk), decides the rest in row
order -- keep-state states created by one row decide the flow's later rows -- and punts any row
of a flow an earlier punted row belongs to, so the result is the scalar path's packet for packet
(tests/ip/test_vector_differential.py, keep-state rules on real captures and random batches).
With hooks at several heads keep-state matches are punted and the batch is decided against the
states at its start.  ARP is always read at the batch's start: a punted ARP reply changing a MAC
is seen by later batches (static entries give identical results).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from netfast.ip.iface import Interface, NextHop
from netfast.ip.input import (
    IN_BAD_CHECKSUM,
    IN_BAD_HLEN,
    IN_BAD_LEN,
    IN_BAD_VERSION,
    IN_MARTIAN_DST,
    IN_MARTIAN_SRC,
    IN_TOO_SHORT,
)
from netfast.ip.router import ETH_FRAMES, FWD_FORWARDED, IN_RECEIVED, PFIL_DROP, Router
from netfast.ip.vector_kernels import (
    PFIL_COLUMNS,
    ROW_DROPPED,
    ROW_FORWARDED,
    ROW_PUNT,
    classify_kernel,
    emit_kernel,
    group_kernel,
    mac_kernel,
    nexthop_kernel,
    pfil_kernel,
)
from netfast.pfil import BatchHook, Direction, Verdict
from netfast.wire.batch import ETH_LEN, FrameBatch

__all__ = ["VectorForwarder", "VectorResult", "FORWARDED_COUNTERS"]

#: What the scalar path counts for one frame it forwards (its names: netfast.ip.router).
FORWARDED_COUNTERS: tuple[str, ...] = (ETH_FRAMES, IN_RECEIVED, FWD_FORWARDED)
#: Integrity drops decided here, in the scalar path's check order (classify_kernel's counts).
_INTEGRITY_DROPS = (
    IN_BAD_LEN,
    IN_BAD_CHECKSUM,
    IN_MARTIAN_SRC,
    IN_MARTIAN_DST,
    IN_TOO_SHORT,
    IN_BAD_VERSION,
    IN_BAD_HLEN,
)

#: :class:`~netfast.pfil.BatchHook` verdicts as the uint8 codes ``evaluate_batch`` returns.
_V_PASS = int(Verdict.PASS)
_V_DROP = int(Verdict.DROP)
_V_PUNT = int(Verdict.PUNT)


class BatchEvaluator(Protocol):
    """A bound :meth:`netfast.pfil.BatchHook.evaluate_batch`."""

    def __call__(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: Direction | int,
        ifindex: npt.NDArray[np.integer] | int,
        *,
        ordered: bool = False,
    ) -> npt.NDArray[np.uint8]: ...


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


#: Rows decided per pass of the stages: small enough that a chunk's columns stay in L2 next to
#: the FIB's hot lines (a 64k-row batch in one pass ran at less than half the rate).
CHUNK = 16384


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
    """The vector path of ``router``: shares its routing table, local addresses, pfil heads and
    ARP cache, and keeps only caches derived from them.

    Parameters
    ----------
    router:
        The scalar router, read (never written) through ``interfaces``, ``table``, ``local``,
        ``pfil`` and ``arp.lookup``; punted rows go to its :meth:`~Router.input`.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.interfaces: dict[int, Interface] = dict(router.interfaces)
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
        out = np.empty((len(PFIL_COLUMNS), len(rows)), np.int64)
        pfil_kernel(data, rows, total, out)
        return dict(zip(PFIL_COLUMNS, out, strict=True))

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
                ifx: npt.NDArray[np.int32] | int = egress[sel] if d == Direction.OUT else ifindex
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

    def _firewall_ordered(
        self,
        step: tuple[Direction, int | None, BatchEvaluator, BatchHook],
        data: npt.NDArray[np.uint8],
        length: npt.NDArray[np.uint32],
        state: npt.NDArray[np.int8],
        hi: int,
        rows: npt.NDArray[np.intp],
        total: npt.NDArray[np.int64],
        ifindex: int,
        egress: npt.NDArray[np.int32],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8]]:
        """One unbound hook sees every row: it runs ordered (:class:`netfast.pfil.BatchHook`),
        so it decides in row order what it can -- keep-state included -- given, marked
        ``punted``, every row before ``hi`` the scalar path will handle (punted by an earlier
        stage or an earlier chunk), so that it punts the later rows of their flows."""
        d, _, evaluate, _ = step
        undecided = np.flatnonzero(state[:hi] == ROW_PUNT)
        if len(undecided) == len(rows):  # nothing punted so far: the candidates alone
            v = np.asarray(
                evaluate(self._pfil_columns(data, rows, total), d,
                         egress if d == Direction.OUT else ifindex, ordered=True),
                np.uint8,
            )  # fmt: skip
            return v, np.where(v == _V_DROP, int(d), -1).astype(np.int8)
        punted = np.ones(len(undecided), np.uint8)
        at = np.searchsorted(undecided, rows)
        punted[at] = 0
        row_total = np.zeros(len(undecided), np.int64)
        row_total[at] = total
        if len(rows) < len(undecided):
            # the IP length as the frame gives it, for rows only the flow key is read of
            others = undecided[punted != 0]
            ip_len = (data[others, 16].astype(np.int64) << 8) | data[others, 17]
            row_total[punted != 0] = np.clip(
                np.minimum(ip_len, length[others].astype(np.int64) - ETH_LEN), 0, None
            )
        cols = self._pfil_columns(data, undecided, row_total)
        cols["punted"] = punted.astype(np.int64)
        ifx: npt.NDArray[np.int32] | int = ifindex
        if d == Direction.OUT:
            out_if = np.full(len(undecided), -1, np.int32)
            out_if[at] = egress
            ifx = out_if
        v = np.asarray(evaluate(cols, d, ifx, ordered=True), np.uint8)[at]
        return v, np.where(v == _V_DROP, int(d), -1).astype(np.int8)

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
            k = classify_kernel(
                data, length, lo, hi, local, state, counts, cand, cand_dst, cand_total
            )
            if k == 0 or plan is None:
                continue
            # 4. FIB; 5-6. next hop and MTU
            rid = table.lookup_batch(cand_dst[:k])
            k, direct = nexthop_kernel(
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
            k = mac_kernel(
                k, cand, cand_total, vid, egress, nh.has_gateway, arp.per_value, direct_mac
            )
            rows, eg, mac, total = cand[:k], egress[:k], vid[:k], cand_total[:k]
            # 8. pfil
            if plan and k:
                if len(plan) == 1 and plan[0][1] is None:
                    verdict, head = self._firewall_ordered(
                        plan[0], data, length, state, hi, rows, total, ifindex, eg
                    )
                else:
                    verdict, head = self._firewall(
                        plan, self._pfil_columns(data, rows, total), ifindex, eg
                    )
                for d in Direction:
                    pfil_drops[d] += int(np.count_nonzero(head == int(d)))
                state[rows[verdict == _V_DROP]] = ROW_DROPPED
                keep = verdict == _V_PASS
                rows, eg, mac, total = rows[keep], eg[keep], mac[keep], total[keep]
            if len(rows):
                state[rows] = ROW_FORWARDED
                single = lo + CHUNK >= n  # the buffers are not reused after the last chunk
                pieces.append(tuple(a if single else a.copy() for a in (rows, eg, mac, total)))
        for name, count in zip(_INTEGRITY_DROPS, counts.tolist(), strict=True):
            if count:
                drops[name] += count
        for d in Direction:
            if pfil_drops[d]:
                drops[PFIL_DROP[d]] += pfil_drops[d]
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
        finished = int(np.count_nonzero(state == ROW_DROPPED)) + forwarded
        if finished:
            drops[ETH_FRAMES] += finished
            drops[IN_RECEIVED] += finished
        if forwarded:
            drops[FWD_FORWARDED] += forwarded
        return VectorResult(out, np.flatnonzero(state == ROW_PUNT), drops, out_rows)

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
        group_kernel(egress, n_if, order, starts)
        rows = idx[order]
        eg = egress[order]
        out_len = total[order] + ETH_LEN
        # Output slots just wide enough for these frames (64-byte multiples): copying whole
        # input slots would move more memory than the forwarding itself.
        width = min(batch.slot, max(64, -(-int(out_len.max()) // 64) * 64))
        out_data = np.empty((len(rows), width), np.uint8)  # every byte written by the kernel
        emit_kernel(data, rows, out_len, mac_table, mac_index[order], self._src_mac, eg, out_data)
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
