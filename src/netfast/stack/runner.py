"""Drive a router over links: a capture in, per-egress captures out; or live interfaces.

The router itself is sans-IO (:class:`netfast.ip.router.Router`: frames and ``now`` in, frames
out); this module is where frames meet files and sockets.

:class:`Engine` is the part both modes share.  Frames received together on one port go to the
vector path (:class:`netfast.ip.vector.VectorForwarder`) as one batch when there is one; the
rows it punts -- and every frame when there is none -- go one at a time through
``router.input``.  Whatever either path emits (forwarded frames, ICMP errors, ARP requests and
replies) is grouped by egress port.  ``router.poll(now)`` runs after every batch, for ARP retries
and hold-queue expiry.

:func:`run_capture` reads a pcap/pcapng file as if received on one port and writes one capture
per port (``<name>.pcap`` in the output folder).  Time is the capture's: every batch is handed
to the router with its first frame's timestamp, so a run is reproducible, and output records
carry the timestamp of the input they came from.  The output files appear only when the run
completes (each is written beside its target and renamed into place); a failed or stopped run
leaves the folder as it was.  Port names become file names only through
:class:`netfast.outfiles.PortOutputs`, which keeps every file inside the folder and refuses two
ports that would share one.

:func:`run_live` selects over the links' file descriptors (AF_PACKET sockets, TAPs; links without
one are polled), forwards what arrives and sends what comes out, until ``stop`` is set, the
duration has passed or enough frames were received.  The loop wakes at least every
``poll_interval`` seconds, so it stops promptly and ARP timers run on an idle network.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from netfast.link.base import Frame, Link, WaitableLink
from netfast.link.pcap import PcapWriterLink, open_capture
from netfast.outfiles import PortOutputs
from netfast.wire.batch import DEFAULT_SLOT, FrameBatch

if TYPE_CHECKING:
    from netfast.ip.api import ForwardingPlane
    from netfast.ip.vector import VectorForwarder

__all__ = [
    "CaptureStopped",
    "CaptureSummary",
    "Engine",
    "ForwardStats",
    "LiveSummary",
    "run_capture",
    "run_live",
]

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
        Time spent in each path (the vector time includes building the batch).
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
            fits = [i for i, f in enumerate(frames) if len(f) <= self.slot]
            giants = [i for i, f in enumerate(frames) if len(f) > self.slot]
            rows = frames if not giants else [frames[i] for i in fits]
            batch = FrameBatch.from_frames(rows, self.slot)
            res = self.vector.forward(batch, ifindex, now)
            for egress, fb in res.out.items():
                out.setdefault(int(egress), []).extend(fb.frames())
                stats.out[int(egress)] += len(fb)
            stats.vector_counters.update(res.drops)
            punt = [int(i) for i in res.punt]
            stats.vector_frames += len(rows) - len(punt)
            stats.vector_seconds += time.perf_counter() - t0
            scalar_rows = sorted([fits[i] for i in punt] + giants) if giants else punt
        if len(scalar_rows):
            t0 = time.perf_counter()
            router_input = self.router.input
            for i in scalar_rows:
                for egress, frame in router_input(ifindex, frames[i], now):
                    out.setdefault(egress, []).append(frame)
                    self._classify(egress, frame)
            stats.scalar_frames += len(scalar_rows)
            stats.scalar_seconds += time.perf_counter() - t0
        return out

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


# -- captures ------------------------------------------------------------------------------------


@dataclass
class CaptureSummary:
    """The result of :func:`run_capture`: engine statistics, counters and the files written."""

    stats: ForwardStats
    counters: Counter[str]
    outputs: dict[str, Path]
    per_egress: dict[str, int]
    seconds: float


class CaptureStopped(Exception):
    """:func:`run_capture` was asked to stop (``stop`` set) before the capture ended; no
    output was written and the output folder is as it was."""


def run_capture(
    router: ForwardingPlane,
    in_pcap: str | os.PathLike[str],
    ingress: int,
    out_dir: str | os.PathLike[str],
    *,
    vector: VectorForwarder | None = None,
    names: Mapping[int, str] | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    on_time: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> CaptureSummary:
    """Forward every frame of a capture as received on port ``ingress``; one capture per port.

    Parameters
    ----------
    router, vector, on_time
        As for :class:`Engine`.
    in_pcap
        pcap or pcapng, gzip or not; non-Ethernet records are skipped (counted as
        ``capture.in.not_ethernet``).
    out_dir
        Created if missing (and removed again if the run fails); gets ``<name>.pcap`` for every
        port in ``names`` (and ``if<n>.pcap`` for any other port the router sends to).  Names
        are checked by :class:`netfast.outfiles.PortOutputs`: each must be a plain file name,
        no two may name one file, and every file must be directly inside ``out_dir``.
    names
        Port names by ifindex; default ``router.interfaces`` names when the router has them.
    overwrite
        Replace existing output captures (atomically); otherwise an existing one is an error
        raised before anything is read or written.
    stop
        Checked after every batch: when set, the run is abandoned (temporary files deleted)
        and :class:`CaptureStopped` raised.  Set from a signal handler, it makes a signal end
        the run cleanly (:func:`netfast.outfiles.stop_on_signals`).

    Raises
    ------
    netfast.outfiles.OutputExistsError
        An output exists and ``overwrite`` is false (a ``FileExistsError``).
    netfast.outfiles.OutputPathError
        A port name cannot be a file name, two ports would write one file, an output is not a
        regular file or lies outside ``out_dir``, or ``out_dir`` cannot be a folder.  Raised
        before anything is written.
    CaptureStopped
        ``stop`` was set.
    netfast.wire.pcap.PcapError
        The input is not a capture or is damaged; no output is written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}: must be at least 1")
    if names is None:
        names = {i: iface.name for i, iface in router.interfaces.items()}
    outputs = PortOutputs(out_dir, names, overwrite=overwrite)

    clock_ns = 0
    writers: dict[int, PcapWriterLink] = {}

    def writer(ifindex: int) -> PcapWriterLink:
        w = writers.get(ifindex)
        if w is None:
            path = outputs.path_for(ifindex)
            w = writers[ifindex] = PcapWriterLink(
                path, clock=lambda: clock_ns, overwrite=overwrite, name=outputs.name_of(ifindex)
            )
            outputs.track(w)
        return w

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    engine = Engine(router, vector, on_time=on_time)
    started = time.perf_counter()
    skipped = Counter[str]()
    # The input is opened first: a missing or foreign file leaves no folder behind.
    with open_capture(in_pcap) as capture:
        outputs.create_dir()
        try:
            for ifindex in list(outputs.paths):
                writer(ifindex)
            frames: list[Frame] = []
            first_ns = 0
            for record in capture:
                if record.linktype != 1:
                    skipped["capture.in.not_ethernet"] += 1
                    continue
                if not frames:
                    first_ns = record.timestamp_ns
                frames.append(record.data)
                if len(frames) >= batch_size:
                    clock_ns = first_ns
                    _emit(engine, ingress, frames, first_ns, writer)
                    frames = []
                    if stopped():
                        raise CaptureStopped(f"{in_pcap}: stopped before the end")
            if frames:
                clock_ns = first_ns
                _emit(engine, ingress, frames, first_ns, writer)
            if stopped():
                raise CaptureStopped(f"{in_pcap}: stopped before the end")
        except BaseException:
            outputs.abort()
            raise
    outputs.commit()
    counters = engine.counters
    counters.update(skipped)
    return CaptureSummary(
        stats=engine.stats,
        counters=counters,
        outputs={outputs.name_of(i): w.path for i, w in writers.items()},
        per_egress={outputs.name_of(i): engine.stats.out[i] for i in sorted(writers)},
        seconds=time.perf_counter() - started,
    )


