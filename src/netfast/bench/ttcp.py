"""``netfast bench ttcp``: what the session layer saves on short connections.

Two measurements of request-response over fresh connections (connect, a small request, the
answer, close), plain TCP against data on SYN:

- **Simulated** (:func:`measure_simulated`): two netfast hosts on the in-memory wire of
  :class:`netfast.stack.sim.HostPair`, the one-way delay set by netfast's impairment layer, time
  on the virtual clock -- exact and repeatable.  Plain TCP, T/TCPv2 (client and server
  cookies, netfast's RFC 6994 option) and TCP Fast Open's form (kind 34) at 0, 10 and 100 ms
  RTT.  The latency is in simulated time; the CPU figure is the wall time both hosts spent per
  connection.
- **With Linux** (:func:`measure_linux`): a Linux client in a namespace the run creates,
  against ``netfast host``'s echo service over a TAP joined through netfast's impairment bridge
  (the kernel here has no netem: the delay is the bridge's), plain ``connect`` against
  ``sendto(MSG_FASTOPEN)``.  Wall-clock latency per request, with the Linux counters that
  prove the data rode in the SYN.

The paper's claim is one round trip saved per repeat connection: a repeat request takes one RTT
instead of two.  Addresses are in 198.18.0.0/15; every loop is bounded in count and time; the
namespace, the TAP, the bridge and the host thread are always undone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from netfast.bench.netns import enable_fastopen, icmp_echo, tap_environment
from netfast.bench.netns import run as _run
from netfast.ip.iface import IfAddr, Interface
from netfast.link.bridge import Bridge
from netfast.link.impair import Impairment
from netfast.link.memory import MemoryLink
from netfast.link.tap import TapLink
from netfast.stack.host import Stack
from netfast.stack.hostrun import EchoService, run_host
from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState
from netfast.wire.ipv4 import ip_from_str

RTTS = (0.0, 0.010, 0.100)
MODES = {
    "plain TCP": TcpConfig(),
    "T/TCPv2": TcpConfig(ttcp=True, fastopen=True),
    "TFO form": TcpConfig(fastopen=True),
}
PORT = 7
KERNEL_IP = "198.18.41.1"
NETFAST_IP = "198.18.41.2"
NETFAST_MAC = bytes.fromhex("02000000a902")
_names = itertools.count()


@dataclass
class SimResult:
    """One mode at one RTT, simulated."""

    mode: str
    rtt_ms: float
    connections: int
    first_ms: float
    repeat_ms: float
    """Median latency of the connections after the first."""
    repeat_rtts: float | None
    """``repeat_ms`` in round trips (None at 0 RTT)."""
    requests_per_s: float
    """One client, one connection after another, in simulated time (at 0 RTT: per CPU
    second, the stacks being the only cost)."""
    cpu_us_per_conn: float
    syn_data_taken: int


class Answerer:
    """b's listener on port 7: answers each request with ``b"re:" + request`` and closes at the
    peer's FIN.  ``accepted`` keeps every connection it took, ``early`` the requests it read
    before the handshake had completed (data on SYN)."""

    def __init__(self, pair: HostPair, config: TcpConfig) -> None:
        self.sock = pair.tcp_b.socket()
        self.sock.setsockopt(ttcp=config.ttcp, fastopen=config.fastopen)
        self.sock.bind(("198.18.0.2", PORT))
        self.sock.listen(128)
        self.conns: list[TcpSocket] = []
        self.accepted: list[TcpSocket] = []
        self.early: list[bytes] = []

    def step(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                break
            self.conns.append(conn)
            self.accepted.append(conn)
        for conn in list(self.conns):
            try:
                data = conn.recv(4096)
            except (BlockingIOError, ConnectionError):
                continue
            if not data:
                conn.close()
                self.conns.remove(conn)
                continue
            if conn.state == TcpState.SYN_RECEIVED:
                self.early.append(data)
            conn.send(b"re:" + data)


def request(pair: HostPair, srv: Answerer, data: bytes) -> tuple[float, TcpSocket, bytes]:
    """One request over a fresh connection from a to ``srv``, ``data`` queued with the connect:
    the simulated time until the whole answer was in, the client socket (closed after, and the
    server's side with it) and the answer."""
    t0 = pair.now
    cli = pair.tcp_a.socket()
    if cli.connect(("198.18.0.2", PORT), pair.now, data) != len(data):
        raise RuntimeError("the send buffer did not take the request")
    got = bytearray()
    want = len(data) + 3
    done: list[float] = []

    def app() -> None:
        srv.step()
        with contextlib.suppress(BlockingIOError):
            got.extend(cli.recv(4096))
        if len(got) >= want and not done:
            done.append(pair.now)

    r = pair.run(lambda: bool(done), app=app, max_time=30)
    if not r.ok:
        raise RuntimeError(f"no answer within 30 simulated seconds ({bytes(got)!r})")
    cli.close()
    pair.run(lambda: not srv.conns, app=srv.step, max_time=30)
    return done[0] - t0, cli, bytes(got)


def measure_simulated(
    connections: int = 200, rtts: tuple[float, ...] = RTTS, seed: int = 1
) -> list[SimResult]:
    """Every mode at every RTT: ``connections`` request-responses in turn from host a to b."""
    if connections < 2:
        raise ValueError("connections must be at least 2 (a first and a repeat)")
    out = []
    for rtt in rtts:
        for mode, cfg in MODES.items():
            imp = Impairment(delay=rtt / 2)
            pair = HostPair(impair_ab=imp, impair_ba=imp, tcp_config=cfg, seed=seed)
            pair.a.arp.add_static(0, ADDR_B, MAC_B)
            pair.b.arp.add_static(0, ADDR_A, MAC_A)
            srv = Answerer(pair, cfg)
            lat = []
            t0 = time.perf_counter()
            for i in range(connections):
                lat.append(request(pair, srv, b"GET /%d" % i)[0])
            cpu = time.perf_counter() - t0
            repeat = statistics.median(lat[1:])
            per_s = 1 / statistics.fmean(lat) if rtt > 0 else connections / cpu
            out.append(
                SimResult(
                    mode=mode,
                    rtt_ms=rtt * 1e3,
                    connections=connections,
                    first_ms=lat[0] * 1e3,
                    repeat_ms=repeat * 1e3,
                    repeat_rtts=repeat / rtt if rtt > 0 else None,
                    requests_per_s=per_s,
                    cpu_us_per_conn=cpu / connections * 1e6,
                    syn_data_taken=pair.b.counters["tcp.fastopen.passive"],
                )
            )
    return out


# ---------------------------------------------------------------- with Linux

# A Linux client, run with `ip netns exec NS python3 -c`: ``n`` requests in turn over fresh
# connections -- ``plain`` (connect, send), ``sendto`` (MSG_FASTOPEN) or ``connect``
# (TCP_FASTOPEN_CONNECT, then send) -- each echoed back; per request the latency, whether the
# answer was right and whether Linux says the data went in the SYN (TCPI_OPT_SYN_DATA).
LINUX_CLIENT = r"""
import json, socket, sys, time
host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
end = time.monotonic() + float(sys.argv[5])
TCP_FASTOPEN_CONNECT = 30
rounds = []
for i in range(n):
    if time.monotonic() > end:
        break
    msg = b"GET /%d" % i
    t0 = time.perf_counter()
    s = socket.socket()  # blocking: with a timeout, sendto would return EINPROGRESS
    if mode == "sendto":
        s.sendto(msg, socket.MSG_FASTOPEN, (host, port))
    else:
        if mode == "connect":
            s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
        s.connect((host, port))
        s.sendall(msg)
    s.settimeout(5)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    lat = time.perf_counter() - t0
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    rounds.append({"lat": lat, "ok": got == msg, "syn_data": bool(info[5] & 0x20)})
    s.close()
print(json.dumps({"rounds": rounds}))
"""


@dataclass
class LinuxResult:
    """A Linux client's requests to ``netfast host``'s echo at one RTT."""

    mode: str
    rtt_ms: float
    requests: int = 0
    first_ms: float = 0.0
    repeat_ms: float = 0.0
    repeat_rtts: float | None = None
    requests_per_s: float = 0.0
    syn_data: int = 0
    """Requests Linux says went in the SYN and were acknowledged (TCPI_OPT_SYN_DATA)."""
    linux_counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def _netstat(ns: str) -> dict[str, int]:
    lines = _run("cat", "/proc/net/netstat", ns=ns).splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    return {}


def measure_linux(
    requests: int = 100, rtts: tuple[float, ...] = RTTS, budget: float = 30.0
) -> list[LinuxResult] | str:
    """Plain and Fast Open requests from a Linux client at each RTT; a reason string when this
    machine cannot run it (not root, no TAP)."""
    reason = tap_environment()
    if reason is not None:
        return reason
    out: list[LinuxResult] = []
    for rtt in rtts:
        for mode in ("plain TCP", "TFO (Linux client)"):
            out.append(_linux_run(mode, rtt, requests, budget))
    return out


@contextlib.contextmanager
def _netfast_host(
    delay: float | None, budget: float, fastopen: bool = True
) -> Iterator[tuple[str, Stack]]:
    """A namespace with a TAP whose far end is ``netfast host`` (echo on 7) in a thread; with
    ``delay``, through netfast's impairment bridge adding that one-way delay.  Yields the
    namespace's name and the stack; everything is undone on exit."""
    ns = f"nfttcp{os.getpid()}x{next(_names)}"
    ns_made = False
    tap: TapLink | None = None
    bridge: Bridge | None = None
    thread: threading.Thread | None = None
    stop = threading.Event()
    apps: list[Any] = []
    errors: list[BaseException] = []
    try:
        _run("ip", "netns", "add", ns)
        ns_made = True
        _run("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6", ns=ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)
        enable_fastopen(ns)
        tap = TapLink("nfttcp%d")
        _run("ip", "link", "set", "dev", tap.name, "netns", ns)
        _run("ip", "addr", "add", f"{KERNEL_IP}/24", "dev", tap.name, ns=ns)
        _run("ip", "link", "set", "dev", tap.name, "up", ns=ns)
        _run("ip", "neigh", "replace", NETFAST_IP, "lladdr", NETFAST_MAC.hex(":"), "dev",
             tap.name, "nud", "permanent", ns=ns)  # fmt: skip
        iface = Interface(0, tap.name, NETFAST_MAC, (IfAddr(ip_from_str(NETFAST_IP), 24),), 1500)
        stack = Stack([iface], rng=random.Random(1))
        link: Any = tap
        if delay is not None:
            imp = Impairment(delay=delay)
            near, far = MemoryLink.pair(mtu=1500, capacity=8192, names=("br", "nf"))
            bridge = Bridge(tap, near, impair_ab=imp, impair_ba=imp, seed=1)
            bridge.start(duration=budget + 30)
            link = far
        apps.append(EchoService(stack, fastopen=fastopen))

        def loop() -> None:
            try:
                run_host(stack, {0: link}, duration=budget + 30, stop=stop, apps=apps)
            except BaseException as exc:  # reported as the run's error
                errors.append(exc)

        thread = threading.Thread(target=loop, name="netfast-ttcp-bench", daemon=True)
        thread.start()
        ready_by = time.monotonic() + 10
        while not icmp_echo(ns, NETFAST_IP, timeout=1.0):
            if time.monotonic() > ready_by:
                raise RuntimeError(f"the kernel cannot reach netfast over {tap.name}")
        yield ns, stack
        if errors:
            raise RuntimeError(f"netfast's host loop: {errors[0]!r}")
    finally:
        stop.set()
        if thread is not None:
            thread.join(10)
        for app in apps:
            with contextlib.suppress(Exception):
                app.close()
        if bridge is not None:
            bridge.stop(timeout=5)
        if tap is not None:
            tap.close()
        if ns_made:
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _run("ip", "netns", "delete", ns)


def _in_ns(ns: str, script: str, *args: str, timeout: float) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", ns, "python3", "-c", script, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the Linux client failed: {proc.stderr.strip()[-300:]}")
    got: dict[str, Any] = json.loads(proc.stdout)
    if "error" in got:
        raise RuntimeError(got["error"])
    return got


