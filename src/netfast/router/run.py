"""Drive a router over links: a capture in, per-egress captures out; or live interfaces.

The router itself is sans-IO (:class:`netfast.ip.router.Router`: frames and ``now`` in, frames
out) and :class:`netfast.router.engine.Engine` runs its vector and scalar paths over batches;
this module is where frames meet files and sockets.

:func:`run_capture` reads a pcap/pcapng file as if received on one port and writes one capture
per port (``<name>.pcap`` in the output folder).  Time is the capture's: every batch is handed
to the router with its first frame's timestamp, so a run is reproducible, and output records
carry the timestamp of the input they came from.  The output files appear only when the run
completes (each is written beside its target and renamed into place); a failed or stopped run
leaves the folder as it was.  Port names become file names only through
:class:`netfast.outfiles.PortOutputs`, which keeps every file inside the folder and refuses two
ports that would share one.

:func:`run_live` selects over the links' file descriptors (AF_PACKET sockets and rings, TAPs;
links without one are polled), forwards what arrives and sends what comes out, until ``stop`` is
set, the duration has passed or enough frames were received.  The loop wakes at least every
``poll_interval`` seconds, so it stops promptly and ARP timers run on an idle network.  Links
that move batches themselves (:class:`netfast.link.base.BatchLink`: packet rings) feed the
vector path the batch their gather built and take its forwarded batches back whole, so no
forwarded frame becomes a Python object; the scalar path's frames (punted packets, ICMP, ARP)
are bytes on every link.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netfast.link.base import BatchLink, Frame, Link, WaitableLink
from netfast.link.pcap import PcapWriterLink, open_capture
from netfast.outfiles import PortOutputs
from netfast.router.engine import Engine, ForwardStats
from netfast.wire.batch import FrameBatch

if TYPE_CHECKING:
    from netfast.ip.api import ForwardingPlane
    from netfast.ip.vector import VectorForwarder

__all__ = [
    "CaptureStopped",
    "CaptureSummary",
    "LiveSummary",
    "run_capture",
    "run_live",
]


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
    batch_size: int = 256,
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

    The links are not closed: the caller opened them.  With a vector path, a
    :class:`~netfast.link.base.BatchLink` is read with ``recv_frame_batch`` into a batch kept
    for that link (reused every turn: :meth:`Engine.process_batch` does not keep it) and what
    the vector path forwards to one goes out with ``send_frame_batch``; a batch for a link
    without batches is sent as its frames.
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
    batch_links: dict[int, BatchLink] = {
        i: link for i, link in links.items() if isinstance(link, BatchLink)
    }
    # Rows of the width each ring gathers into; zero-filled once, then kept zero past every
    # frame's length by the gather itself.
    buffers: dict[int, FrameBatch] = {}
    if engine.vector is not None:
        for i, link in batch_links.items():
            buffers[i] = FrameBatch.empty(batch_size, link.slot)
    no_link = Counter[str]()

    def send(out: dict[int, list[Frame]]) -> None:
        for egress, frames in out.items():
            link = links.get(egress)
            if link is None:
                no_link["runner.out.no_link"] += len(frames)
            else:
                link.send(frames)

    def send_batches(out: dict[int, FrameBatch]) -> None:
        for egress, batch in out.items():
            ring = batch_links.get(egress)
            if ring is not None:
                ring.send_frame_batch(batch)
            elif egress in links:
                links[egress].send(list(batch.frames()))
            else:
                no_link["runner.out.no_link"] += len(batch)

    def receive(ifindex: int) -> bool:
        buffer = buffers.get(ifindex)
        if buffer is not None:
            batch = batch_links[ifindex].recv_frame_batch(batch_size, buffer)
            if not len(batch):
                return False
            forwarded, emitted = engine.process_batch(ifindex, batch, clock())
            send_batches(forwarded)
            send(emitted)
            return True
        frames = links[ifindex].recv_batch(batch_size)
        if not frames:
            return False
        send(engine.process(ifindex, frames, clock()))
        return True

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
            got_any = receive(ifindex) or got_any
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
