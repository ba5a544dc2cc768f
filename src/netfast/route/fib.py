"""The interface every FIB lookup algorithm implements (as FreeBSD's fib_algo).

A FIB is built from a :class:`~netfast.route.rib.Rib` and answers longest-prefix-match lookups
with route ids (``-1``: no route).  ``insert`` adds a prefix that is not in the FIB; ``delete``
removes one that is, and raises ``KeyError`` when it is not.  Changes reach it through
``insert``/``delete`` after the RIB was changed; a next-hop (value) change needs no FIB change
at all, since the FIB stores route ids and the RIB maps them to values.

Concurrency contract: ``lookup``/``lookup_batch`` may be called from any number of threads
while one thread at a time calls ``insert``/``delete`` (algorithms that cannot do this say so
with ``concurrent_updates = False``, and the caller must then serialize everything).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from netfast.route.rib import Rib


@runtime_checkable
class Fib(Protocol):
    name: ClassVar[str]
    concurrent_updates: ClassVar[bool]

    @classmethod
    def build(cls, rib: Rib) -> Fib: ...

    def lookup(self, addr: int) -> int: ...

    def lookup_batch(
        self, addrs: npt.NDArray[np.uint32], out: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]: ...

    def insert(self, net: int, plen: int, rid: int) -> None: ...

    def delete(self, net: int, plen: int) -> None: ...

    def memory_bytes(self) -> int: ...
