"""The BSD PATRICIA trie baseline: structure invariants, differential tests against the RIB's
reference lookup, and real full tables against pytricia."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.route.strategies import prefixes, probes

from netfast.route.radix import (
    BIT,
    DUP,
    HEAD,
    KEY,
    LEAF_BIT,
    LEFT,
    MK,
    PARENT,
    PLEN,
    RID,
    RIGHT,
    RadixFib,
)
from netfast.route.rib import NO_ROUTE, Rib, parse_prefix, prefix_mask

# -- strategies: tables with /0, /32, duped keys and deep nesting ------------------------------


# (delete?, prefix to add, which live route to delete)
operations = st.lists(st.tuples(st.booleans(), prefixes(), st.integers(0, 10**6)), max_size=50)


def apply(rib: Rib, fib: RadixFib, op: tuple[bool, tuple[int, int], int]) -> tuple[int, int]:
    delete, (net, plen), pick = op
    if delete and len(rib):
        net, plen, _ = list(rib.items())[pick % len(rib)]
        rib.delete(net, plen)
        fib.delete(net, plen)
    else:
        rid, _ = rib.add(net, plen, None)
        fib.insert(net, plen, rid)
    return net, plen


# -- a structural checker: the invariants the module docstring states ---------------------------


def check_invariants(fib: RadixFib, rib: Rib) -> None:
    nodes, routes = fib.nodes, fib.routes
    expect = {(net, plen): rid for net, plen, rid in rib.items()}
    seen: dict[tuple[int, int], int] = {}
    owners: dict[int, int] = {}  # route entry -> node whose mask list must hold it
    lists: dict[int, list[int]] = {}  # internal node -> its mask list
    if fib.root < 0:
        assert not expect
        return
    assert nodes[fib.root, PARENT] == -1
    shared: dict[int, set[int]] = {}  # internal node -> first BIT bits of the keys below it
    stack = [(fib.root, -1, 0, 0)]  # node, bit of parent, tested bits on the path, their mask
    while stack:
        n, upper, path, tested = stack.pop()
        bit = int(nodes[n, BIT])
        assert bit > upper, "bit indices must grow downwards"
        if bit == LEAF_BIT:
            key = int(nodes[n, KEY]) & 0xFFFFFFFF
            assert key & tested == path, "the tested bits lead to this key"
            up = int(nodes[n, PARENT])
            while up >= 0:
                b = int(nodes[up, BIT])
                shared.setdefault(up, set()).add(key >> (32 - b) if b else 0)
                up = int(nodes[up, PARENT])
            r, last = int(nodes[n, HEAD]), 33
            assert r >= 0, "an empty leaf must have been removed"
            while r >= 0:
                plen = int(routes[r, PLEN])
                assert plen < last, "duped-key chain must be most specific first"
                assert key & prefix_mask(plen) == key
                seen[(key, plen)] = int(routes[r, RID])
                # Where the route must be listed: topmost ancestor testing a bit >= plen.
                owner, up = n, int(nodes[n, PARENT])
                while up >= 0 and nodes[up, BIT] >= plen:
                    owner, up = up, int(nodes[up, PARENT])
                if owner != n:
                    owners[r] = owner
                last, r = plen, int(routes[r, DUP])
            continue
        r, last = int(nodes[n, HEAD]), 33
        lists[n] = []
        while r >= 0:
            assert routes[r, PLEN] < last, "mask list must be most specific first"
            lists[n].append(r)
            last, r = int(routes[r, PLEN]), int(routes[r, MK])
        for side, value in ((LEFT, 0), (RIGHT, 1)):
            child = int(nodes[n, side])
            assert nodes[child, PARENT] == n
            bit_mask = 1 << (31 - bit)
            stack.append((child, bit, path | (value * bit_mask), tested | bit_mask))
    assert seen == expect
    # Path compression: the keys below a node testing bit b share their first b bits.
    assert all(len(firsts) == 1 for firsts in shared.values())
    # Each mask list holds exactly the routes that must be listed there.
    for n, entries in lists.items():
        assert sorted(entries) == sorted(r for r, owner in owners.items() if owner == n)
    assert len(fib) == len(rib)


# -- unit tests ----------------------------------------------------------------------------------


def test_deletes_expose_shorter_matches() -> None:
    rib, fib = Rib(), RadixFib()
    chain = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32"]
    dupes = ["10.0.0.0/16", "10.0.0.0/24"]  # same key as 10.0.0.0/8: a duped-key chain
    for text in chain + dupes:
        net, plen = parse_prefix(text)
        fib.insert(net, plen, rib.add(net, plen, text)[0])
    for text in reversed(chain):
        net, plen = parse_prefix(text)
        assert rib.value_of(fib.lookup(0x0A010203)) == text
        rib.delete(net, plen)
        fib.delete(net, plen)
        check_invariants(fib, rib)
    assert fib.lookup(0x0A010203) == NO_ROUTE
    assert rib.value_of(fib.lookup(0x0A000001)) == "10.0.0.0/24"
    fib.delete(*parse_prefix("10.0.0.0/24"))
    assert rib.value_of(fib.lookup(0x0A000001)) == "10.0.0.0/16"


def test_backtracking_finds_a_route_on_another_branch() -> None:
    # 10.0.0.0/8 lives on the leaf 10.0.0.0; an address that descends to 10.128.0.0 must
    # come back up and find /8 in the mask list of the node that splits the two keys.
    rib, fib = Rib(), RadixFib()
    for text in ["10.0.0.0/8", "10.128.0.0/9", "10.128.0.0/24"]:
        net, plen = parse_prefix(text)
        fib.insert(net, plen, rib.add(net, plen, text)[0])
    fib.delete(*parse_prefix("10.128.0.0/9"))
    rib.delete(*parse_prefix("10.128.0.0/9"))
    check_invariants(fib, rib)
    assert rib.value_of(fib.lookup(0x0A800100)) == "10.0.0.0/8"
    assert rib.value_of(fib.lookup(0x0A800001)) == "10.128.0.0/24"


def test_replace_keeps_one_route() -> None:
    fib = RadixFib()
    fib.insert(0x0A000000, 8, 1)
    fib.insert(0x0A000000, 8, 7)
    assert len(fib) == 1
    assert fib.lookup(0x0A000001) == 7


def test_misuse_raises() -> None:
    fib = RadixFib()
    fib.insert(0x0A000000, 8, 0)
    with pytest.raises(KeyError):
        fib.delete(0x0A000000, 16)
    with pytest.raises(KeyError):
        fib.delete(0x0B000000, 8)
    with pytest.raises(ValueError, match="bad prefix"):
        fib.insert(0x0A000001, 8, 1)
    with pytest.raises(ValueError, match="bad prefix"):
        fib.insert(0, 33, 1)
    with pytest.raises(ValueError):
        fib.lookup(2**32)
    with pytest.raises(ValueError):
        fib.lookup_batch(np.zeros(4, np.uint32), out=np.zeros(2, np.int32))


def test_free_slots_are_reused() -> None:
    fib = RadixFib()
    nets = [(i * 2654435761) & 0xFFFFFF00 for i in range(200)]
    for rid, net in enumerate(nets):
        fib.insert(net, 24, rid)
    size = fib.memory_bytes()
    for _ in range(3):
        for net in nets:
            fib.delete(net, 24)
        assert fib.node_count == 0 and len(fib) == 0 and fib.root == -1
        for rid, net in enumerate(nets):
            fib.insert(net, 24, rid)
    assert fib.memory_bytes() == size


# -- differential tests against the reference LPM -------------------------------------------------


@given(operations, st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_incremental_matches_reference(ops: list, extra: list[int]) -> None:
    rib, fib = Rib(capacity=4), RadixFib(node_capacity=2, route_capacity=1)
    touched: set[tuple[int, int]] = set()
    for op in ops:
        touched.add(apply(rib, fib, op))
        check_invariants(fib, rib)
    addrs = probes(touched, extra)
    for addr in addrs:
        assert fib.lookup(addr) == rib.reference_lookup(addr), hex(addr)
    batch = fib.lookup_batch(np.array(addrs, np.uint32))
    assert batch.tolist() == [rib.reference_lookup(a) for a in addrs]


@given(st.lists(prefixes(), max_size=60), st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_build_matches_reference(table: list[tuple[int, int]], extra: list[int]) -> None:
    rib = Rib()
    for net, plen in table:
        rib.add(net, plen, None)
    fib = RadixFib.build(rib)
    check_invariants(fib, rib)
    addrs = probes(set(table), extra)
    assert fib.lookup_batch(np.array(addrs, np.uint32)).tolist() == [
        rib.reference_lookup(a) for a in addrs
    ]


# -- real tables against pytricia -----------------------------------------------------------------