def _linux_run(mode: str, rtt: float, requests: int, budget: float) -> LinuxResult:
    res = LinuxResult(mode=mode, rtt_ms=rtt * 1e3)
    try:
        with _netfast_host(rtt / 2, budget) as (ns, _stack):
            before = _netstat(ns)
            got = _in_ns(ns, LINUX_CLIENT, NETFAST_IP, str(PORT), str(requests),
                         "sendto" if mode.startswith("TFO") else "plain", str(budget),
                         timeout=budget + 30)  # fmt: skip
            after = _netstat(ns)
        rounds = got["rounds"]
        if not all(r["ok"] for r in rounds):
            raise RuntimeError("a wrong echo")
        lat = [r["lat"] for r in rounds]
        if len(lat) < 2:
            raise RuntimeError(f"only {len(lat)} requests in {budget} s")
        repeat = statistics.median(lat[1:])
        res.requests = len(lat)
        res.first_ms = lat[0] * 1e3
        res.repeat_ms = repeat * 1e3
        res.repeat_rtts = repeat / rtt if rtt > 0 else None
        res.requests_per_s = len(lat) / sum(lat)
        res.syn_data = sum(r["syn_data"] for r in rounds)
        res.linux_counters = {
            k: after.get(k, 0) - before.get(k, 0)
            for k in ("TCPFastOpenActive", "TCPFastOpenActiveFail", "TCPFastOpenCookieReqd")
        }
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        res.error = str(exc)
    return res


