"""The HTTP benchmark (``netfast bench http``): ``netfast httpd`` against nginx and Python's
``http.server`` in one run, and the paper's Figure 18 (response time against idle connections,
poll(2)/select(2) against an event queue) reproduced on the kernel backend's three pollers.

The paper's application section (Oppermann, "Optimizing the FreeBSD IP and TCP Stack") says a
static-file server is dominated by the operating system: accept filters, an event queue instead
of poll/select, stat off the main loop and sendfile.  ``netfast httpd`` builds those; this module
measures what they are worth against a C server that uses the same kernel facilities (nginx) and
a Python one that uses none of them (``http.server``).

Sections
--------
``keepalive``
    ``wrk -t1 -c50 --latency`` on a 1 KiB file over persistent connections, for each worker
    count (nginx with the same ``worker_processes``).  Targets: netfast at least
    :data:`TARGETS` ``["keepalive_vs_nginx"]`` times nginx's requests/s and
    ``["keepalive_vs_http_server"]`` times ``http.server``'s.
``close``
    The same with ``-H 'Connection: close'``: one new TCP connection per request, so the accept
    path is measured.  Target: ``["close_vs_nginx"]`` times nginx.
``large``
    A large file (100 MB; 10 MB with ``--quick``) over 4 connections, bytes/s.  Target:
    ``["large_vs_nginx"]`` times nginx's throughput.
``tap``
    The netfast backend (netfast's own TCP/IP on a TAP, as root): the 1 KiB keep-alive load and a
    10 MB file, wrk running in a network namespace on the kernel's side of the TAP.  No target;
    nginx's loopback figures of the same run are printed for reference.
``figure18``
    :func:`measure_figure18`: ``K`` idle keep-alive connections held open against each server
    process (one worker each, all running at once), then the latency of sequential requests on
    one more connection, timed with ``perf_counter`` around the send and the whole response, in
    rounds that rotate the servers.  Each idle connection first has one request answered, so the
    server has accepted it (the accept filter holds silent ones back) and watches it idle.  The
    netfast kernel backend with ``--poller select``, ``poll`` and ``epoll``, and nginx (epoll) as
    a reference; idle timeouts are an hour, so none expires, and the rows say how many were
    still open after the measurement (``idle_open``).
    select(2) cannot take descriptors at or above ``FD_SETSIZE`` (1024), so counts of
    :data:`SELECT_LIMIT` and more are skipped for it (a row says so).  The paper's claim: with
    poll/select the response time grows with ``K``, with kqueue (here epoll) it stays flat.

    :func:`measure_figure18_tap` adds the line ``netfast-kqueue``: the netfast backend
    (netfast's TCP/IP and its :class:`~netfast.stack.kqueue.EventQueue`) on a TAP, the idle
    connections and the probes made by one client process in the namespace; counts above
    :data:`FIG18_TAP_LIMIT` are skipped rows (netfast would take minutes to set them up).
    :func:`measure_retrieval` isolates the mechanism on netfast's two-host simulator: the
    microseconds one round of event retrieval takes with ``K`` idle connections and one active,
    ``EventQueue.events()`` (``netfast-eventqueue``) against a poll(2)-style ``readiness()``
    call on every registered socket (``netfast-scan``), and the host stack's own per-round pass
    (``netfast-stackpoll``) for reference; these rows have section ``figure18-queue``.

Fairness and noise
------------------
Everything runs in one process tree on one (shared, noisy) machine: wrk with one thread on one
core, the server on what is left.  Each server is started fresh for its measurements, checked to
serve the 1 KiB file byte for byte before it is measured, and killed (its whole process group)
afterwards.  Compare the ratios; absolute figures are printed for the record.  A wrk run that
saw socket errors or non-2xx/3xx responses, or whose server died (``server_died``), is flagged
in its row, never dropped; a server or a tool that is missing or cannot run here becomes a row
with ``skipped`` or ``error``.

Bounds: each server start waits at most :data:`READY_TIMEOUT` s for the file to be served; every
wrk run is killed :data:`WRK_GRACE` s after its duration; opening the idle connections of one
Figure 18 point may take at most :data:`OPEN_TIMEOUT` s (the in-process set-up
:data:`QUEUE_SETUP_TIMEOUT` s).  Addresses: loopback, 198.18.31.0/24 (reserved for benchmarking)
inside the namespace of the ``tap`` section, 198.18.32.0/24 inside that of the ``netfast-kqueue``
line, and the simulator's 198.18.0.0/24 (no real interface).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import itertools
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from netfast.bench.netns import icmp_echo, tap_environment
from netfast.bench.netns import run as _run

SECTIONS = ("keepalive", "close", "large", "tap", "figure18")
#: Ratios netfast's kernel backend should reach (measured / competitor in the same run).
TARGETS = {
    "keepalive_vs_nginx": 0.5,
    "keepalive_vs_http_server": 10.0,
    "close_vs_nginx": 0.5,
    "large_vs_nginx": 0.9,
}
SMALL_FILE = "1k.bin"
SMALL_BYTES = 1024
LARGE_BYTES = 100_000_000
QUICK_LARGE_BYTES = 10_000_000
#: The large file of the ``tap`` section: netfast's TCP in Python moves tens of MB/s, not GB/s.
TAP_LARGE_BYTES = 10_000_000
#: With --quick: small enough that a one-second run over a busy TAP completes responses.
QUICK_TAP_LARGE_BYTES = 1_000_000
WORKERS = (1, 2)
#: wrk's connections per load.
SMALL_CONNECTIONS = 50
LARGE_CONNECTIONS = 4
FIG18_COUNTS = (0, 100, 500, 900, 2000, 5000)
FIG18_QUICK_COUNTS = (0, 100, 500)
FIG18_PROBES = 300
#: Interleaved rounds the probes of each Figure 18 point are split into.
FIG18_ROUNDS = 5
#: (server, poller) lines of Figure 18.
FIG18_SERVERS = (
    ("netfast", "select"),
    ("netfast", "poll"),
    ("netfast", "epoll"),
    ("nginx", "epoll"),
)
#: select(2) takes descriptors below FD_SETSIZE (1024) only; this many idle ones leave no room.
SELECT_LIMIT = 1000

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
WRK_GRACE = 30.0
OPEN_TIMEOUT = 120.0
#: Per-request socket timeout of the Figure 18 client (seconds).
REQUEST_TIMEOUT = 10.0
#: Keep-alive and idle timeouts of the Figure 18 servers: no idle connection may expire.
FIG18_IDLE_TIMEOUT = 3600

TAP_PREFIX = "198.18.31"
KERNEL_IP = f"{TAP_PREFIX}.1"
NETFAST_IP = f"{TAP_PREFIX}.2"
TAP_PORT = 80

#: The /24 (reserved for benchmarking) of the netfast backend's Figure 18 line.
FIG18_TAP_PREFIX = "198.18.32"
#: Idle connections the netfast backend's Figure 18 line goes up to at most.  Measured on a
#: loaded 2-CPU machine: 0 -> 100 idle connections took 0.4 s, 500 -> 1000 8.5 s, 1000 -> 2000
#: 35 s, 2000 -> 3000 60 s, and 3000 -> 5000 did not finish within OPEN_TIMEOUT (120 s); a
#: quieter run took 21 s for 900 -> 2000.  Each new connection costs netfast's loop more the more
#: it already holds (its TCP timer pass visits every connection each round).
FIG18_TAP_LIMIT = 2000
#: Seconds the namespace's client may take per idle-connection count, beyond opening them.
FIG18_TAP_GRACE = 60.0
#: Idle-connection counts and rounds of the in-process measurement (:func:`measure_retrieval`).
FIG18_QUEUE_COUNTS = (0, 100, 1000, 5000, 10000)
FIG18_QUEUE_QUICK_COUNTS = (0, 100, 1000)
FIG18_QUEUE_ROUNDS = 100
FIG18_QUEUE_QUICK_ROUNDS = 50

HTTP_SERVER_NOTE = (
    "no worker option: one process, a thread per connection; HTTP/1.0, so every response "
    "closes its connection"
)

_names = itertools.count()


class BenchError(Exception):
    """A server or a tool could not be run; the message becomes a row's ``error``."""


