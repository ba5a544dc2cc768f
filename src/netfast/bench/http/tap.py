"""The netfast backend on a TAP: :func:`netfast_on_tap` runs ``netfast httpd --backend netfast``
with the TAP's kernel side in a network namespace made for it, and :func:`measure_tap` is the
``tap`` section (wrk in that namespace)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfast.bench.http.common import (
    LARGE_CONNECTIONS,
    READY_TIMEOUT,
    SMALL_CONNECTIONS,
    SMALL_FILE,
    TAP_LARGE_BYTES,
    TAP_PORT,
    TAP_PREFIX,
    BenchError,
    _names,
)
from netfast.bench.http.loopback import _wrk_row
from netfast.bench.http.servers import Server, _spawn, large_name, stop_process
from netfast.bench.netns import icmp_echo, tap_environment
from netfast.bench.netns import run as _run

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
