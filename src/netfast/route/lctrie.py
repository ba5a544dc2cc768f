"""The LC-trie of Nilsson and Karlsson ("IP-address lookup using LC-tries", IEEE JSAC 17(6),
1999): the compact, precomputed lookup structure the paper cites as "an order of magnitude faster
than the traditional BSD trie but with one major drawback.  For every change in the routing table
the entire LC tree has to be re-computed".  A baseline, built and searched with numba kernels.

Structure
---------
The routes, sorted by (network address, prefix length), are split in two vectors:

- the *prefix vector*: every prefix that is a proper prefix of another one ("internal" prefixes,
  like ``10.0.0.0/8`` when ``10.1.0.0/16`` exists);
- the *base vector*: all the others.  No base entry is a prefix of another, so they are the
  leaves of a binary trie.

Each entry of either vector points to its longest enclosing prefix in the prefix vector (``PRE``,
``-1`` for none), so all the prefixes that cover an address form a chain from a base entry.

The trie over the base vector is compressed twice:

- *path compression*: a run of bits shared by every string below a node is skipped (``skip``);
  the lookup does not compare those bits, the final check against the base entry does;
- *level compression*: ``k`` levels of the binary trie become one node with ``2**k`` children,
  chosen as the largest ``k`` for which at least ``fill * 2**k`` of the ``k``-bit patterns occur
  among the strings below (the *fill factor*, 0.5 by default).  The root branches on
  ``root_branch`` bits (16 by default, as in the article), capped at ``log2`` of the number of
  base entries so that tiny tables get a tiny root.

Children of a node occupy consecutive slots of one ``uint32`` array; a node word packs
``branch`` (5 bits) | ``skip`` (5 bits) | ``pointer`` (22 bits): the first child's index for an
internal node (``branch > 0``), the base-vector index for a leaf (``branch == 0``).  The article
packs 5 | 7 | 20 bits; 20 pointer bits cannot index a table of a million prefixes, and a skip never
exceeds 31 bits in a 32-bit address, so the spare skip bits went to the pointer.

A pattern that no base string has (possible with a fill factor below 1) becomes a leaf pointing to
the neighbouring base entry, ``p-1`` or ``p``, whose enclosing-prefix chain covers that pattern
with the longest prefix: then the chain walk still finds the right route.  A base string shorter
than the branch window covers several patterns and fills them all.

Lookup: descend ``pos += skip``, ``child = pointer + bits(addr, pos, branch)`` until a leaf; if
the address matches the leaf's base entry that is the answer, else walk the ``PRE`` chain
(longest first) and return the first prefix that matches.

Updates: there are none.  ``insert``/``delete`` record the change and mark the trie dirty; the
next lookup (or an explicit :meth:`LcTrieFib.rebuild`) rebuilds everything from the current
route set, which is exactly the property the paper criticises.  Lookups must not run during a
rebuild (``concurrent_updates = False``).
"""

from __future__ import annotations

import math
from typing import ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route.rib import NO_ROUTE, Rib

__all__ = ["LcTrieFib"]

# Scalars inside the kernels are int64: Python ints from the API, np.int64 where a kernel widens
# an array element explicitly (uint32 arithmetic would otherwise wrap or turn into float64).
_Int: TypeAlias = int | np.int64

# Columns of the base and prefix vectors (int32 rows: network, length, enclosing prefix, route id).
NET, LEN, PRE, RID = range(4)

BRANCH_BITS, SKIP_BITS, POINTER_BITS = 5, 5, 22
_SKIP_SHIFT = POINTER_BITS
_BRANCH_SHIFT = POINTER_BITS + SKIP_BITS
_POINTER_MASK = (1 << POINTER_BITS) - 1
_FIELD_MASK = 0x1F


@njit(nogil=True, cache=True)
def _clz32(x: _Int) -> _Int:
    n = 0
    if x == 0:
        return 32
    while x & 0x80000000 == 0:
        x <<= 1
        n += 1
    return n


@njit(nogil=True, cache=True)
def _bits(x: _Int, pos: _Int, count: _Int) -> _Int:
    """``count`` bits of the 32-bit ``x`` starting at bit ``pos`` (0 = most significant)."""
    if count == 0:
        return 0
    return (x >> (32 - pos - count)) & ((1 << count) - 1)


@njit(nogil=True, cache=True)
def _u32(v: np.int32) -> _Int:
    return np.int64(v) & 0xFFFFFFFF


@njit(nogil=True, cache=True)
def _covers(net: _Int, plen: _Int, addr: _Int) -> bool:
    return plen == 0 or ((net ^ addr) >> (32 - plen)) == 0