# -- wrk --


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, as its report says."""

    requests: int
    seconds: float
    bytes_read: float
    requests_per_s: float
    bytes_per_s: float
    #: avg, stdev, max and the percentiles 50, 75, 90, 99, in microseconds.
    latency_us: dict[str, float]
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0

    def problems(self) -> str | None:
        """What makes this run suspect (socket errors, bad statuses), or None."""
        bad = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non_2xx_3xx:
            bad.append(f"non-2xx/3xx {self.non_2xx_3xx}")
        return ", ".join(bad) or None


# wrk prints sizes in binary units (format_binary), times in us/ms/s/m/h (format_time_us).
_SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_TIME_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def _size(number: str, unit: str) -> float:
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown wrk size unit {unit!r}")
    return float(number) * _SIZE_UNITS[unit]


def _time_us(number: str, unit: str) -> float:
    if unit not in _TIME_US:
        raise ValueError(f"unknown wrk time unit {unit!r}")
    return float(number) * _TIME_US[unit]


def parse_wrk(text: str) -> WrkResult:
    """The figures of a ``wrk --latency`` report (wrk 4.1).

    Raises
    ------
    ValueError
        When the text holds no ``Requests/sec`` line or a figure cannot be read.
    """
    rps = re.search(rf"^Requests/sec:\s+{_NUM}\s*$", text, re.M)
    tps = re.search(rf"^Transfer/sec:\s+{_NUM}([KMGT]?B)\s*$", text, re.M)
    total = re.search(
        rf"^\s*([0-9]+) requests in {_NUM}(us|ms|s|m|h), {_NUM}([KMGT]?B) read\s*$", text, re.M
    )
    if rps is None or tps is None or total is None:
        raise ValueError("not a wrk report: no Requests/sec, Transfer/sec or total line")
    latency: dict[str, float] = {}
    stats = re.search(
        rf"^\s*Latency\s+{_NUM}(us|ms|s|m|h)\s+{_NUM}(us|ms|s|m|h)\s+{_NUM}(us|ms|s|m|h)",
        text,
        re.M,
    )
    if stats is not None:
        g = stats.groups()
        for i, name in enumerate(("avg", "stdev", "max")):
            latency[name] = _time_us(g[2 * i], g[2 * i + 1])
    for pct, number, unit in re.findall(
        rf"^\s*(50|75|90|99)%\s+{_NUM}(us|ms|s|m|h)\s*$", text, re.M
    ):
        latency[f"p{pct}"] = _time_us(number, unit)
    errors: dict[str, int] = {}
    sock = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", text
    )
    if sock is not None:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
    bad = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_time_us(total.group(2), total.group(3)) / 1e6,
        bytes_read=_size(total.group(4), total.group(5)),
        requests_per_s=float(rps.group(1)),
        bytes_per_s=_size(tps.group(1), tps.group(2)),
        latency_us=latency,
        socket_errors=errors,
        non_2xx_3xx=int(bad.group(1)) if bad else 0,
    )


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    close: bool = False,
    ns: str | None = None,
    request_timeout: float = 10.0,
) -> WrkResult:
    """Run ``wrk -t1`` for ``seconds`` (inside namespace ``ns`` when given) and parse it.

    Raises
    ------
    BenchError
        When wrk is missing, fails, overruns :data:`WRK_GRACE` or prints no report.
    """
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (scripts/system-deps.sh installs it)")
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        f"{request_timeout:g}s",
    ]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + WRK_GRACE, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + WRK_GRACE:g} s") from None
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {_tail(proc.stderr + proc.stdout)}")
    try:
        return parse_wrk(proc.stdout)
    except ValueError as exc:
        raise BenchError(f"{exc}: {_tail(proc.stdout)}") from None


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


# -- files and servers --


def large_name(nbytes: int) -> str:
    """The large file's name: ``100m.bin`` for 100 MB."""
    return f"{nbytes // 1_000_000}m.bin" if nbytes % 1_000_000 == 0 else f"{nbytes}b.bin"


