"""The contract every FIB algorithm keeps (:class:`netfast.route.fib.Fib`), written once and run
over :func:`netfast.route.table.algorithms`: the same answers as the RIB's reference lookup on
hand-made and generated tables, through inserts and deletes, scalar and batch; and on the real
full tables, the same answers as pytricia.  What is particular to one algorithm (its structure,
its concurrency, its rebuild policy) stays in that algorithm's own test file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.route.oracle import pytricia_lookup, pytricia_of, read_table, sample_addresses
from tests.route.strategies import prefixes, probes

from netfast.route.fib import Fib
from netfast.route.rib import NO_ROUTE, Rib, format_prefix
from netfast.route.table import algorithms

ALGORITHMS = sorted(algorithms())
REAL_TABLES = ["ipv4-dfz-20260619.txt.gz", "ipv4-dfz-20160202-caida-pfx2as.txt.gz"]


# (delete?, prefix to add, which live route to delete)
operations = st.lists(st.tuples(st.booleans(), prefixes(), st.integers(0, 10**6)), max_size=40)


def agree(fib: Fib, rib: Rib, addrs: list[int]) -> None:
    want = [rib.reference_lookup(a) for a in addrs]
    assert [fib.lookup(a) for a in addrs] == want
    assert fib.lookup_batch(np.array(addrs, np.uint32)).tolist() == want


@pytest.mark.parametrize("name", ALGORITHMS)
def test_empty_table_finds_nothing(name: str) -> None:
    cls = algorithms()[name]
    fib = cls.build(Rib())
    assert isinstance(fib, Fib) and cls.name == name
    assert fib.lookup(0x01020304) == NO_ROUTE
    assert fib.lookup_batch(np.array([0, 2**32 - 1], np.uint32)).tolist() == [NO_ROUTE] * 2
    assert fib.lookup_batch(np.array([], np.uint32)).size == 0


@pytest.mark.parametrize("name", ALGORITHMS)
def test_default_route_covers_everything_until_withdrawn(name: str) -> None:
    fib = algorithms()[name].build(Rib())
    fib.insert(0, 0, 5)
    assert fib.lookup_batch(np.array([0, 0x80000000, 2**32 - 1], np.uint32)).tolist() == [5] * 3
    fib.delete(0, 0)
    assert fib.lookup(0) == NO_ROUTE and fib.lookup(2**32 - 1) == NO_ROUTE


@pytest.mark.parametrize("name", ALGORITHMS)
def test_delete_exposes_the_shorter_match(name: str) -> None:
    rib = Rib()
    fib = algorithms()[name].build(rib)
    for net, plen in [(0x0A000000, 8), (0x0A010000, 16), (0x0A010200, 24), (0x0A010203, 32)]:
        fib.insert(net, plen, rib.add(net, plen, None)[0])
    addrs = [0x0A010203, 0x0A010204, 0x0A0103FF, 0x0A0200FF, 0x0B000000]
    agree(fib, rib, addrs)
    for net, plen in [(0x0A010203, 32), (0x0A010000, 16), (0x0A010200, 24), (0x0A000000, 8)]:
        rib.delete(net, plen)
        fib.delete(net, plen)
        agree(fib, rib, addrs)
    assert fib.lookup(0x0A010203) == NO_ROUTE


@pytest.mark.parametrize("name", ALGORITHMS)
@given(
    table=st.lists(prefixes(), max_size=60),
    ops=operations,
    extra=st.lists(st.integers(0, 2**32 - 1), max_size=20),
)
def test_build_then_updates_match_the_reference(
    name: str, table: list[tuple[int, int]], ops: list, extra: list[int]
) -> None:
    rib = Rib()
    for net, plen in table:
        rib.add(net, plen, None)
    fib = algorithms()[name].build(rib)
    touched = set(table)
    agree(fib, rib, probes(touched, extra))
    for delete, (net, plen), pick in ops:
        if delete and len(rib):
            net, plen, _ = list(rib.items())[pick % len(rib)]
            rib.delete(net, plen)
            fib.delete(net, plen)
        else:
            rid, _ = rib.add(net, plen, None)
            fib.insert(net, plen, rid)
        touched.add((net, plen))
    agree(fib, rib, probes(touched, extra))


# -- real tables against pytricia -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_tables(
    shared_data: Path,
) -> dict[str, tuple[Rib, npt.NDArray[np.uint32], npt.NDArray[np.int32]]]:
    """Per table: its RIB, probe addresses (half inside announced prefixes) and pytricia's
    answers, computed once for every algorithm."""
    out = {}
    for table in REAL_TABLES:
        rib = read_table(shared_data / "routes" / table)
        addrs = sample_addresses(rib, 500_000, seed=len(rib))
        out[table] = (rib, addrs, pytricia_lookup(pytricia_of(rib), addrs))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("table", REAL_TABLES)
@pytest.mark.parametrize("name", ALGORITHMS)
def test_real_table_against_pytricia(
    real_tables: dict[str, tuple[Rib, npt.NDArray[np.uint32], npt.NDArray[np.int32]]],
    name: str,
    table: str,
) -> None:
    rib, addrs, expect = real_tables[table]
    assert (expect[: len(addrs) // 2] >= 0).all()  # the inside half really is inside
    fib = algorithms()[name].build(rib)
    got = fib.lookup_batch(addrs)
    assert np.array_equal(got, expect), np.flatnonzero(got != expect)[:10]
    some = addrs[::5000].tolist()
    assert [fib.lookup(a) for a in some] == expect[::5000].tolist()
    # Withdraw 5% one by one: incremental deletes on a real structure, against pytricia again
    # (on a copy of the RIB's routes, so the shared fixture stays whole).
    pyt = pytricia_of(rib)
    nets, plens, _ = rib.live_arrays()
    rng = np.random.default_rng(1)
    for i in rng.choice(len(nets), len(nets) // 20, replace=False).tolist():
        net, plen = int(nets[i]), int(plens[i])
        fib.delete(net, plen)
        pyt.delete(format_prefix(net, plen))
    expect_after = pytricia_lookup(pyt, addrs)
    assert np.array_equal(fib.lookup_batch(addrs), expect_after)
    assert [fib.lookup(a) for a in some] == expect_after[::5000].tolist()
