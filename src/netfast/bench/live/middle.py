"""netfast as the middle of ``netfast bench live``: a router forwarding in namespace M.

A netfast router built from a TOML description (:func:`netfast.router.config.parse_config`:
the middle's MACs and addresses, static neighbours for A and B) runs
:func:`netfast.router.run.run_live` -- the vector path punting to the scalar one, as
``netfast forward`` does -- in a thread of this process whose network namespace is M
(``setns(2)`` on that thread only), on links of the configured type (``afpacket`` by default:
:class:`netfast.link.afpacket.AfPacketLink`) bound to ``am`` and ``bm``.  The thread may be
pinned to one CPU (the generator, trafgen, takes CPU 0).

:class:`NetfastFigures` is what netfast itself counted over one measurement: the engine's
figures, its counters and its links' counters -- whatever names the links report, summed over
the links (``rx.frames``, ``tx.frames``, ``drop.<reason>``, and e.g. a ring's drop counts), so a
new link type's counters show up without a change here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netfast.bench.live.topology import (
    HOST_A,
    HOST_B,
    IF_MA,
    IF_MB,
    MAC_A,
    MAC_B,
    MAC_ROUTER_A,
    MAC_ROUTER_B,
    ROUTER_A,
    ROUTER_B,
    enter_netns,
)
from netfast.bench.netns import COMMAND_TIMEOUT
from netfast.link.base import Link
from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import parse_config
from netfast.router.run import LiveSummary
from netfast.router.workers import WorkerProbes, WorkersSummary, engine_figures, run_workers

__all__ = ["NetfastFigures", "NetfastRouter", "WorkersRouter", "figures", "router_config"]

#: Counters of the engine that count progress, not a frame's end: the rest are drop reasons,
#: verdicts and what the router originated.
PROGRESS_COUNTERS = frozenset({"eth.in.frames", "ip.in.received", "ip.fwd.forwarded"})


@dataclass(frozen=True, slots=True)
class NetfastFigures:
    """What netfast itself counted during one measurement (warm-up excluded).

    Attributes
    ----------
    frames_in
        Frames the engine read from its links.
    vector_frames, scalar_frames
        Frames finished by the vector path, and frames that went through the scalar path.
    forwarded
        ``ip.fwd.forwarded``.
    vector_seconds, scalar_seconds
        Time in each path.
    counters
        The engine's counters (router and vector path), non-zero ones.
    links
        The links' counters summed over the links, non-zero ones.
    """

    frames_in: int
    vector_frames: int
    scalar_frames: int
    forwarded: int
    vector_seconds: float
    scalar_seconds: float
    counters: dict[str, int]
    links: dict[str, int]

    @property
    def punted(self) -> int:
        """Frames that went through the scalar path (punted by the vector path)."""
        return self.scalar_frames

    @property
    def link_drops(self) -> dict[str, int]:
        """The links' ``drop.<reason>`` counters."""
        return {k: v for k, v in self.links.items() if k.startswith("drop.")}

    @property
    def link_tx_frames(self) -> int:
        """Frames the links transmitted (``tx.frames``)."""
        return self.links.get("tx.frames", 0)

    @property
    def router_drops(self) -> dict[str, int]:
        """The engine's counters other than :data:`PROGRESS_COUNTERS`: drop reasons (and any
        verdict or originated-packet count), by name."""
        return {k: v for k, v in self.counters.items() if k not in PROGRESS_COUNTERS}

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "vector_frames": self.vector_frames,
            "scalar_frames": self.scalar_frames,
            "forwarded": self.forwarded,
            "vector_seconds": self.vector_seconds,
            "scalar_seconds": self.scalar_seconds,
            "counters": self.counters,
            "links": self.links,
            "link_drops": self.link_drops,
        }


def router_config(dev_a: str = IF_MA, dev_b: str = IF_MB, link_type: str = "afpacket") -> str:
    """The TOML description of the router under test."""
    return f"""
[[interface]]
name = "a"
mac = "{MAC_ROUTER_A}"
addresses = ["{ROUTER_A}/24"]
link = {{ type = "{link_type}", device = "{dev_a}", promiscuous = false }}

[[interface]]
name = "b"
mac = "{MAC_ROUTER_B}"
addresses = ["{ROUTER_B}/24"]
link = {{ type = "{link_type}", device = "{dev_b}", promiscuous = false }}

[neighbors]
"{HOST_A}" = "{MAC_A}"
"{HOST_B}" = "{MAC_B}"
"""


