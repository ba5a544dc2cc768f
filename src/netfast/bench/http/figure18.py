"""Figure 18 on the kernel backend: idle keep-alive connections held open against each server
process on loopback, and the latency of sequential requests on one more connection
(:func:`measure_figure18`), for netfast's select, poll and epoll pollers and nginx."""

from __future__ import annotations

import contextlib
import re
import resource
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfast.bench.http.common import (
    FIG18_COUNTS,
    FIG18_IDLE_TIMEOUT,
    FIG18_PROBES,
    FIG18_ROUNDS,
    FIG18_SERVERS,
    OPEN_TIMEOUT,
    REQUEST_TIMEOUT,
    SELECT_LIMIT,
    SMALL_FILE,
    BenchError,
    _percentile,
)
from netfast.bench.http.servers import running

_REQUEST = f"GET /{SMALL_FILE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def _exchange(sock: socket.socket, buf: bytearray) -> int:
    """Send one request on keep-alive ``sock`` and read its whole response; return the status."""
    sock.sendall(_REQUEST)
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head.split(None, 2)[1])
    m = re.search(r"^content-length:\s*([0-9]+)", head, re.M | re.I)
    need = end + 4 + (int(m.group(1)) if m else 0)
    while len(buf) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        buf += chunk
    del buf[:need]
    return status


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _open_idle(port: int) -> socket.socket:
    """A connection that has had one request answered, so the server has accepted it (the
    accept filter holds back silent ones) and now watches it idle."""
    sock = _connect(port)
    try:
        status = _exchange(sock, bytearray())
        if status != 200:
            raise BenchError(f"the server answered {status} on an idle connection's request")
    except BaseException:
        sock.close()
        raise
    return sock


def _still_open(socks: Sequence[socket.socket]) -> int:
    """How many of ``socks`` the server has neither closed nor written to."""
    p = select.poll()
    for s in socks:
        p.register(s.fileno(), select.POLLIN)
    return len(socks) - len(p.poll(0))


def nofile_for(count: int) -> int:
    """Raise RLIMIT_NOFILE to at least ``count`` where allowed; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= count:
        return soft
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= count else count
    for lim in ((count, new_hard), (min(count, hard), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def probe_latency(port: int, probes: int, warmup: int = 20) -> list[float]:
    """Microseconds of each of ``probes`` sequential requests on one new keep-alive connection
    (after ``warmup`` untimed ones), in order."""
    buf = bytearray()
    out: list[float] = []
    with _connect(port) as sock:
        for _ in range(warmup):
            _exchange(sock, buf)
        clock = time.perf_counter
        for _ in range(probes):
            t0 = clock()
            status = _exchange(sock, buf)
            out.append((clock() - t0) * 1e6)
            if status != 200:
                raise BenchError(f"the server answered {status} to a probe")
    return out


@dataclass(eq=False, slots=True)
class _Line:
    """One line of Figure 18 while it is measured: its server, its idle connections, its rows."""

    kind: str
    poller: str
    usable: list[int]
    port: int = 0
    idle: list[socket.socket] = field(default_factory=list)
    error: str | None = None
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def base(self) -> dict[str, Any]:
        return {"section": "figure18", "server": self.kind, "poller": self.poller, "workers": 1}

    def fail(self, k: int, why: str) -> None:
        self.error = why
        self.rows[k] = {**self.base, "idle": k, **self.rows.get(k, {}), "error": why}


def _grow(line: _Line, k: int) -> float:
    """Open idle connections to ``line``'s server until it holds ``k``; return the seconds."""
    t0 = time.monotonic()
    while len(line.idle) < k:
        if time.monotonic() - t0 > OPEN_TIMEOUT:
            raise BenchError(f"opened only {len(line.idle)} idle connections in {OPEN_TIMEOUT:g} s")
        line.idle.append(_open_idle(line.port))
    return time.monotonic() - t0


def _close_idle(lines: Sequence[_Line]) -> None:
    for line in lines:
        for s in line.idle:
            s.close()
        line.idle.clear()


