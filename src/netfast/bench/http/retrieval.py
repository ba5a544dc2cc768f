"""Figure 18's mechanism in process: on netfast's two-host simulator, the cost of one round of
event retrieval with ``K`` idle connections, netfast's event queue against a poll-style scan
and the host stack's own pass (:func:`measure_retrieval`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from netfast.bench.http.common import (
    FIG18_QUEUE_COUNTS,
    FIG18_QUEUE_ROUNDS,
    BenchError,
    _percentile,
)

#: Wall-clock seconds the in-process measurement may spend setting up connections, per count.
QUEUE_SETUP_TIMEOUT = 120.0
#: Connections started at once while the in-process set-up grows (each step of the simulator
#: visits every connection, so one at a time would cost the square of the count).
_QUEUE_BATCH = 500
_QUEUE_LINES = ("eventqueue", "scan", "stackpoll")


def measure_retrieval(
    counts: Sequence[int] = FIG18_QUEUE_COUNTS,
    *,
    rounds: int = FIG18_QUEUE_ROUNDS,
    active: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """What the paper's mechanism costs, without the TAP: on netfast's two-host simulator
    (:class:`~netfast.stack.sim.HostPair`, virtual clock) host B listens, every connection it
    accepts is registered for reading in one :class:`~netfast.stack.kqueue.EventQueue` (with
    the listener, as ``netfast httpd`` does), ``K`` of them idle and ``active`` (1) of them sent
    a few bytes each round.  Once those bytes are readable, the server side's event retrieval is
    timed (``perf_counter``, garbage collection paused, the two orders alternating by round):

    ``eventqueue``
        one :meth:`EventQueue.events` call;
    ``scan``
        what poll(2) does: ``readiness()`` of every registered socket, the ready ones
        collected;
    ``stackpoll``
        for reference, the host stack's own per-round pass on host B (``Stack.poll`` and
        ``Stack.poll_at``, which :func:`~netfast.stack.hostrun.run_host` calls every round):
        TCP's timer pass visits every connection, so it grows with ``K`` too.

    Rows (section ``figure18-queue``) hold the median, p99 and mean microseconds per round and
    ``checks_per_round``: ``readiness()`` calls per round (the queue's from
    :attr:`EventQueue.checks`; the scan's is the registered count).  Raises nothing: a failure
    becomes ``error`` rows."""
    import gc

    from netfast.stack.kqueue import READ, EventQueue
    from netfast.stack.sim import HostPair

    counts = sorted(set(counts))
    rounds = max(1, rounds)

    def base(line: str) -> dict[str, Any]:
        return {
            "section": "figure18-queue",
            "server": "netfast-sim",
            "poller": line,
            "line": f"netfast-{line}",
            "active": active,
        }

    rows: list[dict[str, Any]] = []
    pair = HostPair()
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen(max(counts, default=0) + active + 16)
    queue = EventQueue()
    queue.register(listener, READ)
    registered: list[Any] = [listener]
    clients: list[Any] = []

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            queue.register(sock, READ)
            registered.append(sock)

    def grow(total: int) -> None:
        """Connect clients until host B has accepted ``total`` connections."""
        t0 = time.monotonic()
        while len(clients) < total:
            if time.monotonic() - t0 > QUEUE_SETUP_TIMEOUT:
                raise BenchError(
                    f"set up only {len(clients)} connections in {QUEUE_SETUP_TIMEOUT:g} s"
                )
            for _ in range(min(_QUEUE_BATCH, total - len(clients))):
                cli = pair.tcp_a.socket()
                cli.bind(("198.18.0.1", 20000 + len(clients)))
                cli.connect(("198.18.0.2", 80), pair.now)
                clients.append(cli)
            if not pair.run(
                lambda: len(registered) - 1 >= len(clients), app=accept, max_time=60
            ).ok:
                raise BenchError(f"host B accepted {len(registered) - 1} of {len(clients)}")

    def scan() -> list[Any]:
        out = []
        for sock in registered:
            readable, _, flags = sock.readiness()
            if readable > 0 or flags:
                out.append(sock)
        return out

    def stackpoll() -> list[tuple[int, bytes]]:
        frames = pair.b.poll(pair.now)
        pair.b.poll_at()
        return frames

    done: set[int] = set()
    try:
        grow(active)
        hot_clients, hot = clients[:active], registered[1 : 1 + active]
        for k in counts:
            if progress is not None:
                progress(f"figure 18 in process: {k} idle connections")
            t0 = time.monotonic()
            grow(active + k)
            setup_s = time.monotonic() - t0
            queue.events(len(registered) + 1)  # the new registrations are active once
            samples: dict[str, list[float]] = {line: [] for line in _QUEUE_LINES}
            checks = 0
            for rnd in range(rounds):
                for cli in hot_clients:
                    cli.send(b"x" * 64)
                if not pair.run(lambda: all(s.readiness()[0] > 0 for s in hot), max_time=5).ok:
                    raise BenchError("the active connections' bytes did not arrive")
                before = queue.checks
                order = list(_QUEUE_LINES) if rnd % 2 == 0 else list(reversed(_QUEUE_LINES))
                got: dict[str, Any] = {}
                gc.disable()
                try:
                    for line in order:
                        fn = {"eventqueue": queue.events, "scan": scan, "stackpoll": stackpoll}[
                            line
                        ]
                        t = time.perf_counter()
                        got[line] = fn()
                        samples[line].append((time.perf_counter() - t) * 1e6)
                finally:
                    gc.enable()
                checks += queue.checks - before
                pair.link_b.send(frame for _, frame in got["stackpoll"])
                if len(got["eventqueue"]) != active or len(got["scan"]) != active:
                    raise BenchError(
                        f"{len(got['eventqueue'])} events and {len(got['scan'])} ready sockets "
                        f"for {active} active connections"
                    )
                for sock in hot:
                    while sock.readiness()[0] > 0:
                        sock.recv(65536)
            per_round = {
                "eventqueue": checks / rounds,
                "scan": float(len(registered)),
                "stackpoll": None,
            }
            for line in _QUEUE_LINES:
                lat = sorted(samples[line])
                row = {
                    **base(line),
                    "idle": k,
                    "registered": len(registered),
                    "rounds": rounds,
                    "setup_s": setup_s,
                    "median_us": _percentile(lat, 50),
                    "p99_us": _percentile(lat, 99),
                    "mean_us": sum(lat) / len(lat),
                }
                if per_round[line] is not None:
                    row["checks_per_round"] = per_round[line]
                rows.append(row)
            done.add(k)
    except (BenchError, OSError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        for k in counts:
            if k not in done:
                rows += [{**base(line), "idle": k, "error": why} for line in _QUEUE_LINES]
    return rows