class NetfastRouter:
    """A netfast router forwarding in namespace ``ns`` from a thread, for at most ``duration``
    seconds (pinned to CPU ``cpu`` when given); :meth:`stop` ends it.

    Raises
    ------
    netfast.router.config.ConfigError
        From the constructor, when ``link_type`` is not a link type the config knows.
    """

    def __init__(
        self,
        ns: str,
        duration: float,
        batch_size: int,
        *,
        link_type: str = "afpacket",
        cpu: int | None = None,
    ) -> None:
        self.ns = ns
        self.duration = duration
        self.batch_size = batch_size
        self.cpu = cpu
        config = parse_config(router_config(link_type=link_type), "bench-live.toml")
        self.built: BuiltRouter = build_router(config)
        self.engine = self.built.new_engine()
        self.link_type = link_type
        self.links: Mapping[int, Link] = {}
        self.summary: LiveSummary | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="netfast-bench-live", daemon=True)

    def start(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the netfast router did not open its links in {timeout:g} s")
        if self.error is not None:
            self.stop()
            raise RuntimeError(f"the netfast router failed to start: {self.error}")

    def _main(self) -> None:
        try:
            enter_netns(self.ns)  # this thread only: sockets opened now belong to M
            if self.cpu is not None:
                os.sched_setaffinity(0, {self.cpu})  # 0: the calling thread
            self.links = self.built.open_links((self.link_type,))
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            with self.built:
                self.summary = self.built.run_live(
                    self._stop,
                    duration=self.duration,
                    batch_size=self.batch_size,
                    engine=self.engine,
                )
        except BaseException as exc:
            self.error = exc

    def frames_in(self) -> int:
        """Frames the engine took from its links (counted before a batch is processed)."""
        return self.engine.stats.frames_in

    def frames_done(self) -> int:
        """Frames a path has finished (counted after: 0 while the first batch compiles)."""
        s = self.engine.stats
        return s.vector_frames + s.scalar_frames

    def snapshot(self, limit: float = 2.0) -> dict[str, Any]:
        """The engine's figures and the links' counters once they are still (call while
        traffic is idle): the loop runs in another thread, and a batch read a moment before is
        counted by the engine before its frames reach the links, so the figures are read until
        two reads 20 ms apart agree (at most ``limit`` seconds)."""
        end = time.monotonic() + limit
        last = self._read()
        while time.monotonic() < end:
            time.sleep(0.02)
            now = self._read()
            if now == last:
                break
            last = now
        return last

    def _read(self) -> dict[str, Any]:
        return engine_figures(self.engine, self.links)

    def pending(self) -> int:
        """Frames the links' packet rings were offered that the router has not yet read or
        counted as dropped, plus frames read and not yet finished by a path (0 once it is
        idle; rings only: a plain socket has no offered count)."""
        now = self._read()
        links = now["links"]
        waiting = now["frames_in"] - now["vector_frames"] - now["scalar_frames"]
        if "rx.ring_offered" in links:
            seen = links["rx.frames"] + links["rx.outgoing"]
            seen += sum(v for k, v in links.items() if k.startswith("drop.rx_"))
            waiting += links["rx.ring_offered"] - seen
        return max(0, waiting)

    def stop(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


class WorkersRouter(NetfastRouter):
    """The same router run as ``workers`` forwarding processes on the same ports
    (:func:`netfast.router.workers.run_workers`, PACKET_FANOUT by flow hash), forked from a
    thread in namespace ``ns``; their figures are read through
    :class:`~netfast.router.workers.WorkerProbes` and summed.  Not pinned: the workers share
    the CPUs with the generator."""

    def __init__(
        self,
        ns: str,
        duration: float,
        batch_size: int,
        workers: int,
        *,
        link_type: str = "afpacket",
    ) -> None:
        super().__init__(ns, duration, batch_size, link_type=link_type)
        self.workers = workers
        self.probes = WorkerProbes(workers)
        self.workers_summary: WorkersSummary | None = None

    def _main(self) -> None:
        try:
            enter_netns(self.ns)  # the workers, forked from this thread, are born in M
            self.workers_summary = run_workers(
                self.built,
                self.workers,
                stop=self._stop,
                duration=self.duration,
                batch_size=self.batch_size,
                on_ready=self._ready.set,
                probes=self.probes,
            )
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    def frames_in(self) -> int:
        return self.probes.frames_in()

    def frames_done(self) -> int:
        return self.probes.frames_done()

    def _read(self) -> dict[str, Any]:
        return self.probes.read()


def figures(before: dict[str, Any], after: dict[str, Any]) -> NetfastFigures:
    """What netfast counted between two :meth:`NetfastRouter.snapshot` calls."""
    counters = after["counters"] - before["counters"]
    links = after["links"] - before["links"]
    return NetfastFigures(
        frames_in=after["frames_in"] - before["frames_in"],
        vector_frames=after["vector_frames"] - before["vector_frames"],
        scalar_frames=after["scalar_frames"] - before["scalar_frames"],
        forwarded=counters["ip.fwd.forwarded"],
        vector_seconds=after["vector_seconds"] - before["vector_seconds"],
        scalar_seconds=after["scalar_seconds"] - before["scalar_seconds"],
        counters=dict(sorted(counters.items())),
        links=dict(sorted(links.items())),
    )