@njit(nogil=True, cache=True)
def _lookup(
    tree: npt.NDArray[np.uint32],
    base: npt.NDArray[np.int32],
    pre: npt.NDArray[np.int32],
    addr: _Int,
) -> _Int:
    if tree.shape[0] == 0:
        return NO_ROUTE
    node = np.int64(tree[0])
    pos = (node >> _SKIP_SHIFT) & _FIELD_MASK
    branch = node >> _BRANCH_SHIFT
    while branch != 0:
        node = np.int64(tree[(node & _POINTER_MASK) + _bits(addr, pos, branch)])
        pos += branch + ((node >> _SKIP_SHIFT) & _FIELD_MASK)
        branch = node >> _BRANCH_SHIFT
    b = node & _POINTER_MASK
    if _covers(_u32(base[b, NET]), base[b, LEN], addr):
        return base[b, RID]
    p = base[b, PRE]
    while p >= 0:
        if _covers(_u32(pre[p, NET]), pre[p, LEN], addr):
            return pre[p, RID]
        p = pre[p, PRE]
    return NO_ROUTE


@njit(nogil=True, cache=True)
def _lookup_batch(
    tree: npt.NDArray[np.uint32],
    base: npt.NDArray[np.int32],
    pre: npt.NDArray[np.int32],
    addrs: npt.NDArray[np.uint32],
    out: npt.NDArray[np.int32],
) -> None:
    for i in range(addrs.shape[0]):
        out[i] = _lookup(tree, base, pre, np.int64(addrs[i]))


