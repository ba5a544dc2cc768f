"""The impairment layer: netfast's own netem, a seeded fault injector that wraps any link.

The kernel netfast runs on has no netem qdisc, so loss, duplication, corruption, reordering,
delay, jitter and rate limiting come from here.  The model follows Linux netem
(tc-netem(8)) where it is simple, and says so where it differs.

Theory of operation
-------------------
An :class:`ImpairmentStage` impairs one direction.  Every frame pushed into it goes through
these steps, each drawing from the stage's own seeded :class:`random.Random`, so a given seed
and a given sequence of pushes (and clock readings) always give the same output:

1. **loss** - dropped with probability ``loss`` (``impair.loss``).
2. **duplicate** - a second copy is made with probability ``duplicate`` (``impair.dup``);
   each copy then goes through the remaining steps on its own.
3. **limit** - a stage already holding ``limit`` frames drops the copy
   (``impair.limit_drop``).
4. **corrupt** - with probability ``corrupt`` one uniformly chosen bit of the frame is flipped
   (``impair.corrupt``), as netem does; the FCS is not modelled, so the frame is delivered.
5. **delay and jitter** - the frame is due ``delay`` seconds later, plus a uniform draw from
   ``[-jitter, +jitter]`` (never before it was sent).  Unlike netem, jitter alone never
   reorders: a frame is never due before the frame admitted before it.  Reordering is the job
   of the next step, so each knob does one thing.
6. **reorder** - with probability ``reorder`` the frame is held back (``impair.reorder``) until
   ``reorder_extent`` later frames have overtaken it, or ``reorder_delay`` seconds have passed,
   whichever comes first.  (netem instead sends the chosen frame *early*, which needs a delay
   to have any effect; holding back works with no delay at all.)
7. **rate** - when ``rate`` (bits/s) is set the frame waits for the frames ahead of it to be
   serialized at ``rate`` and then takes ``8 * len(frame) / rate`` seconds itself.  At most
   ``rate_queue`` frames wait or serialize at once; more are dropped (``impair.rate_drop``),
   as from a tail-drop FIFO in front of a slow link.

Due frames leave in due-time order (ties in admission order) through :meth:`~ImpairmentStage.
pop_due`.  Nothing reads a clock here: time is an argument, and :class:`ImpairedLink` and
:class:`~netfast.link.bridge.Bridge` take an injectable ``clock`` so tests can drive time by hand.
"""

from __future__ import annotations

