"""The dynamic state table (``ip_fw_dynamic.c``) as flat arrays, shared by both evaluators.

Why arrays
----------
The scalar path looks a state up once per packet; the vector path looks up, refreshes and
creates states for a whole batch inside compiled code, so the table cannot be a Python dict.
:class:`StateTable` is an open-addressing hash table (linear probing, at most half full, deletion
by backward shift, so there are no tombstones) over numpy arrays: the key (protocol and the two
ends of the flow, lower end first, each ``address << 16 | port``), and the state (creating rule,
expiry time, the creating packet's end, whether the other end has been seen, TCP or not).  The
slot of a key is the top bits of :func:`~netfast.pfil.ipfw.dynamic._key_hash`, the hash the
batch path already computes.  Python code reaches it through :meth:`StateTable.find`,
:meth:`~StateTable.insert`, :meth:`~StateTable.remove` and the read-only mapping interface
(key -> :class:`StateView`); compiled code through the arrays and the kernels here, which
probe exactly as :meth:`StateTable.find` does.

Contract
--------
- :meth:`StateTable.reclaim` removes every state whose expiry is ``<= now`` (one compiled pass:
  live entries reinserted into a cleared table) and returns how many it removed.
- :func:`sequence_kernel` is the batch form's state phase (see
  :meth:`netfast.pfil.ipfw.Ruleset.evaluate_batch`): rows in order, each one decided by a live
  state, or punted, or decided by its rule walk -- creating a state when that rule keeps state
  and the batch may create states.
- ``count`` (``meta[0]``) and ``rule_states`` are kept exact by every operation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from netfast.pfil.ipfw.dynamic import _K1, _K2, _K3, StateKey, _key_hash
from netfast.pfil.ipfw.rules import VERDICT_DROP, VERDICT_PASS, VERDICT_PUNT

__all__ = [
    "RULE_KEEP",
    "RULE_PUNTS",
    "RULE_RESET",
    "RULE_ALLOW",
    "StateTable",
    "StateView",
    "count_kernel",
    "probe_kernel",
    "sequence_kernel",
]

_NK1, _NK2, _NK3 = np.uint64(_K1), np.uint64(_K2), np.uint64(_K3)
_EMPTY = -1

#: Bits of the per-rule flags :func:`sequence_kernel` reads (``Ruleset`` fills them).
RULE_PUNTS = 1  # logs or sends a reply whatever the protocol: the scalar path's
RULE_KEEP = 2  # keep-state
RULE_RESET = 4  # reset: a reply for TCP (punted), a plain deny otherwise
RULE_ALLOW = 8  # the verdict is PASS (else DROP)

#: What :func:`sequence_kernel` says decided each row (``how``).
BY_STATE = 1
BY_WALK = 2
PUNTED = 3


class StateView(NamedTuple):
    """One state as Python values (a copy: changing it changes nothing)."""

    rule: int
    expire: float
    origin: tuple[int, int]  # (address, port) of the packet that created it
    replied: bool
    tcp: bool


def _capacity(max_states: int) -> int:
    cap = 16
    while cap < 2 * max_states:
        cap *= 2
    return cap


class StateTable(Mapping[StateKey, StateView]):
    """At most ``max_states`` dynamic states (see the module docstring).

    Attributes (the arrays the kernels take, one entry per slot)
    ------------------------------------------------------------
    proto: int16, -1 for an empty slot; lo, hi: uint64 flow ends; rule: int32; expire: float64;
    origin: uint64 (``address << 16 | port`` of the creating packet); replied, tcp: uint8.
    meta: int64[1], the number of states (kept in an array so compiled code can change it).
    rule_states: int64 per rule, the live states each rule created.
    """

    def __init__(self, max_states: int, n_rules: int) -> None:
        self.max_states = max_states
        cap = _capacity(max_states)
        self.shift = 64 - (cap.bit_length() - 1)
        self.mask = cap - 1
        self.proto = np.full(cap, _EMPTY, np.int16)
        self.lo = np.zeros(cap, np.uint64)
        self.hi = np.zeros(cap, np.uint64)
        self.rule = np.zeros(cap, np.int32)
        self.expire = np.zeros(cap, np.float64)
        self.origin = np.zeros(cap, np.uint64)
        self.replied = np.zeros(cap, np.uint8)
        self.tcp = np.zeros(cap, np.uint8)
        self.meta = np.zeros(1, np.int64)
        self.rule_states = np.zeros(n_rules, np.int64)

    # -- Python access (the scalar path) --
    @property
    def count(self) -> int:
        return int(self.meta[0])

    def _home(self, proto: int, lo: int, hi: int) -> int:
        return _key_hash(proto, lo, hi) >> self.shift

    def find(self, proto: int, lo: int, hi: int) -> int:
        """The slot of the state keyed (proto, lo, hi), or -1."""
        i = self._home(proto, lo, hi)
        tp, tl, th, mask = self.proto, self.lo, self.hi, self.mask
        while True:
            p = tp[i]
            if p < 0:
                return -1
            if p == proto and tl[i] == lo and th[i] == hi:
                return i
            i = (i + 1) & mask

    def insert(
        self, proto: int, lo: int, hi: int, rule: int, expire: float, origin: int, tcp: bool
    ) -> int:
        """Add a state the caller found absent (and room for: ``count < max_states``)."""
        i = self._home(proto, lo, hi)
        tp, mask = self.proto, self.mask
        while tp[i] >= 0:
            i = (i + 1) & mask
        tp[i] = proto
        self.lo[i], self.hi[i] = lo, hi
        self.rule[i], self.expire[i], self.origin[i] = rule, expire, origin
        self.replied[i], self.tcp[i] = 0, int(tcp)
        self.meta[0] += 1
        self.rule_states[rule] += 1
        return i

    def remove(self, slot: int) -> None:
        """Delete the state in ``slot``; later entries of its probe run move back."""
        self.rule_states[self.rule[slot]] -= 1
        self.meta[0] -= 1
        _delete_slot(
            self.proto, self.lo, self.hi, self.rule, self.expire, self.origin, self.replied,
            self.tcp, self.shift, self.mask, slot,
        )  # fmt: skip

    def reclaim(self, now: float) -> int:
        """Remove every state expired at ``now``; returns how many."""
        if self.count == 0:
            return 0
        removed = _reclaim_kernel(
            self.proto, self.lo, self.hi, self.rule, self.expire, self.origin, self.replied,
            self.tcp, self.meta, self.rule_states, self.shift, self.mask, now,
        )  # fmt: skip
        return int(removed)

    def view(self, slot: int) -> StateView:
        o = int(self.origin[slot])
        return StateView(
            int(self.rule[slot]),
            float(self.expire[slot]),
            (o >> 16, o & 0xFFFF),
            bool(self.replied[slot]),
            bool(self.tcp[slot]),
        )

    # -- Mapping[StateKey, StateView] --
    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[StateKey]:
        for i in np.flatnonzero(self.proto >= 0).tolist():
            lo, hi = int(self.lo[i]), int(self.hi[i])
            yield (int(self.proto[i]), lo >> 16, lo & 0xFFFF, hi >> 16, hi & 0xFFFF)

    def __getitem__(self, key: StateKey) -> StateView:
        slot = self._slot_of(key)
        if slot < 0:
            raise KeyError(key)
        return self.view(slot)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 5 and self._slot_of(key) >= 0

    def _slot_of(self, key: tuple[Any, ...]) -> int:
        proto, la, lp, ha, hp = key
        return self.find(proto, (la << 16) | lp, (ha << 16) | hp)


# -- compiled helpers ------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def _nb_home(proto: Any, lo: Any, hi: Any, shift: Any) -> Any:  # pragma: no cover - compiled
    h = (np.uint64(lo) * _NK1) ^ (np.uint64(hi) * _NK2) ^ (np.uint64(proto) * _NK3)
    return np.int64(h >> np.uint64(shift))


@numba.njit(nogil=True, cache=True, inline="always")
def _nb_find(
    tp: Any, tl: Any, th: Any, shift: Any, mask: Any, proto: Any, lo: Any, hi: Any
) -> Any:  # pragma: no cover - compiled
    """:meth:`StateTable.find` in compiled code."""
    i = _nb_home(proto, lo, hi, shift)
    while True:
        p = tp[i]
        if p < 0:
            return -1
        if p == proto and tl[i] == lo and th[i] == hi:
            return i
        i = (i + 1) & mask


@numba.njit(nogil=True, cache=True, inline="always")
def _nb_flow(proto: Any, src: Any, sport: Any, dst: Any, dport: Any) -> Any:  # pragma: no cover
    """(lo, hi, origin) of a packet: ports only for TCP and UDP with both present."""
    if (proto == 6 or proto == 17) and sport >= 0 and dport >= 0:
        a = (np.uint64(src) << np.uint64(16)) | np.uint64(sport)
        b = (np.uint64(dst) << np.uint64(16)) | np.uint64(dport)
    else:
        a = np.uint64(src) << np.uint64(16)
        b = np.uint64(dst) << np.uint64(16)
    if a <= b:
        return a, b, a
    return b, a, a


@numba.njit(nogil=True, cache=True)
def _delete_slot(
    tp: Any, tl: Any, th: Any, tr: Any, te: Any, to: Any, trep: Any, ttcp: Any,
    shift: int, mask: int, slot: int,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    i = slot
    j = slot
    while True:
        j = (j + 1) & mask
        if tp[j] < 0:
            break
        k = _nb_home(tp[j], tl[j], th[j], shift)
        # the entry at j stays when its home lies cyclically in (i, j]
        if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        tp[i], tl[i], th[i], tr[i] = tp[j], tl[j], th[j], tr[j]
        te[i], to[i], trep[i], ttcp[i] = te[j], to[j], trep[j], ttcp[j]
        i = j
    tp[i] = -1


@numba.njit(nogil=True, cache=True)
def _reclaim_kernel(
    tp: Any, tl: Any, th: Any, tr: Any, te: Any, to: Any, trep: Any, ttcp: Any,
    meta: Any, rule_states: Any, shift: int, mask: int, now: float,
) -> int:  # pragma: no cover - compiled  # fmt: skip
    cap = tp.shape[0]
    expired = 0
    for i in range(cap):
        if tp[i] >= 0 and te[i] <= now:
            expired += 1
    if expired == 0:
        return 0
    live = meta[0] - expired
    kp = np.empty(live, np.int16)
    kl = np.empty(live, np.uint64)
    kh = np.empty(live, np.uint64)
    kr = np.empty(live, np.int32)
    ke = np.empty(live, np.float64)
    ko = np.empty(live, np.uint64)
    krep = np.empty(live, np.uint8)
    ktcp = np.empty(live, np.uint8)
    n = 0
    for i in range(cap):
        if tp[i] < 0:
            continue
        if te[i] <= now:
            rule_states[tr[i]] -= 1
        else:
            kp[n], kl[n], kh[n], kr[n] = tp[i], tl[i], th[i], tr[i]
            ke[n], ko[n], krep[n], ktcp[n] = te[i], to[i], trep[i], ttcp[i]
            n += 1
        tp[i] = -1
    for q in range(n):
        i = _nb_home(kp[q], kl[q], kh[q], shift)
        while tp[i] >= 0:
            i = (i + 1) & mask
        tp[i], tl[i], th[i], tr[i] = kp[q], kl[q], kh[q], kr[q]
        te[i], to[i], trep[i], ttcp[i] = ke[q], ko[q], krep[q], ktcp[q]
    meta[0] = n
    return expired


@numba.njit(nogil=True, cache=True)
def probe_kernel(
    tp: Any, tl: Any, th: Any, te: Any, shift: int, mask: int, now: float,
    proto: Any, src: Any, sport: Any, dst: Any, dport: Any, found: Any,
) -> int:  # pragma: no cover - compiled  # fmt: skip
    """Mark (``found``) the rows whose flow has a state now, live or expired; returns how many
    of them found an expired one."""
    expired = 0
    for p in range(proto.shape[0]):
        lo, hi, _ = _nb_flow(proto[p], src[p], sport[p], dst[p], dport[p])
        slot = _nb_find(tp, tl, th, shift, mask, proto[p], lo, hi)
        found[p] = slot >= 0
        if slot >= 0 and te[slot] <= now:
            expired += 1
    return expired


@numba.njit(nogil=True, cache=True)
def sequence_kernel(
    tp: Any, tl: Any, th: Any, tr: Any, te: Any, to: Any, trep: Any, ttcp: Any,
    meta: Any, rule_states: Any, shift: int, mask: int,
    rule_flags: Any, create: Any,
    proto: Any, src: Any, sport: Any, dst: Any, dport: Any, length: Any,
    punted: Any, walk_rule: Any, ordered: bool, now: float,
    t_established: float, t_opening: float, t_other: float,
    verdict: Any, how: Any, packets: Any, nbytes: Any, stats: Any,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    """The state phase of a batch, row by row in order (what the scalar path does per packet):

    - a row the caller ``punted`` is punted;
    - with ``ordered``, a row of a flow some earlier row of this call was punted for is punted
      too (the scalar path handles them in order, after the rows decided here);
    - a row whose flow has a live state takes that state's rule (refresh, ``replied``, counted
      on the rule, ``stats[0]`` hits) unless the rule logs or sends a reply (punted); an expired
      state punts the row (the scalar path removes it and walks the rules);
    - otherwise the rule walk decides (``walk_rule``, -1: the walk itself punts): a rule that
      logs or replies punts; a keep-state rule punts unless ``ordered`` and ``create[rule]``
      (the caller's guarantee that this batch cannot fill the table or the rule's limit), in
      which case the state is created here (``stats[1]``) and the row decided.

    ``how`` says which (BY_STATE, BY_WALK, PUNTED); counters of walk-decided rows, and of the
    count and skipto rules on their way, are added afterwards by :func:`count_kernel`."""
    n = proto.shape[0]
    bsize = 16
    while bsize < 2 * n:
        bsize *= 2
    bmask = bsize - 1
    b_used = np.zeros(bsize if ordered else 1, np.uint8)
    b_p = np.zeros(bsize if ordered else 1, np.int16)
    b_lo = np.zeros(bsize if ordered else 1, np.uint64)
    b_hi = np.zeros(bsize if ordered else 1, np.uint64)
    for p in range(n):
        pr = proto[p]
        lo, hi, org = _nb_flow(pr, src[p], sport[p], dst[p], dport[p])
        punt = punted[p] != 0
        if not punt and ordered:
            j = np.int64((lo * _NK1) ^ (hi * _NK2) ^ (np.uint64(pr) * _NK3)) & bmask
            while b_used[j]:
                if b_p[j] == pr and b_lo[j] == lo and b_hi[j] == hi:
                    punt = True
                    break
                j = (j + 1) & bmask
        if not punt:
            slot = -1
            if meta[0] > 0:
                slot = _nb_find(tp, tl, th, shift, mask, pr, lo, hi)
            if slot >= 0:
                r = tr[slot]
                f = rule_flags[r]
                if te[slot] <= now or (f & RULE_PUNTS) != 0 or ((f & RULE_RESET) != 0 and pr == 6):
                    punt = True
                else:
                    if org != to[slot]:
                        trep[slot] = 1
                    if ttcp[slot] == 0:
                        te[slot] = now + t_other
                    elif trep[slot] != 0:
                        te[slot] = now + t_established
                    else:
                        te[slot] = now + t_opening
                    packets[r] += 1
                    nbytes[r] += length[p]
                    stats[0] += 1
                    verdict[p] = VERDICT_PASS if (f & RULE_ALLOW) != 0 else VERDICT_DROP
                    how[p] = BY_STATE
                    continue
            else:
                r = walk_rule[p]
                if r < 0:
                    punt = True
                else:
                    f = rule_flags[r]
                    if (f & RULE_PUNTS) != 0 or ((f & RULE_RESET) != 0 and pr == 6):
                        punt = True
                    elif (f & RULE_KEEP) != 0:
                        if not (ordered and create[r]):
                            punt = True
                        else:
                            i = _nb_home(pr, lo, hi, shift)
                            while tp[i] >= 0:
                                i = (i + 1) & mask
                            tcp = pr == 6
                            tp[i], tl[i], th[i], tr[i] = pr, lo, hi, r
                            te[i] = now + (t_opening if tcp else t_other)
                            to[i], trep[i], ttcp[i] = org, 0, 1 if tcp else 0
                            meta[0] += 1
                            rule_states[r] += 1
                            stats[1] += 1
                    if not punt:
                        verdict[p] = VERDICT_PASS if (f & RULE_ALLOW) != 0 else VERDICT_DROP
                        how[p] = BY_WALK
                        continue
        verdict[p] = VERDICT_PUNT
        how[p] = PUNTED
        if ordered:
            j = np.int64((lo * _NK1) ^ (hi * _NK2) ^ (np.uint64(pr) * _NK3)) & bmask
            while b_used[j]:
                if b_p[j] == pr and b_lo[j] == lo and b_hi[j] == hi:
                    break
                j = (j + 1) & bmask
            b_used[j], b_p[j], b_lo[j], b_hi[j] = 1, pr, lo, hi


@numba.njit(nogil=True, cache=True)
def count_kernel(
    how: Any, walk_rule: Any, length: Any, trail_rule: Any, trail_pkt: Any, n_trail: int,
    packets: Any, nbytes: Any,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    """Count the rows the rule walk decided: their rule, and the count and skipto rules they
    matched on the way (the trail)."""
    for p in range(how.shape[0]):
        if how[p] == BY_WALK:
            packets[walk_rule[p]] += 1
            nbytes[walk_rule[p]] += length[p]
    for t in range(n_trail):
        p = trail_pkt[t]
        if how[p] == BY_WALK:
            packets[trail_rule[t]] += 1
            nbytes[trail_rule[t]] += length[p]


def rule_flags(actions: npt.NDArray[np.int64], punts: list[bool], keep: list[bool],
               reset_code: int, allow_code: int) -> npt.NDArray[np.int64]:  # fmt: skip
    """The per-rule flags of :func:`sequence_kernel` from the compiled rules' facts."""
    flags = np.zeros(len(actions), np.int64)
    for i, (a, p, k) in enumerate(zip(actions.tolist(), punts, keep, strict=True)):
        flags[i] = (
            (RULE_PUNTS if p else 0)
            | (RULE_KEEP if k else 0)
            | (RULE_RESET if a == reset_code else 0)
            | (RULE_ALLOW if a == allow_code else 0)
        )
    return flags
