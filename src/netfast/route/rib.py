"""The RIB: the authoritative table of routes, and an obviously-correct longest-prefix match.

A *route* is a prefix (network address as a 32-bit int, prefix length 0..32) with a *value*:
a next-hop address, an interface, an origin ASN -- anything hashable.  Values are interned as
small integers (``value_id``), as FreeBSD interns next hops; every route has a *route id*
(``rid``), a small integer that every FIB returns from a lookup.  ``-1`` means "no route".

Route ids are never reused while the RIB lives: a lookup racing with a delete may still return
the id of the route it saw, and that id must keep naming that route (prefix and value).  The
per-route arrays (``net``, ``plen``, ``value_id``) are numpy arrays, so batch results map to
prefixes and values without Python loops: ``rib.value_id[rids]``.  Changing a route's value is a
single aligned store into ``value_id`` -- the paper's atomic next-hop change.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

NO_ROUTE = -1

_MASKS = [0] + [(0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(1, 33)]


def prefix_mask(plen: int) -> int:
    """The netmask of a prefix length as a 32-bit int (0 for /0)."""
    return _MASKS[plen]


def parse_prefix(text: str) -> tuple[int, int]:
    """``"192.0.2.0/24"`` -> ``(0xC0000200, 24)``.  Raises ``ValueError`` naming the problem,
    including host bits set beyond the prefix length."""
    addr, sep, length = text.strip().partition("/")
    if not sep:
        raise ValueError(f"{text!r} is not a prefix (no '/len')")
    parts = addr.split(".")
    # ASCII digits only: str.isdigit() and int() also take "²" and Arabic-Indic digits.
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(f"{addr[:40]!r} is not a dotted-quad IPv4 address")
    if any(len(p) > 1 and p[0] == "0" for p in parts):
        raise ValueError(f"{addr!r} has an octet with a leading zero (octal or decimal?)")
    octets = [int(p) for p in parts]
    if max(octets) > 255:
        raise ValueError(f"{addr!r} has an octet above 255")
    if not (length.isascii() and length.isdigit() and len(length) <= 2 and int(length) <= 32):
        raise ValueError(f"prefix length {length[:20]!r} is not an integer 0..32")
    plen = int(length)
    net = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    if net & ~prefix_mask(plen) & 0xFFFFFFFF:
        raise ValueError(f"{text.strip()!r} has host bits set beyond /{plen}")
    return net, plen


def format_prefix(net: int, plen: int) -> str:
    return f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{plen}"


class Rib:
    """prefix -> route, with interned values and stable route ids."""

    def __init__(self, capacity: int = 1024) -> None:
        self._index: dict[tuple[int, int], int] = {}
        self._values: list[Hashable] = []
        self._value_ids: dict[Hashable, int] = {}
        self._n = 0
        self.net: npt.NDArray[np.uint32] = np.zeros(capacity, np.uint32)
        self.plen: npt.NDArray[np.uint8] = np.zeros(capacity, np.uint8)
        self.value_id: npt.NDArray[np.int32] = np.full(capacity, NO_ROUTE, np.int32)
        self.alive: npt.NDArray[np.bool_] = np.zeros(capacity, np.bool_)

    # -- values --
    def intern(self, value: Hashable) -> int:
        vid = self._value_ids.get(value)
        if vid is None:
            vid = self._value_ids[value] = len(self._values)
            self._values.append(value)
        return vid

    def value(self, value_id: int) -> Hashable:
        return self._values[value_id]

    @property
    def values(self) -> list[Hashable]:
        """Interned values, indexed by value id (read-only by convention)."""
        return self._values

    # -- routes --
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, prefix: tuple[int, int]) -> bool:
        return prefix in self._index

    @property
    def route_count(self) -> int:
        """Route ids handed out so far (alive or not): rids are ``0 .. route_count - 1``."""
        return self._n

    def get(self, net: int, plen: int) -> int | None:
        """The rid of an exact prefix, or None."""
        return self._index.get((net, plen))

    def add(self, net: int, plen: int, value: Hashable) -> tuple[int, bool]:
        """Add or replace a route.  Returns ``(rid, created)``: a replace keeps the rid and only
        stores the new value id."""
        if not 0 <= plen <= 32 or net & ~prefix_mask(plen) & 0xFFFFFFFF or not 0 <= net < 2**32:
            raise ValueError(f"bad prefix {net:#x}/{plen}")
        vid = self.intern(value)
        rid = self._index.get((net, plen))
        if rid is not None:
            self.value_id[rid] = vid
            return rid, False
        rid = self._n
        if rid == len(self.net):
            self._grow()
        self.net[rid] = net
        self.plen[rid] = plen
        self.value_id[rid] = vid
        self.alive[rid] = True
        self._index[(net, plen)] = rid
        self._n += 1
        return rid, True

    def add_many(
        self,
        nets: npt.NDArray[np.uint32],
        plens: npt.NDArray[np.uint8],
        values: Sequence[Hashable] | npt.NDArray[np.generic],
        codes: npt.NDArray[np.integer] | None = None,
    ) -> npt.NDArray[np.int32]:
        """Add many routes at once; the result equals calling :meth:`add` for each row in order.

        ``values`` holds one
        value per route, or, when ``codes`` is given, the distinct values that ``codes`` index (the
        cheap form for a loader that already interned them).  Returns the rid of every row (rows
        with the same prefix share the rid; the last row's value wins).
        """
        nets = np.asarray(nets, np.uint32)
        plens = np.asarray(plens, np.uint8)
        n = len(nets)
        if len(plens) != n:
            raise ValueError(f"{n} networks but {len(plens)} prefix lengths")
        if codes is None:
            if len(values) != n:
                raise ValueError(f"{n} routes but {len(values)} values")
            distinct: dict[Hashable, int] = {}
            codes = np.fromiter(
                (distinct.setdefault(v, len(distinct)) for v in values), np.int64, n
            )
            values = list(distinct)
        codes = np.asarray(codes, np.int64)
        if len(codes) != n:
            raise ValueError(f"{n} routes but {len(codes)} value codes")
        if n == 0:
            return np.empty(0, np.int32)
        if (codes < 0).any() or (codes >= len(values)).any():
            raise ValueError("value code out of range")
        if (plens > 32).any():
            raise ValueError(f"prefix length {int(plens.max())} above 32")
        host = nets & ~_mask_array(plens)
        if host.any():
            bad = int(np.flatnonzero(host)[0])
            raise ValueError(f"bad prefix {int(nets[bad]):#x}/{int(plens[bad])}")
        vid_of = np.fromiter((self.intern(v) for v in values), np.int32, len(values))
        vids = vid_of[codes]

        keys = (nets.astype(np.uint64) << np.uint64(8)) | plens
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        last = np.full(len(uniq), -1, np.int64)
        last[inverse] = np.arange(n)  # later rows overwrite earlier ones: the last one stays
        order = np.argsort(first, kind="stable")  # new routes get rids in order of first sight
        u_first = first[order]
        u_last = last[order]
        u_nets = nets[u_first]
        u_plens = plens[u_first]
        u_vids = vids[u_last]

        rid_of_uniq = np.empty(len(uniq), np.int32)
        prefixes = list(zip(u_nets.tolist(), u_plens.tolist(), strict=True))
        index = self._index
        existing = (
            np.fromiter((index.get(p, NO_ROUTE) for p in prefixes), np.int64, len(prefixes))
            if index
            else np.full(len(prefixes), NO_ROUTE, np.int64)
        )
        new = existing == NO_ROUTE
        n_new = int(np.count_nonzero(new))
        start = self._n
        while start + n_new > len(self.net):
            self._grow()
        new_rids = np.arange(start, start + n_new, dtype=np.int32)
        rids_sorted = existing.astype(np.int32)
        rids_sorted[new] = new_rids
        self.net[new_rids] = u_nets[new]
        self.plen[new_rids] = u_plens[new]
        self.alive[new_rids] = True
        self.value_id[rids_sorted] = u_vids
        new_idx = np.flatnonzero(new).tolist()
        index.update(zip([prefixes[i] for i in new_idx], new_rids.tolist(), strict=True))
        self._n = start + n_new
        rid_of_uniq[order] = rids_sorted
        return rid_of_uniq[inverse.reshape(-1)]

    def delete(self, net: int, plen: int) -> int | None:
        """Remove a route; returns its rid (which stays valid as a name) or None if absent."""
        rid = self._index.pop((net, plen), None)
        if rid is not None:
            self.alive[rid] = False
        return rid

    def items(self) -> Iterator[tuple[int, int, int]]:
        """``(net, plen, rid)`` of every live route, in insertion order."""
        for (net, plen), rid in self._index.items():
            yield net, plen, rid

    def live_arrays(
        self,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
        """``(net, plen, rid)`` arrays of the live routes (for bulk FIB builds)."""
        rids = np.flatnonzero(self.alive[: self._n]).astype(np.int32)
        return self.net[rids], self.plen[rids], rids

    def prefix_of(self, rid: int) -> tuple[int, int]:
        return int(self.net[rid]), int(self.plen[rid])

    def value_of(self, rid: int) -> Hashable:
        return self._values[int(self.value_id[rid])]

    def _grow(self) -> None:
        n = max(1024, 2 * len(self.net))
        for name, fill in (("net", 0), ("plen", 0), ("value_id", NO_ROUTE), ("alive", False)):
            old = getattr(self, name)
            new = np.full(n, fill, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    # -- the obviously-correct reference --
    def reference_lookup(self, addr: int) -> int:
        """Longest-prefix match by trying every length from /32 down: slow, obviously right."""
        index = self._index
        for plen in range(32, -1, -1):
            rid = index.get((addr & _MASKS[plen], plen))
            if rid is not None:
                return rid
        return NO_ROUTE


def _mask_array(plens: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    p = plens.astype(np.uint64)
    return ((np.uint64(0xFFFFFFFF) << (np.uint64(32) - p)) & np.uint64(0xFFFFFFFF)).astype(
        np.uint32
    )
