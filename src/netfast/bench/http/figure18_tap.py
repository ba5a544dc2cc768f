"""Figure 18's ``netfast-kqueue`` line: the netfast backend (its own TCP/IP and event queue) on a
TAP, the idle connections and the probes made by one client process in the namespace
(:func:`measure_figure18_tap`)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from netfast.bench.http.common import (
    FIG18_COUNTS,
    FIG18_IDLE_TIMEOUT,
    FIG18_PROBES,
    FIG18_TAP_GRACE,
    FIG18_TAP_LIMIT,
    FIG18_TAP_PREFIX,
    OPEN_TIMEOUT,
    REQUEST_TIMEOUT,
    SMALL_FILE,
    BenchError,
    _percentile,
    _tail,
)
from netfast.bench.http.servers import stop_process
from netfast.bench.http.tap import netfast_on_tap
from netfast.bench.netns import tap_environment

# Runs in the namespace (``ip netns exec NS python -c SCRIPT COUNTS N URL BUDGET WARMUP TIMEOUT``):
# for each idle count in COUNTS (ascending) it opens idle keep-alive connections up to that count
# (each has one request answered, then idles), then times N sequential requests on one more
# keep-alive connection after WARMUP untimed ones, and prints one JSON line.  Standard library only.
_IDLE_CLIENT = r"""
import json, re, resource, select, socket, sys, time
counts = [int(k) for k in sys.argv[1].split(",") if k]
probes, url, budget = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
warmup, timeout = int(sys.argv[5]), float(sys.argv[6])
host, port, path = re.fullmatch(r"http://([^/:]+):([0-9]+)(/.*)", url).groups()
need = max(counts, default=0) + 64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < need:
    big = hard == resource.RLIM_INFINITY or hard >= need
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard if big else need))
request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

def exchange(sock, buf):
    sock.sendall(request)
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    m = re.search(r"^content-length:\s*([0-9]+)", head, re.M | re.I)
    size = end + 4 + (int(m.group(1)) if m else 0)
    while len(buf) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        buf += chunk
    del buf[:size]
    status = int(head.split(None, 2)[1])
    if status != 200:
        raise RuntimeError(f"the server answered {status}")

def connect():
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

idle = []
for k in counts:
    row = {"idle": k}
    try:
        t0 = time.monotonic()
        while len(idle) < k:
            if time.monotonic() - t0 > budget:
                why = f"opened only {len(idle)} of {k} idle connections in {budget:g} s"
                raise TimeoutError(why)
            idle.append(connect())
            exchange(idle[-1], bytearray())
        row["open_s"] = time.monotonic() - t0
        buf, lat = bytearray(), []
        with connect() as s:
            for _ in range(warmup):
                exchange(s, buf)
            for _ in range(probes):
                t = time.perf_counter()
                exchange(s, buf)
                lat.append((time.perf_counter() - t) * 1e6)
        p = select.poll()
        for s in idle:
            p.register(s.fileno(), select.POLLIN)
        row.update(latencies_us=lat, idle_open=len(idle) - len(p.poll(0)))
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(row), flush=True)
    if "error" in row:
        break
"""


def _json_lines(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[dict[str, Any]]:
    """The JSON lines ``proc`` prints until it ends; BenchError when ``deadline`` (monotonic)
    passes first.  Lines that are not JSON objects are skipped."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("the namespace's client did not finish in time")
        if select.select([fd], [], [], min(left, 1.0))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict):
                        yield doc


