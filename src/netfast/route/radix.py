"""The 4.4BSD PATRICIA trie (``net/radix.c``), the routing table the paper replaces: a baseline.

The paper ("Routing Packets") describes the BSD lookup: it "travels along the prefix bits as deep
as possible into the tree and then compares the mask and checks if it covers the destination IP
address of the packet.  If not, it has to do backtracking whereas it goes one step back and
compares again", possibly up to the root.  This module reproduces that structure with numpy
arrays and numba kernels, so that it can be measured against the stride table in one runtime.

Structure
---------
A path-compressed binary trie over the 32 address bits (bit 0 is the most significant):

- an *internal node* tests one bit (``BIT`` 0..31) and has a ``LEFT`` (bit clear) and ``RIGHT``
  (bit set) child; bit indices strictly increase downwards, and every key below a node with bit
  ``b`` shares the same first ``b`` bits (that is what path compression preserves);
- a *leaf* (``BIT`` = 32) holds one distinct network address (``KEY``) and the routes with that
  address, most specific first: BSD's *duped-key* chain (``10.0.0.0/16`` and ``10.0.0.0/8`` share
  the leaf ``10.0.0.0``);
- every node has a ``PARENT`` link, which backtracking follows.

Each route ``K/p`` is also entered in the *mask list* (BSD's ``rn_mklist``) of the topmost
internal node on the path to its leaf whose bit index is ``>= p``: every address that ``K/p``
covers passes that node on its way down and lands somewhere in its subtree, so backtracking from
any leaf below passes the node again and sees the route.  Routes whose parent already tests a bit
beyond ``p`` need no list entry: any address they cover is led to their own leaf.  All masks are
contiguous, so every list entry is BSD's ``RNF_NORMAL`` case, and the check needs no key of its
own: below a node with bit ``b``, all keys share ``b`` bits, so an address is covered by a listed
``/p`` (``p <= b``) exactly when it agrees with the leaf the descent reached on its first ``p``
bits.  Mask lists are ordered most specific first, and a route listed deeper always has a longer
mask than one listed higher up, so the first match found on the way up is the longest.

Lookup (``rn_match``)
---------------------
1. descend from the root by the tested bits to a leaf;
2. ``matched`` = number of leading bits the address shares with the leaf's key; the first route
   of the duped-key chain with ``plen <= matched`` is the answer;
3. otherwise go to the parent, scan its mask list for ``plen <= matched``, and repeat up to the
   root; no match anywhere means no route.

Updates are incremental (``rn_addroute`` / ``rn_delete``): an insert splits one edge with a new
internal node and moves ("promotes") the mask-list entries that now belong to it; a delete that
empties a leaf removes the leaf and its parent and hands the parent's list to the sibling.

Concurrency: none.  As in 4.4BSD, where the whole tree is locked for every lookup, updates must
not run concurrently with lookups (``concurrent_updates = False``); an insert may even reallocate
the arrays.

Memory is counted from every array, including unused capacity, as a kernel allocator would.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route.rib import NO_ROUTE, Rib

__all__ = ["RadixFib"]

# Scalars inside the kernels are int64: Python ints from the API, np.int64 where a kernel widens
# an array element explicitly (uint32 arithmetic would otherwise wrap or turn into float64).
_Int: TypeAlias = int | np.int64

# Node rows (one int32 row per radix_node, like BSD's struct): columns.
BIT, LEFT, RIGHT, PARENT, HEAD, KEY = range(6)
_NODE_COLS = 6
LEAF_BIT = 32  # the BIT value of a leaf (internal nodes test 0..31)
# Route-entry rows: the route's prefix length and id, next in the leaf's duped-key chain, next in
# the mask list of the node that lists it.
PLEN, RID, DUP, MK = range(4)
_ROUTE_COLS = 4
# Allocator state kept in a small int64 array so that kernels can update it in place.
_ROOT, _NODE_HW, _NODE_FREE, _ROUTE_HW, _ROUTE_FREE, _COUNT = range(6)

# Kernel status codes (kernels do not raise: they report, and the Python side raises).
_OK, _REPLACED, _ABSENT = 0, 1, 2


@njit(nogil=True, cache=True)
def _clz32(x: _Int) -> _Int:
    """Leading zero bits of a 32-bit value (32 for 0)."""
    if x == 0:
        return 32
    n = 0
    if x & 0xFFFF0000 == 0:
        n += 16
        x <<= 16
    if x & 0xFF000000 == 0:
        n += 8
        x <<= 8
    if x & 0xF0000000 == 0:
        n += 4
        x <<= 4
    if x & 0xC0000000 == 0:
        n += 2
        x <<= 2
    if x & 0x80000000 == 0:
        n += 1
    return n


@njit(nogil=True, cache=True)
def _key(nodes: npt.NDArray[np.int32], n: _Int) -> _Int:
    return np.int64(nodes[n, KEY]) & 0xFFFFFFFF


@njit(nogil=True, cache=True)
def _descend(nodes: npt.NDArray[np.int32], root: _Int, addr: _Int) -> _Int:
    """Follow the tested bits of ``addr`` from ``root`` down to a leaf."""
    n = root
    while True:
        b = nodes[n, BIT]
        if b == LEAF_BIT:
            return n
        if (addr >> (31 - b)) & 1:
            n = nodes[n, RIGHT]
        else:
            n = nodes[n, LEFT]


@njit(nogil=True, cache=True)
def _match(
    nodes: npt.NDArray[np.int32], routes: npt.NDArray[np.int32], root: _Int, addr: _Int
) -> _Int:
    """rn_match: down as deep as the bits lead, then back up checking masks."""
    if root < 0:
        return NO_ROUTE
    leaf = _descend(nodes, root, addr)
    matched = _clz32((addr ^ _key(nodes, leaf)) & 0xFFFFFFFF)
    r = nodes[leaf, HEAD]
    while r >= 0:
        if routes[r, PLEN] <= matched:
            return routes[r, RID]
        r = routes[r, DUP]
    n = nodes[leaf, PARENT]
    while n >= 0:  # backtracking
        r = nodes[n, HEAD]
        while r >= 0:
            if routes[r, PLEN] <= matched:
                return routes[r, RID]
            r = routes[r, MK]
        n = nodes[n, PARENT]
    return NO_ROUTE


@njit(nogil=True, cache=True)
def _lookup_batch(
    nodes: npt.NDArray[np.int32],
    routes: npt.NDArray[np.int32],
    root: _Int,
    addrs: npt.NDArray[np.uint32],
    out: npt.NDArray[np.int32],
) -> None:
    for i in range(addrs.shape[0]):
        out[i] = _match(nodes, routes, root, np.int64(addrs[i]))


@njit(nogil=True, cache=True)
def _new_node(nodes: npt.NDArray[np.int32], st: npt.NDArray[np.int64], bit: _Int) -> _Int:
    n = st[_NODE_FREE]
    if n >= 0:
        st[_NODE_FREE] = nodes[n, LEFT]
    else:
        n = st[_NODE_HW]
        st[_NODE_HW] = n + 1
    nodes[n, BIT] = bit
    nodes[n, LEFT] = -1
    nodes[n, RIGHT] = -1
    nodes[n, PARENT] = -1
    nodes[n, HEAD] = -1
    nodes[n, KEY] = 0
    return n


@njit(nogil=True, cache=True)
def _free_node(nodes: npt.NDArray[np.int32], st: npt.NDArray[np.int64], n: _Int) -> None:
    nodes[n, BIT] = -1
    nodes[n, LEFT] = st[_NODE_FREE]
    st[_NODE_FREE] = n


@njit(nogil=True, cache=True)
def _new_route(
    routes: npt.NDArray[np.int32], st: npt.NDArray[np.int64], plen: _Int, rid: _Int
) -> _Int:
    r = st[_ROUTE_FREE]
    if r >= 0:
        st[_ROUTE_FREE] = routes[r, DUP]
    else:
        r = st[_ROUTE_HW]
        st[_ROUTE_HW] = r + 1
    routes[r, PLEN] = plen
    routes[r, RID] = rid
    routes[r, DUP] = -1
    routes[r, MK] = -1
    return r


@njit(nogil=True, cache=True)
def _list_node(nodes: npt.NDArray[np.int32], leaf: _Int, plen: _Int) -> _Int:
    """The node whose mask list holds a ``/plen`` route of ``leaf``: the topmost ancestor testing
    a bit ``>= plen``, or the leaf itself when its parent already tests a shorter bit."""
    n = leaf
    while True:
        p = nodes[n, PARENT]
        if p < 0 or nodes[p, BIT] < plen:
            return n
        n = p


@njit(nogil=True, cache=True)
def _mk_insert(
    nodes: npt.NDArray[np.int32], routes: npt.NDArray[np.int32], n: _Int, r: _Int
) -> None:
    """Enter route ``r`` in node ``n``'s mask list, most specific first."""
    plen = routes[r, PLEN]
    prev = -1
    cur = nodes[n, HEAD]
    while cur >= 0 and routes[cur, PLEN] > plen:
        prev = cur
        cur = routes[cur, MK]
    routes[r, MK] = cur
    if prev < 0:
        nodes[n, HEAD] = r
    else:
        routes[prev, MK] = r


