"""The ruleset: the pfil hook, its scalar and batch evaluation, state table and counters.

:class:`Ruleset` is the ``ip_fw_pfil.c`` end: it is called per packet (``__call__`` /
:meth:`Ruleset.evaluate`, the implied state check first, then the generated walkers) and per
batch (:meth:`Ruleset.evaluate_batch`, a :class:`netfast.pfil.BatchHook`).  Semantics are in
:mod:`netfast.pfil.ipfw`.

Vector form
-----------
:meth:`Ruleset.evaluate_batch` runs the ruleset compiled into a table of integers (one row per rule:
action, protocol, direction and interface, flag masks, TTL range, and offsets into flat arrays of
address masks/ranges, port ranges and ICMP types) through one of two numba matchers (``matcher``):
the rule-major walk (:mod:`netfast.pfil.ipfw.kernel`; rules no packet of the call can match --
protocol absent, wrong direction -- left out first) or the per-field bitmaps
(:mod:`netfast.pfil.ipfw.bitmaps`, whose cost per packet hardly grows with the rule count);
``"auto"`` takes the bitmaps (faster at every rule count ``netfast bench firewall`` measures)
unless their tables would pass :data:`BITMAP_MAX_BYTES` (address lists of many thousands of
items). ``me`` and ``table(NAME)`` addresses are evaluated for the whole batch first
(numpy set membership, the table's ``lookup_batch``) and read by the matcher as columns. Before the
walk, as in the scalar path, the packets whose state-key hash is in the state table are looked up in
it one by one: a live state decides its packet as the scalar path does (refresh, the creating rule's
counters and verdict, ``ipfw.state.hit``). The batch form decides PASS and DROP itself and answers
PUNT (3) for anything that needs the scalar path: packets of an expired state or of a state whose
rule logs or sends a reply, and matches of ``keep-state``, ``log``, ``unreach`` and ``reset`` (of
TCP) rules. Counters are updated only for packets it decides, exactly as the scalar path would have;
the scalar path counts the punted ones when it handles them.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.ipfw.bitmaps import RuleBitmaps
from netfast.pfil.ipfw.compile import (
    _A_ALLOW,
    _A_COUNT,
    _A_RESET,
    _A_SKIPTO,
    _A_UNREACH,
    _Compiled,
    _RuleTable,
)
from netfast.pfil.ipfw.dynamic import StateTimeouts, _flow_ports
from netfast.pfil.ipfw.kernel import BatchKernel, walk_rules_kernel
from netfast.pfil.ipfw.reply import (
    icmp_unreach_for,
    tcp_reset_for,
)
from netfast.pfil.ipfw.rules import (
    _PROTO_BY_NUMBER,
    _UNDECIDED,
    DEFAULT_RULE,
    MAX_RULE,
    Action,
    Rule,
)
from netfast.pfil.ipfw.states import (
    RULE_KEEP,
    RULE_PUNTS,
    StateTable,
    count_kernel,
    probe_kernel,
    rule_flags,
    sequence_kernel,
)
from netfast.pfil.ipfw.walker import (
    Walker,
    _build_walkers,
)
from netfast.route.rib import Rib, format_prefix
from netfast.route.table import RoutingTable
from netfast.wire.ipv4 import IpProtocol, ip_to_str

# -- the ruleset ---------------------------------------------------------------------------------

#: The matchers of :meth:`Ruleset.evaluate_batch`.
MATCHERS = ("auto", "walk", "bitmap")
#: ``matcher="auto"`` uses the bitmaps unless their tables would take more bytes than this.
BITMAP_MAX_BYTES = 64 << 20
_COLUMNS = ("src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type", "ttl", "length")


@dataclass(frozen=True, slots=True)
class RuleCounter:
    number: int
    packets: int
    bytes: int
    rule: Rule


class Ruleset:
    """Rules compiled for evaluation, with counters and dynamic state.

    Parameters
    ----------
    rules:
        Rules in increasing number order (the default rule is added).
    tables:
        Named tables (a :class:`~netfast.route.rib.Rib` each; values are shown, not matched).
    default_allow:
        The default rule 65535 allows instead of denying.
    me:
        The addresses ``me`` stands for (the router's own).
    interfaces:
        Interface name -> ifindex, for ``via``/``recv``/``xmit``.
    max_states, timeouts:
        Bound and lifetimes of the dynamic state table.
    reply_source:
        Source address of ICMP unreachables (default: the offending packet's destination).
    log_size:
        Lines of ``log`` kept.
    matcher:
        The batch matcher (see the module docstring): ``auto``, ``walk`` or ``bitmap``.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        tables: Mapping[str, Rib] | None = None,
        default_allow: bool = False,
        me: Iterable[int] = (),
        interfaces: Mapping[str, int] | None = None,
        max_states: int = 4096,
        timeouts: StateTimeouts | None = None,
        reply_source: int | None = None,
        log_size: int = 1000,
        matcher: str = "auto",
    ) -> None:
        if matcher not in MATCHERS:
            raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}, got {matcher!r}")
        last = 0
        for rule in rules:
            if not last < rule.number <= MAX_RULE:
                raise ValueError(f"rule {rule.number} after {last}: numbers must increase")
            if rule.action is Action.SKIPTO and rule.arg <= rule.number:
                raise ValueError(f"rule {rule.number} skips backwards to {rule.arg}")
            for spec in (rule.src, rule.dst):
                if spec.kind == "table" and spec.table not in (tables or {}):
                    raise ValueError(f"rule {rule.number} uses unknown table {spec.table!r}")
            last = rule.number
        if max_states < 0:
            raise ValueError(f"max_states must be >= 0, got {max_states}")
        self.default_allow = default_allow
        self.rules: list[Rule] = [
            *rules,
            Rule(DEFAULT_RULE, Action.ALLOW if default_allow else Action.DENY),
        ]
        self.ribs: dict[str, Rib] = dict(tables or {})
        self.tables: dict[str, RoutingTable] = {
            name: RoutingTable(rib, "dxr") for name, rib in self.ribs.items()
        }
        self.me: frozenset[int] = frozenset(me)
        self.interfaces: dict[str, int] = dict(interfaces or {})
        self.max_states = max_states
        self.timeouts = timeouts if timeouts is not None else StateTimeouts()
        self.reply_source = reply_source
        #: The current time in seconds, set by the caller (see the module docstring).
        self.now = 0.0
        self.packets: npt.NDArray[np.int64] = np.zeros(len(self.rules), np.int64)
        self.bytes: npt.NDArray[np.int64] = np.zeros(len(self.rules), np.int64)
        self.stats: Counter[str] = Counter()
        self.log: deque[str] = deque(maxlen=log_size)
        #: The dynamic states (:class:`~netfast.pfil.ipfw.states.StateTable`, a read-only mapping
        #: of state key -> StateView for Python readers).
        self.states = StateTable(max_states, len(self.rules))
        #: Which matcher :meth:`evaluate_batch` runs: ``auto``, ``walk`` or ``bitmap``.
        self.matcher = matcher
        self._compile()

    # -- configuration --
    def _compile(self) -> None:
        numbers = [r.number for r in self.rules]
        compiled = []
        for i, rule in enumerate(self.rules):
            target = 0
            if rule.action is Action.SKIPTO:
                target = next(j for j, n in enumerate(numbers) if n >= rule.arg)
            compiled.append(_Compiled(i, rule, target, self.tables, self.me, self.interfaces))
        self._compiled = compiled
        self._has_keep_state = any(r.keep_state for r in self.rules)
        self._table = _RuleTable(compiled)
        self._bitmaps: RuleBitmaps | None = None  # built on the first batch that uses them
        self._rule_flags = rule_flags(
            np.array([c.action for c in compiled], np.int64),
            [c.punts for c in compiled],
            [c.rule.keep_state for c in compiled],
            _A_RESET,
            _A_ALLOW,
        )
        self._limits = np.array([c.rule.limit for c in compiled], np.int64)
        # per direction: protocol -> walkers, built on first use (_walkers_for)
        self._walkers: list[dict[int, tuple[Walker, Walker]]] = [{} for _ in Direction]
        self._protos = frozenset(c.proto for c in compiled if c.proto >= 0)

    def set_me(self, addrs: Iterable[int]) -> None:
        """Change the addresses ``me`` stands for (recompiles; counters and states stay)."""
        self.me = frozenset(addrs)
        self._compile()

    def set_interfaces(self, interfaces: Mapping[str, int]) -> None:
        """Change the interface name -> ifindex map (recompiles; counters and states stay)."""
        self.interfaces = dict(interfaces)
        self._compile()

    def add_table(self, name: str, rib: Rib) -> None:
        """Add or replace a named table (e.g. ``load_table(path).rib``)."""
        self.ribs[name] = rib
        self.tables[name] = RoutingTable(rib, "dxr")
        self._compile()

    # -- counters --
    @property
    def counters(self) -> list[RuleCounter]:
        """Packets and bytes per rule, the default rule last."""
        return [
            RuleCounter(r.number, int(p), int(b), r)
            for r, p, b in zip(self.rules, self.packets, self.bytes, strict=True)
        ]

    def counter(self, number: int) -> tuple[int, int]:
        """``(packets, bytes)`` of rule ``number``."""
        for i, rule in enumerate(self.rules):
            if rule.number == number:
                return int(self.packets[i]), int(self.bytes[i])
        raise KeyError(f"no rule {number}")

    def reset_counters(self) -> None:
        self.packets[:] = 0
        self.bytes[:] = 0
        self.stats.clear()

    def counter_snapshot(self) -> object:
        """The rule counters and state statistics as they are now (see
        :class:`netfast.pfil.BatchHook`)."""
        return self.packets.copy(), self.bytes.copy(), self.stats.copy()

    def counter_restore(self, snapshot: object) -> None:
        """Put back what :meth:`counter_snapshot` returned."""
        assert isinstance(snapshot, tuple)
        packets, nbytes, stats = snapshot
        self.packets[...] = packets
        self.bytes[...] = nbytes
        self.stats.clear()
        self.stats.update(stats)

    # -- text --
    def text(self) -> str:
        """The ruleset as a normalized rule file (tables first, the default rule last); parsing
        it gives the same rules and tables."""
        lines = []
        for name, rib in self.ribs.items():
            for net, plen, value in _rib_entries(rib):
                suffix = "" if value is None else f" {value}"
                lines.append(f"table {name} add {format_prefix(net, plen)}{suffix}")
        lines += [str(r) for r in self.rules]
        return "\n".join(lines) + "\n"

    def show(self) -> str:
        """Rules with their counters, one per line, as ``ipfw show`` prints them."""
        return "".join(
            f"{c.number:05d} {c.packets:>10} {c.bytes:>12} {str(c.rule)[6:]}\n"
            for c in self.counters
        )

    # -- scalar evaluation --
    def __call__(self, pkt: PfilPacket) -> Verdict:
        """The pfil hook (a :class:`netfast.pfil.BatchHook`): :meth:`evaluate` at ``self.now``."""
        return self.evaluate(pkt, self.now)

    hook = __call__

    def evaluate(self, pkt: PfilPacket, now: float | None = None) -> Verdict:
        """First matching rule's verdict for one packet; counts it; may set ``pkt.replies``."""
        if now is None:
            now = self.now
        states = self.states
        if states.meta[0]:
            sport, dport = _flow_ports(pkt.proto, pkt.sport, pkt.dport)
            a, b = (pkt.src << 16) | sport, (pkt.dst << 16) | dport
            slot = states.find(pkt.proto, a, b) if a <= b else states.find(pkt.proto, b, a)
            if slot >= 0:
                if states.expire[slot] > now:
                    return self._from_state(pkt, slot, (pkt.src << 16) | sport, now)
                self._remove_state(slot)
        compiled = self._compiled
        walkers = self._walkers[pkt.direction].get(pkt.proto)
        if walkers is None:
            walkers = self._walkers_for(pkt.direction, pkt.proto)
        first, after = walkers
        i = first(pkt, 0)
        while True:
            c = compiled[i]
            self.packets[i] += 1
            self.bytes[i] += pkt.length
            if c.rule.log:
                self._log(c.rule, pkt)
            action = c.action
            if action == _A_COUNT:
                i = after(pkt, i + 1)
                continue
            if action == _A_SKIPTO:
                i = after(pkt, c.target)
                continue
            if c.rule.keep_state and not self._create_state(pkt, c, now):
                return Verdict.DROP
            return self._act(pkt, c)

    def _walkers_for(self, direction: int, proto: int) -> tuple[Walker, Walker]:
        """The generated walkers of packets of ``proto`` at ``direction`` (every protocol no
        rule names shares one pair)."""
        table = self._walkers[direction]
        key = proto if proto in self._protos else -1
        walkers = table.get(key)
        if walkers is None:
            walkers = table[key] = _build_walkers(self._compiled, int(direction), key)
        table[proto] = walkers
        return walkers

    def _act(self, pkt: PfilPacket, c: _Compiled) -> Verdict:
        action = c.action
        if action == _A_ALLOW:
            return Verdict.PASS
        if action == _A_RESET:
            reply = tcp_reset_for(pkt)
            if reply is not None:
                self._reply(pkt, reply, "ipfw.reset.sent")
        elif action == _A_UNREACH:
            source = self.reply_source if self.reply_source is not None else pkt.dst
            reply = icmp_unreach_for(pkt, c.rule.arg, source)
            if reply is not None:
                self._reply(pkt, reply, "ipfw.unreach.sent")
        return Verdict.DROP

    def _reply(self, pkt: PfilPacket, reply: bytes, counter: str) -> None:
        if pkt.replies is None:
            pkt.replies = []
        pkt.replies.append(reply)
        self.stats[counter] += 1

    def _log(self, rule: Rule, pkt: PfilPacket) -> None:
        proto = _PROTO_BY_NUMBER.get(pkt.proto, str(pkt.proto)).upper()
        if pkt.sport >= 0:
            ends = f"{ip_to_str(pkt.src)}:{pkt.sport} {ip_to_str(pkt.dst)}:{pkt.dport}"
        else:
            ends = f"{ip_to_str(pkt.src)} {ip_to_str(pkt.dst)}"
        direction = pkt.direction.name.lower()
        self.log.append(
            f"{self.now:.6f} ipfw: {rule.number} {rule.action.value} {proto} {ends} "
            f"{direction} via {pkt.ifindex}"
        )
        self.stats["ipfw.logged"] += 1

    # -- dynamic state --
    def _timeout(self, tcp: bool, replied: bool) -> float:
        if not tcp:
            return self.timeouts.other
        return self.timeouts.tcp_established if replied else self.timeouts.tcp_opening

    def _from_state(self, pkt: PfilPacket, slot: int, end: int, now: float) -> Verdict:
        states = self.states
        if end != states.origin[slot]:
            states.replied[slot] = 1
        tcp, replied = bool(states.tcp[slot]), bool(states.replied[slot])
        states.expire[slot] = now + self._timeout(tcp, replied)
        i = int(states.rule[slot])
        self.packets[i] += 1
        self.bytes[i] += pkt.length
        self.stats["ipfw.state.hit"] += 1
        c = self._compiled[i]
        if c.rule.log:
            self._log(c.rule, pkt)
        return self._act(pkt, c)

    def _create_state(self, pkt: PfilPacket, c: _Compiled, now: float) -> bool:
        """Record a state for ``pkt``; False (counted) when the table or the rule is full."""
        states = self.states
        if states.count >= self.max_states:
            self._expire(now)
            if states.count >= self.max_states:
                self.stats["ipfw.state.full"] += 1
                return False
        if c.rule.limit and states.rule_states[c.index] >= c.rule.limit:
            self._expire(now)
            if states.rule_states[c.index] >= c.rule.limit:
                self.stats["ipfw.state.limit"] += 1
                return False
        sport, dport = _flow_ports(pkt.proto, pkt.sport, pkt.dport)
        a, b = (pkt.src << 16) | sport, (pkt.dst << 16) | dport
        tcp = pkt.proto == IpProtocol.TCP
        lo, hi = (a, b) if a <= b else (b, a)
        states.insert(pkt.proto, lo, hi, c.index, now + self._timeout(tcp, False), a, tcp)
        self.stats["ipfw.state.created"] += 1
        return True

    def _remove_state(self, slot: int) -> None:
        self.states.remove(slot)
        self.stats["ipfw.state.expired"] += 1

    def _expire(self, now: float) -> int:
        """Remove every expired state; returns how many."""
        removed = self.states.reclaim(now)
        if removed:
            self.stats["ipfw.state.expired"] += removed
        return removed

    def expire_states(self, now: float | None = None) -> int:
        """Reclaim expired states now (the router may call this from its poll)."""
        return self._expire(self.now if now is None else now)

    # -- vector evaluation --
    def evaluate_batch(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: Direction | int,
        ifindex: npt.NDArray[np.integer] | int,
        *,
        ordered: bool = False,
    ) -> npt.NDArray[np.uint8]:
        """Verdicts of a whole batch: 0 PASS, 1 DROP, 3 PUNT (see the module docstring).

        ``cols`` holds equal-length integer arrays ``src``, ``dst``, ``proto``, ``sport``,
        ``dport``, ``tcp_flags``, ``icmp_type``, ``ttl``, ``length`` (``-1`` where absent) and,
        optionally, ``fragment`` (nonzero for fragments; absent means none is) and ``punted``
        (nonzero: the caller punts that row whatever the verdict).  ``ifindex`` is one interface
        index per packet, or one for all.  ``ordered`` is the caller's promise of
        :class:`netfast.pfil.BatchHook`: the rows are in arrival order, no other call sees them
        in this batch, and the punted ones go through the scalar path afterwards, in order; the
        batch may then create states (keep-state decided here).
        """
        return self.run_batch_kernel(cols, direction, ifindex, None, ordered=ordered)

    @property
    def uses_bitmaps(self) -> bool:
        """Does :meth:`evaluate_batch` run the bitmap matcher (``matcher`` and rule count)?"""
        if self.matcher == "auto":
            return RuleBitmaps.size_bound(self._table) <= BITMAP_MAX_BYTES
        return self.matcher == "bitmap"

    def run_batch_kernel(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: Direction | int,
        ifindex: npt.NDArray[np.integer] | int,
        kernel: BatchKernel | None,
        *,
        ordered: bool = False,
    ) -> npt.NDArray[np.uint8]:
        """The set-up of :meth:`evaluate_batch` around one run of the rule walk ``kernel``
        (which gets the argument list of :func:`~netfast.pfil.ipfw.kernel.walk_rules_kernel`;
        the tests pass their per-packet reference walk through here; ``None``: the matcher
        ``matcher`` chooses): the columns as contiguous
        int64, the rows whose flow has a state (not walked), the live rules, the ``me`` and
        ``table`` columns; then the state phase in row order and the counting."""
        n = len(cols["src"])
        verdict = np.full(n, _UNDECIDED, np.uint8)
        if n == 0:
            return verdict
        # Without keep-state rules no state exists, and the order of the rows changes nothing.
        ordered = ordered and self._has_keep_state
        work = {
            k: np.ascontiguousarray(cols[k], np.int64) if k in cols else np.full(n, -1, np.int64)
            for k in _COLUMNS
        }
        frag = cols.get("fragment")
        fragment = np.zeros(n, np.uint8) if frag is None else (np.asarray(frag) != 0).view(np.uint8)
        given = cols.get("punted")
        punted = np.zeros(n, np.uint8) if given is None else (np.asarray(given) != 0).view(np.uint8)
        ifx = np.ascontiguousarray(np.broadcast_to(np.asarray(ifindex), (n,)), np.int64)
        st = self.states
        proto, src, dst = work["proto"], work["src"], work["dst"]
        sport, dport, length = work["sport"], work["dport"], work["length"]
        skip = punted.copy()
        expired = 0
        if st.meta[0]:
            found = np.zeros(n, np.uint8)
            expired = probe_kernel(
                st.proto, st.lo, st.hi, st.expire, st.shift, st.mask, float(self.now),
                proto, src, sport, dst, dport, found,
            )  # fmt: skip
            skip |= found
        t = self._table
        direction = int(direction)
        ext = np.empty((len(t.ext), n), np.uint8)
        for j, (match, column) in enumerate(t.ext):
            ext[j] = match.vmatch_raw(cols[column])
        walk_rule = np.empty(n, np.int64)
        flags, icmp_type, ttl = work["tcp_flags"], work["icmp_type"], work["ttl"]
        if kernel is None and self.uses_bitmaps:
            if self._bitmaps is None:
                self._bitmaps = RuleBitmaps(t)
            trail_rule, trail_pkt, n_trail = self._bitmaps.walk(
                t, ext, direction, (src, dst, proto, sport, dport, flags, icmp_type, ttl),
                fragment, ifx, skip, walk_rule,
            )  # fmt: skip
        else:
            table, orig = t.live(direction, np.bincount(np.clip(proto, 0, 256), minlength=257))
            trail_rule, trail_pkt, n_trail = (kernel or walk_rules_kernel)(
                table, orig, t.addrs, t.ports, t.icmp, ext, direction, src, dst, proto, sport,
                dport, flags, icmp_type, ttl, length, fragment, ifx, skip, walk_rule,
            )  # fmt: skip
        create = self._creatable(walk_rule, skip, punted, expired) if ordered else self._no_create
        how = np.zeros(n, np.uint8)
        stats = np.zeros(2, np.int64)
        tm = self.timeouts
        sequence_kernel(
            st.proto, st.lo, st.hi, st.rule, st.expire, st.origin, st.replied, st.tcp, st.meta,
            st.rule_states, st.shift, st.mask, self._rule_flags, create,
            proto, src, sport, dst, dport, length, punted, walk_rule, ordered, float(self.now),
            tm.tcp_established, tm.tcp_opening, tm.other, verdict, how, self.packets, self.bytes,
            stats,
        )  # fmt: skip
        count_kernel(how, walk_rule, length, trail_rule, trail_pkt, n_trail, self.packets,
                     self.bytes)  # fmt: skip
        hits, created = stats.tolist()
        if hits:
            self.stats["ipfw.state.hit"] += hits
        if created:
            self.stats["ipfw.state.created"] += created
        return verdict

    @property
    def _no_create(self) -> npt.NDArray[np.uint8]:
        return np.zeros(len(self._compiled), np.uint8)

    def _creatable(
        self,
        walk_rule: npt.NDArray[np.int64],
        skip: npt.NDArray[np.uint8],
        punted: npt.NDArray[np.uint8],
        expired: int,
    ) -> npt.NDArray[np.uint8]:
        """Per rule: may this ordered batch create its states here?  Only when no packet of
        the batch, in either order of handling, can find the table or the rule's ``limit``
        full: the states now, plus every row that might create one (rows whose walk ends on a
        keep-state rule or punts, rows of expired states, and the rows punted already) stay
        within the bounds.  Else
        that rule's creations are punted, and the scalar path decides them in order."""
        flags = self._rule_flags
        walked = walk_rule[skip == 0]
        ends = np.bincount(walked[walked >= 0], minlength=len(flags))
        keeps = (flags & RULE_KEEP) != 0
        unknown = int(np.count_nonzero(walked < 0)) + int(np.count_nonzero(punted)) + expired
        # rows whose walk ends on a rule that punts may create a state there (a logging
        # keep-state rule) when the scalar path handles them
        unknown += int(ends[(flags & RULE_PUNTS) != 0].sum())
        st = self.states
        creators = int(ends[keeps].sum()) + unknown
        if st.count + creators > self.max_states:
            return self._no_create
        limits = self._limits
        ok = keeps & ((limits == 0) | (st.rule_states + ends + unknown <= limits))
        return ok.astype(np.uint8)


def _rib_entries(rib: Rib) -> list[tuple[int, int, object]]:
    out = []
    for rid in range(rib.route_count):
        if rib.alive[rid]:
            out.append((int(rib.net[rid]), int(rib.plen[rid]), rib.value_of(rid)))
    return out
