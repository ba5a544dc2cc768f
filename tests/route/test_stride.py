"""The stride tables against the RIB's reference lookup and, on the real 2026 table, pytricia."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.route.rib import NO_ROUTE, Rib, prefix_mask
from netfast.route.stride import POISON, StrideFib, StrideSortedFib
from netfast.route.stride.kernels import _batch_bitmap, _batch_linear

VARIANTS = [StrideFib, StrideSortedFib]
Variant = type[StrideFib] | type[StrideSortedFib]


def read_table(path: Path) -> tuple[Rib, list[str]]:
    """A tiny reader for the shared route files ('#' header, then 'A.B.C.D/len<TAB>value')."""
    rib = Rib(capacity=1 << 21)
    texts = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            text, _, value = line.rstrip("\n").partition("\t")
            addr, _, plen = text.partition("/")
            a, b, c, d = (int(x) for x in addr.split("."))
            rib.add((a << 24) | (b << 16) | (c << 8) | d, int(plen), value)
            texts.append(text)
    return rib, texts


# Addresses clustered around a few bases, so random prefixes nest and overlap.
_BASES = [0x0A000000, 0x0A0B0C00, 0xC0A80100, 0xFFFFFF00, 0x00000000, 0x80000000]


@st.composite
def addresses(draw: st.DrawFn) -> int:
    base = draw(st.sampled_from(_BASES))
    return (
        base ^ draw(st.integers(0, 2**14 - 1))
        if draw(st.booleans())
        else draw(st.integers(0, 2**32 - 1))
    )


@st.composite
def prefixes(draw: st.DrawFn) -> tuple[int, int]:
    plen = draw(st.sampled_from([0, 1, 4, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32]))
    return draw(addresses()) & prefix_mask(plen), plen


def probes(rib: Rib, extra: list[int]) -> np.ndarray:
    """Addresses at the edges of every prefix plus the extra ones."""
    out = list(extra)
    for net, plen, _ in rib.items():
        out += [net, net | (~prefix_mask(plen) & 0xFFFFFFFF), (net - 1) & 0xFFFFFFFF]
    return np.array(out, np.uint32)


def check(fib: StrideFib | StrideSortedFib, rib: Rib, addrs: np.ndarray) -> None:
    want = np.array([rib.reference_lookup(int(a)) for a in addrs], np.int32)
    got = fib.lookup_batch(addrs)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(hex(int(addrs[i])), int(got[i]), int(want[i])) for i in bad[:5]]
    for a, w in zip(addrs[:200].tolist(), want[:200].tolist(), strict=True):
        assert fib.lookup(a) == w


@pytest.mark.parametrize("cls", VARIANTS)
def test_hand_made_table(cls: Variant) -> None:
    rib = Rib()
    r8, _ = rib.add(0x0A000000, 8, "a")
    r16, _ = rib.add(0x0A0B0000, 16, "b")
    r24, _ = rib.add(0x0A0B0C00, 24, "c")
    r32, _ = rib.add(0x0A0B0C0D, 32, "d")
    r9, _ = rib.add(0x0A800000, 9, "e")
    fib = cls.build(rib, debug=True)
    assert fib.lookup(0x0A0B0C0D) == r32
    assert fib.lookup(0x0A0B0C0E) == r24
    assert fib.lookup(0x0A0B0D00) == r16
    assert fib.lookup(0x0A0C0000) == r8
    assert fib.lookup(0x0A810000) == r9
    assert fib.lookup(0x0B000000) == NO_ROUTE
    # deletes expose the shorter match again, never a stale one
    rib.delete(0x0A0B0C00, 24)
    fib.delete(0x0A0B0C00, 24)
    assert fib.lookup(0x0A0B0C0E) == r16
    assert fib.lookup(0x0A0B0C0D) == r32
    rib.delete(0x0A0B0C0D, 32)
    fib.delete(0x0A0B0C0D, 32)
    assert fib.lookup(0x0A0B0C0D) == r16
    # the default route has a slot of its own
    r0, _ = rib.add(0, 0, "default")
    fib.insert(0, 0, r0)
    assert fib.lookup(0x0B000000) == r0
    assert fib.lookup(0x0A0B0C0D) == r16
    fib.delete(0, 0)
    assert fib.lookup(0x0B000000) == NO_ROUTE
    assert fib.poisoned_reads == 0


@pytest.mark.parametrize("cls", VARIANTS)
@given(st.lists(prefixes(), max_size=80), st.lists(addresses(), max_size=40))
def test_build_matches_reference(
    cls: Variant, pfx: list[tuple[int, int]], extra: list[int]
) -> None:
    rib = Rib()
    for i, (net, plen) in enumerate(pfx):
        rib.add(net, plen, i % 7)
    check(cls.build(rib), rib, probes(rib, extra))


@pytest.mark.parametrize("cls", VARIANTS)
@given(
    st.lists(prefixes(), max_size=30),
    st.lists(st.tuples(st.booleans(), prefixes(), addresses()), min_size=1, max_size=80),
)
def test_updates_interleaved_with_lookups(
    cls: Variant, initial: list[tuple[int, int]], ops: list[tuple[bool, tuple[int, int], int]]
) -> None:
    rib = Rib()
    for net, plen in initial:
        rib.add(net, plen, "x")
    fib = cls.build(rib, debug=True)
    known = list(initial)
    for is_delete, (net, plen), addr in ops:
        if is_delete and known:
            net, plen = known[addr % len(known)]  # delete something that is (likely) there
            if rib.delete(net, plen) is None:
                with pytest.raises(KeyError):
                    fib.delete(net, plen)
            else:
                fib.delete(net, plen)
        else:
            rid, created = rib.add(net, plen, addr % 3)
            if created:  # a replace is a RIB value change only, as in RoutingTable
                fib.insert(net, plen, rid)
            known.append((net, plen))
        around = [addr, net, net | (~prefix_mask(plen) & 0xFFFFFFFF)]
        check(fib, rib, np.array(around, np.uint32))
    check(fib, rib, probes(rib, []))
    assert fib.poisoned_reads == 0


@pytest.mark.parametrize("cls", VARIANTS)
def test_growth_from_empty_and_teardown(cls: Variant) -> None:
    """Start from nothing, grow pool and bucket table, then delete everything again."""
    rng = np.random.default_rng(7)
    rib = Rib()
    fib = cls.build(rib, debug=True)
    nets = rng.integers(0, 2**32, 3000, dtype=np.uint64)
    plens = rng.choice([8, 13, 16, 20, 24, 28, 32], 3000)
    routes = []
    for n, p in zip(nets.tolist(), plens.tolist(), strict=True):
        net = n & prefix_mask(p)
        rid, created = rib.add(net, p, "v")
        if created:  # random /8s repeat
            fib.insert(net, p, rid)
            routes.append((net, p))
    assert fib.pool_grows > 0
    addrs = np.concatenate([nets.astype(np.uint32), rng.integers(0, 2**32, 3000, np.uint32)])
    check(fib, rib, addrs)
    for net, p in routes:
        rib.delete(net, p)
        fib.delete(net, p)
    assert (fib.lookup_batch(addrs) == NO_ROUTE).all()
    stats = fib.stats()
    assert stats.buckets == 1  # only the root is left
    assert stats.reclaimed > 0 and stats.retired_pending == 0
    assert fib.poisoned_reads == 0


@pytest.mark.parametrize("cls", VARIANTS)
def test_grace_period_waits_for_readers(cls: Variant) -> None:
    """A reader inside the structure (an active slot) blocks reclamation of what it may see."""
    rib = Rib()
    for i in range(600):
        rib.add(0x0A000000 | (i << 8), 24, "v")
    fib = cls.build(rib, debug=True)
    slot = fib._slot()
    fib._slots[slot] = fib._epoch  # as lookup_batch does before entering the kernel
    for i in range(600):
        rib.delete(0x0A000000 | (i << 8), 24)
        fib.delete(0x0A000000 | (i << 8), 24)
    pending = fib.stats().retired_pending
    assert pending > 0
    assert fib.reclaimed == 0
    fib._slots[slot] = 0
    assert fib.reclaim() == pending
    assert fib.reclaimed == pending
    assert fib.lookup(0x0A000001) == NO_ROUTE


def test_slots_released_when_reader_thread_ends() -> None:
    fib = StrideFib.build(Rib())
    t = threading.Thread(target=fib.lookup, args=(1,))
    t.start()
    t.join()
    del t
    import gc

    gc.collect()
    assert fib._readers.free == [0]


@pytest.mark.parametrize(
    ("cls", "kernel"), [(StrideFib, _batch_linear), (StrideSortedFib, _batch_bitmap)]
)
def test_poisoned_reads_are_counted(cls: Variant, kernel: object) -> None:
    """The counter the tests rely on can fire: a root descriptor on poisoned storage."""
    rib = Rib()
    rib.add(0x0A000000, 8, "v")
    fib = cls.build(rib, debug=True)
    pool = fib._a.pool.copy()
    buckets = fib._a.buckets.copy()
    assert (pool[1:16] == np.uint64(POISON)).all()
    buckets[1] = (np.uint64(15) << np.uint64(32)) | np.uint64(1)
    counter = np.zeros(1, np.int64)
    out = np.empty(1, np.int32)
    kernel(pool, buckets, np.array([0x0A000001], np.uint32), out, counter)  # type: ignore[operator]
    assert counter[0] > 0


@pytest.mark.parametrize("cls", VARIANTS)
def test_memory_bytes_counts_the_arrays(cls: Variant) -> None:
    rib = Rib()
    for i in range(100):
        rib.add(0x0A000000 | (i << 8), 24, "v")
    fib = cls.build(rib)
    assert fib.memory_bytes() >= fib._a.pool.nbytes + fib._a.buckets.nbytes
    assert fib.stats().entries == 102  # 100 routes, links for 10 (root) and 10.0 (level 1)


def test_rejects_route_ids_beyond_26_bits() -> None:
    fib = StrideFib.build(Rib())
    with pytest.raises(ValueError, match="26 bits"):
        fib.insert(0x0A000000, 8, 1 << 26)


# -- the real 2026 table against pytricia --


@pytest.fixture(scope="module")
def table_2026(shared_data: Path) -> tuple[Rib, list[str]]:
    return read_table(shared_data / "routes" / "ipv4-dfz-20260619.txt.gz")


@pytest.fixture(scope="module")
def oracle_2026(table_2026: tuple[Rib, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    import pytricia

    rib, texts = table_2026
    pyt = pytricia.PyTricia(32)
    for text in texts:
        net, plen = text.split("/")
        a, b, c, d = (int(x) for x in net.split("."))
        pyt[text] = rib.get((a << 24) | (b << 16) | (c << 8) | d, int(plen))
    net, plen, _ = rib.live_arrays()
    rng = np.random.default_rng(2026)
    n = 500_000
    pick = rng.integers(0, net.size, n)
    span = np.uint64(1) << (32 - plen[pick].astype(np.uint64))
    inside = net[pick].astype(np.uint64) + rng.integers(0, 2**32, n, dtype=np.uint64) % span
    addrs = np.concatenate([inside, rng.integers(0, 2**32, n, dtype=np.uint64)]).astype(np.uint32)
    get = pyt.get
    want = np.array([get(a, NO_ROUTE) for a in addrs.tolist()], np.int32)
    return addrs, want


@pytest.mark.slow
@pytest.mark.parametrize("cls", VARIANTS)
def test_real_2026_table_vs_pytricia(
    cls: Variant, table_2026: tuple[Rib, list[str]], oracle_2026: tuple[np.ndarray, np.ndarray]
) -> None:
    rib, _ = table_2026
    addrs, want = oracle_2026
    assert (want[: want.size // 2] != NO_ROUTE).all()  # the inside half really is inside
    fib = cls.build(rib)
    got = fib.lookup_batch(addrs)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(hex(int(addrs[i])), int(got[i]), int(want[i])) for i in bad[:5]]
    sample = addrs[::1000].tolist()
    assert [fib.lookup(a) for a in sample] == want[::1000].tolist()
    # single-route updates on the full table: delete every 100th route, then put it back
    net, plen, rids = rib.live_arrays()
    for n, p in zip(net[::100].tolist(), plen[::100].tolist(), strict=True):
        fib.delete(n, p)
    gone = np.isin(want, rids[::100])
    got = fib.lookup_batch(addrs)
    assert not np.isin(got, rids[::100]).any()
    assert (got[~gone] == want[~gone]).all()
    for n, p, r in zip(
        net[::100].tolist(), plen[::100].tolist(), rids[::100].tolist(), strict=True
    ):
        fib.insert(n, p, r)
    assert (fib.lookup_batch(addrs) == want).all()
