"""A routing table: the RIB (authoritative) plus one FIB algorithm kept in step with it.

Writers serialize on one lock (the paper: "for writes to the tables a write lock is required to
serialize all changes"); lookups never take it -- they go straight to the FIB, whose algorithms
that allow it (``concurrent_updates``) answer lock-free while a writer works.

:func:`algorithms` lists every FIB algorithm by name; :data:`DEFAULT_ALGORITHM` is the one the
router uses: the fastest measured algorithm that keeps lock-free reads under live updates (the
measurement is ``netfast bench route``; see the README).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

import numpy as np
import numpy.typing as npt

from netfast.route.fib import Fib
from netfast.route.rib import NO_ROUTE, Rib, format_prefix

#: The router's default (see the module docstring).
DEFAULT_ALGORITHM = "dxr"


def algorithms() -> dict[str, type[Fib]]:
    """Every FIB algorithm, by its ``name``, in the order they are listed (imported on first
    call: each pulls in its compiled kernels)."""
    from netfast.route.dxr.engine import Dxr
    from netfast.route.lctrie import LcTrieFib
    from netfast.route.radix import RadixFib
    from netfast.route.stride.variants import StrideFib, StrideSortedFib

    classes: tuple[type[Fib], ...] = (Dxr, StrideFib, StrideSortedFib, LcTrieFib, RadixFib)
    return {cls.name: cls for cls in classes}


def algorithm(name: str) -> type[Fib]:
    """The FIB class called ``name``; ``ValueError`` listing the choices when unknown."""
    known = algorithms()
    try:
        return known[name]
    except KeyError:
        raise ValueError(f"unknown FIB algorithm {name!r}; choose from {sorted(known)}") from None


class RoutingTable:
    """RIB + FIB.  ``add``/``delete`` change both under the writer lock; lookups are lock-free
    where the FIB allows it."""

    def __init__(self, rib: Rib, fib: type[Fib] | str = DEFAULT_ALGORITHM) -> None:
        cls = algorithm(fib) if isinstance(fib, str) else fib
        self.rib = rib
        self.fib: Fib = cls.build(rib)
        self._writer = threading.Lock()

    @property
    def algorithm(self) -> str:
        return str(self.fib.name)

    def add(self, net: int, plen: int, value: Hashable) -> int:
        """Announce a route (or change its value: a single store, no FIB change)."""
        with self._writer:
            rid, created = self.rib.add(net, plen, value)
            if created:
                self.fib.insert(net, plen, rid)
            return rid

    def delete(self, net: int, plen: int) -> bool:
        """Withdraw a route; False when it was not there."""
        with self._writer:
            rid = self.rib.delete(net, plen)
            if rid is None:
                return False
            self.fib.delete(net, plen)
            return True

    def lookup(self, addr: int) -> int:
        return int(self.fib.lookup(addr))

    def lookup_batch(self, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.int32]:
        return self.fib.lookup_batch(np.ascontiguousarray(addrs, dtype=np.uint32))

    def describe(self, rid: int) -> tuple[str, Hashable] | None:
        """``(prefix text, value)`` of a route id, or None for no route."""
        if rid == NO_ROUTE:
            return None
        net, plen = self.rib.prefix_of(rid)
        return format_prefix(net, plen), self.rib.value_of(rid)
