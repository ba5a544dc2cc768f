"""The match implementations the product does not run, kept as oracles for differential tests.

The product has one scalar matcher (the walkers generated per direction and protocol,
:mod:`netfast.pfil.ipfw.walker`) and one vector matcher (the rule-major numba kernel,
:func:`netfast.pfil.ipfw.kernel.walk_rules_kernel`), the fastest of each kind at 100 rules
in a one-off timing of all five when the package was split (2026-12-03; not a project command,
so no figures are kept here -- ``netfast bench forward`` measures the product's kernel in the
vector path).  What is here is obviously-correct or independently written:

- :func:`rule_match` / :func:`use_reference_walk`: every compiled rule tested in turn against a
  packet's fields, the scalar reference of the generated walkers;
- :func:`packet_major_kernel`: the numba walk of the rules per packet, as the scalar loop does,
  run through :meth:`Ruleset.run_batch_kernel` (the same set-up and state phase as the
  product's kernel);
- :func:`evaluate_masks`: the ruleset as numpy boolean masks over the undecided packets, rule
  by rule.

Each gives the product's verdicts and counters (``tests/pfil/test_ipfw.py`` checks that with
hypothesis).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.pfil import Direction, PfilPacket
from netfast.pfil.ipfw import Ruleset
from netfast.pfil.ipfw.compile import (
    _A_ALLOW,
    _A_COUNT,
    _A_DENY,
    _A_RESET,
    _A_SKIPTO,
    _ADDR_ANY,
    _ADDR_LIST,
    _ADDR_ME,
    _DIR_OUT,
    _K_ALL,
    _K_LIST,
    _K_NONE,
    _NONE,
    _R_ACTION,
    _R_DIR,
    _R_DP_OFF,
    _R_DST_KIND,
    _R_FANY,
    _R_FCLEAR,
    _R_FRAG,
    _R_FSET,
    _R_IC_CNT,
    _R_IC_OFF,
    _R_PROTO,
    _R_PUNTS,
    _R_RECV,
    _R_SP_OFF,
    _R_SRC_KIND,
    _R_TARGET,
    _R_TTL_HI,
    _R_TTL_LO,
    _R_VIA,
    _R_XMIT,
    _AddrMatch,
    _Compiled,
)
from netfast.pfil.ipfw.dynamic import _flow_ports
from netfast.pfil.ipfw.rules import (
    VERDICT_DROP,
    VERDICT_PASS,
    VERDICT_PUNT,
    PortRanges,
)
from netfast.pfil.ipfw.ruleset import _COLUMNS
from netfast.pfil.ipfw.walker import Walker
from netfast.wire.ipv4 import IpProtocol

# -- the scalar reference ------------------------------------------------------------------------


def addr_match(self: _AddrMatch, addr: int) -> bool:
    kind = self.kind
    if kind == _ADDR_LIST:
        hit = False
        for mask, value in self.nets:
            if addr & mask == value:
                hit = True
                break
        else:
            for lo, hi in self.ranges:
                if lo <= addr <= hi:
                    hit = True
                    break
    elif kind == _ADDR_ANY:
        hit = True
    elif kind == _ADDR_ME:
        hit = addr in self.me
    else:
        assert self.table is not None
        hit = self.table.lookup(addr) >= 0
    return hit != self.negate


def port_match(port: int, ranges: PortRanges) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def rule_match(self: _Compiled, pkt: PfilPacket) -> bool:
    if self.proto >= 0 and pkt.proto != self.proto:
        return False
    if self.src is not None and not addr_match(self.src, pkt.src):
        return False
    if self.dst is not None and not addr_match(self.dst, pkt.dst):
        return False
    if self.sport is not None and (pkt.sport < 0 or not port_match(pkt.sport, self.sport)):
        return False
    if self.dport is not None and (pkt.dport < 0 or not port_match(pkt.dport, self.dport)):
        return False
    direction = pkt.direction
    if self.direction >= 0 and direction != self.direction:
        return False
    if self.recv is not None and (direction == Direction.OUT or pkt.ifindex != self.recv):
        return False
    if self.xmit is not None and (direction != Direction.OUT or pkt.ifindex != self.xmit):
        return False
    if self.via is not None and pkt.ifindex != self.via:
        return False
    if self.flags_set or self.flags_clear or self.flags_any:
        flags = pkt.tcp_flags
        if flags < 0 or flags & self.flags_set != self.flags_set or flags & self.flags_clear:
            return False
        if self.flags_any and not flags & self.flags_any:
            return False
    if self.icmptypes is not None and pkt.icmp_type not in self.icmptypes:
        return False
    if self.ttl_lo >= 0 and not self.ttl_lo <= pkt.ttl <= self.ttl_hi:
        return False
    return not self.frag or pkt.fragment


def reference_walk(self: Ruleset, pkt: PfilPacket, start: int) -> int:
    """The first rule at or after ``start`` matching ``pkt``, every rule tested in turn
    (what the generated walkers must agree with)."""
    compiled = self._compiled
    i = start
    while not rule_match(compiled[i], pkt):
        i += 1
    return i


def use_reference_walk(rs: Ruleset) -> Ruleset:
    """Make ``rs`` walk its rules with :func:`reference_walk` instead of the generated walkers
    (until it recompiles); returns ``rs``."""

    def walk(pkt: PfilPacket, start: int) -> int:
        return reference_walk(rs, pkt, start)

    def walkers_for(direction: int, proto: int) -> tuple[Walker, Walker]:
        return walk, walk

    rs._walkers = [{} for _ in Direction]
    rs._walkers_for = walkers_for  # type: ignore[method-assign]
    return rs


# -- the packet-major kernel ---------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def packet_major_kernel(
    rules: Any,
    orig: Any,
    addrs: Any,
    ports: Any,
    icmp: Any,
    ext: Any,
    direction: int,
    src: Any,
    dst: Any,
    proto: Any,
    sport: Any,
    dport: Any,
    tcp_flags: Any,
    icmp_type: Any,
    ttl: Any,
    length: Any,
    fragment: Any,
    ifindex: Any,
    skip: Any,
    walk_rule: Any,
) -> tuple[Any, Any, int]:  # pragma: no cover - compiled
    """The scalar rule walk (:meth:`Ruleset.evaluate` without states, logs or replies) per
    packet: the first rule that decides (or punts), in ``walk_rule`` as its index in the
    ruleset, and the count and skipto rules the packet passed on its way, returned as the trail
    (rules, packets, n).  ``rules`` holds only the rules that can match this batch (``orig``:
    their indexes in the ruleset, skipto targets renumbered), so the walk is a plain increment."""
    n_rules = rules.shape[0]
    n = src.shape[0]
    trail = np.empty(n_rules, np.int64)  # count/skipto rules matched on the way
    out_rule = np.empty(max(1, n * n_rules), np.int64)
    out_pkt = np.empty(max(1, n * n_rules), np.int64)
    n_out = 0
    for p in range(n):
        walk_rule[p] = -1
        if skip[p]:
            continue
        ifx = ifindex[p]
        pr = proto[p]
        n_trail = 0
        i = 0
        while True:
            if i >= n_rules:  # unreachable: the default rule matches everything
                break
            # the conditions of _Compiled.match, cheapest first
            if rules[i, _R_DIR] >= 0 and direction != rules[i, _R_DIR]:
                i += 1
                continue
            if rules[i, _R_PROTO] >= 0 and pr != rules[i, _R_PROTO]:
                i += 1
                continue
            v = rules[i, _R_RECV]
            if v != _NONE and (direction == _DIR_OUT or ifx != v):
                i += 1
                continue
            v = rules[i, _R_XMIT]
            if v != _NONE and (direction != _DIR_OUT or ifx != v):
                i += 1
                continue
            v = rules[i, _R_VIA]
            if v != _NONE and ifx != v:
                i += 1
                continue
            # Addresses and ports written out here: helper calls taking the arrays cost a
            # reference count round trip each, more than the tests themselves.
            ok = True
            for side in range(2):
                base = _R_SRC_KIND if side == 0 else _R_DST_KIND
                kind = rules[i, base]
                if kind == _K_NONE:
                    continue
                if kind == _K_LIST:
                    a = src[p] if side == 0 else dst[p]
                    hit = False
                    off = rules[i, base + 2]
                    for j in range(off, off + rules[i, base + 3]):
                        if addrs[j, 0] == 0:
                            if a & addrs[j, 1] == addrs[j, 2]:
                                hit = True
                                break
                        elif addrs[j, 1] <= a <= addrs[j, 2]:
                            hit = True
                            break
                elif kind == _K_ALL:
                    hit = True
                else:
                    hit = ext[rules[i, base + 2], p] != 0
                if hit == (rules[i, base + 1] != 0):
                    ok = False
                    break
            if not ok:
                i += 1
                continue
            for side in range(2):
                off = _R_SP_OFF if side == 0 else _R_DP_OFF
                cnt = rules[i, off + 1]
                if cnt == 0:
                    continue
                port = sport[p] if side == 0 else dport[p]
                hit = False
                if port >= 0:
                    start = rules[i, off]
                    for j in range(start, start + cnt):
                        if ports[j, 0] <= port <= ports[j, 1]:
                            hit = True
                            break
                if not hit:
                    ok = False
                    break
            if not ok:
                i += 1
                continue
            fset, fclear, fany = rules[i, _R_FSET], rules[i, _R_FCLEAR], rules[i, _R_FANY]
            if fset or fclear or fany:
                f = tcp_flags[p]
                if f < 0 or f & fset != fset or f & fclear:
                    i += 1
                    continue
                if fany and not f & fany:
                    i += 1
                    continue
            cnt = rules[i, _R_IC_CNT]
            if cnt:
                off = rules[i, _R_IC_OFF]
                t = icmp_type[p]
                found = False
                for j in range(off, off + cnt):
                    if icmp[j] == t:
                        found = True
                        break
                if not found:
                    i += 1
                    continue
            lo = rules[i, _R_TTL_LO]
            if lo >= 0 and not lo <= ttl[p] <= rules[i, _R_TTL_HI]:
                i += 1
                continue
            if rules[i, _R_FRAG] and not fragment[p]:
                i += 1
                continue
            # rule i matches
            action = rules[i, _R_ACTION]
            if not rules[i, _R_PUNTS] and (action == _A_COUNT or action == _A_SKIPTO):  # noqa: SIM109
                trail[n_trail] = i
                n_trail += 1
                i = i + 1 if action == _A_COUNT else rules[i, _R_TARGET]
                continue
            walk_rule[p] = orig[i]
            for t in range(n_trail):
                out_rule[n_out] = orig[trail[t]]
                out_pkt[n_out] = p
                n_out += 1
            break
    return out_rule, out_pkt, n_out


# Rule-major form: each rule one pass per condition over the packets still undecided (a list of
# packet indexes), narrowing the candidates; the passes are small per-rule calls, so the per
# packet work is one tight loop per condition the rule actually tests.


# -- numpy masks ---------------------------------------------------------------------------------


def evaluate_masks(
    rs: Ruleset,
    cols: Mapping[str, npt.NDArray[np.integer]],
    direction: Direction | int,
    ifindex: npt.NDArray[np.integer] | int,
) -> npt.NDArray[np.uint8]:
    """:meth:`Ruleset.evaluate_batch` with the rules evaluated as numpy masks."""
    n = len(cols["src"])
    verdict = np.full(n, 255, np.uint8)
    if n == 0:
        return verdict
    work = {
        k: np.ascontiguousarray(cols[k], np.int64) if k in cols else np.full(n, -1, np.int64)
        for k in _COLUMNS
    }
    in_state = _states_first(rs, work, verdict)
    return _masks_after_states(rs, cols, int(direction), ifindex, verdict, in_state)


def _states_first(
    rs: Ruleset, work: Mapping[str, npt.NDArray[np.int64]], verdict: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:
    """The implied state check of :meth:`Ruleset.evaluate` for each row, in Python, against the
    states at the start of the batch (no state is created in the batch): a live state decides
    its row (refresh, counters, ``ipfw.state.hit``) unless its rule logs or replies; an expired
    one punts it.  Returns the rows decided or punted here."""
    st = rs.states
    handled = np.zeros(len(verdict), np.bool_)
    if not len(st):
        return handled
    timeouts = rs.timeouts
    for r in range(len(verdict)):
        proto, src, dst = int(work["proto"][r]), int(work["src"][r]), int(work["dst"][r])
        sport, dport = _flow_ports(proto, int(work["sport"][r]), int(work["dport"][r]))
        a, b = (src << 16) | sport, (dst << 16) | dport
        slot = st.find(proto, min(a, b), max(a, b))
        if slot < 0:
            continue
        handled[r] = True
        if st.expire[slot] <= rs.now:
            verdict[r] = VERDICT_PUNT
            continue
        c = rs._compiled[int(st.rule[slot])]
        if c.rule.log or not (
            c.action in (_A_ALLOW, _A_DENY) or (c.action == _A_RESET and proto != 6)
        ):
            verdict[r] = VERDICT_PUNT
            continue
        if a != st.origin[slot]:
            st.replied[slot] = 1
        if not st.tcp[slot]:
            st.expire[slot] = rs.now + timeouts.other
        elif st.replied[slot]:
            st.expire[slot] = rs.now + timeouts.tcp_established
        else:
            st.expire[slot] = rs.now + timeouts.tcp_opening
        rs.packets[c.index] += 1
        rs.bytes[c.index] += int(work["length"][r])
        rs.stats["ipfw.state.hit"] += 1
        verdict[r] = VERDICT_PASS if c.action == _A_ALLOW else VERDICT_DROP
    return handled


def addr_vmatch(self: _AddrMatch, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    kind = self.kind
    if kind == _ADDR_LIST:
        hit = np.zeros(len(addrs), np.bool_)
        for mask, value in self.nets:
            if mask == 0xFFFFFFFF:
                hit |= addrs == value
            else:
                hit |= (addrs & np.uint32(mask)) == value
        for lo, hi in self.ranges:
            hit |= (addrs >= lo) & (addrs <= hi)
    elif kind == _ADDR_ANY:
        hit = np.ones(len(addrs), np.bool_)
    elif kind == _ADDR_ME:
        hit = np.isin(addrs, self.me_array)
    else:
        assert self.table is not None
        hit = self.table.lookup_batch(addrs) >= 0
    return ~hit if self.negate else hit


def vport_match(ports: npt.NDArray[np.int64], ranges: PortRanges) -> npt.NDArray[np.bool_]:
    hit = np.zeros(len(ports), np.bool_)
    for lo, hi in ranges:
        if lo == hi:
            hit |= ports == lo
        else:
            hit |= (ports >= lo) & (ports <= hi)
    return hit


def rule_vmatch(
    self: _Compiled,
    cols: Mapping[str, npt.NDArray[np.integer]],
    direction: int,
    ifindex: npt.NDArray[np.integer],
    cand: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """The candidates (``cand``, not modified) this rule matches."""
    m = cand.copy()
    if self.direction >= 0 and direction != self.direction:
        m[:] = False
        return m
    if self.recv is not None:
        if direction == Direction.OUT:
            m[:] = False
            return m
        m &= ifindex == self.recv
    if self.xmit is not None:
        if direction != Direction.OUT:
            m[:] = False
            return m
        m &= ifindex == self.xmit
    if self.via is not None:
        m &= ifindex == self.via
    if self.proto >= 0:
        m &= cols["proto"] == self.proto
    if self.src is not None:
        m &= addr_vmatch(self.src, cols["src"])  # type: ignore[arg-type]
    if self.dst is not None:
        m &= addr_vmatch(self.dst, cols["dst"])  # type: ignore[arg-type]
    if self.sport is not None:
        m &= vport_match(cols["sport"], self.sport)  # type: ignore[arg-type]
    if self.dport is not None:
        m &= vport_match(cols["dport"], self.dport)  # type: ignore[arg-type]
    if self.flags_set or self.flags_clear or self.flags_any:
        flags = cols["tcp_flags"]
        m &= flags >= 0
        # set and clear tested apart: a flag in both (``setup`` with ``tcpflags !syn``)
        # matches nothing, as in the scalar form
        m &= (flags & self.flags_set) == self.flags_set
        m &= (flags & self.flags_clear) == 0
        if self.flags_any:
            m &= (flags & self.flags_any) != 0
    if self.icmptypes is not None:
        m &= np.isin(cols["icmp_type"], self.icmp_array)
    if self.ttl_lo >= 0:
        ttl = cols["ttl"]
        m &= (ttl >= self.ttl_lo) & (ttl <= self.ttl_hi)
    if self.frag:
        m &= cols["fragment"] != 0
    return m


def _masks_after_states(
    self: Ruleset,
    cols: Mapping[str, npt.NDArray[np.integer]],
    direction: int,
    ifindex: npt.NDArray[np.integer] | int,
    verdict: npt.NDArray[np.uint8],
    in_state: npt.NDArray[np.bool_],
) -> npt.NDArray[np.uint8]:
    """Rule-major form for long rulesets: every rule a boolean mask over the packets still
    undecided (numpy's per-element cost beats the kernel's per-rule walk there)."""
    n = len(verdict)
    length = np.asarray(cols["length"])
    work = {k: np.asarray(cols[k]) for k in _COLUMNS if k in cols}
    work["fragment"] = np.asarray(cols["fragment"]) if "fragment" in cols else np.zeros(n, np.bool_)
    work["ifindex"] = np.broadcast_to(np.asarray(ifindex), (n,))
    idx = np.arange(n)
    alive = ~in_state  # decided or punted by the state check already
    nalive = int(alive.sum())
    pos = np.zeros(n, np.int32) if any(c.action == _A_SKIPTO for c in self._compiled) else None
    deferred: list[tuple[int, npt.NDArray[np.intp]]] = []  # count/skipto: counted at the end
    direction = int(direction)
    for c in self._compiled:
        if nalive == 0:
            break
        if 4 * nalive < len(idx) and len(idx) > 1024:
            # Few left: shrink the working set so later rules touch fewer packets.
            idx, work, alive, pos = _compact(idx, work, alive, pos)
        cand = alive if pos is None else alive & (pos <= c.index)
        m = rule_vmatch(c, work, direction, work["ifindex"], cand)
        hit = np.flatnonzero(m)
        if len(hit) == 0:
            continue
        g = idx[hit]
        action = c.action
        if c.punts or c.rule.keep_state or action == _A_RESET:
            if action == _A_RESET and not (c.punts or c.rule.keep_state):
                tcp = work["proto"][hit] == IpProtocol.TCP
                verdict[g[tcp]] = VERDICT_PUNT
                dropped = g[~tcp]
                verdict[dropped] = VERDICT_DROP
                _count(self, c.index, dropped, length)
            else:
                verdict[g] = VERDICT_PUNT
            alive[hit] = False
            nalive -= len(hit)
        elif action == _A_COUNT:
            deferred.append((c.index, g))
        elif action == _A_SKIPTO:
            deferred.append((c.index, g))
            assert pos is not None
            pos[hit] = c.target
        else:
            verdict[g] = VERDICT_PASS if action == _A_ALLOW else VERDICT_DROP
            _count(self, c.index, g, length)
            alive[hit] = False
            nalive -= len(hit)
    for i, g in deferred:
        _count(self, i, g[verdict[g] != VERDICT_PUNT], length)
    return verdict


def _count(
    self: Ruleset, i: int, rows: npt.NDArray[np.intp], length: npt.NDArray[np.integer]
) -> None:
    if len(rows):
        self.packets[i] += len(rows)
        self.bytes[i] += int(length[rows].sum())


def _compact(
    idx: npt.NDArray[np.intp],
    work: dict[str, npt.NDArray[np.integer]],
    alive: npt.NDArray[np.bool_],
    pos: npt.NDArray[np.int32] | None,
) -> tuple[
    npt.NDArray[np.intp],
    dict[str, npt.NDArray[np.integer]],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int32] | None,
]:
    keep = np.flatnonzero(alive)
    return (
        idx[keep],
        {k: v[keep] for k, v in work.items()},
        np.ones(len(keep), np.bool_),
        None if pos is None else pos[keep],
    )
