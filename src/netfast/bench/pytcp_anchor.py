"""PyTCP as the Python anchor for ``netfast bench tcp``: its bulk TCP throughput against the
Linux kernel over a TAP, and against itself over an in-memory link.

PyTCP (the ``pytcp`` package, https://github.com/ccie18643/PyTCP) is a TCP/IP stack written in
Python.  It is measured the way netfast is: one bulk transfer of ``nbytes`` random bytes, the
receiver's SHA-256 compared with the sender's, and the rate counted at the receiver from the
moment the connection is established (``accept`` returns) to the arrival of the last byte.

How PyTCP runs
--------------
PyTCP 2.7 (the last release for Python < 3.12; 3.x needs Python >= 3.14) is a set of
module-global singletons (``pytcp.lib.stack``: timer, RX ring, TX ring, ARP and ND caches, packet
handler) started as threads over one file descriptor on which it reads and writes whole Ethernet
frames -- normally a TAP it attaches with ``TUNSETIFF``.  Its configuration is module globals
too (``pytcp.config``), so one process holds exactly one stack: each PyTCP here runs in a child
process, ``python -O`` (PyTCP's logging sits behind ``__debug__``; ``-O`` is its fast mode), with
logging off, DHCP off (a static address is given) and IPv6 off (no link-local address, DAD,
router solicitation or MLD).  At start it probes its IPv4 address with three ARP probes over
3-6 s (not timed); the peer's MAC is put in its ARP cache and the kernel holds a permanent
neighbour entry for PyTCP, so no ARP happens during a measurement.

Paths
-----
``linux-tap``
    A network namespace made for the run (``nfpt<pid>x<n>``, always deleted afterwards) holding
    only ``lo`` and a TAP ``pytcp0`` whose kernel side has 198.18.5.1/24; PyTCP, started inside
    the namespace with ``ip netns exec``, attaches to the TAP as 198.18.5.2/24.  The Linux peer
    is a plain-socket Python child in the same namespace.  The namespace has no other interface,
    so no frame can reach any other network; only 198.18.0.0/15 (reserved for benchmarking) is
    used.
``memory``
    Two PyTCP children (198.18.6.1 and 198.18.6.2) joined by an ``AF_UNIX`` datagram socketpair
    that stands in for the TAP (one datagram per frame, as a TAP gives).  No namespace, TAP or
    root is needed: PyTCP's ``TcpIpStack`` constructor, which always opens ``/dev/net/tun``, is
    bypassed and its ``start()`` is run over the socketpair's descriptor.

What bounds PyTCP's rate (read from its source, 2.7.6)
-------------------------------------------------------
- It sends at most one segment per timer tick, and the timer thread ticks every ``sleep(1 ms)``.
- It acknowledges received data only from a 100 ms delayed-ACK timer and advertises a fixed
  65535-byte window without window scaling: at most 64 KiB per 100 ms towards it.
- Sequence numbers are plain integers, not modulo 2**32: a transfer whose sequence space
  crosses 2**32 (random ISNs; about ``nbytes / 2**32`` of the runs) stalls.  Such a run
  ends in ``{"error": ...}`` after ``timeout``, as does any other stall.

Results
-------
``{"impl": "pytcp", "path", "direction", "bytes", "seconds", "mbit_s", "sha256_ok"}`` on
success; ``{"skipped": reason}`` when PyTCP cannot run here (not installed, not root, no
``/dev/net/tun`` or ``ip``); ``{"impl", "path", "direction", "error": reason}`` when it ran but
did not finish (stall, timeout, crash).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from netfast.bench.netns import run as _run
from netfast.bench.netns import tap_environment

#: The kernel side of the TAP and PyTCP's address on it (198.18.0.0/15 only).
LINUX_IP = "198.18.5.1"
PYTCP_IP = "198.18.5.2"
PREFIX_LEN = 24
#: The two PyTCP stacks of the in-memory path.
MEMORY_IPS = ("198.18.6.1", "198.18.6.2")
#: Locally administered MACs, fixed so each side can be told the other's in advance.
LINUX_MAC = "02:00:00:00:05:01"
PYTCP_MAC = "02:00:00:00:05:02"
MEMORY_MACS = ("02:00:00:00:06:01", "02:00:00:00:06:02")
TAP_NAME = "pytcp0"
PORT = 5201
DIRECTIONS = ("pytcp_to_linux", "linux_to_pytcp")
#: How long a child may take to exit once told to, before it is killed.
EXIT_GRACE = 3.0

_names = itertools.count()

# A PyTCP stack in a child process; argv[1] is a JSON object (see _pytcp_argv).  Prints
# "NFREADY" once it listens (receiver) and "NFRESULT <json>" when done, then waits for its
# stdin to close.  os._exit because PyTCP's threads are not daemons.
_PYTCP_CHILD = """\
import hashlib, json, os, sys, time
cfg = json.loads(sys.argv[1])
import pytcp
from pytcp import config
config.LOG_CHANEL = set()
from pytcp.lib import stack
from pytcp.lib import socket as psocket
from pytcp.lib.ip4_address import Ip4Address, Ip4Host
from pytcp.lib.mac_address import MacAddress

