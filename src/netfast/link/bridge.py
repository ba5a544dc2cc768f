"""A two-port bridge: every frame received on one link is sent on the other, impaired.

This is how a kernel peer meets netfast's netem: two veths (or TAPs) whose far ends sit in
network namespaces, joined by a :class:`Bridge` whose two directions each pass through an
:class:`~netfast.link.impair.ImpairmentStage`.  There is no MAC learning or filtering: with two
ports, flooding is forwarding.

One :meth:`Bridge.poll` is one step: read a batch from each side, push it into that
direction's stage, send what is due.  :meth:`Bridge.run` repeats steps until a frame count, a
wall-clock duration or a stop event ends it, and between steps waits in ``select`` on the
links' descriptors (or sleeps briefly when a link has none), never longer than until the next
delayed frame falls due.  :meth:`Bridge.start` runs it in a thread.
"""

from __future__ import annotations

import io
import select
import threading
import time
from collections import Counter
from types import TracebackType

from netfast.link.base import Link, WaitableLink
from netfast.link.impair import Clock, Impairment, ImpairmentStage, make_rng

# Longest single wait, so a stop event is noticed promptly.
_MAX_WAIT = 0.05
# Idle wait for links without descriptors.
_IDLE_SLEEP = 0.001


def _fileno(link: Link) -> int | None:
    if not isinstance(link, WaitableLink):
        return None
    try:
        return link.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


class _Direction:
    __slots__ = ("dst", "label", "src", "stage")

    def __init__(self, label: str, src: Link, dst: Link, stage: ImpairmentStage) -> None:
        self.label = label
        self.src = src
        self.dst = dst
        self.stage = stage


class Bridge:
    """Moves frames between links ``a`` and ``b`` through the impairment layer.

    Parameters
    ----------
    a, b
        The two ports.  The bridge does not own them: closing them is the caller's job.
    impair_ab, impair_ba
        Impairments for frames going from ``a`` to ``b`` and back; None impairs nothing.
    seed
        Makes the impairments reproducible; the directions draw from independent streams.
    clock
        Time for the impairments (delay, rate); wall-clock bounds of :meth:`run` always use
        :func:`time.monotonic`.
    batch
        Most frames read from one port per step.

    Attributes
    ----------
    counters
        Per direction ``ab.`` / ``ba.``: ``in.frames``, ``in.bytes`` (read from the source),
        ``out.frames`` (taken by the destination), ``out.failed`` (refused by
        the destination, which counts the reason), and the stage's ``impair.*`` counters.
    """

    def __init__(
        self,
        a: Link,
        b: Link,
        impair_ab: Impairment | None = None,
        impair_ba: Impairment | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
        batch: int = 64,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch = {batch}: must be at least 1")
        self.a = a
        self.b = b
        self._clock = clock
        self._batch = batch
        stage_ab = ImpairmentStage(impair_ab or Impairment(), make_rng(seed, "ab"))
        stage_ba = ImpairmentStage(impair_ba or Impairment(), make_rng(seed, "ba"))
        self._directions = (_Direction("ab", a, b, stage_ab), _Direction("ba", b, a, stage_ba))
        self._counters: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def counters(self) -> Counter[str]:
        out = Counter(self._counters)
        for d in self._directions:
            for key, value in d.stage.counters.items():
                out[f"{d.label}.{key}"] = value
        return out

    def poll(self) -> int:
        """One step in both directions; returns how many frames were read from the ports."""
        now = self._clock()
        counters = self._counters
        taken = 0
        for d in self._directions:
            frames = d.src.recv_batch(self._batch)
            if frames:
                taken += len(frames)
                counters[f"{d.label}.in.frames"] += len(frames)
                counters[f"{d.label}.in.bytes"] += sum(map(len, frames))
                d.stage.push(frames, now)
            due = d.stage.pop_due(now)
            if due:
                sent = d.dst.send(due)
                counters[f"{d.label}.out.frames"] += sent
                counters[f"{d.label}.out.failed"] += len(due) - sent
        return taken

    def poll_at(self) -> float | None:
        """Clock time at which a delayed frame next falls due; None when none is waiting."""
        times = [t for d in self._directions if (t := d.stage.next_due()) is not None]
        return min(times) if times else None

    def run(
        self,
        max_frames: int | None = None,
        duration: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Bridge until ``max_frames`` frames were read, ``duration`` seconds passed, or
        ``stop`` is set; at least one bound is required.  Returns the frames read."""
        if max_frames is None and duration is None and stop is None:
            raise ValueError("Bridge.run needs max_frames, duration or stop")
        end = None if duration is None else time.monotonic() + duration
        fds = [_fileno(self.a), _fileno(self.b)]
        selectable = [fd for fd in fds if fd is not None] if None not in fds else []
        taken = 0
        while True:
            step = self.poll()
            taken += step
            if max_frames is not None and taken >= max_frames:
                break
            if stop is not None and stop.is_set():
                break
            wait = _MAX_WAIT
            if end is not None:
                wait = min(wait, end - time.monotonic())
                if wait <= 0:
                    break
            if step:
                continue  # busy: keep draining before waiting
            due = self.poll_at()
            if due is not None:
                wait = max(0.0, min(wait, due - self._clock()))
            if selectable:
                select.select(selectable, [], [], wait)
            else:
                time.sleep(min(wait, _IDLE_SLEEP))
        return taken

    def start(self, duration: float | None = None) -> None:
        """Run in a daemon thread until :meth:`stop` (or ``duration`` seconds)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("bridge is already running")
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run_thread, args=(duration,), name="netfast-bridge", daemon=True
        )
        self._thread.start()

    def _run_thread(self, duration: float | None) -> None:
        try:
            self.run(duration=duration, stop=self._stop)
        except BaseException as e:  # handed to stop(), which re-raises in the caller
            self._error = e

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread started by :meth:`start`; re-raises an error it died of."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"bridge thread did not stop within {timeout} s")
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