import heapq
import io
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netfast.link.base import Frame, Link, WaitableLink

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Impairment:
    """What to do to the frames of one direction.  The default impairs nothing.

    Parameters
    ----------
    loss, duplicate, corrupt, reorder
        Probabilities in [0, 1], drawn independently per frame.
    reorder_extent
        How many later frames overtake a frame held back for reordering.
    reorder_delay
        The longest a frame is held back for reordering, in seconds, when fewer than
        ``reorder_extent`` frames follow it.
    delay, jitter
        Seconds added to every frame; the jitter is uniform in ``[-jitter, +jitter]``.
    rate
        Bits per second the direction carries (Ethernet frame bytes without FCS); 0 means
        unlimited.
    rate_queue
        Frames that may wait for the rate limiter; more are dropped.
    limit
        Frames the stage may hold in total (delayed, held back or queued); more are dropped.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    reorder_extent: int = 1
    reorder_delay: float = 0.010
    delay: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    rate_queue: int = 64
    limit: int = 10_000

    def __post_init__(self) -> None:
        for field, p in (
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"impairment.{field} = {p}: a probability must be in [0, 1]")
        for field, v in (
            ("reorder_delay", self.reorder_delay),
            ("delay", self.delay),
            ("jitter", self.jitter),
            ("rate", self.rate),
        ):
            if not (v >= 0.0 and math.isfinite(v)):
                raise ValueError(f"impairment.{field} = {v}: must be finite and >= 0")
        for field, n in (
            ("reorder_extent", self.reorder_extent),
            ("rate_queue", self.rate_queue),
            ("limit", self.limit),
        ):
            if n < 1:
                raise ValueError(f"impairment.{field} = {n}: must be at least 1")

    @property
    def is_noop(self) -> bool:
        """True when frames pass unchanged and immediately."""
        return (
            self.loss == self.duplicate == self.corrupt == self.reorder == 0.0
            and self.delay == self.jitter == self.rate == 0.0
        )


def make_rng(seed: int | None, label: str) -> random.Random:
    """A generator for one stage: reproducible from ``seed``, independent per ``label``.

    ``seed=None`` seeds from the OS, for runs that need not repeat.
    """
    if seed is None:
        return random.Random()
    # A str seed is hashed with SHA-512 by random.seed (version 2): stable across runs and
    # platforms, unlike hash(), and different labels give unrelated streams.
    return random.Random(f"netfast.impair/{seed}/{label}")


class _Held:
    """A frame held back for reordering."""

    __slots__ = ("deadline", "due", "frame", "remaining")

    def __init__(self, frame: Frame, due: float, deadline: float, remaining: int) -> None:
        self.frame = frame
        self.due = due
        self.deadline = deadline
        self.remaining = remaining


class ImpairmentStage:
    """One direction of impairment: frames in with :meth:`push`, out with :meth:`pop_due`.

    Attributes
    ----------
    counters
        ``impair.in``, ``impair.out`` and one counter per impairment applied (``impair.loss``,
        ``impair.dup``, ``impair.corrupt``, ``impair.reorder``, ``impair.rate_drop``,
        ``impair.limit_drop``).
    """

    def __init__(self, impairment: Impairment, rng: random.Random) -> None:
        self.impairment = impairment
        self.counters: Counter[str] = Counter()
        self._rng = rng
        self._heap: list[tuple[float, int, Frame]] = []
        self._seq = 0
        self._held: list[_Held] = []
        self._last_due = -math.inf
        self._rate_busy_until = -math.inf
        self._rate_departures: deque[float] = deque()

    def __len__(self) -> int:
        """Frames inside the stage (delayed, held back or queued)."""
        return len(self._heap) + len(self._held)

    def push(self, frames: Iterable[Frame], now: float) -> None:
        """Admit frames sent at time ``now``."""
        imp = self.impairment
        counters = self.counters
        rng = self._rng
        self._expire_held(now)
        for frame in frames:
            counters["impair.in"] += 1
            if imp.loss and rng.random() < imp.loss:
                counters["impair.loss"] += 1
                continue
            copies = 1
            if imp.duplicate and rng.random() < imp.duplicate:
                counters["impair.dup"] += 1
                copies = 2
            for _ in range(copies):
                if len(self) >= imp.limit:
                    counters["impair.limit_drop"] += 1
                    continue
                copy = frame
                if imp.corrupt and rng.random() < imp.corrupt and len(frame) > 0:
                    counters["impair.corrupt"] += 1
                    copy = _flip_bit(frame, rng.randrange(len(frame) * 8))
                self._admit(copy, now)

    def pop_due(self, now: float, max_frames: int | None = None) -> list[Frame]:
        """The frames due at ``now`` (at most ``max_frames``), in due-time order."""
        self._expire_held(now)
        heap = self._heap
        out: list[Frame] = []
        limit = len(heap) if max_frames is None else max_frames
        while heap and heap[0][0] <= now and len(out) < limit:
            out.append(heapq.heappop(heap)[2])
        self.counters["impair.out"] += len(out)
        return out

    def next_due(self) -> float | None:
        """When the next frame becomes due (or a held frame's hold ends); None when empty."""
        times = [h.deadline for h in self._held]
        if self._heap:
            times.append(self._heap[0][0])
        return min(times) if times else None

    def clear(self) -> None:
        """Discard every frame inside the stage."""
        self._heap.clear()
        self._held.clear()
        self._rate_departures.clear()

    def _admit(self, frame: Frame, now: float) -> None:
        imp = self.impairment
        rng = self._rng
        due = now + imp.delay
        if imp.jitter:
            due = max(now, due + rng.uniform(-imp.jitter, imp.jitter))
        if imp.reorder and rng.random() < imp.reorder:
            self.counters["impair.reorder"] += 1
            held = _Held(frame, due, now + imp.reorder_delay, imp.reorder_extent)
            self._held.append(held)
            return
        due = max(due, self._last_due)
        self._last_due = due
        self._schedule(frame, due)
        if self._held:
            self._overtake(due)

    def _overtake(self, due: float) -> None:
        """A frame due at ``due`` has passed every held frame: release those it was the last
        to overtake right behind it."""
        still_held: list[_Held] = []
        for held in self._held:
            held.remaining -= 1
            if held.remaining <= 0:
                self._schedule(held.frame, due)
            else:
                still_held.append(held)
        self._held = still_held

    def _expire_held(self, now: float) -> None:
        if not self._held:
            return
        still_held: list[_Held] = []
        for held in self._held:
            if held.deadline <= now:
                due = max(held.due, held.deadline, self._last_due)
                self._last_due = due
                self._schedule(held.frame, due)
            else:
                still_held.append(held)
        self._held = still_held

    def _schedule(self, frame: Frame, due: float) -> None:
        rate = self.impairment.rate
        if rate:
            departures = self._rate_departures
            while departures and departures[0] <= due:
                departures.popleft()
            if len(departures) >= self.impairment.rate_queue:
                self.counters["impair.rate_drop"] += 1
                return
            start = max(due, self._rate_busy_until)
            due = start + 8 * len(frame) / rate
            self._rate_busy_until = due
            departures.append(due)
        heapq.heappush(self._heap, (due, self._seq, frame))
        self._seq += 1


def _flip_bit(frame: Frame, bit: int) -> bytes:
    data = bytearray(frame)
    data[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(data)


class ImpairedLink:
    """A link wrapper that impairs what is sent (``impair_tx``) and/or received (``impair_rx``).

    Delayed frames wait in the wrapper and are released by later calls to :meth:`send`,
    :meth:`recv_batch` or :meth:`poll`, whichever comes first after they fall due; call
    :meth:`poll_at` to learn when that is.  ``send`` reports every frame as accepted, lost ones
    included, as a real lossy wire would.

    Parameters
    ----------
    inner
        The link to wrap; closed by :meth:`close`.
    impair_tx, impair_rx
        Impairments for each direction; None impairs nothing, and the direction then passes
        straight through to the inner link (no stage, no ``impair.*`` counters).
    seed
        Makes runs reproducible; the two directions draw from independent streams.
    clock
        Seconds, monotonic; inject a fake one in tests.
    """

    def __init__(
        self,
        inner: Link,
        impair_tx: Impairment | None = None,
        impair_rx: Impairment | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.inner = inner
        self.tx = ImpairmentStage(impair_tx or Impairment(), make_rng(seed, "tx"))
        self.rx = ImpairmentStage(impair_rx or Impairment(), make_rng(seed, "rx"))
        self._tx_on = impair_tx is not None
        self._rx_on = impair_rx is not None
        self._clock = clock

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def counters(self) -> Counter[str]:
        """Both directions' impairment counters, prefixed ``tx.`` and ``rx.``."""
        out: Counter[str] = Counter()
        for prefix, stage in (("tx.", self.tx), ("rx.", self.rx)):
            for key, value in stage.counters.items():
                out[prefix + key] = value
        return out

    def fileno(self) -> int:
        """The inner link's descriptor (readable when the inner link has frames, which is not
        the same as this wrapper having due frames: see :meth:`poll_at`)."""
        if not isinstance(self.inner, WaitableLink):
            raise io.UnsupportedOperation(f"link {self.inner.name!r} has no file descriptor")
        return self.inner.fileno()

    def send(self, frames: Iterable[Frame]) -> int:
        if not self._tx_on:
            return self.inner.send(frames)
        batch = list(frames)
        now = self._clock()
        self.tx.push(batch, now)
        self._flush_tx(now)
        return len(batch)

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        now = self._clock()
        self._flush_tx(now)
        if not self._rx_on:
            return self.inner.recv_batch(max_frames)
        self.rx.push(self.inner.recv_batch(max_frames), now)
        return self.rx.pop_due(now, max_frames)

    def poll(self) -> int:
        """Send the transmit frames that are due; returns how many the inner link accepted."""
        return self._flush_tx(self._clock())

    def poll_at(self) -> float | None:
        """Clock time at which a delayed frame next falls due; None when none is waiting."""
        times = [t for t in (self.tx.next_due(), self.rx.next_due()) if t is not None]
        return min(times) if times else None

    def close(self) -> None:
        self.tx.clear()
        self.rx.clear()
        self.inner.close()

    def _flush_tx(self, now: float) -> int:
        due = self.tx.pop_due(now)
        return self.inner.send(due) if due else 0

    def __repr__(self) -> str:
        return f"ImpairedLink({self.inner!r}, tx={self.tx.impairment}, rx={self.rx.impairment})"