@njit(nogil=True, cache=True)
def _mk_remove(
    nodes: npt.NDArray[np.int32], routes: npt.NDArray[np.int32], n: _Int, r: _Int
) -> None:
    prev = -1
    cur = nodes[n, HEAD]
    while cur != r:
        prev = cur
        cur = routes[cur, MK]
    if prev < 0:
        nodes[n, HEAD] = routes[r, MK]
    else:
        routes[prev, MK] = routes[r, MK]
    routes[r, MK] = -1


@njit(nogil=True, cache=True)
def _annotate(
    nodes: npt.NDArray[np.int32], routes: npt.NDArray[np.int32], leaf: _Int, r: _Int
) -> None:
    n = _list_node(nodes, leaf, routes[r, PLEN])
    if n != leaf:
        _mk_insert(nodes, routes, n, r)


@njit(nogil=True, cache=True)
def _set_child(
    nodes: npt.NDArray[np.int32], st: npt.NDArray[np.int64], parent: _Int, old: _Int, new: _Int
) -> None:
    if parent < 0:
        st[_ROOT] = new
    elif nodes[parent, LEFT] == old:
        nodes[parent, LEFT] = new
    else:
        nodes[parent, RIGHT] = new
    nodes[new, PARENT] = parent


@njit(nogil=True, cache=True)
def _insert(
    nodes: npt.NDArray[np.int32],
    routes: npt.NDArray[np.int32],
    st: npt.NDArray[np.int64],
    net: _Int,
    plen: _Int,
    rid: _Int,
) -> _Int:
    """rn_addroute.  Needs room for two nodes and one route entry (the caller grows)."""
    root = st[_ROOT]
    if root < 0:
        leaf = _new_node(nodes, st, LEAF_BIT)
        nodes[leaf, KEY] = np.int32(net - (1 << 32) if net >= (1 << 31) else net)
        nodes[leaf, HEAD] = _new_route(routes, st, plen, rid)
        st[_ROOT] = leaf
        st[_COUNT] += 1
        return _OK
    leaf = _descend(nodes, root, net)
    key = _key(nodes, leaf)
    if key == net:
        # Duped key: the chain is ordered most specific first.
        prev = -1
        cur = nodes[leaf, HEAD]
        while cur >= 0 and routes[cur, PLEN] > plen:
            prev = cur
            cur = routes[cur, DUP]
        if cur >= 0 and routes[cur, PLEN] == plen:
            routes[cur, RID] = rid
            return _REPLACED
        r = _new_route(routes, st, plen, rid)
        routes[r, DUP] = cur
        if prev < 0:
            nodes[leaf, HEAD] = r
        else:
            routes[prev, DUP] = r
        _annotate(nodes, routes, leaf, r)
        st[_COUNT] += 1
        return _OK
    # A new key: split the edge above the first node testing a bit at or past the first bit
    # where the new key and the one found differ.
    diff = _clz32(net ^ key)
    parent = -1
    below = root
    while nodes[below, BIT] < diff:
        parent = below
        if (net >> (31 - nodes[below, BIT])) & 1:
            below = nodes[below, RIGHT]
        else:
            below = nodes[below, LEFT]
    split = _new_node(nodes, st, diff)
    new_leaf = _new_node(nodes, st, LEAF_BIT)
    nodes[new_leaf, KEY] = np.int32(net - (1 << 32) if net >= (1 << 31) else net)
    if (net >> (31 - diff)) & 1:
        nodes[split, LEFT] = below
        nodes[split, RIGHT] = new_leaf
    else:
        nodes[split, LEFT] = new_leaf
        nodes[split, RIGHT] = below
    _set_child(nodes, st, parent, below, split)
    nodes[below, PARENT] = split
    nodes[new_leaf, PARENT] = split
    # Promote masks from below: routes of the subtree now listed at the new node.
    if nodes[below, BIT] != LEAF_BIT:
        # below's list is most specific first, so the entries with plen <= diff are a tail.
        prev = -1
        cur = nodes[below, HEAD]
        while cur >= 0 and routes[cur, PLEN] > diff:
            prev = cur
            cur = routes[cur, MK]
        if cur >= 0:
            nodes[split, HEAD] = cur
            if prev < 0:
                nodes[below, HEAD] = -1
            else:
                routes[prev, MK] = -1
    else:
        upper = -1 if parent < 0 else nodes[parent, BIT]
        cur = nodes[below, HEAD]
        tail = -1
        while cur >= 0:
            p = routes[cur, PLEN]
            if upper < p <= diff:  # was found at the leaf only; now needs listing
                if tail < 0:
                    nodes[split, HEAD] = cur
                else:
                    routes[tail, MK] = cur
                routes[cur, MK] = -1
                tail = cur
            cur = routes[cur, DUP]
    r = _new_route(routes, st, plen, rid)
    nodes[new_leaf, HEAD] = r
    _annotate(nodes, routes, new_leaf, r)
    st[_COUNT] += 1
    return _OK


