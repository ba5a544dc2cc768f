"""The compiled batch LPM engine (DXR) against the RIB's reference lookup and pytricia."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.route.dxr import MAX_RID, Dxr, WordPool
from netfast.route.fib import Fib
from netfast.route.rib import NO_ROUTE, Rib, format_prefix, parse_prefix, prefix_mask

DIRECT_BITS = [16, 18]


def read_table(path: Path) -> list[tuple[int, int, str]]:
    """A tiny reader for the shared gzip text tables: ``A.B.C.D/len<TAB>value`` lines."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            text, _, value = line.rstrip("\n").partition("\t")
            net, plen = parse_prefix(text)
            out.append((net, plen, value))
    return out


def check_all(fib: Dxr, rib: Rib, addrs: list[int]) -> None:
    got = fib.lookup_batch(np.array(addrs, np.uint32))
    want = [rib.reference_lookup(a) for a in addrs]
    assert got.tolist() == want
    for a, w in zip(addrs[:8], want, strict=False):
        assert fib.lookup(a) == w


# Prefixes clustered in a few regions, so that nesting, shared slots, /0 and /32 all occur.
_BASES = [0x0A000000, 0x0A0B0000, 0xC0A80100, 0xFFFFFF00, 0x00000000]
prefixes = st.builds(
    lambda base, noise, plen: ((base ^ noise) & prefix_mask(plen), plen),
    st.sampled_from(_BASES),
    st.integers(0, 2**32 - 1).map(lambda x: x & 0x0003FFFF),
    st.sampled_from([0, 1, 8, 12, 15, 16, 17, 18, 19, 20, 23, 24, 25, 28, 31, 32]),
)


def probes(table: list[tuple[int, int]], extra: list[int]) -> list[int]:
    """Addresses at and around every prefix's edges, plus arbitrary ones."""
    out = list(extra)
    for net, plen in table:
        last = net | (~prefix_mask(plen) & 0xFFFFFFFF)
        out += [net, last, (net - 1) & 0xFFFFFFFF, (last + 1) & 0xFFFFFFFF, net | 0x80]
    return out


@pytest.mark.parametrize("k", DIRECT_BITS)
@given(
    table=st.lists(prefixes, max_size=40),
    extra=st.lists(st.integers(0, 2**32 - 1), max_size=20),
)
def test_build_matches_reference(k: int, table: list[tuple[int, int]], extra: list[int]) -> None:
    rib = Rib()
    for i, (net, plen) in enumerate(table):
        rib.add(net, plen, i)
    fib = Dxr.build(rib, direct_bits=k)
    check_all(fib, rib, probes(table, extra))


@pytest.mark.parametrize("k", DIRECT_BITS)
@given(
    initial=st.lists(prefixes, max_size=20),
    ops=st.lists(st.tuples(st.booleans(), prefixes), max_size=40),
    extra=st.lists(st.integers(0, 2**32 - 1), max_size=10),
)
def test_updates_match_reference(
    k: int,
    initial: list[tuple[int, int]],
    ops: list[tuple[bool, tuple[int, int]]],
    extra: list[int],
) -> None:
    rib = Rib()
    for i, (net, plen) in enumerate(initial):
        rib.add(net, plen, i)
    fib = Dxr.build(rib, direct_bits=k, headroom=0.0)  # no headroom: updates must grow
    seen = set(initial)
    for step, (add, (net, plen)) in enumerate(ops):
        seen.add((net, plen))
        if add or (net, plen) not in rib:
            rid, _ = rib.add(net, plen, f"v{step}")
            fib.insert(net, plen, rid)
        else:
            rib.delete(net, plen)
            fib.delete(net, plen)
        if step % 5 == 4:
            check_all(fib, rib, probes(sorted(seen), extra))
    check_all(fib, rib, probes(sorted(seen), extra))