def out(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()

if cfg["tap"] is not None:
    tcpip = pytcp.TcpIpStack(
        interface=cfg["tap"], mac_address=cfg["mac"], ip4_address=cfg["cidr"]
    )
else:
    # An already open descriptor stands in for the TAP: the constructor would open one.
    tcpip = pytcp.TcpIpStack.__new__(pytcp.TcpIpStack)
    stack.packet_handler.assign_mac_address(mac_unicast=MacAddress(cfg["mac"]))
    stack.packet_handler.assign_ip4_address(Ip4Host(cfg["cidr"]))
    config.IP4_SUPPORT = True
    tcpip.tap = cfg["fd"]
config.IP4_HOST_DHCP = False
config.IP6_SUPPORT = False
config.IP6_LLA_AUTOCONFIG = False
config.IP6_GUA_AUTOCONFIG = False
tcpip.start()
stack.arp_cache.add_entry(Ip4Address(cfg["peer_ip"]), MacAddress(cfg["peer_mac"]))
nbytes = cfg["nbytes"]
result = {}
if cfg["role"] == "recv":
    s = psocket.socket(psocket.AF_INET4, psocket.SOCK_STREAM)
    s.bind((cfg["ip"], cfg["port"]))
    s.listen()
    out("NFREADY")
    conn, _ = s.accept()
    t0 = time.perf_counter()
    digest, got = hashlib.sha256(), 0
    while got < nbytes:
        chunk = conn.recv()
        if not chunk:
            break
        digest.update(chunk)
        got += len(chunk)
    result = {"bytes": got, "seconds": time.perf_counter() - t0, "sha256": digest.hexdigest()}
else:
    data = os.urandom(nbytes)
    s = psocket.socket(psocket.AF_INET4, psocket.SOCK_STREAM)
    s.connect((cfg["peer_ip"], cfg["port"]))
    s.send(data)
    s.close()
    result = {"bytes": nbytes, "sha256": hashlib.sha256(data).hexdigest()}
out("NFRESULT " + json.dumps(result))
sys.stdin.read()
os._exit(0)
"""

# The Linux kernel's side: plain sockets, same protocol as the PyTCP child.
_LINUX_CHILD = """\
import hashlib, json, os, socket, sys, time
cfg = json.loads(sys.argv[1])
nbytes = cfg["nbytes"]
def out(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
if cfg["role"] == "recv":
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((cfg["ip"], cfg["port"]))
    ls.listen(1)
    out("NFREADY")
    conn, _ = ls.accept()
    t0 = time.perf_counter()
    digest, got = hashlib.sha256(), 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while got < nbytes:
        n = conn.recv_into(view, min(len(buf), nbytes - got))
        if not n:
            break
        digest.update(view[:n])
        got += n
    result = {"bytes": got, "seconds": time.perf_counter() - t0, "sha256": digest.hexdigest()}
else:
    data = os.urandom(nbytes)
    conn = socket.create_connection((cfg["peer_ip"], cfg["port"]), timeout=30)
    conn.settimeout(None)
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    result = {"bytes": nbytes, "sha256": hashlib.sha256(data).hexdigest()}
out("NFRESULT " + json.dumps(result))
sys.stdin.read()
"""


# -- environment -------------------------------------------------------------------------------


def pytcp_version() -> str | None:
    """The installed PyTCP's version, or None when it is not installed."""
    if importlib.util.find_spec("pytcp") is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytcp")
    except PackageNotFoundError:
        return "unknown"


def check_environment(*, tap: bool = True) -> str | None:
    """None when PyTCP can be measured here, else the reason it cannot.

    Parameters
    ----------
    tap
        Whether the TAP path is wanted (it needs root, ``/dev/net/tun`` and ``ip``); the
        in-memory path needs only PyTCP itself.
    """
    if pytcp_version() is None:
        return "pytcp is not installed (pip install pytcp)"
    return tap_environment() if tap else None


# -- namespace plumbing ------------------------------------------------------------------------


class _TapNamespace:
    """A namespace holding ``lo`` and a persistent TAP with the kernel's address; deleted (TAP
    first) by :meth:`close`, which ignores what is already gone."""

    def __init__(self) -> None:
        self.name = f"nfpt{os.getpid()}x{next(_names)}"
        self._made = False
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        ns = self.name
        _run("ip", "netns", "add", ns)
        self._made = True
        for scope in ("all", "default"):  # no router solicitations, DAD or MLD from the kernel
            _run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{scope}/disable_ipv6", ns=ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)
        _run("ip", "tuntap", "add", "dev", TAP_NAME, "mode", "tap", ns=ns)
        _run("ip", "link", "set", "dev", TAP_NAME, "address", LINUX_MAC, ns=ns)
        _run("ip", "addr", "add", f"{LINUX_IP}/{PREFIX_LEN}", "dev", TAP_NAME, ns=ns)
        _run("ip", "link", "set", "dev", TAP_NAME, "up", ns=ns)
        _run("ip", "neigh", "replace", PYTCP_IP, "lladdr", PYTCP_MAC, "dev", TAP_NAME,
             "nud", "permanent", ns=ns)  # fmt: skip

    def close(self) -> None:
        if not self._made:
            return
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            _run("ip", "link", "delete", TAP_NAME, ns=self.name)
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            _run("ip", "netns", "delete", self.name)
        self._made = False


# -- children ----------------------------------------------------------------------------------


class _Child:
    """One child process speaking the NFREADY / NFRESULT line protocol on its stdout."""

    def __init__(
        self, argv: list[str], *, pass_fds: tuple[int, ...] = (), label: str = "child"
    ) -> None:
        self.label = label
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Closed by stop(): the file outlives this call.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            pass_fds=pass_fds,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def expect(self, tag: str, deadline: float) -> str:
        """The rest of the first stdout line starting with ``tag``; RuntimeError on exit or
        when ``deadline`` (monotonic) passes first."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.label}: no {tag} before the deadline")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.label} exited early: {self.stderr_tail()}")
            if line.startswith(tag):
                return line[len(tag) :].strip()

    def stderr_tail(self, limit: int = 400) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-limit:].strip()
        return ""

    def stop(self) -> None:
        """Tell the child to exit (close its stdin); kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(EXIT_GRACE)
        with contextlib.suppress(OSError):
            self._stderr.close()


def _pytcp_argv(cfg: dict[str, Any], ns: str | None) -> list[str]:
    base = [sys.executable, "-O", "-c", _PYTCP_CHILD, json.dumps(cfg)]
    return ["ip", "netns", "exec", ns, *base] if ns else base


def _linux_argv(cfg: dict[str, Any], ns: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", _LINUX_CHILD, json.dumps(cfg)]


def _transfer(
    receiver: _Child, start_sender: Any, deadline: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for the receiver to listen, start the sender, collect both results."""
    receiver.expect("NFREADY", deadline)
    sender: _Child = start_sender()
    got = json.loads(receiver.expect("NFRESULT", deadline))
    sent = json.loads(sender.expect("NFRESULT", deadline))
    return got, sent


def _figures(
    base: dict[str, Any], nbytes: int, got: dict[str, Any], sent: dict[str, Any]
) -> dict[str, Any]:
    seconds = float(got["seconds"])
    received = int(got["bytes"])
    return {
        **base,
        "bytes": received,
        "seconds": seconds,
        "mbit_s": received * 8 / seconds / 1e6 if seconds > 0 else 0.0,
        "sha256_ok": received == nbytes and got["sha256"] == sent["sha256"],
    }


def _check_args(nbytes: int, timeout: float) -> None:
    if nbytes <= 0:
        raise ValueError(f"nbytes = {nbytes}: must be positive")
    if timeout <= 0:
        raise ValueError(f"timeout = {timeout}: must be positive")


# -- measurements ------------------------------------------------------------------------------


def measure_pytcp_linux(
    nbytes: int = 20_000_000, direction: str = "pytcp_to_linux", timeout: float = 60.0
) -> dict[str, Any]:
    """Bulk TCP transfer between PyTCP and the Linux kernel over a TAP in a private namespace.

    Parameters
    ----------
    nbytes
        Bytes to transfer (random, checked with SHA-256 at both ends).
    direction
        ``"pytcp_to_linux"`` (PyTCP connects and sends, a kernel socket receives) or
        ``"linux_to_pytcp"`` (the kernel connects and sends, PyTCP receives).
    timeout
        Seconds for the whole run, PyTCP's 3-6 s start-up included; children still running
        then are killed and the namespace deleted.

    Returns
    -------
    dict
        ``{"impl": "pytcp", "path": "linux-tap", "direction", "bytes", "seconds", "mbit_s",
        "sha256_ok"}``, ``{"skipped": reason}`` or ``{..., "error": reason}`` (see the module
        docstring).  ``seconds`` runs at the receiver from ``accept`` to the last byte.

    Raises
    ------
    ValueError
        On an unknown ``direction`` or a non-positive ``nbytes`` or ``timeout``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction = {direction!r}: must be one of {DIRECTIONS}")
    _check_args(nbytes, timeout)
    if (reason := check_environment(tap=True)) is not None:
        return {"skipped": reason}
    deadline = time.monotonic() + timeout
    base: dict[str, Any] = {"impl": "pytcp", "path": "linux-tap", "direction": direction}
    pytcp_recv = direction == "linux_to_pytcp"
    common = {"port": PORT, "nbytes": nbytes}
    pytcp_cfg = {
        **common,
        "role": "recv" if pytcp_recv else "send",
        "tap": TAP_NAME,
        "fd": None,
        "mac": PYTCP_MAC,
        "cidr": f"{PYTCP_IP}/{PREFIX_LEN}",
        "ip": PYTCP_IP,
        "peer_ip": LINUX_IP,
        "peer_mac": LINUX_MAC,
    }
    linux_cfg = {
        **common,
        "role": "send" if pytcp_recv else "recv",
        "ip": LINUX_IP,
        "peer_ip": PYTCP_IP,
    }
    children: list[_Child] = []
    netns: _TapNamespace | None = None
    try:
        netns = _TapNamespace()
        ns = netns.name

        def start(argv: list[str], label: str) -> _Child:
            child = _Child(argv, label=label)
            children.append(child)
            return child

        if pytcp_recv:
            receiver = start(_pytcp_argv(pytcp_cfg, ns), "pytcp receiver")
            got, sent = _transfer(
                receiver, lambda: start(_linux_argv(linux_cfg, ns), "linux sender"), deadline
            )
        else:
            receiver = start(_linux_argv(linux_cfg, ns), "linux receiver")
            got, sent = _transfer(
                receiver, lambda: start(_pytcp_argv(pytcp_cfg, ns), "pytcp sender"), deadline
            )
        return _figures(base, nbytes, got, sent)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        return {**base, "error": str(exc)}
    finally:
        for child in reversed(children):
            child.stop()
        if netns is not None:
            netns.close()


def measure_pytcp_memory(nbytes: int = 20_000_000, timeout: float = 90.0) -> dict[str, Any]:
    """Bulk TCP transfer PyTCP -> PyTCP over an in-memory link (an ``AF_UNIX`` datagram
    socketpair standing in for a TAP), each stack in its own child process.

    PyTCP keeps its whole stack in module globals, so two stacks cannot share a process; two
    processes joined by a socketpair is the nearest thing to netfast's in-memory link.

    Parameters
    ----------
    nbytes
        Bytes to transfer (random, checked with SHA-256 at both ends).
    timeout
        Seconds for the whole run, start-up included.

    Returns
    -------
    dict
        ``{"impl": "pytcp", "path": "memory", "direction": "pytcp_to_pytcp", "bytes",
        "seconds", "mbit_s", "sha256_ok"}``, ``{"skipped": reason}`` or ``{..., "error"}``.

    Raises
    ------
    ValueError
        On a non-positive ``nbytes`` or ``timeout``.
    """
    _check_args(nbytes, timeout)
    if (reason := check_environment(tap=False)) is not None:
        return {"skipped": reason}
    deadline = time.monotonic() + timeout
    base: dict[str, Any] = {"impl": "pytcp", "path": "memory", "direction": "pytcp_to_pytcp"}
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    children: list[_Child] = []
    try:
        cfgs = []
        for me, peer, sock, role in ((0, 1, left, "send"), (1, 0, right, "recv")):
            cfgs.append(
                {
                    "port": PORT,
                    "nbytes": nbytes,
                    "role": role,
                    "tap": None,
                    "fd": sock.fileno(),
                    "mac": MEMORY_MACS[me],
                    "cidr": f"{MEMORY_IPS[me]}/{PREFIX_LEN}",
                    "ip": MEMORY_IPS[me],
                    "peer_ip": MEMORY_IPS[peer],
                    "peer_mac": MEMORY_MACS[peer],
                }
            )

        def start(cfg: dict[str, Any], label: str) -> _Child:
            child = _Child(_pytcp_argv(cfg, None), pass_fds=(cfg["fd"],), label=label)
            children.append(child)
            return child

        receiver = start(cfgs[1], "pytcp receiver")
        got, sent = _transfer(receiver, lambda: start(cfgs[0], "pytcp sender"), deadline)
        return _figures(base, nbytes, got, sent)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        return {**base, "error": str(exc)}
    finally:
        for child in reversed(children):
            child.stop()
        left.close()
        right.close()


def main() -> None:
    """Print both TAP directions and the in-memory figure as JSON lines (for manual runs:
    ``python -m netfast.bench.pytcp_anchor [nbytes]``)."""
    nbytes = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
    for direction in DIRECTIONS:
        print(json.dumps(measure_pytcp_linux(nbytes, direction)), flush=True)
    print(json.dumps(measure_pytcp_memory(nbytes)), flush=True)


if __name__ == "__main__":
    main()