@njit(nogil=True, cache=True)
def _split_vectors(
    nets: npt.NDArray[np.uint32], plens: npt.NDArray[np.uint8], rids: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Base and prefix vectors from routes sorted by (network, length)."""
    n = nets.shape[0]
    enclosing = np.full(n, -1, np.int64)
    internal = np.zeros(n, np.bool_)
    stack = np.empty(33, np.int64)  # open prefixes, each enclosing the next: at most 33 deep
    depth = 0
    for i in range(n):
        net = np.int64(nets[i])
        while depth > 0:
            top = stack[depth - 1]
            if _covers(np.int64(nets[top]), np.int64(plens[top]), net):
                break
            depth -= 1
        if depth > 0:
            enclosing[i] = stack[depth - 1]
            internal[stack[depth - 1]] = True
        stack[depth] = i
        depth += 1
    index = np.empty(n, np.int64)  # position in its own vector
    n_pre = 0
    n_base = 0
    for i in range(n):
        if internal[i]:
            index[i] = n_pre
            n_pre += 1
        else:
            index[i] = n_base
            n_base += 1
    base = np.empty((n_base, 4), np.int32)
    pre = np.empty((n_pre, 4), np.int32)
    for i in range(n):
        row = base if not internal[i] else pre
        j = index[i]
        net = np.int64(nets[i])
        row[j, NET] = np.int32(net - (1 << 32) if net >= (1 << 31) else net)
        row[j, LEN] = plens[i]
        row[j, PRE] = -1 if enclosing[i] < 0 else index[enclosing[i]]
        row[j, RID] = rids[i]
    return base, pre


@njit(nogil=True, cache=True)
def _branch(
    base: npt.NDArray[np.int32], first: _Int, count: _Int, pos: _Int, fill: float, at_least: _Int
) -> _Int:
    """Level compression: the most bits at ``pos`` whose patterns are at least ``fill`` used."""
    if count == 2:
        return max(1, at_least)
    best = 1
    k = 2
    while pos + k <= 32 and count >= fill * (1 << k):
        used = 0
        last: _Int = -1
        for i in range(first, first + count):
            pat = _bits(_u32(base[i, NET]), pos, k)
            if pat != last:
                used += 1
                last = pat
        if used < fill * (1 << k):
            break
        best = k
        k += 1
    return max(best, min(at_least, 32 - pos))


@njit(nogil=True, cache=True)
def _cover_len(
    base: npt.NDArray[np.int32],
    pre: npt.NDArray[np.int32],
    b: _Int,
    pos: _Int,
    branch: _Int,
    pattern: _Int,
) -> _Int:
    """The longest prefix among base entry ``b`` and its enclosing chain that ends inside the
    branch window at ``pos`` and covers ``pattern``; 0 if none does."""
    length = base[b, LEN]
    if pos < length < pos + branch:
        used = length - pos
        if _bits(_u32(base[b, NET]), pos, used) == pattern >> (branch - used):
            return length
    p = base[b, PRE]
    while p >= 0:
        length = pre[p, LEN]
        if length <= pos:
            return 0  # shorter prefixes enclose every string of the subtree alike
        if length < pos + branch:
            used = length - pos
            if _bits(_u32(pre[p, NET]), pos, used) == pattern >> (branch - used):
                return length
        p = pre[p, PRE]
    return 0


@njit(nogil=True, cache=True)
def _grown(a: npt.NDArray[np.generic], cap: _Int, used: _Int) -> npt.NDArray[np.generic]:
    g = np.zeros(cap, a.dtype)
    g[:used] = a[:used]
    return g


@njit(nogil=True, cache=True)
def _build_trie(
    base: npt.NDArray[np.int32],
    pre: npt.NDArray[np.int32],
    fill: float,
    root_branch: _Int,
) -> npt.NDArray[np.uint32]:
    """Level- and path-compressed trie over the base vector, laid out breadth first.

    Every slot is created with the description of the work it stands for (a range of the base
    vector and the bit position reached), then slots are filled in index order; a node's
    children are appended at the end, so the loop ends when it catches up with the allocation.
    """
    n = base.shape[0]
    if n == 0:
        return np.zeros(0, np.uint32)
    cap = max(16, 3 * n)
    tree = np.zeros(cap, np.uint32)
    w_first = np.zeros(cap, np.int64)
    w_count = np.zeros(cap, np.int64)
    w_pos = np.zeros(cap, np.int64)
    w_count[0] = n
    used: _Int = 1
    i = 0
    while i < used:
        first = w_first[i]
        count = w_count[i]
        pos = w_pos[i]
        if count == 1:
            tree[i] = first
            i += 1
            continue
        low = _u32(base[first, NET])
        high = _u32(base[first + count - 1, NET])
        start = _clz32(low ^ high)  # strings below share the bits up to here: skip them
        at_least: _Int = 0
        if i == 0:
            at_least = min(root_branch, int(math.log2(n)))
        branch = _branch(base, first, count, start, fill, at_least)
        width = 1 << branch
        if used + width > cap:
            cap = max(2 * cap, used + width)
            tree = _grown(tree, cap, used)
            w_first = _grown(w_first, cap, used)
            w_count = _grown(w_count, cap, used)
            w_pos = _grown(w_pos, cap, used)
        child = used
        used += width
        tree[i] = (branch << _BRANCH_SHIFT) | ((start - pos) << _SKIP_SHIFT) | child
        p = first
        end = first + count
        for pattern in range(width):
            k = 0
            while p + k < end and _bits(_u32(base[p + k, NET]), start, branch) == pattern:
                k += 1
            slot = child + pattern
            w_pos[slot] = start + branch
            if k > 0:
                w_first[slot] = p
                w_count[slot] = k
                p += k
                continue
            # An empty pattern: a leaf for whichever neighbour's chain covers it best.
            before = _cover_len(base, pre, p - 1, start, branch, pattern) if p > first else -1
            after = _cover_len(base, pre, p, start, branch, pattern) if p < end else -1
            w_first[slot] = p - 1 if before > after else p
            w_count[slot] = 1
        i += 1
    return tree[:used].copy()


class LcTrieFib:
    """Nilsson-Karlsson LC-trie, rebuilt from scratch on every change (see the module docstring).

    Parameters
    ----------
    fill
        Fill factor for level compression, in ``(0, 1]``: a node branches on ``k`` bits when at
        least ``fill * 2**k`` of its ``2**k`` patterns occur.
    root_branch
        Bits the root branches on (capped at ``log2`` of the base vector's size).
    """

    name: ClassVar[str] = "lctrie"
    concurrent_updates: ClassVar[bool] = False

    def __init__(self, fill: float = 0.5, root_branch: int = 16) -> None:
        if not 0 < fill <= 1:
            raise ValueError(f"fill factor {fill} is not in (0, 1]")
        if not 0 <= root_branch < 1 << BRANCH_BITS:
            raise ValueError(f"root branch {root_branch} is not in 0..31")
        self.fill = fill
        self.root_branch = root_branch
        # The route set, sorted by (net, plen): what the trie is rebuilt from.
        self._nets: npt.NDArray[np.uint32] = np.zeros(0, np.uint32)
        self._plens: npt.NDArray[np.uint8] = np.zeros(0, np.uint8)
        self._rids: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self._pending: dict[tuple[int, int], int | None] = {}
        self.tree: npt.NDArray[np.uint32] = np.zeros(0, np.uint32)
        self.base: npt.NDArray[np.int32] = np.zeros((0, 4), np.int32)
        self.pre: npt.NDArray[np.int32] = np.zeros((0, 4), np.int32)
        self.rebuilds = 0

    @classmethod
    def build(cls, rib: Rib, fill: float = 0.5, root_branch: int = 16) -> LcTrieFib:
        """Build the trie from every live route of ``rib``."""
        fib = cls(fill, root_branch)
        nets, plens, rids = rib.live_arrays()
        fib._set_routes(nets, plens, rids)
        return fib

    def __len__(self) -> int:
        self._refresh()
        return int(self._nets.shape[0])

    @property
    def dirty(self) -> bool:
        """True when changes are waiting for a rebuild."""
        return bool(self._pending)

    def lookup(self, addr: int) -> int:
        """Longest-prefix match of one address: a route id, or ``-1``."""
        if not 0 <= addr < 2**32:
            raise ValueError(f"address {addr:#x} is not a 32-bit unsigned integer")
        self._refresh()
        return int(_lookup(self.tree, self.base, self.pre, addr))

    def lookup_batch(
        self, addrs: npt.NDArray[np.uint32], out: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """Longest-prefix match of every address in ``addrs`` (uint32), into ``out``."""
        self._refresh()
        addrs = np.ascontiguousarray(addrs, dtype=np.uint32)
        if out is None:
            out = np.empty(addrs.shape[0], np.int32)
        elif out.shape[0] < addrs.shape[0] or out.dtype != np.int32:
            raise ValueError("out must be an int32 array at least as long as addrs")
        _lookup_batch(self.tree, self.base, self.pre, addrs, out)
        return out

    def insert(self, net: int, plen: int, rid: int) -> None:
        """Record ``net/plen`` -> ``rid``; the trie is rebuilt before the next lookup."""
        _check_prefix(net, plen)
        self._pending[(net, plen)] = rid

    def delete(self, net: int, plen: int) -> None:
        """Record the removal of ``net/plen``; raises ``KeyError`` if it is not in the table."""
        _check_prefix(net, plen)
        if (net, plen) in self._pending:
            if self._pending[(net, plen)] is None:
                raise KeyError(f"{net:#010x}/{plen} is not in the LC-trie")
        elif not self._has(net, plen):
            raise KeyError(f"{net:#010x}/{plen} is not in the LC-trie")
        self._pending[(net, plen)] = None

    def rebuild(self) -> None:
        """Apply the recorded changes and rebuild all three arrays from scratch."""
        nets, plens, rids = self._nets, self._plens, self._rids
        keys = (nets.astype(np.int64) << 6) | plens
        changed = np.array([(n << 6) | p for n, p in self._pending], np.int64)
        keep = ~np.isin(keys, changed)
        added = [(n, p, r) for (n, p), r in self._pending.items() if r is not None]
        self._pending.clear()
        self._set_routes(
            np.concatenate([nets[keep], np.array([a[0] for a in added], np.uint32)]),
            np.concatenate([plens[keep], np.array([a[1] for a in added], np.uint8)]),
            np.concatenate([rids[keep], np.array([a[2] for a in added], np.int32)]),
        )

    def memory_bytes(self) -> int:
        """Bytes of the lookup arrays (trie, base and prefix vectors) plus the route set kept
        for rebuilds."""
        arrays = (self.tree, self.base, self.pre, self._nets, self._plens, self._rids)
        return int(sum(a.nbytes for a in arrays))

    def lookup_bytes(self) -> int:
        """Bytes of the arrays a lookup reads (what the paper's 3 MB figure counts)."""
        return int(self.tree.nbytes + self.base.nbytes + self.pre.nbytes)

    def _refresh(self) -> None:
        if self._pending:
            self.rebuild()

    def _has(self, net: int, plen: int) -> bool:
        i = int(np.searchsorted(self._nets, np.uint32(net)))  # a uint32 key: no array copy
        while i < len(self._nets) and int(self._nets[i]) == net:
            if int(self._plens[i]) == plen:
                return True
            i += 1
        return False

    def _set_routes(
        self,
        nets: npt.NDArray[np.uint32],
        plens: npt.NDArray[np.uint8],
        rids: npt.NDArray[np.int32],
    ) -> None:
        order = np.lexsort((plens, nets))
        self._nets, self._plens, self._rids = nets[order], plens[order], rids[order]
        self.base, self.pre = _split_vectors(self._nets, self._plens, self._rids)
        if self.base.shape[0] > _POINTER_MASK + 1:
            raise ValueError(f"{self.base.shape[0]} base prefixes exceed the 22-bit pointer")
        tree = _build_trie(self.base, self.pre, self.fill, self.root_branch)
        if tree.shape[0] > _POINTER_MASK + 1:
            raise ValueError(f"{tree.shape[0]} trie nodes exceed the 22-bit pointer")
        self.tree = tree
        self.rebuilds += 1


def _check_prefix(net: int, plen: int) -> None:
    if not 0 <= plen <= 32 or not 0 <= net < 2**32 or net & ~(-1 << (32 - plen)) & 0xFFFFFFFF:
        raise ValueError(f"bad prefix {net:#x}/{plen}")
