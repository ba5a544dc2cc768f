"""The bitmap matcher: per-field tables of rule bitmaps, intersected per packet.

The rule-major walk (:mod:`netfast.pfil.ipfw.kernel`) costs one pass per rule over the packets
still undecided, so a packet that ends on rule 100 pays for 100 rules.  Here the rules are
compiled once into one table per field, each entry a bitmap of the rules whose condition on that
field holds for the values it covers (bit ``i`` of word ``i // 64``: rule ``i``):

- protocol: 257 rows (a protocol number, or absent);
- source and destination port: a direct table port -> row (65,536 entries and one for "no
  port"), each row one elementary interval of the rules' port ranges;
- source and destination address: the sorted boundaries of the rules' prefixes and ranges
  (negation included), one row per elementary interval, found by binary search;
- direction: one row per direction (with ``recv``/``xmit``, which a direction rules out);
- TCP flags, ICMP type and TTL: 257 rows each (a value 0..255, or absent), fragment: 2 rows;
- each ``me`` / ``table(NAME)`` column the batch computed: 2 rows (in, not in).

A packet's candidates are the AND of its rows (``W = ceil(rules/64)`` words each); the first set
bit is the first rule that matches.  Only interface conditions (``recv``, ``xmit``, ``via``,
compared with the call's ifindex column) and non-contiguous masks are outside the bitmaps: such
a candidate is checked in full before it counts, as is every candidate of a packet whose column
values no row covers, so the bitmaps only ever narrow.  ``count`` and ``skipto`` go on from the
next bit (skipto: from its target).  The cost per packet is a fixed number of table reads and
word ANDs, whatever the rule count up to 64 rules a word; the result is the walk's exactly
(``walk_rule`` and the count/skipto trail, see
:func:`~netfast.pfil.ipfw.kernel.walk_rules_kernel`), which the tests check against it and
against the scalar path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba.cpython.unsafe.numbers import trailing_zeros

from netfast.pfil.ipfw.compile import (
    _A_COUNT,
    _A_SKIPTO,
    _DIR_OUT,
    _K_ALL,
    _K_EXT,
    _K_LIST,
    _K_NONE,
    _NONE,
    _R_ACTION,
    _R_DIR,
    _R_DP_CNT,
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
    _R_SP_CNT,
    _R_SP_OFF,
    _R_SRC_KIND,
    _R_TARGET,
    _R_TTL_HI,
    _R_TTL_LO,
    _R_VIA,
    _R_XMIT,
    _RuleTable,
)

_U32 = 0xFFFFFFFF
_PORTS = 65536  # the "no port" entry of the port tables
_DIRECTIONS = 3  # Direction.IN, FORWARD, OUT
_SMALL_FIELDS = 4
_F_FLAGS, _F_ICMP, _F_TTL, _F_FRAG = range(_SMALL_FIELDS)


def _set_bits(rows: npt.NDArray[np.uint64], hit: npt.NDArray[np.bool_], rule: int) -> None:
    """Set bit ``rule`` in the rows where ``hit``."""
    rows[hit, rule >> 6] |= np.uint64(1) << np.uint64(rule & 63)


def _contiguous(mask: int) -> bool:
    inv = ~mask & _U32
    return inv & (inv + 1) == 0


class RuleBitmaps:
    """The field tables of one compiled rule table (see the module docstring).

    ``verify[i]`` is 1 where rule ``i`` has conditions outside the bitmaps (interfaces,
    non-contiguous masks)."""

    __slots__ = (
        "dir_rows",
        "dport_of",
        "dport_rows",
        "dst_bounds",
        "dst_rows",
        "ext_rows",
        "proto_rows",
        "small_rows",
        "sport_of",
        "sport_rows",
        "src_bounds",
        "src_rows",
        "use",
        "use_ext",
        "verify",
        "words",
    )

    def __init__(self, table: _RuleTable) -> None:
        rules = table.rules
        n = len(rules)
        self.words = words = max(1, (n + 63) // 64)
        verify = np.zeros(n, np.uint8)
        # interface conditions compare with the call's ifindex column: checked in full
        iface = rules[:, [_R_RECV, _R_XMIT, _R_VIA]] != _NONE
        verify[iface.any(axis=1)] = 1

        dir_rows = np.zeros((_DIRECTIONS, words), np.uint64)
        for d in range(_DIRECTIONS):
            ok = (rules[:, _R_DIR] < 0) | (rules[:, _R_DIR] == d)
            if d == _DIR_OUT:
                ok &= rules[:, _R_RECV] == _NONE
            else:
                ok &= rules[:, _R_XMIT] == _NONE
            for base in (_R_SRC_KIND, _R_DST_KIND):
                ok &= ~((rules[:, base] == _K_ALL) & (rules[:, base + 1] != 0))
            for rule in np.flatnonzero(ok).tolist():
                _set_bits(dir_rows[d : d + 1], np.ones(1, np.bool_), rule)
        self.dir_rows = dir_rows

        proto_rows = np.zeros((257, words), np.uint64)
        for i in range(n):
            p = int(rules[i, _R_PROTO])
            hit = np.ones(257, np.bool_) if p < 0 else np.arange(257) == p
            _set_bits(proto_rows, hit, i)
        self.proto_rows = proto_rows
        self.small_rows = self._small_tables(table)
        n_ext = max(1, len(table.ext))
        ext_rows = np.zeros((n_ext, 2, words), np.uint64)
        for i in range(n):
            used = [
                (int(rules[i, base + 2]), int(rules[i, base + 1]) != 0)
                for base in (_R_SRC_KIND, _R_DST_KIND)
                if rules[i, base] == _K_EXT
            ]
            for j in range(n_ext):
                hit = np.ones(2, np.bool_)
                for col, negate in used:
                    if col == j:
                        hit &= np.array([negate, not negate])  # ext 0: not in; 1: in
                _set_bits(ext_rows[j], hit, i)
        self.ext_rows = ext_rows

        self.sport_of, self.sport_rows = self._port_table(table, _R_SP_OFF, _R_SP_CNT)
        self.dport_of, self.dport_rows = self._port_table(table, _R_DP_OFF, _R_DP_CNT)
        self.src_bounds, self.src_rows = self._addr_table(table, _R_SRC_KIND, verify)
        self.dst_bounds, self.dst_rows = self._addr_table(table, _R_DST_KIND, verify)
        self.verify = verify
        # A field whose rows are all the same decides nothing per packet: its row is folded
        # into the direction rows and the kernel skips it (``use``: 0 proto, 1 sport, 2 dport,
        # 3 src, 4 dst, 5 flags, 6 ICMP type, 7 TTL, 8 fragment; ``use_ext`` per column).
        fields = [self.proto_rows, self.sport_rows, self.dport_rows, self.src_rows,
                  self.dst_rows, *self.small_rows]  # fmt: skip
        self.use = np.ones(len(fields), np.uint8)
        for k, rows in enumerate(fields):
            if (rows == rows[0]).all():
                self.use[k] = 0
                self.dir_rows &= rows[0]
        self.use_ext = np.ones(len(self.ext_rows), np.uint8)
        for j, rows in enumerate(self.ext_rows):
            if (rows[0] == rows[1]).all():
                self.use_ext[j] = 0
                self.dir_rows &= rows[0]

    def _small_tables(self, table: _RuleTable) -> npt.NDArray[np.uint64]:
        """Rows by TCP flags, ICMP type, TTL (0..255; 256: absent) and fragment (0, 1)."""
        rules, icmp = table.rules, table.icmp
        rows = np.zeros((_SMALL_FIELDS, 257, self.words), np.uint64)
        v = np.arange(257)
        present = v < 256
        for i in range(len(rules)):
            fset, fclear, fany = (int(x) for x in rules[i, [_R_FSET, _R_FCLEAR, _R_FANY]])
            hit = np.ones(257, np.bool_)
            if fset or fclear or fany:
                hit = present & (v & fset == fset) & (v & fclear == 0)
                if fany:
                    hit &= v & fany != 0
            _set_bits(rows[_F_FLAGS], hit, i)
            cnt = int(rules[i, _R_IC_CNT])
            hit = np.ones(257, np.bool_)
            if cnt:
                off = int(rules[i, _R_IC_OFF])
                hit = present & np.isin(v, icmp[off : off + cnt])
            _set_bits(rows[_F_ICMP], hit, i)
            lo, hi = int(rules[i, _R_TTL_LO]), int(rules[i, _R_TTL_HI])
            hit = np.ones(257, np.bool_) if lo < 0 else present & (v >= lo) & (v <= hi)
            _set_bits(rows[_F_TTL], hit, i)
            hit = np.ones(257, np.bool_) if not rules[i, _R_FRAG] else v == 1
            _set_bits(rows[_F_FRAG], hit, i)
        return rows

    @staticmethod
    def size_bound(table: _RuleTable) -> int:
        """An upper bound of the bytes the tables of ``table`` take, without building them."""
        words = max(1, (len(table.rules) + 63) // 64)
        rows = _DIRECTIONS + 257 + 2 * (2 * len(table.ports) + 2) + 2 * (2 * len(table.addrs) + 1)
        rows += _SMALL_FIELDS * 257 + 2 * max(1, len(table.ext))
        return 8 * words * rows + 2 * 4 * (_PORTS + 1)

    def _port_table(
        self, table: _RuleTable, off_col: int, cnt_col: int
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint64]]:
        rules, ports = table.rules, table.ports
        cuts = {0, _PORTS}
        for lo, hi in ports.tolist():
            lo, hi = max(lo, 0), min(hi, _PORTS - 1)
            if lo <= hi:
                cuts.update((lo, hi + 1))
        bounds = np.array(sorted(cuts), np.int64)  # intervals [bounds[j], bounds[j + 1])
        n_iv = len(bounds) - 1
        starts = bounds[:-1]
        rows = np.zeros((n_iv + 1, self.words), np.uint64)  # the last row: no port
        for i in range(len(rules)):
            cnt = int(rules[i, cnt_col])
            if cnt == 0:
                _set_bits(rows, np.ones(n_iv + 1, np.bool_), i)
                continue
            hit = np.zeros(n_iv + 1, np.bool_)
            off = int(rules[i, off_col])
            for lo, hi in ports[off : off + cnt].tolist():
                hit[:n_iv] |= (starts >= lo) & (starts <= hi)
            _set_bits(rows, hit, i)
        of = np.empty(_PORTS + 1, np.uint16 if n_iv + 1 <= 0xFFFF else np.int32)
        of[:_PORTS] = np.repeat(np.arange(n_iv), np.diff(bounds))
        of[_PORTS] = n_iv
        return of, rows

    def _addr_table(
        self, table: _RuleTable, kind_col: int, verify: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
        rules, addrs = table.rules, table.addrs
        spans: dict[int, list[tuple[int, int]] | None] = {}  # rule -> [lo, hi] list, or None
        cuts = {0, _U32 + 1}
        for i in range(len(rules)):
            if rules[i, kind_col] != _K_LIST:
                continue
            off, cnt = int(rules[i, kind_col + 2]), int(rules[i, kind_col + 3])
            items: list[tuple[int, int]] = []
            exact = True
            for form, a, b in addrs[off : off + cnt].tolist():
                if form == 1:
                    lo, hi = a, b
                elif _contiguous(a):
                    lo, hi = b & a, (b & a) | (~a & _U32)
                else:
                    if b & ~a & _U32:  # a value outside its mask matches nothing
                        continue
                    exact = False  # a non-contiguous mask: checked in full
                    break
                if lo <= hi:
                    items.append((lo, hi))
            if exact:
                for lo, hi in items:
                    cuts.update((lo, hi + 1))
            spans[i] = items if exact else None
        bounds = np.array(sorted(cuts), np.int64)
        n_iv = len(bounds) - 1
        starts = bounds[:-1]
        rows = np.zeros((n_iv, self.words), np.uint64)
        for i in range(len(rules)):
            kind = rules[i, kind_col]
            if kind == _K_NONE or kind not in (_K_LIST, _K_ALL) or spans.get(i, []) is None:
                # no condition, an ext column (me, table: the ext rows hold it) or a
                # non-contiguous mask (the candidate checked in full): every row
                if kind == _K_LIST:
                    verify[i] = 1
                _set_bits(rows, np.ones(n_iv, np.bool_), i)
                continue
            if kind == _K_ALL:  # any, negated: the direction rows leave the rule out
                continue
            hit = np.zeros(n_iv, np.bool_)
            for lo, hi in spans[i] or ():
                hit |= (starts >= lo) & (starts <= hi)
            if rules[i, kind_col + 1]:
                hit = ~hit
            _set_bits(rows, hit, i)
        return bounds, rows

    def walk(
        self,
        table: _RuleTable,
        ext: npt.NDArray[np.uint8],
        direction: int,
        cols: tuple[npt.NDArray[np.int64], ...],
        fragment: npt.NDArray[np.uint8],
        ifindex: npt.NDArray[np.int64],
        skip: npt.NDArray[np.uint8],
        walk_rule: npt.NDArray[np.int64],
    ) -> tuple[Any, Any, int]:
        """The walk over the whole table (``walk_rule`` holds rule indexes in the ruleset);
        ``cols`` is ``src, dst, proto, sport, dport, tcp_flags, icmp_type, ttl``."""
        kernel: Callable[..., tuple[Any, Any, int]] = bitmap_walk_kernel
        return kernel(
            table.rules, table.addrs, table.ports, table.icmp, ext, direction, self.dir_rows,
            self.verify, self.proto_rows, self.sport_of, self.sport_rows, self.dport_of,
            self.dport_rows, self.src_bounds, self.src_rows, self.dst_bounds, self.dst_rows,
            self.small_rows, self.ext_rows, self.use, self.use_ext, *cols, fragment, ifindex,
            skip, walk_rule,
        )  # fmt: skip


@numba.njit(nogil=True, cache=True, inline="always")
def _interval(bounds: Any, a: int) -> int:  # pragma: no cover - compiled
    """The index j with ``bounds[j] <= a < bounds[j + 1]`` (``bounds[0] == 0 <= a``)."""
    lo, hi = 0, bounds.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if bounds[mid] <= a:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(nogil=True, cache=True)
def _rule_matches(
    rules: Any,
    addrs: Any,
    ports: Any,
    icmp: Any,
    ext: Any,
    direction: int,
    i: int,
    p: int,
    src: Any,
    dst: Any,
    proto: Any,
    sport: Any,
    dport: Any,
    tcp_flags: Any,
    icmp_type: Any,
    ttl: Any,
    fragment: Any,
    ifindex: Any,
) -> bool:  # pragma: no cover - compiled
    """Every condition of rule ``i`` on packet ``p``, as the scalar path tests them."""
    d = rules[i, _R_DIR]
    if d >= 0 and direction != d:
        return False
    v = rules[i, _R_PROTO]
    if v >= 0 and proto[p] != v:
        return False
    ifx = ifindex[p]
    v = rules[i, _R_RECV]
    if v != _NONE and (direction == _DIR_OUT or ifx != v):
        return False
    v = rules[i, _R_XMIT]
    if v != _NONE and (direction != _DIR_OUT or ifx != v):
        return False
    v = rules[i, _R_VIA]
    if v != _NONE and ifx != v:
        return False
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
            return False
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
                if max(ports[j, 0], 0) <= port <= ports[j, 1]:
                    hit = True
                    break
        if not hit:
            return False
    fset, fclear, fany = rules[i, _R_FSET], rules[i, _R_FCLEAR], rules[i, _R_FANY]
    if fset or fclear or fany:
        f = tcp_flags[p]
        if f < 0 or f & fset != fset or f & fclear:
            return False
        if fany and not f & fany:
            return False
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
            return False
    lo = rules[i, _R_TTL_LO]
    if lo >= 0 and not lo <= ttl[p] <= rules[i, _R_TTL_HI]:
        return False
    return not (rules[i, _R_FRAG] and not fragment[p])


@numba.njit(nogil=True, cache=True)
def bitmap_walk_kernel(
    rules: Any,
    addrs: Any,
    ports: Any,
    icmp: Any,
    ext: Any,
    direction: int,
    dir_rows: Any,
    verify: Any,
    proto_rows: Any,
    sport_of: Any,
    sport_rows: Any,
    dport_of: Any,
    dport_rows: Any,
    src_bounds: Any,
    src_rows: Any,
    dst_bounds: Any,
    dst_rows: Any,
    small_rows: Any,
    ext_rows: Any,
    use: Any,
    use_ext: Any,
    src: Any,
    dst: Any,
    proto: Any,
    sport: Any,
    dport: Any,
    tcp_flags: Any,
    icmp_type: Any,
    ttl: Any,
    fragment: Any,
    ifindex: Any,
    skip: Any,
    walk_rule: Any,
) -> tuple[Any, Any, int]:  # pragma: no cover - compiled
    """The walk of :func:`~netfast.pfil.ipfw.kernel.walk_rules_kernel` (same ``walk_rule`` and
    trail) by bitmaps: per packet the AND of its field rows, then the set bits in order."""
    n = src.shape[0]
    words = dir_rows.shape[1]
    acc = np.empty(words, np.uint64)
    trail_rule = np.empty(16, np.int64)
    trail_pkt = np.empty(16, np.int64)
    n_trail = 0
    zero = np.uint64(0)
    ones = ~zero
    for p in range(n):
        walk_rule[p] = -1
        if skip[p]:
            continue
        v = proto[p]
        rp = v if 0 <= v < 256 else 256
        v = sport[p]
        rs = sport_of[v if 0 <= v < _PORTS else _PORTS]
        v = dport[p]
        rd = dport_of[v if 0 <= v < _PORTS else _PORTS]
        a, b = src[p], dst[p]
        f, t, h = tcp_flags[p], icmp_type[p], ttl[p]
        exact = 0 <= a <= _U32 and 0 <= b <= _U32 and f < 256 and t < 256 and h < 256
        for w in range(words):
            acc[w] = dir_rows[direction, w]
        if exact:
            if use[0]:
                for w in range(words):
                    acc[w] &= proto_rows[rp, w]
            if use[1]:
                for w in range(words):
                    acc[w] &= sport_rows[rs, w]
            if use[2]:
                for w in range(words):
                    acc[w] &= dport_rows[rd, w]
            if use[3]:
                ra = _interval(src_bounds, a)
                for w in range(words):
                    acc[w] &= src_rows[ra, w]
            if use[4]:
                rb = _interval(dst_bounds, b)
                for w in range(words):
                    acc[w] &= dst_rows[rb, w]
            if use[5]:
                rf = f if f >= 0 else 256
                for w in range(words):
                    acc[w] &= small_rows[0, rf, w]
            if use[6]:
                rt = t if t >= 0 else 256
                for w in range(words):
                    acc[w] &= small_rows[1, rt, w]
            if use[7]:
                rh = h if h >= 0 else 256
                for w in range(words):
                    acc[w] &= small_rows[2, rh, w]
            if use[8]:
                rg = 1 if fragment[p] else 0
                for w in range(words):
                    acc[w] &= small_rows[3, rg, w]
            for j in range(ext.shape[0]):
                if use_ext[j]:
                    e = 1 if ext[j, p] else 0
                    for w in range(words):
                        acc[w] &= ext_rows[j, e, w]
        # else: a value no table row covers: every candidate checked in full
        start = 0
        first_trail = n_trail
        while True:
            w = start >> 6
            if w >= words:
                break
            x = acc[w] & (ones << np.uint64(start & 63))
            while x == zero:
                w += 1
                if w >= words:
                    break
                x = acc[w]
            if w >= words:
                break
            i = (w << 6) + np.int64(trailing_zeros(x))  # type: ignore[call-arg]
            start = i + 1
            if (not exact or verify[i]) and not _rule_matches(
                rules, addrs, ports, icmp, ext, direction, i, p, src, dst, proto, sport,
                dport, tcp_flags, icmp_type, ttl, fragment, ifindex,
            ):  # fmt: skip
                continue
            action = rules[i, _R_ACTION]
            if rules[i, _R_PUNTS] == 0 and (action == _A_COUNT or action == _A_SKIPTO):  # noqa: SIM109
                if n_trail >= trail_rule.shape[0]:
                    grown_r = np.empty(2 * trail_rule.shape[0], np.int64)
                    grown_p = np.empty(2 * trail_rule.shape[0], np.int64)
                    grown_r[:n_trail] = trail_rule[:n_trail]
                    grown_p[:n_trail] = trail_pkt[:n_trail]
                    trail_rule, trail_pkt = grown_r, grown_p
                trail_rule[n_trail] = i
                trail_pkt[n_trail] = p
                n_trail += 1
                if action == _A_SKIPTO:
                    start = max(start, rules[i, _R_TARGET])
                continue
            walk_rule[p] = i
            break
        if walk_rule[p] < 0:
            n_trail = first_trail  # undecided (no rule matched): nothing passed on the way
    return trail_rule, trail_pkt, n_trail