@pytest.mark.parametrize("k", DIRECT_BITS)
def test_delete_exposes_the_shorter_match(k: int) -> None:
    rib = Rib()
    chain = [(0, 0), (0x0A000000, 8), (0x0A0B0000, 16), (0x0A0B0C00, 24), (0x0A0B0C0D, 32)]
    for net, plen in chain:
        rib.add(net, plen, (net, plen))
    fib = Dxr.build(rib, direct_bits=k)
    addr = 0x0A0B0C0D
    for net, plen in reversed(chain):
        assert fib.lookup(addr) == rib.get(net, plen)
        rib.delete(net, plen)
        fib.delete(net, plen)
    assert fib.lookup(addr) == NO_ROUTE
    for net, plen in chain:  # and back, in the other order
        rid, _ = rib.add(net, plen, "again")
        fib.insert(net, plen, rid)
        assert fib.lookup(addr) == rid
    check_all(fib, rib, probes(chain, [0xFFFFFFFF, 0x0A0B0C0E, 0x0A0BFFFF]))


def test_protocol_and_misuse() -> None:
    rib = Rib()
    rib.add(0x0A000000, 8, "a")
    fib = Dxr.build(rib)
    assert isinstance(fib, Fib)
    assert fib.name == "dxr" and fib.concurrent_updates
    with pytest.raises(ValueError, match="bad prefix"):
        fib.insert(0x0A000001, 8, 0)
    with pytest.raises(ValueError, match="rid"):
        fib.insert(0x0B000000, 8, MAX_RID + 1)
    with pytest.raises(KeyError):
        fib.delete(0x0B000000, 8)
    with pytest.raises(ValueError, match="direct_bits"):
        Dxr.build(rib, direct_bits=20)
    with pytest.raises(ValueError, match="shaped"):
        fib.lookup_batch(np.zeros(3, np.uint32), np.zeros(2, np.int32))
    assert fib.memory_bytes() > 0
    for bad in (-1, 2**32, 2**40):
        with pytest.raises(ValueError, match="32-bit"):
            fib.lookup(bad)


def test_retired_chunks_wait_for_readers() -> None:
    rib = Rib()
    for i in range(8):
        rib.add(0x0A000000 | (i << 8), 24, i)
    fib = Dxr.build(rib)
    reader = fib.epochs.enter()  # this thread now looks like a reader mid-lookup
    rid, _ = rib.add(0x0A000900, 24, "new")
    fib.insert(0x0A000900, 24, rid)
    assert fib.stats()["retired_pending"] == 2  # the old bitmap and rid blocks
    assert fib.reclaim() == 0
    fib.epochs.leave(reader)
    assert fib.reclaim() == 2
    assert fib.reclaimed == 2
    assert fib.lookup(0x0A000901) == rid


