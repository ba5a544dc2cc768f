"""The link interface every packet I/O device implements."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

Frame = bytes


@runtime_checkable
class Link(Protocol):
    """A device that moves whole Ethernet frames (no FCS).

    ``recv_batch`` never blocks: it returns the frames available now (at most ``max_frames``),
    possibly none.  ``send`` queues or transmits frames and returns how many were accepted; a
    frame that cannot be sent (too big, link down) is dropped and counted by the link, never
    raised.  Links that wrap an OS file descriptor also offer ``fileno()`` for ``select``.
    """

    @property
    def name(self) -> str: ...

    @property
    def mtu(self) -> int:
        """Largest IP packet (Ethernet payload) the link carries, in bytes."""
        ...

    def recv_batch(self, max_frames: int = 64) -> list[Frame]: ...

    def send(self, frames: Iterable[Frame]) -> int: ...

    def close(self) -> None: ...