def _emit(
    engine: Engine,
    ingress: int,
    frames: list[Frame],
    now_ns: int,
    writer: Callable[[int], PcapWriterLink],
) -> None:
    now = now_ns / 1e9
    for out in (engine.process(ingress, frames, now), engine.poll(now)):
        for egress, batch in out.items():
            writer(egress).send(batch)


# -- live ----------------------------------------------------------------------------------------


@dataclass
class LiveSummary:
    """The result of :func:`run_live`."""

    stats: ForwardStats
    counters: Counter[str]
    link_counters: dict[int, Counter[str]]
    seconds: float
    stopped_by: str  # "stop", "duration" or "max_packets"


def run_live(
    router: ForwardingPlane,
    links: Mapping[int, Link],
    stop: threading.Event,
    *,
    vector: VectorForwarder | None = None,
    duration: float | None = None,
    max_packets: int | None = None,
    batch_size: int = 64,
    poll_interval: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    on_time: Callable[[float], None] | None = None,
    engine: Engine | None = None,
) -> LiveSummary:
    """Forward between live links until ``stop`` is set, ``duration`` seconds have passed or
    ``max_packets`` frames were received.

    Parameters
    ----------
    router, vector, on_time
        As for :class:`Engine`.
    links
        The link of each port, by ifindex.  Frames the router sends to a port without a link
        are counted (``runner.out.no_link``).
    stop
        Set it from another thread or a signal handler to end the run (noticed within
        ``poll_interval``).
    clock
        Monotonic seconds, handed to the router as ``now``.
    engine
        The :class:`Engine` to run (built from ``router``, ``vector`` and ``on_time`` when
        None); pass one to watch its counters while the loop runs in another thread.

    The links are not closed: the caller opened them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}: must be at least 1")
    if engine is None:
        engine = Engine(router, vector, on_time=on_time)
    fd_of: dict[int, int] = {}
    polled: list[int] = []
    for ifindex, link in links.items():
        if isinstance(link, WaitableLink):
            fd_of[link.fileno()] = ifindex
        else:
            polled.append(ifindex)
    no_link = Counter[str]()

    def send(out: dict[int, list[Frame]]) -> None:
        for egress, frames in out.items():
            link = links.get(egress)
            if link is None:
                no_link["runner.out.no_link"] += len(frames)
            else:
                link.send(frames)

    start = clock()
    deadline = None if duration is None else start + duration
    stopped_by = "stop"
    while not stop.is_set():
        now = clock()
        if deadline is not None and now >= deadline:
            stopped_by = "duration"
            break
        if max_packets is not None and engine.stats.frames_in >= max_packets:
            stopped_by = "max_packets"
            break
        wait = 0.0 if polled else poll_interval
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - now))
        ready = [fd_of[fd] for fd in select.select(list(fd_of), [], [], wait)[0]] if fd_of else []
        if not fd_of and not polled:
            time.sleep(wait)
        got_any = False
        for ifindex in ready + polled:
            frames = links[ifindex].recv_batch(batch_size)
            if frames:
                got_any = True
                now = clock()
                send(engine.process(ifindex, frames, now))
        send(engine.poll(clock()))
        if polled and not got_any and not ready:
            time.sleep(min(poll_interval, 0.005))
    counters = engine.counters
    counters.update(no_link)
    return LiveSummary(
        stats=engine.stats,
        counters=counters,
        link_counters={i: Counter(link.counters) for i, link in links.items()},
        seconds=clock() - start,
        stopped_by=stopped_by,
    )