@njit(nogil=True, cache=True)
def _insert_many(
    nodes: npt.NDArray[np.int32],
    routes: npt.NDArray[np.int32],
    st: npt.NDArray[np.int64],
    nets: npt.NDArray[np.uint32],
    plens: npt.NDArray[np.uint8],
    rids: npt.NDArray[np.int32],
) -> None:
    for i in range(nets.shape[0]):
        _insert(nodes, routes, st, np.int64(nets[i]), np.int64(plens[i]), np.int64(rids[i]))


@njit(nogil=True, cache=True)
def _delete(
    nodes: npt.NDArray[np.int32],
    routes: npt.NDArray[np.int32],
    st: npt.NDArray[np.int64],
    net: _Int,
    plen: _Int,
) -> _Int:
    """rn_delete."""
    root = st[_ROOT]
    if root < 0:
        return _ABSENT
    leaf = _descend(nodes, root, net)
    if _key(nodes, leaf) != net:
        return _ABSENT
    prev = -1
    r = nodes[leaf, HEAD]
    while r >= 0 and routes[r, PLEN] != plen:
        prev = r
        r = routes[r, DUP]
    if r < 0:
        return _ABSENT
    lister = _list_node(nodes, leaf, plen)
    if lister != leaf:
        _mk_remove(nodes, routes, lister, r)
    if prev < 0:
        nodes[leaf, HEAD] = routes[r, DUP]
    else:
        routes[prev, DUP] = routes[r, DUP]
    routes[r, DUP] = st[_ROUTE_FREE]
    routes[r, PLEN] = -1
    st[_ROUTE_FREE] = r
    st[_COUNT] -= 1
    if nodes[leaf, HEAD] >= 0:
        return _OK
    # The leaf is empty: remove it and its parent, the sibling takes the parent's place.
    up = nodes[leaf, PARENT]
    if up < 0:
        st[_ROOT] = -1
        _free_node(nodes, st, leaf)
        return _OK
    sibling = nodes[up, RIGHT] if nodes[up, LEFT] == leaf else nodes[up, LEFT]
    _set_child(nodes, st, nodes[up, PARENT], up, sibling)
    moved = nodes[up, HEAD]
    if nodes[sibling, BIT] != LEAF_BIT:
        # The parent's entries are all less specific than the sibling's: append them.
        if moved >= 0:
            cur = nodes[sibling, HEAD]
            if cur < 0:
                nodes[sibling, HEAD] = moved
            else:
                while routes[cur, MK] >= 0:
                    cur = routes[cur, MK]
                routes[cur, MK] = moved
    else:
        # They can only be the sibling leaf's own routes, which its leaf check now finds.
        while moved >= 0:
            nxt = routes[moved, MK]
            routes[moved, MK] = -1
            moved = nxt
    _free_node(nodes, st, up)
    _free_node(nodes, st, leaf)
    return _OK


