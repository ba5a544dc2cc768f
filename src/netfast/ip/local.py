"""Local or not: a hash of the router's own addresses (the paper's "Local or non-Local").

FreeBSD 4 replaced the walk over every interface address with a hash table of local addresses;
here it is a Python set for the scalar path (one hash probe) and a sorted numpy array for the
vector path (``np.isin`` / ``searchsorted`` over a whole batch).  Broadcast addresses -- the
limited broadcast 255.255.255.255 and each interface's directed broadcast -- are kept apart,
because a router receives them but never forwards them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from netfast.ip.facts import LIMITED_BROADCAST
from netfast.ip.iface import Interface


class LocalAddrs:
    def __init__(self, interfaces: Iterable[Interface]) -> None:
        unicast: set[int] = set()
        broadcast: set[int] = {LIMITED_BROADCAST}
        for iface in interfaces:
            for a in iface.addrs:
                unicast.add(a.addr)
                if a.plen < 31:
                    broadcast.add(a.broadcast)
        self.unicast = frozenset(unicast)
        self.broadcast = frozenset(broadcast - unicast)
        self.unicast_array: npt.NDArray[np.uint32] = np.array(sorted(self.unicast), np.uint32)
        self.broadcast_array: npt.NDArray[np.uint32] = np.array(sorted(self.broadcast), np.uint32)

    def is_local(self, addr: int) -> bool:
        return addr in self.unicast

    def is_broadcast(self, addr: int) -> bool:
        return addr in self.broadcast

    def local_mask(self, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        """Vector form of :meth:`is_local` or :meth:`is_broadcast` (either is not forwarded)."""
        return np.isin(addrs, self.unicast_array) | np.isin(addrs, self.broadcast_array)
