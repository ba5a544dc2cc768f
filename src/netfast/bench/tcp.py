"""The TCP benchmark (``netfast bench tcp``): the TCP issue's figures, each printed next to its
target and next to a competitor measured in the same run.  This module measures; the table and
the answers drawn from its rows are :mod:`netfast.bench.tcp_report`.

Sections
--------
``reass``
    :func:`netfast.bench.tcp_reass.run_reass_bench`: netfast's coalescing reassembly queue
    against the 4.4BSD linked list and PyTCP's dict (the paper's "TCP Reassembly" section).
    Target: at least :data:`REASS_TARGET` times the linked list's segments/s under the
    adversarial arrivals, with bounded memory.
``memory``
    :func:`measure_memory`: one bulk transfer netfast -> netfast over an in-memory wire
    (:class:`netfast.stack.sim.HostPair`, no impairment), at MTU 1500 and at MTU 65000 (what a
    loopback interface allows), with offloads ``none`` and ``software``.  Both stacks run in
    this process on one core, so the figure is the CPU cost of both ends together.  Target:
    :data:`MEMORY_TARGET_MBIT` Mbit/s.
``tap``
    :func:`measure_tap`: bulk transfers between netfast and the Linux kernel over a TAP, both
    directions, with each of the :data:`OFFLOADS`.  Needs root.  Target:
    :data:`TAP_TARGET_MBIT` Mbit/s.

The paper's question of what TSO is worth is answered as the ratio of each offload setting to
``none``, where segmentation happens:

``none``
    The TCP builds every wire-sized segment and takes every received one by itself
    (``HostConfig(gso=False, rx_coalesce=False)``).
``software``
    netfast's defaults: the TCP hands down 64 KiB segments, cut by a compiled pass right before
    the link (GSO), and a compiled pass merges each received batch's runs before the TCP (GRO)
    -- :mod:`netfast.link.offload`.
``tap``
    As ``software``, and the TAP exchanges a virtio-net header: the kernel cuts netfast's large
    segments (TSO) and hands over its own large segments whole.
``cc``
    :func:`netfast.bench.tcp_cc.run_cc_bench`: CUBIC against NewReno through seeded loss on
    three simulated paths (goodput in simulated time, medians over seeds).
``pytcp``
    The anchor: PyTCP (:mod:`netfast.bench.pytcp_anchor`) on the same paths -- PyTCP to PyTCP
    over its in-memory link, PyTCP <-> Linux over a TAP both ways -- with fewer bytes, as it
    moves about 5 Mbit/s.

What is measured
----------------
Each transfer moves ``nbytes`` deterministic random bytes once; the receiver's SHA-256 is
compared with the sender's (``sha256_ok``).  In memory the clock is ``perf_counter`` around
the run of the wire, set-up excluded.  Over the TAP the rate is taken at the receiver, from
the moment the connection is accepted to the last byte (end of stream), whichever stack
receives; PyTCP is measured the same way.  Machines are shared and noisy: compare ratios.

The TAP topology
----------------
A namespace made for the run (``nftcp<pid>x<n>``: IPv6 off, ``lo`` up) holds the kernel side of
a TAP created in the root namespace by :class:`netfast.link.tap.TapLink` and moved into the
namespace (the descriptor stays attached), with 198.18.11.1/24 and a permanent neighbour entry
for netfast (198.18.11.2, :data:`NETFAST_MAC`), so no ARP happens during a measurement.  netfast
runs :func:`netfast.stack.hostrun.run_host` in a thread of this process; the kernel's end is a
plain-socket Python child started with ``ip netns exec``.  Only 198.18.0.0/15 (reserved for
benchmarking) is used.  Every wait is bounded; the thread, the children, the TAP and the
namespace are always undone.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from netfast.bench.netns import icmp_echo
from netfast.bench.netns import run as _run
from netfast.bench.netns import tap_environment as check_tap_environment
from netfast.bench.pytcp_anchor import _check_args as _check
from netfast.bench.pytcp_anchor import _Child
from netfast.ip.iface import IfAddr, Interface
from netfast.link.tap import TapLink
from netfast.stack.bulk import SinkServer, SourceClient
from netfast.stack.host import HostConfig, Stack
from netfast.stack.hostrun import run_host
from netfast.stack.sim import ADDR_B, HostPair
from netfast.wire.ipv4 import ip_from_str, ip_to_str

__all__ = [
    "DIRECTIONS",
    "MEMORY_MTUS",
    "MEMORY_OFFLOADS",
    "OFFLOADS",
    "MEMORY_TARGET_MBIT",
    "REASS_TARGET",
    "SECTIONS",
    "TAP_TARGET_MBIT",
    "check_tap_environment",
    "measure_memory",
    "measure_tap",
]

SECTIONS = ("reass", "memory", "tap", "pytcp", "cc")
DIRECTIONS = ("netfast_to_linux", "linux_to_netfast")
MEMORY_MTUS = (1500, 65000)
#: Where segmentation happens (module docstring); the memory wire has no TAP.
OFFLOADS = ("none", "software", "tap")
MEMORY_OFFLOADS = ("none", "software")

#: Targets of the TCP issue.
REASS_TARGET = 10.0
MEMORY_TARGET_MBIT = 1000.0
TAP_TARGET_MBIT = 500.0

KERNEL_IP = "198.18.11.1"
NETFAST_IP = "198.18.11.2"
NETFAST_MAC = bytes.fromhex("02000000fa57")
PORT = 5001
PREFIX_LEN = 24
#: Longest wait for the kernel to reach netfast over a new TAP.
READY_TIMEOUT = 10.0
THREAD_JOIN = 10.0

_names = itertools.count()


def payload(nbytes: int, seed: int = 1) -> bytes:
    """The deterministic random bytes a transfer moves (the kernel child makes the same)."""
    return random.Random(seed).randbytes(nbytes)


def _mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6 if seconds > 0 else 0.0


# -- memory ------------------------------------------------------------------------------------


def _host_config(offloads: str) -> HostConfig:
    if offloads not in OFFLOADS:
        raise ValueError(f"offloads = {offloads!r}: must be one of {OFFLOADS}")
    off = offloads == "none"
    return HostConfig(gso=not off, rx_coalesce=not off)


def measure_memory(
    nbytes: int,
    mtu: int = 1500,
    *,
    offloads: str = "software",
    seed: int = 1,
    max_time: float = 600.0,
) -> dict[str, Any]:
    """One bulk transfer netfast -> netfast over an in-memory wire (both hosts in this process).

    Parameters
    ----------
    nbytes
        Bytes to move (deterministic random, checked with SHA-256).
    mtu
        The wire's MTU (1500: Ethernet; 65000: loopback-like).
    offloads
        ``"none"`` or ``"software"`` (module docstring).
    seed
        Seeds the bytes and the hosts.
    max_time
        Bound on the transfer in simulated seconds.

    Returns
    -------
    dict
        ``impl``, ``path`` ("memory"), ``direction`` ("netfast_to_netfast"), ``offloads``,
        ``mtu``, ``bytes`` (received), ``seconds`` (wall clock
        of the transfer), ``mbit_s``, ``sha256_ok``, ``sim_seconds`` and ``segments`` (TCP
        segments the receiver took in).

    Raises
    ------
    ValueError
        On a non-positive ``nbytes``, an MTU below 576 or offloads other than ``none`` and
        ``software``.
    """
    _check(nbytes, max_time)
    if mtu < 576:
        raise ValueError(f"mtu = {mtu}: below 576")
    if offloads not in MEMORY_OFFLOADS:
        raise ValueError(f"offloads = {offloads!r}: must be one of {MEMORY_OFFLOADS}")
    data = payload(nbytes, seed)
    pair = HostPair(mtu=mtu, seed=seed, host_config=_host_config(offloads))
    server = pair.tcp_b.socket()
    server.bind((ip_to_str(ADDR_B), PORT))
    server.listen()
    client = pair.tcp_a.socket()
    client.connect((ip_to_str(ADDR_B), PORT), pair.now)
    view = memoryview(data)
    chunks: list[bytes] = []
    st: dict[str, Any] = {"acc": None, "sent": 0, "got": 0, "eof": False}

    def app() -> None:
        if st["acc"] is None:
            with contextlib.suppress(BlockingIOError):
                st["acc"], _ = server.accept()
        sent = st["sent"]
        if sent < nbytes:
            with contextlib.suppress(BlockingIOError):
                while sent < nbytes:
                    n = client.send(view[sent : sent + (1 << 18)])
                    if n == 0:
                        break
                    sent += n
            st["sent"] = sent
            if sent == nbytes:
                client.shutdown()
        acc = st["acc"]
        if acc is not None and not st["eof"]:
            while True:
                try:
                    chunk = acc.recv(1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    st["eof"] = True
                    break
                chunks.append(chunk)
                st["got"] += len(chunk)

    t0 = time.perf_counter()
    res = pair.run(lambda: bool(st["eof"]), app=app, max_time=max_time)
    seconds = time.perf_counter() - t0
    got = b"".join(chunks)
    return {
        "impl": "netfast",
        "path": "memory",
        "direction": "netfast_to_netfast",
        "offloads": offloads,
        "mtu": mtu,
        "bytes": len(got),
        "seconds": seconds,
        "mbit_s": _mbit(len(got), seconds),
        "sha256_ok": res.ok
        and len(got) == nbytes
        and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
        "sim_seconds": res.sim_time,
        "segments": pair.b.counters["tcp.in.segments"],
    }


# -- the TAP -----------------------------------------------------------------------------------

# The kernel's end, run with `ip netns exec NS python -c`: argv is a JSON config.  Sender:
# connect, sendall the deterministic bytes, close.  Receiver: listen, say NFREADY, accept, read
# to the end of the stream, report bytes, seconds (accept to EOF) and SHA-256.  Either way it
# then waits for its stdin to close, so the parent decides when it goes.
_KERNEL_CHILD = """\
import hashlib, json, random, socket, sys, time
cfg = json.loads(sys.argv[1])
def out(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
if cfg["role"] == "recv":
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((cfg["ip"], cfg["port"]))
    ls.listen(1)
    ls.settimeout(cfg["timeout"])
    out("NFREADY")
    conn, _ = ls.accept()
    conn.settimeout(cfg["timeout"])
    t0 = time.perf_counter()
    digest, got = hashlib.sha256(), 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        n = conn.recv_into(view)
        if not n:
            break
        digest.update(view[:n])
        got += n
    seconds = time.perf_counter() - t0
    conn.close()
    result = {"bytes": got, "seconds": seconds, "sha256": digest.hexdigest()}
else:
    data = random.Random(cfg["seed"]).randbytes(cfg["nbytes"])
    conn = socket.create_connection((cfg["peer_ip"], cfg["port"]), timeout=cfg["timeout"])
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    conn.close()
    result = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
out("NFRESULT " + json.dumps(result))
sys.stdin.read()
"""


class _Gated:
    """An app that starts taking steps once ``go`` is set (the host thread owns the stack, so
    apps are made before it starts; this holds a client back until its peer listens)."""

    def __init__(self, app: Any, go: threading.Event) -> None:
        self.app = app
        self.go = go

    def step(self, now: float) -> None:
        if self.go.is_set():
            self.app.step(now)

    def close(self) -> None:
        self.app.close()


def measure_tap(
    nbytes: int,
    direction: str = "netfast_to_linux",
    *,
    offloads: str = "software",
    seed: int = 1,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """One bulk transfer between netfast and the Linux kernel over a TAP (module docstring).

    Parameters
    ----------
    nbytes
        Bytes to move (deterministic random, checked with SHA-256 at the receiver).
    direction
        ``"netfast_to_linux"`` (netfast connects and sends, a kernel socket receives) or
        ``"linux_to_netfast"`` (the kernel connects and sends, netfast receives).
    offloads
        One of :data:`OFFLOADS` (module docstring).
    seed
        Seeds the bytes and netfast's stack.
    timeout
        Seconds for the whole run; what still runs then is stopped and undone.

    Returns
    -------
    dict
        ``impl`` ("netfast"), ``path`` ("linux-tap"), ``direction``, ``offloads``, ``mtu``,
        ``bytes``, ``seconds`` (at the receiver, accept to end of stream), ``mbit_s``,
        ``sha256_ok`` and netfast's ``counters`` of note; ``{"skipped": reason}`` without
        root; ``{..., "error": reason}`` when the run failed.

    Raises
    ------
    ValueError
        On an unknown ``direction`` or ``offloads``, or a non-positive ``nbytes`` or
        ``timeout``.
    """
    config = _host_config(offloads)
    vnet = offloads == "tap"
    if direction not in DIRECTIONS:
        raise ValueError(f"direction = {direction!r}: must be one of {DIRECTIONS}")
    _check(nbytes, timeout)
    base: dict[str, Any] = {
        "impl": "netfast",
        "path": "linux-tap",
        "direction": direction,
        "offloads": offloads,
        "mtu": 1500,
    }
    if (reason := check_tap_environment()) is not None:
        return {**base, "skipped": reason}
    deadline = time.monotonic() + timeout
    ns = f"nftcp{os.getpid()}x{next(_names)}"
    ns_made = False
    tap: TapLink | None = None
    thread: threading.Thread | None = None
    stop = threading.Event()
    go = threading.Event()
    children: list[_Child] = []
    apps: list[Any] = []
    errors: list[BaseException] = []
    try:
        _run("ip", "netns", "add", ns)
        ns_made = True
        for scope in ("all", "default"):  # no DAD, MLD or router solicitations
            _run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{scope}/disable_ipv6", ns=ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)
        tap = TapLink("nftcp%d", vnet_hdr=vnet, rx_gso="keep" if vnet else "segment")
        _run("ip", "link", "set", "dev", tap.name, "netns", ns)
        _run("ip", "addr", "add", f"{KERNEL_IP}/{PREFIX_LEN}", "dev", tap.name, ns=ns)
        _run("ip", "link", "set", "dev", tap.name, "up", ns=ns)
        _run("ip", "neigh", "replace", NETFAST_IP, "lladdr", NETFAST_MAC.hex(":"), "dev",
             tap.name, "nud", "permanent", ns=ns)  # fmt: skip
        iface = Interface(0, tap.name, NETFAST_MAC, (IfAddr(ip_from_str(NETFAST_IP), 24),), 1500)
        stack = Stack([iface], rng=random.Random(seed), config=config)
        if vnet:
            stack.enable_tso(0)
        data = payload(nbytes, seed) if direction == "netfast_to_linux" else b""
        sink: SinkServer | None = None
        if direction == "linux_to_netfast":
            sink = SinkServer(stack, PORT)
            apps.append(sink)
        else:
            apps.append(_Gated(SourceClient(stack, (KERNEL_IP, PORT), data), go))
        link = tap

        def loop() -> None:
            try:
                run_host(stack, {0: link}, duration=timeout, stop=stop, apps=apps)
            except BaseException as exc:  # reported as the run's error
                errors.append(exc)

        thread = threading.Thread(target=loop, name="netfast-tcp-bench", daemon=True)
        thread.start()
        # Ready when the kernel reaches netfast (a new TAP takes a moment to carry).
        ready = False
        ready_by = min(deadline, time.monotonic() + READY_TIMEOUT)
        while not ready and time.monotonic() < ready_by:
            ready = icmp_echo(ns, NETFAST_IP, timeout=1.0)
        if not ready:
            raise RuntimeError(f"the kernel cannot reach netfast over {tap.name}")
        cfg: dict[str, Any] = {
            "port": PORT,
            "nbytes": nbytes,
            "seed": seed,
            "timeout": max(1.0, deadline - time.monotonic()),
            "ip": KERNEL_IP,
            "peer_ip": NETFAST_IP,
        }

        def child(role: str) -> _Child:
            argv = ["ip", "netns", "exec", ns, sys.executable, "-c", _KERNEL_CHILD,
                    json.dumps({**cfg, "role": role})]  # fmt: skip
            c = _Child(argv, label=f"kernel {role}")
            children.append(c)
            return c

        if sink is None:
            receiver = child("recv")
            receiver.expect("NFREADY", deadline)
            go.set()
            got = json.loads(receiver.expect("NFRESULT", deadline))
            received, seconds = int(got["bytes"]), float(got["seconds"])
            ok = received == nbytes and got["sha256"] == hashlib.sha256(data).hexdigest()
        else:
            sender = child("send")
            sent = json.loads(sender.expect("NFRESULT", deadline))
            if not sink.done.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError("netfast did not receive the whole stream in time")
            if sink.error is not None:
                raise RuntimeError(f"netfast's receiver: {sink.error}")
            received, seconds = sink.received, sink.seconds
            ok = received == nbytes and sink.sha256 == sent["sha256"]
        if errors:
            raise RuntimeError(f"netfast's host loop: {errors[0]!r}")
        counters = {
            k: v
            for k, v in sorted(stack.counters.items())
            if k.startswith(("tcp.out.", "tcp.in.", "ip.out.gso"))
            and not k.startswith("tcp.in.bytes")
        }
        return {
            **base,
            "bytes": received,
            "seconds": seconds,
            "mbit_s": _mbit(received, seconds),
            "sha256_ok": ok,
            "counters": counters,
            "tap_counters": dict(sorted(tap.counters.items())),
        }
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        return {**base, "error": str(exc)}
    finally:
        stop.set()
        if thread is not None:
            thread.join(THREAD_JOIN)
        for c in reversed(children):
            c.stop()
        for app in apps:
            with contextlib.suppress(Exception):
                app.close()
        if tap is not None:
            tap.close()
        if ns_made:
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _run("ip", "netns", "delete", ns)


def run_transfers(
    sections: Sequence[str],
    *,
    nbytes: int,
    pytcp_bytes: int,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The transfer rows of the selected sections (``memory``, ``tap``, ``pytcp``).

    PyTCP is measured on the paths of the selected ``memory`` / ``tap`` sections, or on both
    when neither is selected.
    """
    from netfast.bench import pytcp_anchor

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg)

    rows: list[dict[str, Any]] = []
    if "memory" in sections:
        for mtu in MEMORY_MTUS:
            for offloads in MEMORY_OFFLOADS:
                say(f"memory, MTU {mtu}, offloads {offloads}")
                rows.append(measure_memory(nbytes, mtu, offloads=offloads))
    if "tap" in sections:
        for direction in DIRECTIONS:
            for offloads in OFFLOADS:
                say(f"tap, {direction}, offloads {offloads}")
                rows.append(measure_tap(nbytes, direction, offloads=offloads))
    if "pytcp" in sections:
        paths = [s for s in ("memory", "tap") if s in sections] or ["memory", "tap"]
        if "memory" in paths:
            say("PyTCP, memory")
            rows.append(_pytcp_meta("memory") | pytcp_anchor.measure_pytcp_memory(pytcp_bytes))
        if "tap" in paths:
            for direction in pytcp_anchor.DIRECTIONS:
                say(f"PyTCP, tap, {direction}")
                row = pytcp_anchor.measure_pytcp_linux(pytcp_bytes, direction)
                rows.append(_pytcp_meta("linux-tap", direction) | row)
    return rows


def _pytcp_meta(path: str, direction: str | None = None) -> dict[str, Any]:
    """Fields a PyTCP row lacks when it was skipped, and what it never reports itself."""
    meta: dict[str, Any] = {"impl": "pytcp", "path": path, "offloads": None, "mtu": 1500}
    meta["direction"] = direction or "pytcp_to_pytcp"
    return meta