def test_concurrent_readers_see_before_or_after() -> None:
    """Readers in threads (the kernel releases the GIL) while a writer toggles routes: every
    answer is the address's route with or without the toggled prefix, never anything else."""
    rib = Rib()
    rib.add(0, 0, "default")
    rib.add(0x0A000000, 8, "ten")
    rib.add(0x0A010000, 16, "ten-one")
    for i in range(64):
        rib.add(0x0A010000 | (i << 8), 24, i)
    fib = Dxr.build(rib, headroom=0.0)
    # toggled prefixes, disjoint, each over addresses with a known "without" route
    toggled = [(0x0A018000, 24), (0x0A020000, 16), (0x0B000000, 8), (0x0A010280, 25)]
    rng = np.random.default_rng(7)
    addrs, without, toggle_of = [], [], []
    for t, (net, plen) in enumerate(toggled):
        span = 1 << (32 - plen)
        for off in rng.integers(0, span, 256):
            a = net + int(off)
            addrs.append(a)
            without.append(rib.reference_lookup(a))
            toggle_of.append(t)
    rids = [rib.add(net, plen, ("t", net))[0] for net, plen in toggled]
    for net, plen in toggled:
        rib.delete(net, plen)
    batch = np.array(addrs * 64, np.uint32)
    before = np.array(without * 64, np.int32)
    after = np.array([rids[t] for t in toggle_of] * 64, np.int32)
    stop = threading.Event()
    errors: list[str] = []
    lookups = [0]

    def reader() -> None:
        out = np.empty(len(batch), np.int32)
        while not stop.is_set():
            fib.lookup_batch(batch, out)
            bad = (out != before) & (out != after)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                errors.append(f"{batch[i]:#x}: {out[i]} not in ({before[i]}, {after[i]})")
                return
            lookups[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for _ in range(150):
            for (net, plen), rid in zip(toggled, rids, strict=True):
                fib.insert(net, plen, rid)
            for net, plen in toggled:
                fib.delete(net, plen)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[0]
    assert lookups[0] > 0
    assert fib.reclaimed > 0
    assert (fib.lookup_batch(batch) == before).all()


def test_memory_and_control_bytes_are_separate() -> None:
    rib = Rib()
    for i in range(300):
        rib.add(0x0A000000 | (i << 8), 24, i)
    fib = Dxr.build(rib)
    state = fib._state
    lookup_path = state.direct.nbytes + state.bits.nbytes + state.pool.nbytes
    assert fib.memory_bytes() == lookup_path
    before = fib.control_bytes()
    # the shadow of 300 prefixes alone is more than 300 * (4 + 1 + 4) bytes
    assert before > 300 * 9
    stats = fib.stats()
    assert stats["memory_bytes"] == fib.memory_bytes()
    assert stats["control_bytes"] == before
    rid, _ = rib.add(0x0A7F0000, 24, "new")
    fib.insert(0x0A7F0000, 24, rid)  # gives the slot its own arrays: control grows, lookup not
    assert fib.control_bytes() > before
    assert fib.memory_bytes() == lookup_path


def test_word_pool_reuses_split_and_coalesced_space() -> None:
    pool = WordPool(0)
    a, b, c = pool.alloc(10), pool.alloc(20), pool.alloc(5)
    assert (a, b, c) == (0, 10, 30) and pool.top == 35
    pool.release(b, 20)
    assert pool.alloc(8) == 10  # best fit splits the free block
    assert pool.free_words == 12
    assert pool.alloc(12) == 18  # and the rest is reusable
    pool.release(10, 8)
    pool.release(18, 12)
    pool.release(a, 10)  # coalesces 0..30 into one block
    assert pool.free_words == 30
    assert pool.alloc(30) == 0
    pool.release(0, 30)
    pool.release(c, 5)  # everything free: top returns to zero
    assert pool.top == 0 and pool.free_words == 0


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), max_size=200))
def test_word_pool_blocks_never_overlap(ops: list[tuple[bool, int]]) -> None:
    pool = WordPool(0)
    live: dict[int, int] = {}
    for i, (alloc, n) in enumerate(ops):
        if alloc or not live:
            off = pool.alloc(n)
            assert off + n <= pool.top
            assert all(off + n <= o or o + m <= off for o, m in live.items())
            live[off] = n
        else:
            off = sorted(live)[i % len(live)]
            pool.release(off, live.pop(off))
        assert pool.top - pool.free_words == sum(live.values())
    for off, n in list(live.items()):
        pool.release(off, n)
    assert pool.top == 0 and pool.free_words == 0


def test_churn_does_not_grow_the_pool() -> None:
    """Delete/re-insert churn shifts chunk sizes by a word or two; freed space must be reused."""
    rib = Rib()
    rng = np.random.default_rng(3)
    nets = sorted({int(x) << 8 for x in rng.integers(0, 1 << 24, 4000)})
    for net in nets:
        rib.add(net, 24, net)
    fib = Dxr.build(rib, headroom=0.0)
    size = fib.memory_bytes()
    for net in rng.choice(nets, 3000).tolist():
        rib.delete(net, 24)
        fib.delete(net, 24)
        rid, _ = rib.add(net, 24, net)
        fib.insert(net, 24, rid)
    assert fib.grown <= 1
    assert fib.memory_bytes() <= size * 1.2
    check_all(fib, rib, probes([(n, 24) for n in nets[:300]], []))


def test_replaced_state_waits_for_readers() -> None:
    rib = Rib()
    rib.add(0x0A000000, 24, "a")
    fib = Dxr.build(rib, headroom=0.0)
    old_pool = fib._state.pool
    reader = fib.epochs.enter()
    fib._grow(1, len(old_pool) + 1)  # the pool, as when an insert finds no room
    assert fib.grown == 1 and fib._state.pool is not old_pool
    assert fib.stats()["retired_states"] == 1
    fib.reclaim()
    assert fib.stats()["retired_states"] == 1  # a reader may still read it by address
    fib.epochs.leave(reader)
    fib.reclaim()
    assert fib.stats()["retired_states"] == 0
    assert fib.lookup(0x0A000001) == rib.get(0x0A000000, 24)