# ---------------------------------------------------------------- connections/s, ICMP echo

# Parallel clients in the namespace: each thread opens a connection, sends one byte, reads the
# echo and closes, again and again, for ``seconds`` or ``per_thread`` connections.
_CONN_CLIENT = r"""
import json, socket, struct, sys, threading, time
host, port, par = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seconds, per, rst = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "rst"
ok, failed = [0] * par, [0] * par
start = time.monotonic()
end = start + seconds
def worker(k):
    for _ in range(per):
        if time.monotonic() >= end:
            return
        try:
            s = socket.create_connection((host, port), timeout=3)
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"x")
            got = s.recv(1)
            s.close()
            if got == b"x":
                ok[k] += 1
            else:
                failed[k] += 1
        except OSError:
            failed[k] += 1
ts = [threading.Thread(target=worker, args=(k,)) for k in range(par)]
for t in ts:
    t.start()
for t in ts:
    t.join()
elapsed = time.monotonic() - start
print(json.dumps({"ok": sum(ok), "failed": sum(failed), "seconds": elapsed}))
"""


@dataclass
class ConnRate:
    """Connections per second from Linux clients to ``netfast host``'s echo."""

    parallel: int
    close: str = "rst"
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    per_s: float = 0.0
    netfast: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def measure_connections(
    parallel: tuple[int, ...] = (1, 64),
    seconds: float = 5.0,
    closes: tuple[str, ...] = ("fin", "rst"),
) -> list[ConnRate] | str:
    """Connect + 1-byte echo + close, ``parallel`` Linux clients at a time, over a TAP (no
    bridge).  ``closes``: ``"fin"`` (an ordinary close: the Linux client holds TIME_WAIT) and
    ``"rst"`` (SO_LINGER 0, so nothing is left on either side)."""
    if (reason := tap_environment()) is not None:
        return reason
    out = []
    for close, par in itertools.product(closes, parallel):
        res = ConnRate(parallel=par, close=close)
        try:
            with _netfast_host(None, seconds + 30, fastopen=False) as (ns, stack):
                got = _in_ns(ns, _CONN_CLIENT, NETFAST_IP, str(PORT), str(par), str(seconds),
                             str(1_000_000), close, timeout=seconds + 60)  # fmt: skip
                c = stack.counters
                res.netfast = {
                    k: c[k]
                    for k in ("tcp.conn.accepted", "tcp.syncache.cache_overflow",
                              "tcp.syncache.bucket_overflow", "tcp.listen.overflow",
                              "tcp.out.rst", "tcp.out.retransmit", "tcp.syncache.retransmitted",
                              "tcp.in.queue_full")
                }  # fmt: skip
            res.completed, res.failed = int(got["ok"]), int(got["failed"])
            res.seconds = float(got["seconds"])
            res.per_s = res.completed / res.seconds if res.seconds > 0 else 0.0
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
            res.error = str(exc)
        out.append(res)
    return out


