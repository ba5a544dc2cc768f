"""The forwarding engine: one port's batch of frames in, frames to send by egress out.

Frames received together on one port go to the vector path
(:class:`netfast.ip.vector.VectorForwarder`) as one batch when there is one; the rows it punts --
and every frame when there is none -- go one at a time through ``router.input`` of the
:class:`netfast.ip.api.ForwardingPlane`.  Whatever either path emits (forwarded frames, ICMP
errors, ARP requests and replies) is grouped by egress port.  A link that delivers batches
itself (a packet ring) hands them to :meth:`Engine.process_batch`, which returns the vector
path's output as batches too, so forwarded frames never become Python objects.
:meth:`Engine.poll` runs the router's timers (ARP retries, hold-queue expiry).

Promises: no I/O and no clock of its own (``now`` is the caller's; ``time.perf_counter`` only
measures the time each path took); every frame received is counted once in
:attr:`ForwardStats.frames_in` and finished by exactly one path (``vector_frames +
scalar_frames == frames_in``); every frame returned is counted in :attr:`ForwardStats.out`.
The drivers that feed it from files and sockets are in :mod:`netfast.router.run`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netfast.link.base import Frame
from netfast.wire.batch import DEFAULT_SLOT, FrameBatch

if TYPE_CHECKING:
    from netfast.ip.api import ForwardingPlane
    from netfast.ip.vector import VectorForwarder, VectorResult

__all__ = ["Engine", "ForwardStats"]

_ETHERTYPE_IPV4 = b"\x08\x00"
_ETHERTYPE_ARP = b"\x08\x06"
_ICMP_SENT = {
    0: "icmp.echo_reply",
    3: "icmp.unreachable",
    11: "icmp.time_exceeded",
    12: "icmp.param_prob",
}


@dataclass
class ForwardStats:
    """What an :class:`Engine` did.

    Attributes
    ----------
    frames_in
        Frames received.
    vector_frames, scalar_frames
        Frames finished by the vector path, and frames that went through ``router.input``
        (punted, or everything without a vector path).
    vector_seconds, scalar_seconds
        Time spent in each path (the vector time includes building the batch from frames in
        :meth:`Engine.process`; a batch handed to :meth:`Engine.process_batch` was built by
        its link).
    out
        Frames emitted per egress ifindex (forwarded, ICMP, ARP).
    emitted
        What the router originated, by kind: ``arp``, ``icmp.unreachable``,
        ``icmp.time_exceeded``, ``icmp.param_prob``, ``icmp.echo_reply``.
    vector_counters
        Counters the vector path reported (same names as the router's).
    """

    frames_in: int = 0
    vector_frames: int = 0
    scalar_frames: int = 0
    vector_seconds: float = 0.0
    scalar_seconds: float = 0.0
    out: Counter[int] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)
    vector_counters: Counter[str] = field(default_factory=Counter)

    @property
    def icmp_sent(self) -> int:
        return sum(n for k, n in self.emitted.items() if k.startswith("icmp."))

    @property
    def vector_mpps(self) -> float:
        return _mpps(self.vector_frames, self.vector_seconds)

    @property
    def scalar_mpps(self) -> float:
        return _mpps(self.scalar_frames, self.scalar_seconds)


def _mpps(frames: int, seconds: float) -> float:
    return frames / seconds / 1e6 if seconds > 0 else 0.0


class Engine:
    """The vector path with scalar fallback, over batches of frames from one port at a time.

    Parameters
    ----------
    router
        The scalar router (``input``, ``poll``, ``counters``).
    vector
        A :class:`netfast.ip.vector.VectorForwarder` sharing ``router``'s state, or None for
        the scalar path alone.
    local_addrs
        The router's addresses, to tell the ICMP it originates from ICMP it forwards; by
        default ``router.local.unicast`` when the router has it.
    slot
        Batch slot size; frames longer than a slot take the scalar path.
    on_time
        Called with ``now`` before each batch and poll (e.g. ``BuiltRouter.set_time``, which
        gives the firewall its clock).
    """

    def __init__(
        self,
        router: ForwardingPlane,
        vector: VectorForwarder | None = None,
        *,
        local_addrs: frozenset[int] | None = None,
        slot: int = DEFAULT_SLOT,
        on_time: Callable[[float], None] | None = None,
    ) -> None:
        self.router = router
        self.on_time = on_time
        self.vector = vector
        self.slot = slot
        self.stats = ForwardStats()
        if local_addrs is None:
            local_addrs = frozenset(router.local.unicast)
        self._local = {a.to_bytes(4, "big") for a in local_addrs}

    @property
    def counters(self) -> Counter[str]:
        """The router's counters plus the vector path's: the run's drop and verdict counts."""
        total: Counter[str] = Counter(self.router.counters)
        total.update(self.stats.vector_counters)
        return total

    def process(self, ifindex: int, frames: Sequence[Frame], now: float) -> dict[int, list[Frame]]:
        """Forward ``frames`` received on ``ifindex``; the frames to send, by egress."""
        out: dict[int, list[Frame]] = {}
        if self.on_time is not None:
            self.on_time(now)
        stats = self.stats
        stats.frames_in += len(frames)
        scalar_rows: Sequence[int] | range = range(len(frames))
        if self.vector is not None and frames:
            t0 = time.perf_counter()
            slot = self.slot
            if max(map(len, frames)) <= slot:
                fits: list[int] = []
                giants: list[int] = []
                rows = frames
            else:
                fits = [i for i, f in enumerate(frames) if len(f) <= slot]
                giants = [i for i, f in enumerate(frames) if len(f) > slot]
                rows = [frames[i] for i in fits]
            batch = FrameBatch.from_frames(rows, self.slot)
            res = self.vector.forward(batch, ifindex, now)
            for egress, fb in res.out.items():
                out.setdefault(int(egress), []).extend(fb.frames())
            punt = self._count_vector(res, len(rows), t0)
            scalar_rows = sorted([fits[i] for i in punt] + giants) if giants else punt
        if len(scalar_rows):
            self._scalar(ifindex, (frames[i] for i in scalar_rows), len(scalar_rows), now, out)
        return out

    def process_batch(
        self, ifindex: int, batch: FrameBatch, now: float
    ) -> tuple[dict[int, FrameBatch], dict[int, list[Frame]]]:
        """Forward a batch received on ``ifindex`` that is already in slots (a packet ring's
        gather): what the vector path forwarded, as batches by egress, and what the scalar path
        emitted for the punted rows (forwarded frames, ICMP, ARP), as frames by egress.

        The same decisions and counts as :meth:`process` on the batch's frames, and the same
        order: on each egress the batch goes before the frames.  Without a vector path every
        row takes the scalar path and the batches are empty.  ``batch`` is only read, and not
        kept once this returns (the caller may reuse its arrays)."""
        batches: dict[int, FrameBatch] = {}
        frames: dict[int, list[Frame]] = {}
        if self.on_time is not None:
            self.on_time(now)
        n = len(batch)
        self.stats.frames_in += n
        if n == 0:
            return batches, frames
        rows: Sequence[int] | range = range(n)
        if self.vector is not None:
            t0 = time.perf_counter()
            res = self.vector.forward(batch, ifindex, now)
            for egress, fb in res.out.items():
                batches[int(egress)] = fb
            rows = self._count_vector(res, n, t0)
        if len(rows):
            self._scalar(ifindex, (batch.frame(i) for i in rows), len(rows), now, frames)
        return batches, frames

    def _count_vector(self, res: VectorResult, n: int, t0: float) -> list[int]:
        """Count a vector result over ``n`` rows started at ``t0``; the punted rows."""
        stats = self.stats
        for egress, fb in res.out.items():
            stats.out[int(egress)] += len(fb)
        stats.vector_counters.update(res.drops)
        punt: list[int] = res.punt.tolist()
        stats.vector_frames += n - len(punt)
        stats.vector_seconds += time.perf_counter() - t0
        return punt

    def _scalar(
        self,
        ifindex: int,
        frames: Iterable[Frame],
        count: int,
        now: float,
        out: dict[int, list[Frame]],
    ) -> None:
        """``router.input`` on each of ``count`` frames, what it emits appended to ``out``."""
        stats = self.stats
        t0 = time.perf_counter()
        router_input = self.router.input
        for frame in frames:
            for egress, emitted in router_input(ifindex, frame, now):
                out.setdefault(egress, []).append(emitted)
                self._classify(egress, emitted)
        stats.scalar_frames += count
        stats.scalar_seconds += time.perf_counter() - t0

    def poll(self, now: float) -> dict[int, list[Frame]]:
        """The router's timers: ARP retries and hold-queue expiry."""
        out: dict[int, list[Frame]] = {}
        if self.on_time is not None:
            self.on_time(now)
        for egress, frame in self.router.poll(now):
            out.setdefault(egress, []).append(frame)
            self._classify(egress, frame)
        return out

    def _classify(self, egress: int, frame: Frame) -> None:
        """Count a frame of the scalar path by egress, and what the router itself originated."""
        self.stats.out[egress] += 1
        ethertype = frame[12:14]
        if ethertype == _ETHERTYPE_ARP:
            self.stats.emitted["arp"] += 1
        elif ethertype == _ETHERTYPE_IPV4 and len(frame) >= 35 and frame[23] == 1:
            if frame[26:30] not in self._local:
                return  # ICMP forwarded, not originated
            ihl = (frame[14] & 0x0F) * 4
            if len(frame) > 14 + ihl:
                kind = _ICMP_SENT.get(frame[14 + ihl])
                if kind is not None:
                    self.stats.emitted[kind] += 1