def measure_figure18(
    root: Path,
    tmp: Path,
    *,
    counts: Sequence[int] = FIG18_COUNTS,
    probes: int = FIG18_PROBES,
    rounds: int = FIG18_ROUNDS,
    servers: Sequence[tuple[str, str]] = FIG18_SERVERS,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Figure 18: one server process (one worker) per (server, poller), all running at once;
    at each count ``K`` every server is brought to ``K`` idle keep-alive connections, then
    ``probes`` sequential requests per server are timed on fresh keep-alive connections, in
    ``rounds`` rounds that rotate the servers (so slow phases of the machine hit all of them).
    Rows hold the median, p99 and mean response time in microseconds."""
    counts = sorted(set(counts))
    per_round = max(1, -(-probes // max(1, rounds)))
    lines = [
        _Line(kind, poller, [k for k in counts if not (poller == "select" and k >= SELECT_LIMIT)])
        for kind, poller in servers
    ]
    for line in lines:
        for k in counts:
            if k not in line.usable:
                line.rows[k] = {
                    **line.base,
                    "idle": k,
                    "skipped": "select(2) takes descriptors "
                    f"below FD_SETSIZE (1024) only: {k} idle connections do not fit",
                }

    def needed(k: int) -> int:  # descriptors this process holds at count k, with a margin
        return sum(k + 16 for line in lines if k in line.usable) + 128

    limit = nofile_for(max((needed(k) for k in counts), default=0))
    with contextlib.ExitStack() as stack:
        stack.callback(_close_idle, lines)
        for line in lines:
            if not line.usable:
                continue
            top = max(line.usable)
            extra: dict[str, Any] = {
                "max_connections": top + 128,
                "idle_timeout": FIG18_IDLE_TIMEOUT,
            }
            if line.kind == "netfast":
                extra["poller"] = line.poller
            try:
                srv = stack.enter_context(running(line.kind, root, tmp, workers=1, **extra))
            except BenchError as exc:
                line.error = str(exc)
                continue
            line.port = int(srv.url.rsplit(":", 1)[1])
        for k in counts:
            active = [line for line in lines if line.error is None and k in line.usable]
            if needed(k) > limit:
                for line in active:
                    line.rows[k] = {
                        **line.base,
                        "idle": k,
                        "skipped": f"RLIMIT_NOFILE is {limit}, {needed(k)} descriptors needed",
                    }
                continue
            samples: dict[int, list[float]] = {id(line): [] for line in active}
            for line in active:
                if progress is not None:
                    progress(f"figure 18: {k} idle connections to {line.kind} {line.poller}")
                try:
                    line.rows[k] = {**line.base, "idle": k, "probes": 0, "open_s": _grow(line, k)}
                except (BenchError, OSError) as exc:
                    line.fail(k, f"{type(exc).__name__}: {exc}")
            for rnd in range(rounds):
                if progress is not None:
                    progress(f"figure 18: {k} idle connections, round {rnd + 1}/{rounds}")
                shift = rnd % max(1, len(active))
                for line in active[shift:] + active[:shift]:
                    if line.error is not None:
                        continue
                    try:
                        samples[id(line)] += probe_latency(line.port, per_round)
                    except (BenchError, OSError) as exc:
                        line.fail(k, f"{type(exc).__name__}: {exc}")
            for line in active:
                if line.error is not None:
                    continue
                lat = sorted(samples[id(line)])
                row = line.rows[k]
                row.update(
                    probes=len(lat),
                    median_us=_percentile(lat, 50),
                    p99_us=_percentile(lat, 99),
                    mean_us=sum(lat) / len(lat),
                    idle_open=_still_open(line.idle),
                )
                if row["idle_open"] < k:
                    row["flagged"] = f"only {row['idle_open']} of {k} idle connections open"
    rows: list[dict[str, Any]] = []
    for line in lines:
        for k in counts:
            if k not in line.rows:
                why = f"not measured: {line.error}" if line.error else "not measured"
                line.rows[k] = {**line.base, "idle": k, "error": why}
            rows.append(line.rows[k])
    return rows
