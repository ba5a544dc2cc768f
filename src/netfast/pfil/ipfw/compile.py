"""Rules compiled for matching: integers and sets instead of rule values.

:class:`_Compiled` holds one rule's conditions (``None`` / ``-1``: no condition), the input of
the generated scalar walkers (:mod:`netfast.pfil.ipfw.walker`); :class:`_RuleTable` lays all of
them out as integer arrays for the batch kernel (:mod:`netfast.pfil.ipfw.kernel`), with
:meth:`_RuleTable.live` leaving out the rules no packet of a batch can match.  ``me`` and
``table(NAME)`` addresses (the ``ip_fw_table.c`` part) are tested per batch by
:meth:`_AddrMatch.vmatch_raw` and read by the kernel as columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from netfast.pfil import Direction
from netfast.pfil.ipfw.rules import (
    ANY,
    Action,
    AddrSpec,
    Rule,
)
from netfast.route.rib import prefix_mask
from netfast.route.table import RoutingTable
from netfast.wire.tcp import TcpFlags

# -- compiled form -------------------------------------------------------------------------------

_ADDR_ANY, _ADDR_ME, _ADDR_TABLE, _ADDR_LIST = range(4)
_A_ALLOW, _A_DENY, _A_RESET, _A_UNREACH, _A_COUNT, _A_SKIPTO = range(6)
_ACTION_CODE = {
    Action.ALLOW: _A_ALLOW,
    Action.DENY: _A_DENY,
    Action.RESET: _A_RESET,
    Action.UNREACH: _A_UNREACH,
    Action.COUNT: _A_COUNT,
    Action.SKIPTO: _A_SKIPTO,
}
_NO_IF = -2  # an interface name the ruleset does not know: matches nothing


class _AddrMatch:
    """An address spec reduced to integer tests: (mask, value) pairs and [lo, hi] ranges."""

    __slots__ = ("kind", "me", "me_array", "negate", "nets", "ranges", "table")

    def __init__(
        self, spec: AddrSpec, tables: Mapping[str, RoutingTable], me: frozenset[int]
    ) -> None:
        self.kind = {"any": _ADDR_ANY, "me": _ADDR_ME, "table": _ADDR_TABLE, "list": _ADDR_LIST}[
            spec.kind
        ]
        self.negate = spec.negate
        nets: list[tuple[int, int]] = []
        ranges: list[tuple[int, int]] = []
        for item in spec.items:
            if item.kind == "host":
                nets.append((0xFFFFFFFF, item.a))
            elif item.kind == "prefix":
                nets.append((prefix_mask(item.b), item.a))
            elif item.kind == "mask":
                nets.append((item.b, item.a))
            else:
                ranges.append((item.a, item.b))
        self.nets = tuple(nets)
        self.ranges = tuple(ranges)
        self.table = tables.get(spec.table) if spec.kind == "table" else None
        self.me = me
        self.me_array = np.array(sorted(me), np.uint32)

    def vmatch_raw(self, addrs: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
        """The ``me`` / ``table`` test over a batch, before negation (the kernel negates)."""
        if self.kind == _ADDR_ME:
            return np.isin(addrs, self.me_array)
        assert self.table is not None
        return self.table.lookup_batch(np.asarray(addrs).astype(np.uint32)) >= 0


class _Compiled:
    """A rule as precomputed integers, for a tight scalar loop and mask-building in the vector
    form.  ``None`` / ``-1`` mean "no condition"."""

    __slots__ = (
        "action",
        "direction",
        "dport",
        "dst",
        "flags_any",
        "flags_clear",
        "flags_set",
        "frag",
        "icmp_array",
        "icmptypes",
        "index",
        "proto",
        "punts",
        "recv",
        "rule",
        "sport",
        "src",
        "target",
        "ttl_hi",
        "ttl_lo",
        "via",
        "xmit",
    )

    def __init__(
        self,
        index: int,
        rule: Rule,
        target: int,
        tables: Mapping[str, RoutingTable],
        me: frozenset[int],
        interfaces: Mapping[str, int],
    ) -> None:
        self.index = index
        self.rule = rule
        self.action = _ACTION_CODE[rule.action]
        self.target = target
        self.proto = rule.proto
        self.src = None if rule.src == ANY else _AddrMatch(rule.src, tables, me)
        self.dst = None if rule.dst == ANY else _AddrMatch(rule.dst, tables, me)
        self.sport = rule.sport or None
        self.dport = rule.dport or None
        self.direction = -1 if rule.direction is None else int(rule.direction)
        self.recv = None if rule.recv is None else interfaces.get(rule.recv, _NO_IF)
        self.xmit = None if rule.xmit is None else interfaces.get(rule.xmit, _NO_IF)
        self.via = None if rule.via is None else interfaces.get(rule.via, _NO_IF)
        flags_set, flags_clear = rule.flags_set, rule.flags_clear
        if rule.setup:
            flags_set |= TcpFlags.SYN
            flags_clear |= TcpFlags.ACK
        self.flags_set = int(flags_set)
        self.flags_clear = int(flags_clear)
        self.flags_any = int(TcpFlags.ACK | TcpFlags.RST) if rule.established else 0
        self.icmptypes = frozenset(rule.icmptypes) if rule.icmptypes else None
        self.icmp_array = np.array(rule.icmptypes, np.int64)
        self.ttl_lo, self.ttl_hi = rule.ttl if rule.ttl is not None else (-1, -1)
        self.frag = rule.frag
        # Matches the vector form hands to the scalar path (reset is refined per packet, keep-state
        # by the state phase).
        self.punts = rule.log or self.action == _A_UNREACH


# -- the vector form: a rule table and a kernel ---------------------------------------------------

# Columns of _RuleTable.rules.  _NONE: "no condition" (an interface condition holds -2 for a name
# the ruleset does not know, which matches nothing, as in the scalar form).
_NONE = -(1 << 62)
(
    _R_ACTION, _R_TARGET, _R_PUNTS, _R_PROTO, _R_DIR, _R_RECV, _R_XMIT, _R_VIA,
    _R_FSET, _R_FCLEAR, _R_FANY, _R_TTL_LO, _R_TTL_HI, _R_FRAG,
    _R_SRC_KIND, _R_SRC_NEG, _R_SRC_OFF, _R_SRC_CNT,
    _R_DST_KIND, _R_DST_NEG, _R_DST_OFF, _R_DST_CNT,
    _R_SP_OFF, _R_SP_CNT, _R_DP_OFF, _R_DP_CNT, _R_IC_OFF, _R_IC_CNT,
    _R_FIELDS,
) = range(29)  # fmt: skip
# Address condition kinds: none, a list (masks and ranges in ``addrs``), always hit (``any``, only
# seen negated), an ``ext`` column (``me`` / ``table``; OFF is the column).
_K_NONE, _K_LIST, _K_ALL, _K_EXT = range(4)
_DIR_OUT = int(Direction.OUT)


class _RuleTable:
    """The compiled rules as integer arrays for :func:`_evaluate_kernel`.

    ``rules`` is ``(n_rules, _R_FIELDS)`` int64; ``addrs`` ``(k, 3)`` rows ``(0, mask, value)`` or
    ``(1, lo, hi)``; ``ports`` ``(k, 2)`` ranges; ``icmp`` the ICMP types; ``ext`` the
    ``(_AddrMatch, column name)`` pairs evaluated per batch before the kernel runs."""

    __slots__ = ("addrs", "ext", "icmp", "ports", "rules")

    def __init__(self, compiled: Sequence[_Compiled]) -> None:
        rules = np.zeros((len(compiled), _R_FIELDS), np.int64)
        addrs: list[tuple[int, int, int]] = []
        ports: list[tuple[int, int]] = []
        icmp: list[int] = []
        ext: list[tuple[_AddrMatch, str]] = []
        for i, c in enumerate(compiled):
            r = rules[i]
            r[_R_ACTION] = c.action
            r[_R_TARGET] = c.target
            r[_R_PUNTS] = c.punts
            r[_R_PROTO] = c.proto
            r[_R_DIR] = c.direction
            for col, value in ((_R_RECV, c.recv), (_R_XMIT, c.xmit), (_R_VIA, c.via)):
                r[col] = _NONE if value is None else value
            r[_R_FSET], r[_R_FCLEAR], r[_R_FANY] = c.flags_set, c.flags_clear, c.flags_any
            r[_R_TTL_LO], r[_R_TTL_HI] = c.ttl_lo, c.ttl_hi
            r[_R_FRAG] = c.frag
            for base, match, column in ((_R_SRC_KIND, c.src, "src"), (_R_DST_KIND, c.dst, "dst")):
                if match is None:
                    r[base] = _K_NONE
                    continue
                r[base + 1] = match.negate
                if match.kind == _ADDR_LIST:
                    r[base], r[base + 2] = _K_LIST, len(addrs)
                    addrs += [(0, mask, value) for mask, value in match.nets]
                    addrs += [(1, lo, hi) for lo, hi in match.ranges]
                    r[base + 3] = len(addrs) - r[base + 2]
                elif match.kind == _ADDR_ANY:
                    r[base] = _K_ALL
                else:
                    r[base], r[base + 2] = _K_EXT, len(ext)
                    ext.append((match, column))
            for off, ranges in ((_R_SP_OFF, c.sport), (_R_DP_OFF, c.dport)):
                r[off] = len(ports)
                ports += list(ranges or ())
                r[off + 1] = len(ports) - r[off]
            r[_R_IC_OFF] = len(icmp)
            icmp += sorted(c.icmptypes or ())
            r[_R_IC_CNT] = len(icmp) - r[_R_IC_OFF]
        self.rules = rules
        self.addrs = np.array(addrs, np.int64).reshape(-1, 3)
        self.ports = np.array(ports, np.int64).reshape(-1, 2)
        self.icmp = np.array(icmp, np.int64)
        self.ext = ext

    def live(
        self, direction: int, proto_counts: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
        """The rules that can match some packet of a call at ``direction`` over packets with
        these protocol counts (index 256: absent or out of range), as a table whose skipto
        targets are renumbered (to the first such rule at or after the target), and their
        indexes in the ruleset.  The default rule is always among them."""
        rules = self.rules
        n = len(rules)
        proto = rules[:, _R_PROTO]
        live = proto < 0
        known = (proto >= 0) & (proto < 256)
        live[known] = proto_counts[proto[known]] > 0
        live &= (rules[:, _R_DIR] < 0) | (rules[:, _R_DIR] == direction)
        live &= (rules[:, _R_RECV] == _NONE) | (direction != _DIR_OUT)
        live &= (rules[:, _R_XMIT] == _NONE) | (direction == _DIR_OUT)
        live[n - 1] = True
        orig = np.flatnonzero(live)
        table = rules[orig]
        skip = table[:, _R_ACTION] == _A_SKIPTO
        table[skip, _R_TARGET] = np.searchsorted(orig, table[skip, _R_TARGET])
        return table, orig