def measure_figure18_tap(
    root: Path,
    tmp: Path,
    *,
    counts: Sequence[int] = FIG18_COUNTS,
    probes: int = FIG18_PROBES,
    limit: int = FIG18_TAP_LIMIT,
    warmup: int = 20,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Figure 18's ``netfast-kqueue`` line: the netfast backend (netfast's own TCP/IP and its
    :class:`~netfast.stack.kqueue.EventQueue`) on a TAP (:func:`netfast_on_tap`), the clients
    in the namespace on the kernel's side.

    One client process (:data:`_IDLE_CLIENT`, run with ``ip netns exec``) walks the counts
    upwards: it opens idle keep-alive connections until it holds ``K`` (each has one request
    answered first), then times ``probes`` sequential requests on one more connection.  Counts
    above ``limit`` are skipped rows: netfast's TCP in Python sets up connections at a few
    hundred to a few thousand per second, and the rate falls as connections accumulate (its
    timer pass visits every connection each round), so larger counts would take minutes.
    Opening the connections of one count may take :data:`OPEN_TIMEOUT` s at most."""
    counts = sorted(set(counts))
    base: dict[str, Any] = {
        "section": "figure18",
        "server": "netfast-tap",
        "poller": "kqueue",
        "line": "netfast-kqueue",
        "backend": "netfast",
        "workers": 1,
    }
    rows: dict[int, dict[str, Any]] = {}
    for k in counts:
        if k > limit:
            rows[k] = {
                **base,
                "idle": k,
                "skipped": f"more than {limit} idle connections: netfast's TCP would take too "
                "long to set them up over the TAP",
            }
    usable = [k for k in counts if k <= limit]
    reason = tap_environment()
    if reason is not None:
        rows.update({k: {**base, "idle": k, "skipped": reason} for k in usable})
        usable = []
    if usable:
        try:
            _run_tap_client(root, tmp, base, usable, probes, warmup, rows, progress)
        except (BenchError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            for k in usable:
                rows.setdefault(k, {**base, "idle": k, "error": str(exc)})
    return [rows[k] for k in counts]


def _run_tap_client(
    root: Path,
    tmp: Path,
    base: dict[str, Any],
    counts: Sequence[int],
    probes: int,
    warmup: int,
    rows: dict[int, dict[str, Any]],
    progress: Callable[[str], None] | None,
) -> None:
    extra = [
        "--idle-timeout",
        str(FIG18_IDLE_TIMEOUT),
        "--max-connections",
        str(max(counts) + 128),
    ]
    with netfast_on_tap(root, tmp, prefix=FIG18_TAP_PREFIX, extra=extra, progress=progress) as ts:
        argv = [
            "ip", "netns", "exec", ts.ns, sys.executable, "-c", _IDLE_CLIENT,
            ",".join(map(str, counts)), str(probes), f"{ts.server.url}/{SMALL_FILE}",
            f"{OPEN_TIMEOUT:g}", str(warmup), f"{REQUEST_TIMEOUT:g}",
        ]  # fmt: skip
        log = ts.server.log.with_name("client.log")
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        try:
            if progress is not None:
                progress(f"figure 18: netfast backend, {counts[0]} idle connections")
            deadline = time.monotonic() + len(counts) * (OPEN_TIMEOUT + FIG18_TAP_GRACE)
            for doc in _json_lines(proc, deadline):
                k = doc.get("idle")
                if not isinstance(k, int) or k not in counts:
                    continue
                row: dict[str, Any] = {**base, "idle": k, "content_ok": ts.content_ok}
                if "error" in doc:
                    rows[k] = {**row, "error": f"client: {doc['error']}"}
                    continue
                lat = sorted(doc["latencies_us"])
                row.update(
                    probes=len(lat),
                    open_s=doc["open_s"],
                    idle_open=doc["idle_open"],
                )
                if lat:
                    row.update(
                        median_us=_percentile(lat, 50),
                        p99_us=_percentile(lat, 99),
                        mean_us=sum(lat) / len(lat),
                    )
                flags = []
                if row["idle_open"] < k:
                    flags.append(f"only {row['idle_open']} of {k} idle connections open")
                if not ts.server.alive():
                    row["server_died"] = True
                    flags.append(f"the server died: {ts.server.log_tail()}")
                if flags:
                    row["flagged"] = "; ".join(flags)
                rows[k] = row
                later = [c for c in counts if c > k]
                if progress is not None and later:
                    progress(f"figure 18: netfast backend, {later[0]} idle connections")
        finally:
            stop_process(proc)
        if proc.returncode not in (0, None, -signal.SIGTERM, -signal.SIGKILL):
            why = f"the namespace's client exited with {proc.returncode}: "
            why += _tail(log.read_text(errors="replace"))
            for k in counts:
                rows.setdefault(k, {**base, "idle": k, "error": why})
        for k in counts:
            rows.setdefault(k, {**base, "idle": k, "error": "the namespace's client gave no row"})