def _u32(value: int) -> int:
    if not 0 <= value < 2**32:
        raise ValueError(f"address {value:#x} is not a 32-bit unsigned integer")
    return value


class RadixFib:
    """The 4.4BSD PATRICIA routing trie with backtracking (see the module docstring).

    Parameters
    ----------
    node_capacity, route_capacity
        Initial array sizes; both grow by doubling as routes are inserted.
    """

    name: ClassVar[str] = "radix"
    concurrent_updates: ClassVar[bool] = False

    def __init__(self, node_capacity: int = 64, route_capacity: int = 32) -> None:
        self.nodes: npt.NDArray[np.int32] = np.zeros((max(node_capacity, 2), _NODE_COLS), np.int32)
        self.routes: npt.NDArray[np.int32] = np.zeros(
            (max(route_capacity, 1), _ROUTE_COLS), np.int32
        )
        self._st: npt.NDArray[np.int64] = np.array([-1, 0, -1, 0, -1, 0], np.int64)

    @classmethod
    def build(cls, rib: Rib) -> RadixFib:
        """Insert every live route of ``rib`` one by one, in RIB order, as a daemon would."""
        nets, plens, rids = rib.live_arrays()
        n = len(nets)
        fib = cls(node_capacity=2 * n + 2, route_capacity=n + 1)
        _insert_many(fib.nodes, fib.routes, fib._st, nets, plens, rids)
        return fib

    def __len__(self) -> int:
        return int(self._st[_COUNT])

    @property
    def root(self) -> int:
        """Index of the root node, ``-1`` for an empty tree."""
        return int(self._st[_ROOT])

    @property
    def node_count(self) -> int:
        """Nodes in the tree (leaves and internal nodes)."""
        return int(self._st[_NODE_HW]) - self._free_count(self._st[_NODE_FREE], self.nodes, LEFT)

    @staticmethod
    def _free_count(head: np.int64, table: npt.NDArray[np.int32], link: int) -> int:
        count, cur = 0, int(head)
        while cur >= 0:
            count += 1
            cur = int(table[cur, link])
        return count

    def lookup(self, addr: int) -> int:
        """Longest-prefix match of one address: a route id, or ``-1``."""
        return int(_match(self.nodes, self.routes, int(self._st[_ROOT]), _u32(addr)))

    def lookup_batch(
        self, addrs: npt.NDArray[np.uint32], out: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """Longest-prefix match of every address in ``addrs`` (uint32), into ``out``."""
        addrs = np.ascontiguousarray(addrs, dtype=np.uint32)
        if out is None:
            out = np.empty(addrs.shape[0], np.int32)
        elif out.shape[0] < addrs.shape[0] or out.dtype != np.int32:
            raise ValueError("out must be an int32 array at least as long as addrs")
        _lookup_batch(self.nodes, self.routes, int(self._st[_ROOT]), addrs, out)
        return out

    def insert(self, net: int, plen: int, rid: int) -> None:
        """Add ``net/plen`` -> ``rid`` (or replace the rid of an existing prefix)."""
        self._check_prefix(net, plen)
        # Free slots are reused first; growing by the high-water mark alone is simple and safe.
        if self._st[_NODE_HW] + 2 > self.nodes.shape[0]:
            self.nodes = self._grown(self.nodes)
        if self._st[_ROUTE_HW] + 1 > self.routes.shape[0]:
            self.routes = self._grown(self.routes)
        _insert(self.nodes, self.routes, self._st, net, plen, rid)

    def delete(self, net: int, plen: int) -> None:
        """Remove ``net/plen``; raises ``KeyError`` if it is not in the table."""
        self._check_prefix(net, plen)
        if _delete(self.nodes, self.routes, self._st, net, plen) == _ABSENT:
            raise KeyError(f"{net:#010x}/{plen} is not in the radix table")

    def memory_bytes(self) -> int:
        """Bytes of every array (node rows, route entries, allocator state), capacity included."""
        return int(self.nodes.nbytes + self.routes.nbytes + self._st.nbytes)

    @staticmethod
    def _grown(table: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        new = np.zeros((2 * table.shape[0], table.shape[1]), table.dtype)
        new[: table.shape[0]] = table
        return new

    @staticmethod
    def _check_prefix(net: int, plen: int) -> None:
        if not 0 <= plen <= 32 or not 0 <= net < 2**32 or net & ~(-1 << (32 - plen)) & 0xFFFFFFFF:
            raise ValueError(f"bad prefix {net:#x}/{plen}")