def test_lookups_leave_their_slot_idle() -> None:
    rib = Rib()
    rib.add(0x0A000000, 8, "a")
    fib = Dxr.build(rib)
    assert fib.lookup(0x0A010203) == 0
    fib.lookup_batch(np.arange(100, dtype=np.uint32))
    done: list[int] = []
    th = threading.Thread(target=lambda: done.append(fib.lookup(0x0A000001)))
    th.start()
    th.join()
    assert done == [0]
    assert not fib.epochs.slots.any()
    assert fib.epochs.safe_epoch() == fib.epochs.epoch


def test_concurrent_scalar_readers_through_growth() -> None:
    """Scalar lookups (one kernel call each, epoch published inside) from threads while a writer
    adds and removes /28s, which turns bitmap chunks into larger long chunks and forces the pool
    to grow: every answer is the route before or after, never anything else."""
    rib = Rib()
    rib.add(0, 0, "default")
    for i in range(256):  # 256 slots with 20 /24s each: a /28 makes each chunk 4x larger
        for j in range(0, 40, 2):
            rib.add(0x0A000000 | (i << 16) | (j << 8), 24, (i, j))
    fib = Dxr.build(rib, headroom=0.0)
    toggled = [(0x0A000000 | (i << 16) | 0x40, 28) for i in range(256)]
    addrs = [net | 0x45 for net, _ in toggled] + [net | 0x85 for net, _ in toggled]
    before = [rib.reference_lookup(a) for a in addrs]
    rids = [rib.add(net, plen, "t")[0] for net, plen in toggled]
    after = rids + before[len(toggled) :]
    for net, plen in toggled:
        rib.delete(net, plen)
    stop = threading.Event()
    errors: list[str] = []
    count = [0]

    def reader() -> None:
        while not stop.is_set():
            for a, b, c in zip(addrs, before, after, strict=True):
                r = fib.lookup(a)
                if r != b and r != c:
                    errors.append(f"{a:#x}: {r} not in ({b}, {c})")
                    return
            count[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for _ in range(10):
            for (net, plen), rid in zip(toggled, rids, strict=True):
                fib.insert(net, plen, rid)
            for net, plen in toggled:
                fib.delete(net, plen)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[0]
    assert count[0] > 0
    assert fib.grown >= 1
    assert [fib.lookup(a) for a in addrs] == before


@pytest.mark.slow
def test_full_table_against_pytricia(shared_data: Path) -> None:
    import pytricia

    table = read_table(shared_data / "routes" / "ipv4-dfz-20260619.txt.gz")
    rib = Rib(capacity=len(table) + 16)
    pyt = pytricia.PyTricia(32)
    for net, plen, value in table:
        rid, _ = rib.add(net, plen, value)
        pyt.insert(net, plen, rid)
    fib = Dxr.build(rib)
    assert fib.memory_bytes() <= 8 * 2**20
    net, plen, _ = rib.live_arrays()
    rng = np.random.default_rng(2026)
    n = 1_000_000
    pick = rng.integers(0, len(net), n)
    host = rng.integers(0, 2**32, n, dtype=np.uint64) & (
        (np.uint64(1) << (32 - plen[pick].astype(np.uint64))) - np.uint64(1)
    )
    inside = (net[pick].astype(np.uint64) | host).astype(np.uint32)
    uniform = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    for addrs in (inside, uniform):
        got = fib.lookup_batch(addrs)
        want = np.fromiter((pyt.get(a, NO_ROUTE) for a in addrs.tolist()), np.int32, n)
        assert (got == want).all()
    # churn: withdraw and re-announce a slice of the table, then compare again
    victims = rng.choice(len(table), 2000, replace=False)
    for i in victims:
        pnet, pplen, _ = table[i]
        rib.delete(pnet, pplen)
        fib.delete(pnet, pplen)
        pyt.delete(format_prefix(pnet, pplen))
    got = fib.lookup_batch(inside)
    want = np.fromiter((pyt.get(a, NO_ROUTE) for a in inside.tolist()), np.int32, n)
    assert (got == want).all()
