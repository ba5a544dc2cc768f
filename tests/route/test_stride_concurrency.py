"""Lock-free lookups while a writer replays real BGP update streams into the stride tables.

The 2008 table is loaded into a RIB, the FIB is built from it, and the updates of RIS rrc01
(2007) and rrc21 (2016) are replayed through the RIB *in advance*, with pytricia as the oracle:
that yields a plan of FIB operations (``insert(net, plen, rid)`` / ``delete(net, plen)``; rids are
stable, so the FIB can replay the RIB's history later) and, for a fixed set of probe addresses,
the timeline of their correct answers (state ``k`` = the table after ``k`` planned operations).

Then a writer thread applies the plan to the FIB, publishing ``done = k`` after operation ``k``,
while two reader threads look the probe set up in a loop.  A batch that started when ``done``
was ``i0`` and ended when it was ``i1`` may have seen any state from ``i0`` to ``i1 + 1`` (the
operation in flight may already have passed its single linearizing store), so each answer must be
the address's answer at one of those states -- never anything else: not a stale route that was
not the answer then, not a torn entry, not garbage from reclaimed storage.
"""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from netfast.route.rib import NO_ROUTE, Rib, parse_prefix
from netfast.route.stride import StrideFib, StrideSortedFib


def read_table(path: Path) -> tuple[Rib, list[str]]:
    """A tiny reader for the shared route files ('#' header, then 'A.B.C.D/len<TAB>value')."""
    rib = Rib(capacity=1 << 19)
    texts = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if not line.startswith("#"):
                text = line.split("\t", 1)[0]
                rib.add(*parse_prefix(text), line.rstrip("\n").split("\t", 1)[1])
                texts.append(text)
    return rib, texts


WRITER_SECONDS = 10.0
READERS = 2


