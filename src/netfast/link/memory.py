"""An in-memory wire: two links joined back to back, for tests and simulations.

:meth:`MemoryLink.pair` returns two endpoints; a frame sent on one is received on the other, in
order, unchanged.  Each direction is a bounded FIFO: a frame sent while the peer's receive queue
is full is dropped and counted (``drop.queue_full``), as a real NIC ring would.  A frame longer
than the MTU allows (IEEE 802.3 header of 14 bytes, plus 4 for one 802.1Q tag) is dropped and
counted (``drop.oversize``), as is a frame too short to hold an Ethernet header (``drop.runt``).

The size rule and the send-side checks are the ones every link shares
(:mod:`netfast.link.base`).

Appending to and popping from a :class:`collections.deque` are atomic in CPython, so one thread
may send while another receives (the bridge runs in a thread).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable

from netfast.link.base import ETHER_HEADER_LEN, Frame, send_each


class MemoryLink:
    """One end of an in-memory point-to-point wire.  Build both ends with :meth:`pair`.

    Attributes
    ----------
    counters
        ``rx.frames``, ``rx.bytes``, ``tx.frames``, ``tx.bytes`` and one ``drop.<reason>``
        per reason (``queue_full``, ``oversize``, ``runt``, ``closed``).  A frame dropped because
        the peer's queue is full is counted at the sender, which is the side that saw it go.
    """

    __slots__ = ("_capacity", "_closed", "_inbox", "_mtu", "_name", "_peer", "counters")

    def __init__(self, name: str, mtu: int, capacity: int) -> None:
        if mtu < 68:
            raise ValueError(f"mtu = {mtu}: below the IPv4 minimum of 68")
        if capacity < 1:
            raise ValueError(f"capacity = {capacity}: must be at least 1")
        self._name = name
        self._mtu = mtu
        self._inbox: deque[Frame] = deque()
        self._peer: MemoryLink | None = None
        self._closed = False
        self._capacity = capacity
        self.counters: Counter[str] = Counter()

    @classmethod
    def pair(
        cls,
        mtu: int = 1500,
        capacity: int = 1024,
        names: tuple[str, str] = ("mem0", "mem1"),
    ) -> tuple[MemoryLink, MemoryLink]:
        """Two links joined back to back.

        Parameters
        ----------
        mtu
            Largest Ethernet payload, in bytes, on both ends.
        capacity
            Frames each receive queue holds before further frames are dropped.
        names
            The names of the two ends.
        """
        a = cls(names[0], mtu, capacity)
        b = cls(names[1], mtu, capacity)
        a._peer = b
        b._peer = a
        return a, b

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def pending(self) -> int:
        """Frames waiting in this end's receive queue."""
        return len(self._inbox)

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        """Up to ``max_frames`` frames the peer sent, oldest first; never blocks."""
        out: list[Frame] = []
        inbox = self._inbox
        while len(out) < max_frames:
            try:
                frame = inbox.popleft()
            except IndexError:
                break
            out.append(frame)
        if out:
            self.counters["rx.frames"] += len(out)
            self.counters["rx.bytes"] += sum(map(len, out))
        return out

    def send(self, frames: Iterable[Frame]) -> int:
        """Deliver frames to the peer's queue; returns how many were accepted."""
        peer = self._peer
        batch = frames if isinstance(frames, list) else list(frames)
        if (
            batch
            and peer is not None
            and not (self._closed or peer._closed)
            and len(peer._inbox) + len(batch) <= peer._capacity
            and all(type(f) is bytes for f in batch)
            and min(map(len, batch)) >= ETHER_HEADER_LEN
            and max(map(len, batch)) <= self._mtu + ETHER_HEADER_LEN
        ):
            # The whole batch fits and every frame is an immutable, untagged, legal size: one
            # move instead of the per-frame checks below (which count each drop reason).
            peer._inbox.extend(batch)
            self.counters["tx.frames"] += len(batch)
            self.counters["tx.bytes"] += sum(map(len, batch))
            return len(batch)
        frames = batch

        def closed() -> bool:
            return self._closed or peer is None or peer._closed

        def deliver(frame: Frame) -> str | None:
            assert peer is not None
            if len(peer._inbox) >= peer._capacity:
                return "queue_full"
            # bytes() so a caller reusing a bytearray cannot change a frame in flight.
            peer._inbox.append(bytes(frame))
            return None

        return send_each(frames, deliver, mtu=self._mtu, counters=self.counters, closed=closed)

    def close(self) -> None:
        """Stop this end: queued frames are discarded, later sends in either direction drop."""
        self._closed = True
        self._inbox.clear()

    def __repr__(self) -> str:
        return f"MemoryLink(name={self._name!r}, mtu={self._mtu}, pending={len(self._inbox)})"
