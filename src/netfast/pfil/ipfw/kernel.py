"""The vector matcher: the numba kernel that walks a batch through the rule table.

:func:`_evaluate_rules_kernel` takes the rules in order over the list of packets still undecided,
each rule narrowing a copy of the list one tested condition at a time (``_keep_*``) to the
packets it matches; first match wins (decided packets leave the list) and ``skipto`` moves a
packet's position forward.  It decides PASS and DROP, answers PUNT for what needs the scalar
path, and counts exactly what the scalar path would for the packets it decides.  It handles any
rule count; it is the only vector matcher in the product (by measurement the fastest; the
per-packet kernel and the numpy masks are oracles in ``tests/pfil/oracles.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from netfast.pfil.ipfw.compile import (
    _A_COUNT,
    _A_SKIPTO,
    _DIR_OUT,
    _K_ALL,
    _K_LIST,
    _K_NONE,
    _NONE,
    _R_ACTION,
    _R_DIR,
    _R_DP_CNT,
    _R_DP_OFF,
    _R_DST_KIND,
    _R_DST_NEG,
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
    _R_SRC_NEG,
    _R_TARGET,
    _R_TTL_HI,
    _R_TTL_LO,
    _R_VIA,
    _R_XMIT,
)

#: What :meth:`Ruleset.run_batch_kernel` calls: a compiled walk taking the argument list of
#: :func:`walk_rules_kernel` and returning its trail (numba dispatchers are not typed further).
BatchKernel = Callable[..., tuple[Any, Any, int]]


@numba.njit(nogil=True, cache=True)
def _keep_eq(col: Any, cand: Any, src: Any, k: int, value: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if col[p] == value else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_le(col: Any, cand: Any, src: Any, k: int, value: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if col[p] <= value else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_nonzero(col: Any, cand: Any, src: Any, k: int, negate: bool) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if (col[p] != 0) != negate else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_range(col: Any, cand: Any, src: Any, k: int, lo: int, hi: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        v = col[p]
        j += 1 if lo <= v and v <= hi else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_ranges(
    col: Any, cand: Any, src: Any, k: int, ranges: Any, off: int, cnt: int
) -> int:  # pragma: no cover
    """Ports: present (>= 0) and in one of ``ranges[off:off + cnt]``."""
    if cnt == 1:
        lo = max(ranges[off, 0], 0)
        return _keep_range(col, cand, src, k, lo, ranges[off, 1])
    j = 0
    for q in range(k):
        p = src[q]
        v = col[p]
        hit = False
        if v >= 0:
            for r in range(off, off + cnt):
                if ranges[r, 0] <= v <= ranges[r, 1]:
                    hit = True
                    break
        cand[j] = p
        j += 1 if hit else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_addr(
    col: Any, cand: Any, src: Any, k: int, addrs: Any, off: int, cnt: int, negate: bool
) -> int:  # pragma: no cover
    """Addresses in (or, negated, not in) the masks and ranges ``addrs[off:off + cnt]``."""
    j = 0
    if cnt == 1 and addrs[off, 0] == 0:
        mask, value = addrs[off, 1], addrs[off, 2]
        for q in range(k):
            p = src[q]
            cand[j] = p
            j += 1 if ((col[p] & mask) == value) != negate else 0
        return j
    for q in range(k):
        p = src[q]
        a = col[p]
        hit = False
        for r in range(off, off + cnt):
            if addrs[r, 0] == 0:
                if a & addrs[r, 1] == addrs[r, 2]:
                    hit = True
                    break
            elif addrs[r, 1] <= a <= addrs[r, 2]:
                hit = True
                break
        cand[j] = p
        j += 1 if hit != negate else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_flags(
    col: Any, cand: Any, src: Any, k: int, fset: int, fclear: int, fany: int
) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        f = col[p]
        ok = f >= 0 and f & fset == fset and f & fclear == 0 and (fany == 0 or f & fany != 0)
        cand[j] = p
        j += 1 if ok else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_in(
    col: Any, cand: Any, src: Any, k: int, values: Any, off: int, cnt: int
) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        v = col[p]
        hit = False
        for r in range(off, off + cnt):
            if values[r] == v:
                hit = True
                break
        cand[j] = p
        j += 1 if hit else 0
    return j


@numba.njit(nogil=True, cache=True)
def walk_rules_kernel(
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
    """The rule walk of every row not ``skip``-ped, rule by rule: ``idx`` lists the packets
    still undecided (in order); each rule narrows a copy of it condition by condition (most
    selective first: ports, addresses, then the rest) to the packets it matches, and those leave
    ``idx`` with ``walk_rule`` set to the rule's index in the ruleset (``orig``).  ``skipto``
    moves a packet's position (``pos``) forward; count and skipto matches go on as (rule,
    packet) pairs, the returned trail ``(rules, packets, n)``.  A count or skipto rule that
    punts (it logs) ends the walk like a deciding rule.  Nothing is counted and no verdict is
    given here: :func:`~netfast.pfil.ipfw.states.sequence_kernel` decides (states first, then
    the walk's rule) and :func:`~netfast.pfil.ipfw.states.count_kernel` counts."""
    n = src.shape[0]
    n_rules = rules.shape[0]
    idx = np.empty(n, np.int64)
    cand = np.empty(n, np.int64)
    m = 0
    for p in range(n):
        walk_rule[p] = -1
        if not skip[p]:
            idx[m] = p
            m += 1
    has_skip = False
    for i in range(n_rules):
        if rules[i, _R_ACTION] == _A_SKIPTO:
            has_skip = True
    pos = np.zeros(n if has_skip else 0, np.int64)
    trail_rule = np.empty(16, np.int64)
    trail_pkt = np.empty(16, np.int64)
    n_trail = 0
    for i in range(n_rules):
        if m == 0:
            break
        # conditions decided for the whole call
        d = rules[i, _R_DIR]
        if d >= 0 and direction != d:
            continue
        if rules[i, _R_RECV] != _NONE and direction == _DIR_OUT:
            continue
        if rules[i, _R_XMIT] != _NONE and direction != _DIR_OUT:
            continue
        if (rules[i, _R_SRC_KIND] == _K_ALL and rules[i, _R_SRC_NEG] != 0) or (
            rules[i, _R_DST_KIND] == _K_ALL and rules[i, _R_DST_NEG] != 0
        ):
            continue
        # per-packet conditions; the first pass reads idx, the others narrow cand in place
        k = m
        first = True
        if has_skip:
            k = _keep_le(pos, cand, idx, k, i)
            first = False
        cnt = rules[i, _R_DP_CNT]
        if cnt and k:
            k = _keep_ranges(
                dport, cand, idx if first else cand, k, ports, rules[i, _R_DP_OFF], cnt
            )
            first = False
        cnt = rules[i, _R_SP_CNT]
        if cnt and k:
            k = _keep_ranges(
                sport, cand, idx if first else cand, k, ports, rules[i, _R_SP_OFF], cnt
            )
            first = False
        for side in range(2):
            base = _R_DST_KIND if side == 0 else _R_SRC_KIND
            kind = rules[i, base]
            if k == 0 or kind == _K_NONE or kind == _K_ALL:  # noqa: SIM109 - numba
                continue
            col = dst if side == 0 else src
            neg = rules[i, base + 1] != 0
            if kind == _K_LIST:
                k = _keep_addr(
                    col, cand, idx if first else cand, k, addrs, rules[i, base + 2],
                    rules[i, base + 3], neg,
                )  # fmt: skip
            else:
                k = _keep_nonzero(ext[rules[i, base + 2]], cand, idx if first else cand, k, neg)
            first = False
        cnt = rules[i, _R_IC_CNT]
        if cnt and k:
            k = _keep_in(icmp_type, cand, idx if first else cand, k, icmp, rules[i, _R_IC_OFF], cnt)
            first = False
        fset, fclear, fany = rules[i, _R_FSET], rules[i, _R_FCLEAR], rules[i, _R_FANY]
        if (fset or fclear or fany) and k:
            k = _keep_flags(tcp_flags, cand, idx if first else cand, k, fset, fclear, fany)
            first = False
        lo = rules[i, _R_TTL_LO]
        if lo >= 0 and k:
            k = _keep_range(ttl, cand, idx if first else cand, k, lo, rules[i, _R_TTL_HI])
            first = False
        if rules[i, _R_FRAG] and k:
            k = _keep_nonzero(fragment, cand, idx if first else cand, k, False)
            first = False
        v = rules[i, _R_PROTO]
        if v >= 0 and k:
            k = _keep_eq(proto, cand, idx if first else cand, k, v)
            first = False
        for col_id in (_R_RECV, _R_XMIT, _R_VIA):
            v = rules[i, col_id]
            if v != _NONE and k:
                k = _keep_eq(ifindex, cand, idx if first else cand, k, v)
                first = False
        if k == 0:
            continue
        matched = idx if first else cand
        # rule i matches matched[:k]
        action = rules[i, _R_ACTION]
        if action == _A_COUNT or action == _A_SKIPTO:  # noqa: SIM109 - numba
            punts = rules[i, _R_PUNTS] != 0
            if not punts:
                if n_trail + k > trail_rule.shape[0]:
                    size = max(2 * trail_rule.shape[0], n_trail + k)
                    grown_r = np.empty(size, np.int64)
                    grown_p = np.empty(size, np.int64)
                    grown_r[:n_trail] = trail_rule[:n_trail]
                    grown_p[:n_trail] = trail_pkt[:n_trail]
                    trail_rule, trail_pkt = grown_r, grown_p
                target = rules[i, _R_TARGET]
                for q in range(k):
                    p = matched[q]
                    trail_rule[n_trail] = i
                    trail_pkt[n_trail] = p
                    n_trail += 1
                    if action == _A_SKIPTO:
                        pos[p] = target
                continue
        for q in range(k):
            walk_rule[matched[q]] = orig[i]
        # the decided packets leave idx
        j = 0
        for q in range(m):
            p = idx[q]
            idx[j] = p
            j += 1 if walk_rule[p] < 0 else 0
        m = j
    for t in range(n_trail):
        trail_rule[t] = orig[trail_rule[t]]
    return trail_rule, trail_pkt, n_trail