def make_root(root: Path, sizes: Sequence[int]) -> dict[str, int]:
    """Write :data:`SMALL_FILE` and one random file per size in ``sizes`` into ``root``;
    return ``{name: bytes}``.  The folder is made readable to all (nginx's workers drop root)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {SMALL_FILE: SMALL_BYTES, **{large_name(n): n for n in sizes}}
    for name, nbytes in files.items():
        path = root / name
        if path.exists() and path.stat().st_size == nbytes:
            continue
        with open(path, "wb") as f:
            left = nbytes
            while left:
                chunk = min(left, 1 << 22)
                f.write(os.urandom(chunk))
                left -= chunk
        path.chmod(0o644)
    for p in (root, root.parent):
        with contextlib.suppress(OSError):
            p.chmod(0o755)
    return files


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_conf(
    tmp: Path,
    root: Path,
    port: int,
    *,
    workers: int,
    worker_connections: int = 4096,
    keepalive_timeout: int = 60,
) -> str:
    """An nginx.conf serving ``root`` on 127.0.0.1:``port`` with every file under ``tmp``."""
    return f"""daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {2 * worker_connections + 64};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    types {{ application/octet-stream bin; text/html html; text/plain txt; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout {keepalive_timeout};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};
    }}
}}
"""


@dataclass(slots=True)
class Server:
    """A running server process (and its process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    #: Whether the readiness fetch returned the small file byte for byte.
    content_ok: bool = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            return _tail(self.log.read_text(errors="replace"))
        except OSError:
            return ""


def _spawn(argv: Sequence[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # its own process group: workers go down with it
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after :data:`STOP_TIMEOUT` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no worker of its group outlives it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def fetch(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One ``GET path`` over a fresh connection (no proxy): (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _wait_ready(server: Server, host: str, port: int, expect: bytes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(
                f"{server.name} exited with {server.proc.returncode}: {server.log_tail()}"
            )
        try:
            status, body = fetch(host, port, f"/{SMALL_FILE}", timeout=1.0)
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
            continue
        if status != 200:
            raise BenchError(f"{server.name} answered {status} for /{SMALL_FILE}")
        server.content_ok = body == expect
        return
    raise BenchError(
        f"{server.name} did not serve /{SMALL_FILE} within {READY_TIMEOUT:g} s "
        f"({last}; log: {server.log_tail()})"
    )


def server_argv(
    kind: str,
    root: Path,
    tmp: Path,
    port: int,
    *,
    workers: int = 1,
    poller: str | None = None,
    max_connections: int | None = None,
    idle_timeout: float | None = None,
) -> list[str]:
    """The command line that starts server ``kind`` (``netfast``, ``nginx``, ``http.server``)
    on 127.0.0.1:``port``; for nginx the configuration is written into ``tmp``."""
    if kind == "netfast":
        argv = [
            sys.executable,
            "-m",
            "netfast",
            "httpd",
            str(root),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--access-log",
            "off",
        ]
        if poller is not None:
            argv += ["--poller", poller]
        if max_connections is not None:
            argv += ["--max-connections", str(max_connections)]
        if idle_timeout is not None:
            argv += ["--idle-timeout", f"{idle_timeout:g}"]
        return argv
    if kind == "nginx":
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if nginx is None:
            raise BenchError("nginx is not installed (scripts/system-deps.sh installs nginx-light)")
        # nginx starts closing idle keep-alive connections when fewer than 1/16 of its
        # worker_connections are free (ngx_drain_connections): leave it twice the room
        wc = 4096 if max_connections is None else max(4096, 2 * max_connections)
        keepalive = 60 if idle_timeout is None else int(idle_timeout)
        conf = tmp / "nginx.conf"
        conf.write_text(
            nginx_conf(
                tmp, root, port, workers=workers, worker_connections=wc, keepalive_timeout=keepalive
            )
        )
        return [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    if kind == "http.server":
        return [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ]
    raise ValueError(f"unknown server {kind!r}")


@contextlib.contextmanager
def running(
    kind: str,
    root: Path,
    tmp: Path,
    *,
    workers: int = 1,
    poller: str | None = None,
    max_connections: int | None = None,
    idle_timeout: float | None = None,
) -> Iterator[Server]:
    """Start server ``kind`` on a free loopback port, wait until it serves the small file, yield
    it, and always stop it (its whole process group).

    Raises
    ------
    BenchError
        When it cannot be started or does not serve within :data:`READY_TIMEOUT` s.
    """
    work = tmp / f"{kind}-{next(_names)}"
    work.mkdir(parents=True)
    port = free_port()
    argv = server_argv(
        kind,
        root,
        work,
        port,
        workers=workers,
        poller=poller,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
    )
    try:
        proc = _spawn(argv, work / "server.log", cwd=work)
    except OSError as exc:
        raise BenchError(f"cannot start {kind}: {exc}") from None
    server = Server(kind, proc, work / "server.log", f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server, "127.0.0.1", port, (root / SMALL_FILE).read_bytes())
        yield server
    finally:
        stop_process(proc)


# -- the wrk sections --


def _wrk_row(
    base: dict[str, Any],
    server: Server | None,
    url: str,
    *,
    seconds: int,
    connections: int,
    close: bool,
    ns: str | None = None,
    request_timeout: float = 10.0,
) -> dict[str, Any]:
    row = {**base, "connections": connections}
    try:
        res = run_wrk(
            url,
            seconds=seconds,
            connections=connections,
            close=close,
            ns=ns,
            request_timeout=request_timeout,
        )
    except BenchError as exc:
        return {**row, "error": str(exc)}
    row.update(asdict(res))
    flags = [why] if (why := res.problems()) is not None else []
    if server is not None and not server.alive():
        row["server_died"] = True
        flags.append(f"the server died during the run: {server.log_tail()}")
    if flags:
        row["flagged"] = "; ".join(flags)
    if res.requests == 0 and res.bytes_read == 0:
        row["error"] = "no response in the whole run"
    return row


def measure_wrk(
    sections: Sequence[str],
    root: Path,
    tmp: Path,
    *,
    seconds: int,
    workers: Sequence[int] = WORKERS,
    large_bytes: int = LARGE_BYTES,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The ``keepalive``, ``close`` and ``large`` sections (those in ``sections``): every
    server at every worker count, started once per worker count for all its loads."""
    wanted = [s for s in ("keepalive", "close", "large") if s in sections]
    rows: list[dict[str, Any]] = []
    if not wanted:
        return rows
    large = large_name(large_bytes)
    for w in workers:
        for kind in ("netfast", "nginx", "http.server"):
            loads = [s for s in wanted if not (kind == "http.server" and s == "large")]
            if not loads:
                continue
            bases = {s: _base(s, kind, w, large if s == "large" else SMALL_FILE) for s in loads}
            if shutil.which("wrk") is None:
                rows += [{**b, "skipped": "wrk is not installed"} for b in bases.values()]
                continue
            try:
                with running(kind, root, tmp, workers=w if kind != "http.server" else 1) as srv:
                    for s in loads:
                        if progress is not None:
                            progress(f"{s}: {kind}, {w} worker(s)")
                        row = _wrk_row(
                            {**bases[s], "content_ok": srv.content_ok},
                            srv,
                            f"{srv.url}/{bases[s]['file']}",
                            seconds=seconds,
                            connections=LARGE_CONNECTIONS if s == "large" else SMALL_CONNECTIONS,
                            close=s == "close",
                            request_timeout=60.0 if s == "large" else 10.0,
                        )
                        rows.append(row)
            except BenchError as exc:
                done = {(r["section"], r["server"], r["workers"]) for r in rows}
                rows += [
                    {**b, "error": str(exc)} for s, b in bases.items() if (s, kind, w) not in done
                ]
    return rows


def _base(section: str, kind: str, workers: int, file: str) -> dict[str, Any]:
    row: dict[str, Any] = {"section": section, "server": kind, "workers": workers, "file": file}
    if kind == "http.server":
        row["note"] = HTTP_SERVER_NOTE
    return row


# -- the tap section --

# The kernel side's check, run in the namespace: GET the small file, print status and SHA-256.
_FETCH_CHILD = r"""
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=60)
c.request("GET", sys.argv[3])
r = c.getresponse()
print(r.status, hashlib.sha256(r.read()).hexdigest())
"""


def _warm_up(ts: TapServer, name: str, timeout: float = 120.0) -> None:
    """Fetch ``name`` once from the namespace (errors show up in the timed run after it)."""
    argv = ["ip", "netns", "exec", ts.ns, sys.executable, "-c", _FETCH_CHILD,
            ts.server.url.split("//")[1].split(":")[0], str(TAP_PORT), f"/{name}"]  # fmt: skip
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(argv, capture_output=True, timeout=timeout, check=False)


@dataclass(slots=True)
class TapServer:
    """``netfast httpd --backend netfast`` on a TAP whose kernel side is in namespace ``ns``."""

    server: Server
    ns: str
    tap: str
    #: Whether the small file fetched from the namespace had the file's SHA-256.
    content_ok: bool


@contextlib.contextmanager
def netfast_on_tap(
    root: Path,
    tmp: Path,
    *,
    prefix: str = TAP_PREFIX,
    extra: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Iterator[TapServer]:
    """Run the netfast backend on a TAP (as root), its kernel side in a namespace made for it,
    until the block ends; the server, the namespace and the TAP are always removed.

    The TAP is created persistent in the root namespace; ``netfast httpd --backend netfast``
    attaches to it by name with address ``prefix.2/24``; then the interface moves into the
    namespace (the descriptor stays attached) and gets the kernel's address ``prefix.1/24``
    there.  ``extra`` is added to the server's command line.  Yields once netfast answers an
    ICMP echo and serves :data:`SMALL_FILE` (with status 200) to the namespace.

    Raises
    ------
    BenchError, RuntimeError, OSError, subprocess.TimeoutExpired
        When a step of the set-up fails (the message says which).
    """
    kernel_ip, netfast_ip = f"{prefix}.1", f"{prefix}.2"
    n = next(_names)
    ns, tap = f"nfhttp{os.getpid()}x{n}", f"nfh{os.getpid()}x{n}"
    work = tmp / f"tap-{n}"
    work.mkdir(parents=True)
    ns_made = tap_made = False
    proc: subprocess.Popen[bytes] | None = None
    try:
        _run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        tap_made = True
        _run("ip", "netns", "add", ns)
        ns_made = True
        argv = [
            sys.executable,
            "-m",
            "netfast",
            "httpd",
            str(root),
            "--backend",
            "netfast",
            "--tap",
            tap,
            "--addr",
            f"{netfast_ip}/24",
            "--port",
            str(TAP_PORT),
            "--access-log",
            "off",
            *extra,
        ]
        proc = _spawn(argv, work / "server.log", cwd=work)
        server = Server("netfast-tap", proc, work / "server.log", f"http://{netfast_ip}:{TAP_PORT}")
        deadline = time.monotonic() + READY_TIMEOUT
        while "serving" not in server.log.read_text(errors="replace"):
            if not server.alive() or time.monotonic() > deadline:
                raise BenchError(
                    f"netfast httpd (netfast backend) did not start: {server.log_tail()}"
                )
            time.sleep(0.05)
        _run("ip", "link", "set", "dev", tap, "netns", ns)
        for scope in ("all", "default"):  # no DAD, MLD or router solicitations
            _run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{scope}/disable_ipv6", ns=ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)
        _run("ip", "addr", "add", f"{kernel_ip}/24", "dev", tap, ns=ns)
        _run("ip", "link", "set", "dev", tap, "up", ns=ns)
        if progress is not None:
            progress("tap: waiting for netfast to answer")
        deadline = time.monotonic() + READY_TIMEOUT
        while not icmp_echo(ns, netfast_ip, timeout=1.0):
            if not server.alive() or time.monotonic() > deadline:
                raise BenchError(f"the kernel cannot reach netfast over {tap}: {server.log_tail()}")
        out = _run(
            sys.executable, "-c", _FETCH_CHILD, netfast_ip, str(TAP_PORT), f"/{SMALL_FILE}", ns=ns
        ).split()
        want = hashlib.sha256((root / SMALL_FILE).read_bytes()).hexdigest()
        if not out or out[0] != "200":
            raise BenchError(f"netfast over the TAP answered {' '.join(out) or 'nothing'}")
        yield TapServer(server, ns, tap, content_ok=len(out) > 1 and out[1] == want)
    finally:
        if proc is not None:
            stop_process(proc)
        if ns_made:
            _run("ip", "link", "delete", tap, ns=ns, check=False)
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _run("ip", "netns", "delete", ns)
        if tap_made:  # still in the root namespace when the move did not happen
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _run("ip", "link", "delete", tap, check=False)


def measure_tap(
    root: Path,
    tmp: Path,
    *,
    seconds: int,
    large_bytes: int = TAP_LARGE_BYTES,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The ``tap`` section: the netfast backend on a TAP (:func:`netfast_on_tap`), wrk in the
    namespace on the other side."""
    loads = (
        ("tap-keepalive", SMALL_FILE, SMALL_CONNECTIONS),
        ("tap-large", large_name(large_bytes), LARGE_CONNECTIONS),
    )
    bases: list[dict[str, Any]] = [
        {
            "section": "tap",
            "load": load,
            "server": "netfast-tap",
            "workers": 1,
            "file": f,
            "connections": c,
        }
        for load, f, c in loads
    ]
    reason = tap_environment() or (None if shutil.which("wrk") else "wrk is not installed")
    if reason is not None:
        return [{**b, "skipped": reason} for b in bases]
    rows: list[dict[str, Any]] = []
    try:
        with netfast_on_tap(root, tmp, progress=progress) as ts:
            # One whole download of each file first: the first large send compiles the
            # segmentation kernels (seconds with a cold numba cache), which must not fall
            # inside a timed run.
            for b in bases:
                _warm_up(ts, b["file"])
            for b in bases:
                if progress is not None:
                    progress(f"tap: {b['load']}")
                rows.append(
                    _wrk_row(
                        {**b, "content_ok": ts.content_ok},
                        ts.server,
                        f"{ts.server.url}/{b['file']}",
                        seconds=seconds,
                        connections=b["connections"],
                        close=False,
                        ns=ts.ns,
                        request_timeout=60.0,
                    )
                )
    except (BenchError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        done = {r["load"] for r in rows}
        rows += [{**b, "error": str(exc)} for b in bases if b["load"] not in done]
    return rows


# -- Figure 18 --

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


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of an ascending sequence."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


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


# -- Figure 18, the netfast backend over a TAP --

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


# -- Figure 18's mechanism, in process --

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


def figure18_label(row: dict[str, Any]) -> str:
    """The name of a Figure 18 row's line: ``netfast poll`` (the kernel backend's pollers),
    ``nginx epoll``, or the row's ``line`` (``netfast-kqueue``, ``netfast-eventqueue`` ...)."""
    return str(row.get("line") or f"{row['server']} {row['poller']}")


def plot_figure18(rows: Sequence[dict[str, Any]], path: Path) -> str | None:
    """Write the Figure 18 plot as a PNG: median response time against idle connections, one
    line per server and poller (the netfast backend's over the TAP among them), and, when
    measured, a second panel with the in-process cost of one event retrieval round
    (:func:`measure_retrieval`); both on a log scale.  Return None, or why no plot was
    written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'netfast[bench]')"
    panels: dict[str, dict[str, list[tuple[int, float]]]] = {"figure18": {}, "figure18-queue": {}}
    for r in rows:
        if r.get("section") in panels and r.get("median_us", 0) > 0:
            label = figure18_label(r)
            if r["section"] == "figure18":
                if r["server"] == "nginx":
                    label = "nginx (epoll)"
                elif r["server"] == "netfast":
                    label += " (kernel backend)"
                else:
                    label += " (netfast backend, TAP)"
            panels[r["section"]].setdefault(label, []).append((r["idle"], r["median_us"]))
    if not panels["figure18"] and not panels["figure18-queue"]:
        return "no Figure 18 point was measured"
    shown = [name for name, lines in panels.items() if lines]
    fig, axes = plt.subplots(1, len(shown), figsize=(7 * len(shown), 4.8), squeeze=False)
    titles = {
        "figure18": (
            "Figure 18: response time, poll/select vs an event queue",
            "median response time (µs, log scale)",
        ),
        "figure18-queue": (
            "netfast in process: event retrieval per round, one connection active",
            "median µs per round (log scale)",
        ),
    }
    try:
        for ax, name in zip(axes[0], shown, strict=True):
            for label, pts in panels[name].items():
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            ax.set_xlabel(
                "idle keep-alive connections" if name == "figure18" else "idle connections"
            )
            ax.set_title(titles[name][0], fontsize=10)
            ax.set_ylabel(titles[name][1])
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=110)
    finally:
        plt.close(fig)
    return None


# -- targets, tables, environment --


def _ok(row: dict[str, Any] | None) -> bool:
    return row is not None and "error" not in row and "skipped" not in row


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured ratio and verdict (``met`` None when not measurable)."""
    index = {
        (r["section"], r["server"], r["workers"]): r
        for r in rows
        if r["section"] in ("keepalive", "close", "large")
    }
    plan = (
        ("keepalive", "nginx", "requests_per_s", "keepalive_vs_nginx"),
        ("keepalive", "http.server", "requests_per_s", "keepalive_vs_http_server"),
        ("close", "nginx", "requests_per_s", "close_vs_nginx"),
        ("large", "nginx", "bytes_per_s", "large_vs_nginx"),
    )
    workers = sorted(
        {r["workers"] for r in rows if r["section"] in ("keepalive", "close", "large")}
    )
    out: list[dict[str, Any]] = []
    for section, other, metric, key in plan:
        for w in workers:
            ours = index.get((section, "netfast", w))
            theirs = index.get((section, other, w))
            if ours is None and theirs is None:
                continue
            goal = TARGETS[key]
            t: dict[str, Any] = {
                "target": key,
                "section": section,
                "workers": w,
                "metric": metric,
                "goal": goal,
                "ratio": None,
                "met": None,
            }
            if _ok(ours) and _ok(theirs) and theirs[metric] > 0:  # type: ignore[index]
                t["ratio"] = ours[metric] / theirs[metric]  # type: ignore[index]
                t["met"] = t["ratio"] >= goal
                t["netfast"], t[other] = ours[metric], theirs[metric]  # type: ignore[index]
                flags = [
                    f"{n}: {r['flagged']}"
                    for n, r in (("netfast", ours), (other, theirs))
                    if r is not None and r.get("flagged")
                ]
                if flags:
                    t["flagged"] = "; ".join(flags)
            else:
                t["why"] = "not measured: " + "; ".join(
                    f"{n} {(r or {}).get('error') or (r or {}).get('skipped') or 'missing'}"
                    for n, r in (("netfast", ours), (other, theirs))
                    if not _ok(r)
                )
            out.append(t)
    return out


def _version(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return None
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else None


def environment() -> dict[str, Any]:
    """The machine and the tools' versions, for the JSON."""
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return {
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "nginx": _version([nginx, "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "root": os.geteuid() == 0,
    }


def _status(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"[yellow]skipped: {row['skipped']}[/]"
    if "error" in row:
        return f"[red]error: {row['error']}[/]"
    if row.get("flagged"):
        return f"[red]flagged: {row['flagged']}[/]"
    if row.get("content_ok") is False:
        return "[red]content differs from the file[/]"
    return "ok"


def _lat(row: dict[str, Any], key: str) -> str:
    v = row.get("latency_us", {}).get(key)
    return "-" if v is None else f"{v / 1000:.2f}"


_TITLES = {
    "keepalive": f"1 KiB file, keep-alive (wrk -t1 -c{SMALL_CONNECTIONS})",
    "close": f"1 KiB file, a new connection per request (wrk -t1 -c{SMALL_CONNECTIONS} "
    "-H 'Connection: close')",
    "large": f"large file (wrk -t1 -c{LARGE_CONNECTIONS})",
}


def wrk_table(rows: Sequence[dict[str, Any]], section: str) -> Table:
    """The rows of one wrk section."""
    table = Table(title=_TITLES[section])
    for col in (
        "workers",
        "server",
        "file",
        "req/s",
        "MB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "status",
        "note",
    ):
        table.add_column(
            col, justify="left" if col in ("server", "file", "status", "note") else "right"
        )
    for r in rows:
        if r["section"] != section:
            continue
        ran = "requests_per_s" in r
        table.add_row(
            str(r["workers"]),
            r["server"],
            r["file"],
            f"{r['requests_per_s']:,.0f}" if ran else "-",
            f"{r['bytes_per_s'] / 1e6:,.1f}" if ran else "-",
            _lat(r, "p50"),
            _lat(r, "p90"),
            _lat(r, "p99"),
            _status(r),
            r.get("note", ""),
        )
    return table


def targets_table(tgts: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="targets: netfast httpd (kernel backend) / competitor, same run")
    for col in ("target", "workers", "netfast", "competitor", "ratio", "goal", "met"):
        table.add_column(col, justify="left" if col in ("target", "met") else "right")
    for t in tgts:
        unit = 1e6 if t["metric"] == "bytes_per_s" else 1.0
        fmt = "{:,.1f} MB/s" if unit > 1 else "{:,.0f} req/s"
        other = next((k for k in ("nginx", "http.server") if k in t), None)
        if t["met"] is None:
            met = f"[yellow]n/a ({t.get('why', '')})[/]"
        else:
            met = "[green]met[/]" if t["met"] else "[red]missed[/]"
            if t.get("flagged"):
                met += f" [red](flagged: {t['flagged']})[/]"
        table.add_row(
            t["target"],
            str(t["workers"]),
            fmt.format(t["netfast"] / unit) if "netfast" in t else "-",
            f"{other} {fmt.format(t[other] / unit)}" if other else "-",
            "-" if t["ratio"] is None else f"{t['ratio']:.2f}x",
            f">= {t['goal']:g}x",
            met,
        )
    return table


def tap_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The netfast backend over the TAP, with nginx's loopback figures of this run."""
    table = Table(title="netfast backend over a TAP (wrk in a namespace; no target)")
    for col in (
        "load",
        "file",
        "conns",
        "req/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "nginx loopback",
        "status",
    ):
        table.add_column(col, justify="left" if col in ("load", "file", "status") else "right")
    ref = {
        r["section"]: r
        for r in rows
        if r["server"] == "nginx" and r.get("workers") == 1 and "requests_per_s" in r
    }
    for r in rows:
        if r["section"] != "tap":
            continue
        ran = "requests_per_s" in r
        other = ref.get("keepalive" if r["load"] == "tap-keepalive" else "large")
        if other is None:
            ref_text = "-"
        elif r["load"] == "tap-keepalive":
            ref_text = f"{other['requests_per_s']:,.0f} req/s"
        else:
            ref_text = f"{other['bytes_per_s'] / 1e6:,.1f} MB/s ({other['file']})"
        table.add_row(
            r["load"],
            r["file"],
            str(r["connections"]),
            f"{r['requests_per_s']:,.0f}" if ran else "-",
            f"{r['bytes_per_s'] / 1e6:,.1f}" if ran else "-",
            _lat(r, "p50"),
            _lat(r, "p99"),
            ref_text,
            _status(r),
        )
    return table


def figure18_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Median / p99 response time (µs) per idle-connection count, one column per line."""
    fig = [r for r in rows if r["section"] == "figure18"]
    lines = list(dict.fromkeys(figure18_label(r) for r in fig))
    table = Table(
        title="Figure 18: response time (median / p99 µs) against idle connections, one worker "
        "(netfast poller: kernel backend on loopback; netfast-kqueue: netfast backend over a TAP)"
    )
    table.add_column("idle", justify="right")
    for label in lines:
        table.add_column(label, justify="right")
    cells: dict[int, dict[str, dict[str, Any]]] = {}
    for r in fig:
        cells.setdefault(r["idle"], {})[figure18_label(r)] = r
    notes: dict[str, int] = {}
    for k in sorted(cells):
        table.add_row(str(k), *(_cell(cells[k].get(label), label, notes) for label in lines))
    if notes:
        table.caption = "\n".join(f"[{n}] {text}" for text, n in notes.items())
    return table


def _cell(cell: dict[str, Any] | None, label: str, notes: dict[str, int]) -> str:
    if cell is None:
        return "-"
    if "median_us" in cell:
        text = f"{cell['median_us']:,.0f} / {cell['p99_us']:,.0f}"
        return text if not cell.get("flagged") else f"[red]{text} ({cell['flagged']})[/]"
    kind = "skipped" if "skipped" in cell else "error"
    reason = cell.get("skipped") or cell.get("error")
    n = notes.setdefault(f"{label}: {reason}", len(notes) + 1)
    colour = "yellow" if kind == "skipped" else "red"
    return f"[{colour}]{kind} [{n}][/]"


def retrieval_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The in-process rows (:func:`measure_retrieval`): µs per round and readiness checks per
    round of the event queue and of the poll-style scan, and the host stack's own pass."""
    queue = [r for r in rows if r["section"] == "figure18-queue"]
    lines = list(dict.fromkeys(figure18_label(r) for r in queue))
    active = next((r["active"] for r in queue), 1)
    table = Table(
        title="Figure 18's mechanism in netfast, in process (two simulated hosts): µs per event "
        f"retrieval round (median / p99), {active} connection(s) active, checks = readiness() "
        "calls per round"
    )
    with_checks = {figure18_label(r) for r in queue if r.get("checks_per_round") is not None}
    table.add_column("idle", justify="right")
    table.add_column("registered", justify="right")
    for label in lines:
        table.add_column(label, justify="right")
        if label in with_checks:
            table.add_column("checks", justify="right")
    cells: dict[int, dict[str, dict[str, Any]]] = {}
    for r in queue:
        cells.setdefault(r["idle"], {})[figure18_label(r)] = r
    notes: dict[str, int] = {}
    for k in sorted(cells):
        registered = next((c["registered"] for c in cells[k].values() if "registered" in c), None)
        out = [str(k), "-" if registered is None else str(registered)]
        for label in lines:
            cell = cells[k].get(label)
            out.append(_cell(cell, label, notes))
            if label in with_checks:
                c = (cell or {}).get("checks_per_round")
                out.append("-" if c is None else f"{c:,.1f}")
        table.add_row(*out)
    if notes:
        table.caption = "\n".join(f"[{n}] {text}" for text, n in notes.items())
    return table


def figure18_answer(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per line of the figure (and of the in-process measurement): its median at the
    smallest and at the largest count measured."""
    out = []
    for section, unit in (("figure18", "µs"), ("figure18-queue", "µs/round")):
        ours = [r for r in rows if r["section"] == section]
        for label in dict.fromkeys(figure18_label(r) for r in ours):
            pts = sorted(
                (r["idle"], r["median_us"])
                for r in ours
                if figure18_label(r) == label and "median_us" in r
            )
            if len(pts) >= 2 and pts[0][1] > 0:
                (k0, m0), (k1, m1) = pts[0], pts[-1]
                out.append(
                    f"{label}: median {m0:,.1f} {unit} at {k0} idle -> {m1:,.1f} {unit} at "
                    f"{k1} idle ({m1 / m0:.2f}x)"
                )
    return out
