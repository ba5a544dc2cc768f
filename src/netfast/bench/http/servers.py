"""The files served and the servers that serve them: the document root, nginx's configuration,
the command lines of ``netfast httpd``, nginx and ``http.server``, and :func:`running`, which
starts one on a free loopback port, waits until it serves the small file and always stops its
whole process group."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from netfast.bench.http.common import (
    READY_TIMEOUT,
    SMALL_BYTES,
    SMALL_FILE,
    STOP_TIMEOUT,
    BenchError,
    _names,
    _tail,
)


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