def read_updates(path: Path) -> list[tuple[bool, str]]:
    """(is_announce, prefix text) of the IPv4 A and W lines of a ``bgpdump -m`` file."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            fields = line.split("|")
            if len(fields) < 6 or fields[2] not in ("A", "W") or ":" in fields[5]:
                continue
            out.append((fields[2] == "A", fields[5]))
    return out


class Plan:
    """FIB operations and the probe addresses' answer timelines (see the module docstring)."""

    def __init__(self, rib: Rib, texts: list[str], updates: list[tuple[bool, str]]) -> None:
        import pytricia

        pyt = pytricia.PyTricia(32)
        for text in texts:
            pyt[text] = rib.get(*parse_prefix(text))
        rng = np.random.default_rng(2007)
        touched = sorted({t for _, t in updates})
        inside = []
        for text in touched[:: max(1, len(touched) // 6000)]:
            net, plen = parse_prefix(text)
            inside.append(net + int(rng.integers(0, 1 << (32 - plen))))
        net, plen, _ = rib.live_arrays()
        pick = rng.integers(0, net.size, 2000)
        span = np.uint64(1) << (32 - plen[pick].astype(np.uint64))
        table = net[pick].astype(np.uint64) + rng.integers(0, 2**32, 2000, np.uint64) % span
        self.addrs = np.unique(np.concatenate([np.array(inside, np.uint64), table])).astype(
            np.uint32
        )
        current = np.array([pyt.get(a, NO_ROUTE) for a in self.addrs.tolist()], np.int32)
        self.initial = current.copy()
        self.ops: list[tuple[bool, int, int, int]] = []  # (insert?, net, plen, rid)
        events: list[tuple[int, int, int]] = []  # (probe index, state k, rid)
        for announce, text in updates:
            try:
                net_, plen_ = parse_prefix(text)
            except ValueError:
                continue
            if announce:
                rid, created = rib.add(net_, plen_, "update")
                if not created:
                    continue  # a next-hop change: the RIB's business only
                pyt[text] = rid
            else:
                rid_or_none = rib.delete(net_, plen_)
                if rid_or_none is None:
                    continue
                rid = rid_or_none
                del pyt[text]
            self.ops.append((announce, net_, plen_, rid))
            k = len(self.ops)
            lo, hi = np.searchsorted(self.addrs, [net_, net_ + (1 << (32 - plen_))])
            for j in range(int(lo), int(hi)):
                new = pyt.get(int(self.addrs[j]), NO_ROUTE)
                if new != current[j]:
                    current[j] = new
                    events.append((j, k, new))
        self.final = current
        ev = np.array(events, np.int64).reshape(-1, 3)
        order = np.lexsort((ev[:, 1], ev[:, 0]))
        ev = ev[order]
        self.ev_probe, self.ev_state, self.ev_rid = ev[:, 0], ev[:, 1], ev[:, 2]
        self.ev_key = self.ev_probe * (1 << 32) + self.ev_state

    def violations(self, i0: int, i1: int, got: np.ndarray) -> list[tuple[int, int]]:
        """Probes whose answer is not their answer at any state in ``i0 .. i1 + 1``."""
        probe = np.arange(self.addrs.size, dtype=np.int64)
        at = np.searchsorted(self.ev_key, probe * (1 << 32) + i0, side="right") - 1
        has = (at >= 0) & (self.ev_probe[np.maximum(at, 0)] == probe)
        answer = np.where(has, self.ev_rid[np.maximum(at, 0)], self.initial)
        bad = []
        for j in np.flatnonzero(got != answer).tolist():
            lo, hi = np.searchsorted(self.ev_key, [j * (1 << 32) + i0 + 1, j * (1 << 32) + i1 + 2])
            if int(got[j]) not in self.ev_rid[lo:hi].tolist():
                bad.append((j, int(got[j])))
        return bad


@pytest.fixture(scope="module")
def setup(shared_data: Path) -> tuple[Rib, Plan]:
    rib, texts = read_table(shared_data / "routes" / "ipv4-dfz-20080501-routeviews.txt.gz")
    updates = []
    for name in (
        "ris-rrc01-updates.20070211.0141.bgpdump-m.txt.gz",
        "ris-rrc21-updates.20160811.1600.bgpdump-m.txt.gz",
    ):
        updates += read_updates(shared_data / "bgp-updates" / name)
    # the FIB is built from the table's routes; the plan then moves the RIB to its final state
    initial = Rib(capacity=1 << 19)
    for net, plen, rid in rib.items():
        assert initial.add(net, plen, "table") == (rid, True)  # same rids as the plan's RIB
    # the merged streams from many peers are mostly re-announcements; replaying them eight times
    # gives the writer a longer run of real churn (withdrawn prefixes come back, and go again)
    plan = Plan(rib, texts, updates * 8)
    return initial, plan


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("cls", [StrideFib, StrideSortedFib])
def test_readers_see_before_or_after_each_update(
    cls: type[StrideFib] | type[StrideSortedFib], setup: tuple[Rib, Plan]
) -> None:
    initial, plan = setup
    fib = cls.build(initial, debug=True)
    assert (fib.lookup_batch(plan.addrs) == plan.initial).all()
    assert len(plan.ops) > 30_000

    done = [0]
    stop = threading.Event()
    failures: list[tuple[int, int, list[tuple[int, int]]]] = []
    batches = [0] * READERS
    racing = [0] * READERS

    def writer() -> None:
        deadline = time.monotonic() + WRITER_SECONDS
        try:
            for k, (insert, net, plen, rid) in enumerate(plan.ops, 1):
                if insert:
                    fib.insert(net, plen, rid)
                else:
                    fib.delete(net, plen)
                done[0] = k
                if k % 64 == 0:
                    # Let readers in: on a loaded 2-core machine a writer holding the GIL through
                    # all its operations would leave them too few batches that race with it.
                    time.sleep(0.0002)
                if k % 256 == 0 and time.monotonic() > deadline:
                    break
        finally:
            stop.set()

    def reader(n: int) -> None:
        out = np.empty(plan.addrs.size, np.int32)
        while not stop.is_set():
            i0 = done[0]
            fib.lookup_batch(plan.addrs, out)
            i1 = done[0]
            batches[n] += 1
            racing[n] += i1 > i0
            bad = plan.violations(i0, i1, out)
            if bad:
                failures.append((i0, i1, bad[:5]))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WRITER_SECONDS + 20)
    assert not any(t.is_alive() for t in threads)

    assert not failures, failures[:3]
    assert done[0] > 1000, "the writer hardly ran"
    assert min(racing) >= 5, (batches, racing)  # readers really overlapped the updates
    stats = fib.stats()
    assert stats.poisoned_reads == 0
    assert stats.reclaimed > 0
    if done[0] == len(plan.ops):
        assert (fib.lookup_batch(plan.addrs) == plan.final).all()
    else:  # stopped early: the state after done[0] operations
        assert not plan.violations(done[0], done[0] - 1, fib.lookup_batch(plan.addrs))
