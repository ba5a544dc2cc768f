"""The Nilsson-Karlsson LC-trie baseline: its vectors and node words, differential tests against
the RIB's reference lookup for several fill factors and root branchings, rebuild-on-change, and
real full tables against pytricia."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.route.oracle import pytricia_lookup, pytricia_of, read_table, sample_addresses
from tests.route.strategies import prefixes, probes

from netfast.route.lctrie import (
    _BRANCH_SHIFT,
    _POINTER_MASK,
    _SKIP_SHIFT,
    LEN,
    NET,
    PRE,
    RID,
    LcTrieFib,
)
from netfast.route.rib import NO_ROUTE, Rib, format_prefix, prefix_mask

# (delete?, prefix to add, which live route to delete, look up afterwards?)
operations = st.lists(
    st.tuples(st.booleans(), prefixes(), st.integers(0, 10**6), st.booleans()), max_size=50
)
shapes = st.tuples(st.sampled_from([0.25, 0.5, 0.75, 1.0]), st.sampled_from([0, 1, 3, 8, 16]))


def check_vectors(fib: LcTrieFib, rib: Rib) -> None:
    """Base and prefix vectors partition the routes; PRE names the longest enclosing prefix;
    no base entry encloses another; every node word stays inside the arrays."""
    rows = [("base", row) for row in fib.base.tolist()] + [("pre", row) for row in fib.pre.tolist()]
    routes = {(row[NET] & 0xFFFFFFFF, row[LEN]): (kind, row) for kind, row in rows}
    assert {(n, p): rid for n, p, rid in rib.items()} == {k: v[1][RID] for k, v in routes.items()}

    def encloses(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
        return outer[1] < inner[1] and inner[0] & prefix_mask(outer[1]) == outer[0]

    for key, (kind, row) in routes.items():
        around = [k for k in routes if encloses(k, key)]
        if not around:
            assert row[PRE] == -1
        else:
            longest = max(around, key=lambda k: k[1])
            pre = fib.pre[row[PRE]]
            assert (int(pre[NET]) & 0xFFFFFFFF, int(pre[LEN])) == longest
        assert (kind == "pre") == any(encloses(key, other) for other in routes)
    for word in fib.tree.tolist():
        branch, skip, pointer = (
            word >> _BRANCH_SHIFT,
            (word >> _SKIP_SHIFT) & 31,
            word & _POINTER_MASK,
        )
        if branch == 0:
            assert skip == 0 and pointer < len(fib.base)
        else:
            assert pointer > 0 and pointer + (1 << branch) <= len(fib.tree)


def test_changes_wait_for_one_rebuild() -> None:
    fib = LcTrieFib()
    assert fib.rebuilds == 0
    fib.insert(0x0A000000, 8, 0)
    fib.insert(0x0A010000, 16, 1)
    fib.insert(0x0B000000, 8, 2)
    fib.delete(0x0B000000, 8)
    assert fib.dirty and fib.rebuilds == 0
    assert fib.lookup(0x0A010101) == 1
    assert not fib.dirty and fib.rebuilds == 1
    assert fib.lookup(0x0A020202) == 0 and fib.lookup(0x0B000001) == NO_ROUTE
    assert fib.rebuilds == 1
    fib.delete(0x0A010000, 16)  # the shorter match shows again, after a second rebuild
    assert fib.lookup(0x0A010101) == 0 and fib.rebuilds == 2


def test_root_branch_and_fill() -> None:
    rib = Rib()
    for i in range(4096):
        rib.add((i * 2654435761) & 0xFFFFFF00, 24, None)
    natural = LcTrieFib.build(rib, fill=1.0, root_branch=0)
    wide = LcTrieFib.build(rib, fill=1.0, root_branch=12)
    assert natural.tree[0] >> _BRANCH_SHIFT < 12  # what the fill factor alone gives
    assert wide.tree[0] >> _BRANCH_SHIFT == 12
    # The root branch is capped at log2 of the base vector's size: a tiny table, a tiny root.
    tiny = LcTrieFib.build(Rib(), root_branch=16)
    tiny.insert(0x0A000000, 8, 0)
    tiny.insert(0x0B000000, 8, 1)
    assert tiny.lookup(0x0B000001) == 1
    assert tiny.tree[0] >> _BRANCH_SHIFT == 1
    # A lower fill factor branches wider and so builds a shallower, larger trie.
    sparse = LcTrieFib.build(rib, fill=0.25, root_branch=0)
    dense = LcTrieFib.build(rib, fill=1.0, root_branch=0)
    assert len(sparse.tree) > len(dense.tree)


def test_misuse_raises() -> None:
    fib = LcTrieFib()
    fib.insert(0x0A000000, 8, 0)
    with pytest.raises(KeyError):
        fib.delete(0x0A000000, 16)
    fib.delete(0x0A000000, 8)
    with pytest.raises(KeyError):
        fib.delete(0x0A000000, 8)
    with pytest.raises(ValueError, match="bad prefix"):
        fib.insert(0x0A000001, 8, 1)
    with pytest.raises(ValueError, match="fill"):
        LcTrieFib(fill=0)
    with pytest.raises(ValueError, match="root branch"):
        LcTrieFib(root_branch=32)
    with pytest.raises(ValueError):
        fib.lookup(-1)


@given(operations, shapes, st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_updates_match_reference(ops: list, shape: tuple[float, int], extra: list[int]) -> None:
    rib, fib = Rib(), LcTrieFib(*shape)
    touched: set[tuple[int, int]] = set()
    for delete, (net, plen), pick, look in ops:
        if delete and len(rib):
            net, plen, _ = list(rib.items())[pick % len(rib)]
            rib.delete(net, plen)
            fib.delete(net, plen)
        else:
            fib.insert(net, plen, rib.add(net, plen, None)[0])
        touched.add((net, plen))
        if look:  # rebuilds now; otherwise changes pile up for one later rebuild
            assert fib.lookup(net) == rib.reference_lookup(net)
    addrs = probes(touched, extra)
    assert [fib.lookup(a) for a in addrs] == [rib.reference_lookup(a) for a in addrs]
    check_vectors(fib, rib)


@given(st.lists(prefixes(), max_size=80), shapes, st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_build_matches_reference(
    table: list[tuple[int, int]], shape: tuple[float, int], extra: list[int]
) -> None:
    rib = Rib()
    for net, plen in table:
        rib.add(net, plen, None)
    fib = LcTrieFib.build(rib, *shape)
    check_vectors(fib, rib)
    addrs = probes(set(table), extra)
    assert fib.lookup_batch(np.array(addrs, np.uint32)).tolist() == [
        rib.reference_lookup(a) for a in addrs
    ]


# -- real tables against pytricia -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["ipv4-dfz-20260619.txt.gz", "ipv4-dfz-20160202-caida-pfx2as.txt.gz"]
)
def test_real_table_against_pytricia(shared_data: Path, name: str) -> None:
    rib = read_table(shared_data / "routes" / name)
    addrs = sample_addresses(rib, 1_000_000, seed=len(rib))
    fib = LcTrieFib.build(rib)
    assert len(fib) == len(rib)
    assert fib.tree[0] >> _BRANCH_SHIFT == 16
    pyt = pytricia_of(rib)
    expect = pytricia_lookup(pyt, addrs)
    got = fib.lookup_batch(addrs)
    assert np.array_equal(got, expect), np.flatnonzero(got != expect)[:10]
    assert (expect[:1_000_000] >= 0).all()
    # Withdraw a random 5%: the changes pile up, the next lookup rebuilds once.
    rng = np.random.default_rng(1)
    nets, plens, _ = rib.live_arrays()
    for i in rng.choice(len(nets), len(nets) // 20, replace=False).tolist():
        net, plen = int(nets[i]), int(plens[i])
        rib.delete(net, plen)
        fib.delete(net, plen)
        pyt.delete(format_prefix(net, plen))
    expect = pytricia_lookup(pyt, addrs)
    assert np.array_equal(fib.lookup_batch(addrs), expect)
    assert fib.rebuilds == 2
    some = addrs[::5000].tolist()
    assert [fib.lookup(a) for a in some] == expect[::5000].tolist()