@dataclass
class EchoRate:
    sent: int = 0
    received: int = 0
    seconds: float = 0.0
    per_s: float = 0.0
    error: str | None = None


def measure_ping(count: int = 100_000, seconds: float = 10.0) -> EchoRate | str:
    """``ping -f`` (a new request as soon as the reply is in, at least every 10 ms) from the
    namespace to ``netfast host``: replies per second.  ping's deadline is whole seconds, so
    ``seconds`` is rounded up (never to 0, which would mean no deadline)."""
    if (reason := tap_environment()) is not None:
        return reason
    if shutil.which("ping") is None:
        return "ping is not installed (iputils-ping)"
    res = EchoRate()
    try:
        with _netfast_host(None, seconds + 30, fastopen=False) as (ns, _stack):
            t0 = time.monotonic()
            text = _run("ping", "-f", "-q", "-c", str(count), "-w", str(max(1, math.ceil(seconds))),
                        NETFAST_IP, ns=ns, check=False)  # fmt: skip
            elapsed = time.monotonic() - t0
        m = re.search(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms", text)
        if m is None:
            raise RuntimeError(f"cannot read ping's summary: {text.strip()[-200:]!r}")
        res.sent, res.received = int(m.group(1)), int(m.group(2))
        res.seconds = int(m.group(3)) / 1000 or elapsed
        res.per_s = res.received / res.seconds
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        res.error = str(exc)
    return res


def to_json(
    sim: list[SimResult],
    linux: list[LinuxResult] | str,
    conns: list[ConnRate] | str = "not run",
    ping: EchoRate | str = "not run",
    **meta: Any,
) -> dict[str, Any]:
    return {
        "meta": meta,
        "simulated": [asdict(r) for r in sim],
        "linux": linux if isinstance(linux, str) else [asdict(r) for r in linux],
        "connections": conns if isinstance(conns, str) else [asdict(r) for r in conns],
        "ping": ping if isinstance(ping, str) else asdict(ping),
    }


__all__ = [
    "MODES",
    "Answerer",
    "RTTS",
    "ConnRate",
    "EchoRate",
    "LINUX_CLIENT",
    "LinuxResult",
    "SimResult",
    "measure_connections",
    "measure_linux",
    "measure_ping",
    "measure_simulated",
    "request",
    "to_json",
]
