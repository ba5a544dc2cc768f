"""The live forwarding benchmark (``netfast bench live``): packets per second through netfast
between two veths, next to the Linux kernel forwarding between the same namespaces, measured in
the same run with the same generator and the same sink.

Topology
--------
::

    ns A (generator)          ns M (the middle)                 ns B (sink)
    a0 198.18.0.2/24 --veth-- am 02:00:00:00:fa:01
                              bm 02:00:00:00:fa:02 --veth-- b0 198.18.1.2/24

Three namespaces created for the run under names unique to the process (``nfl<pid>x<n><role>``)
and always deleted at the end, which takes the veths along; the veths are created directly
inside them, so nothing appears in the root namespace.  Only addresses in 198.18.0.0/15 (the
range reserved for benchmarking) are used.  The middle ends carry fixed MAC addresses that are
also netfast's interface MACs, and A and B hold permanent neighbour entries for them (and M for
A and B), so the two modes look the same from A and B and no ARP happens during a measurement.
IPv6 is off in every namespace and offloads are off on every veth end (ethtool), as in the
live router test.

The modes
---------
``kernel``
    M has 198.18.0.1/24 on ``am``, 198.18.1.1/24 on ``bm`` and ``ip_forward=1``: the kernel
    forwards.
``netfast``
    M's addresses are flushed and ``ip_forward=0`` (the kernel drops what it sees, silently);
    a netfast router built from a TOML description (:func:`netfast.router.config.parse_config`,
    the same MACs and addresses, static neighbours) runs :func:`netfast.router.run.run_live`
    -- the vector path punting to the scalar one, as ``netfast forward`` does -- in a thread of
    this process whose network namespace is M (``setns(2)`` on that thread only), on
    :class:`netfast.link.afpacket.AfPacketLink` sockets bound to ``am`` and ``bm``.

What is measured
----------------
- The generator: one Python process in A sending UDP datagrams of 18 bytes (60-byte frames,
  64 bytes on the wire with the FCS) to 198.18.1.2 port 9 with ``send`` on a connected socket,
  as fast as it can, until ``packets`` were sent or ``seconds`` passed.  It times itself:
  ``offered pps = sent / send seconds``.  Over a veth the kernel forwards in the sender's
  softirq, so the kernel mode's offered rate includes its forwarding cost, which is why the
  offered rate is reported for each mode.
- The sink: B's interface counters (``rx_packets`` of ``b0``), read before and after with
  ``ip -s link``; B does not answer (ICMP errors are rate-limited to nothing in B).  Exact and
  costs the sink nothing.  ``delivered pps = delivered / send seconds`` (delivered is read once
  the counters stop moving, so frames netfast still had queued when the generator stopped are
  counted: at most a socket buffer's worth).
- ``entered``: frames ``am`` received (the middle's ingress); ``entered - netfast frames in``
  is what the kernel dropped before netfast read it (a full socket buffer).
- netfast's own figures: frames read, frames finished by the vector path and frames punted to
  the scalar path, its counters and its links' drops, over the measurement only.

Each run is preceded by a warm-up burst, and modes alternate across rounds (kernel first in
even rounds, netfast first in odd ones); the best run of each mode is the figure reported.
Every wait is bounded in time and every loop in count.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from netfast.bench.netns import COMMAND_TIMEOUT
from netfast.bench.netns import run as _run
from netfast.link.base import Link
from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import parse_config
from netfast.router.run import LiveSummary

__all__ = [
    "FRAME_LEN",
    "UDP_PAYLOAD",
    "LiveResult",
    "ModeRun",
    "NetfastFigures",
    "check_environment",
    "measure",
]

#: Frame length on the veth (no FCS): Ethernet 14 + IPv4 20 + UDP 8 + payload.
FRAME_LEN = 60
UDP_PAYLOAD = FRAME_LEN - 14 - 20 - 8
MODES = ("kernel", "netfast")

HOST_A, HOST_B = "198.18.0.2", "198.18.1.2"
ROUTER_A, ROUTER_B = "198.18.0.1", "198.18.1.1"
MAC_A, MAC_B = "02:00:00:00:fb:01", "02:00:00:00:fb:02"
MAC_ROUTER_A, MAC_ROUTER_B = "02:00:00:00:fa:01", "02:00:00:00:fa:02"
DST_PORT = 9  # discard
# Interface names live inside the run's own namespaces, so they need not be unique.
IF_A, IF_MA, IF_MB, IF_B = "a0", "am", "bm", "b0"

WARMUP_PACKETS = 2000
WARMUP_SECONDS = 1.0
#: How long the counters must stand still to call the network idle, and the most to wait.
SETTLE_SECONDS = 0.25
SETTLE_LIMIT = 5.0

_CLONE_NEWNET = 0x40000000
_names = itertools.count()

# The generator, run with `ip netns exec A python -c`: argv dst port packets seconds size.
# Checks the clock every 1024 sends; send() errors (e.g. ECONNREFUSED after an ICMP error) are
# counted, not fatal.
_GENERATOR = """\
import json, socket, sys, time
dst, port, n, limit, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((dst, port))
send, data = s.send, bytes(size)
sent = errors = 0
t0 = time.perf_counter()
end = t0 + limit
while sent < n:
    chunk = min(1024, n - sent)
    for _ in range(chunk):
        try:
            send(data)
        except OSError:
            errors += 1
    sent += chunk
    if time.perf_counter() >= end:
        break
dt = time.perf_counter() - t0
print(json.dumps({"sent": sent - errors, "errors": errors, "seconds": dt}))
"""


def check_environment() -> str | None:
    """None when the benchmark can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, AF_PACKET)"
    for tool in ("ip", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not hasattr(ctypes.CDLL(None), "setns"):
        return "the C library has no setns(2)"
    return None


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetfastFigures:
    """What netfast itself counted during one measurement (warm-up excluded)."""

    frames_in: int
    vector_frames: int
    scalar_frames: int
    forwarded: int
    vector_seconds: float
    scalar_seconds: float
    counters: dict[str, int]
    link_drops: dict[str, int]

    @property
    def punted(self) -> int:
        """Frames that went through the scalar path (punted by the vector path)."""
        return self.scalar_frames


@dataclass(frozen=True, slots=True)
class ModeRun:
    """One measurement of one mode."""

    mode: str
    round: int
    sent: int
    send_errors: int
    send_seconds: float
    entered: int
    delivered: int
    netfast: NetfastFigures | None = None

    @property
    def offered_pps(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.delivered / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def loss(self) -> float:
        """Share of the sent datagrams B did not receive."""
        return 1.0 - self.delivered / self.sent if self.sent else 0.0


@dataclass
class LiveResult:
    """Every run of :func:`measure` and the settings it ran with."""

    packets: int
    seconds: float
    rounds: int
    batch_size: int
    runs: list[ModeRun] = field(default_factory=list)
    frame_len: int = FRAME_LEN

    def best(self, mode: str) -> ModeRun | None:
        """The run of ``mode`` that delivered the most packets per second."""
        runs = [r for r in self.runs if r.mode == mode]
        return max(runs, key=lambda r: r.delivered_pps) if runs else None

    @property
    def ratio(self) -> float | None:
        """netfast's best delivered rate over the kernel's."""
        nf, kernel = self.best("netfast"), self.best("kernel")
        if nf is None or kernel is None or kernel.delivered_pps == 0:
            return None
        return nf.delivered_pps / kernel.delivered_pps

    def to_json(self, **meta: Any) -> dict[str, Any]:
        def run_json(r: ModeRun) -> dict[str, Any]:
            return {
                **asdict(r),
                "offered_pps": r.offered_pps,
                "delivered_pps": r.delivered_pps,
                "loss": r.loss,
            }

        best = {m: self.best(m) for m in MODES}
        return {
            "meta": {
                **meta,
                "frame_len": self.frame_len,
                "wire_len_with_fcs": self.frame_len + 4,
                "udp_payload": UDP_PAYLOAD,
                "packets": self.packets,
                "seconds": self.seconds,
                "rounds": self.rounds,
                "batch_size": self.batch_size,
            },
            "best": {m: None if r is None else run_json(r) for m, r in best.items()},
            "netfast_over_kernel": self.ratio,
            "runs": [run_json(r) for r in self.runs],
        }


# -- the topology --------------------------------------------------------------------------------


def _sysctl(ns: str, key: str, value: str | int) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    _run("sh", "-c", f"echo {value} > {path}", ns=ns)


def _enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Topology:
    """Namespaces A, M and B joined by veths (see the module docstring); :meth:`close` deletes
    them, ignoring what is already gone."""

    def __init__(self) -> None:
        tag = f"nfl{os.getpid()}x{next(_names)}"
        self.ns_a, self.ns_m, self.ns_b = f"{tag}a", f"{tag}m", f"{tag}b"
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.ns_a, self.ns_m, self.ns_b):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            _run("ip", "link", "set", "lo", "up", ns=ns)
            for scope in ("all", "default"):  # no ND, MLD or router solicitations
                _sysctl(ns, f"net.ipv6.conf.{scope}.disable_ipv6", 1)
            _sysctl(ns, "net.ipv4.ip_forward", 0)
        pairs = (
            (self.ns_a, IF_A, MAC_A, self.ns_m, IF_MA, MAC_ROUTER_A),
            (self.ns_b, IF_B, MAC_B, self.ns_m, IF_MB, MAC_ROUTER_B),
        )
        for ns1, if1, mac1, ns2, if2, mac2 in pairs:
            _run("ip", "link", "add", "name", if1, "netns", ns1, "address", mac1, "type", "veth",
                 "peer", "name", if2, "netns", ns2, "address", mac2)  # fmt: skip
        for ns, ifname in self.ends():
            _run("ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                 "gro", "off", ns=ns, check=False)  # fmt: skip
            _run("ip", "link", "set", ifname, "up", ns=ns)
        for ns, ifname, addr, gw, mac in (
            (self.ns_a, IF_A, HOST_A, ROUTER_A, MAC_ROUTER_A),
            (self.ns_b, IF_B, HOST_B, ROUTER_B, MAC_ROUTER_B),
        ):
            _run("ip", "addr", "add", f"{addr}/24", "dev", ifname, ns=ns)
            _run("ip", "route", "add", "default", "via", gw, ns=ns)
            _run("ip", "neigh", "replace", gw, "lladdr", mac, "dev", ifname, "nud", "permanent",
                 ns=ns)  # fmt: skip
        # B, the sink, must stay silent: no ICMP port unreachable back through the router.
        _sysctl(self.ns_b, "net.ipv4.icmp_msgs_per_sec", 0)
        _sysctl(self.ns_b, "net.ipv4.icmp_msgs_burst", 0)
        _sysctl(self.ns_b, "net.ipv4.icmp_ratelimit", 1_000_000)

    def ends(self) -> list[tuple[str, str]]:
        """Every veth end as (namespace, interface)."""
        return [(self.ns_a, IF_A), (self.ns_m, IF_MA), (self.ns_m, IF_MB), (self.ns_b, IF_B)]

    def set_mode(self, mode: str) -> None:
        """Make M the kernel router (``kernel``) or a silent box for netfast (``netfast``)."""
        m = self.ns_m
        for ifname in (IF_MA, IF_MB):
            _run("ip", "addr", "flush", "dev", ifname, ns=m)
        if mode == "kernel":
            for ifname, addr, host, mac in (
                (IF_MA, ROUTER_A, HOST_A, MAC_A),
                (IF_MB, ROUTER_B, HOST_B, MAC_B),
            ):
                _run("ip", "addr", "add", f"{addr}/24", "dev", ifname, ns=m)
                _run("ip", "neigh", "replace", host, "lladdr", mac, "dev", ifname, "nud",
                     "permanent", ns=m)  # fmt: skip
            _sysctl(m, "net.ipv4.ip_forward", 1)
        elif mode == "netfast":
            _sysctl(m, "net.ipv4.ip_forward", 0)
        else:
            raise ValueError(f"mode = {mode!r}: expected one of {MODES}")

    def link_stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(rx_packets, tx_packets) of every veth end, by (namespace, interface)."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for ns in (self.ns_a, self.ns_m, self.ns_b):
            for link in json.loads(_run("ip", "-n", ns, "-j", "-s", "link", "show")):
                stats = link.get("stats64", {})
                rx, tx = stats.get("rx", {}), stats.get("tx", {})
                out[(ns, link["ifname"])] = (int(rx.get("packets", 0)), int(tx.get("packets", 0)))
        return out

    def delivered_count(self) -> int:
        return self.link_stats()[(self.ns_b, IF_B)][0]

    def generate(self, packets: int, seconds: float) -> tuple[int, int, float]:
        """Run the generator in A: (datagrams sent, send errors, send seconds)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns_a, sys.executable, "-c", _GENERATOR,
             HOST_B, str(DST_PORT), str(packets), repr(seconds), str(UDP_PAYLOAD)],
            capture_output=True, text=True, timeout=seconds + 30, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"the generator failed ({proc.returncode}): {proc.stderr.strip()}")
        report = json.loads(proc.stdout)
        return int(report["sent"]), int(report["errors"]), float(report["seconds"])

    def settle(self, extra: Callable[[], int] | None = None) -> None:
        """Wait (at most :data:`SETTLE_LIMIT` s) until B's rx counter -- and ``extra``, when
        given -- stop moving for :data:`SETTLE_SECONDS`."""

        def probe() -> tuple[int, int]:
            return self.delivered_count(), extra() if extra is not None else 0

        end = time.monotonic() + SETTLE_LIMIT
        last = probe()
        while time.monotonic() < end:
            time.sleep(SETTLE_SECONDS)
            now = probe()
            if now == last:
                return
            last = now

    def close(self) -> None:
        while self._made:
            ns = self._made.pop()
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _run("ip", "netns", "delete", ns)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- netfast in M --------------------------------------------------------------------------------


def router_config(dev_a: str = IF_MA, dev_b: str = IF_MB) -> str:
    """The TOML description of the router under test."""
    return f"""
[[interface]]
name = "a"
mac = "{MAC_ROUTER_A}"
addresses = ["{ROUTER_A}/24"]
link = {{ type = "afpacket", device = "{dev_a}", promiscuous = false }}

[[interface]]
name = "b"
mac = "{MAC_ROUTER_B}"
addresses = ["{ROUTER_B}/24"]
link = {{ type = "afpacket", device = "{dev_b}", promiscuous = false }}

[neighbors]
"{HOST_A}" = "{MAC_A}"
"{HOST_B}" = "{MAC_B}"
"""


class NetfastRouter:
    """A netfast router forwarding in namespace ``ns`` from a thread, for at most ``duration``
    seconds; :meth:`stop` ends it."""

    def __init__(self, ns: str, duration: float, batch_size: int) -> None:
        self.ns = ns
        self.duration = duration
        self.batch_size = batch_size
        self.built: BuiltRouter = build_router(parse_config(router_config(), "bench-live.toml"))
        self.engine = self.built.new_engine()
        self.links: Mapping[int, Link] = {}
        self.summary: LiveSummary | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="netfast-bench-live", daemon=True)

    def start(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the netfast router did not open its links in {timeout:g} s")
        if self.error is not None:
            self.stop()
            raise RuntimeError(f"the netfast router failed to start: {self.error}")

    def _main(self) -> None:
        try:
            _enter_netns(self.ns)  # this thread only: sockets opened now belong to M
            self.links = self.built.open_links()
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            with self.built:
                self.summary = self.built.run_live(
                    self._stop,
                    duration=self.duration,
                    batch_size=self.batch_size,
                    engine=self.engine,
                )
        except BaseException as exc:
            self.error = exc

    def snapshot(self) -> dict[str, Any]:
        """The engine's figures and the links' counters now (call while traffic is idle)."""
        s = self.engine.stats
        links: Counter[str] = Counter()
        for link in self.links.values():
            links.update(link.counters)
        return {
            "frames_in": s.frames_in,
            "vector_frames": s.vector_frames,
            "scalar_frames": s.scalar_frames,
            "vector_seconds": s.vector_seconds,
            "scalar_seconds": s.scalar_seconds,
            "counters": Counter(self.engine.counters),
            "links": links,
        }

    def stop(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def _figures(before: dict[str, Any], after: dict[str, Any]) -> NetfastFigures:
    counters = after["counters"] - before["counters"]
    links = after["links"] - before["links"]
    return NetfastFigures(
        frames_in=after["frames_in"] - before["frames_in"],
        vector_frames=after["vector_frames"] - before["vector_frames"],
        scalar_frames=after["scalar_frames"] - before["scalar_frames"],
        forwarded=counters["ip.fwd.forwarded"],
        vector_seconds=after["vector_seconds"] - before["vector_seconds"],
        scalar_seconds=after["scalar_seconds"] - before["scalar_seconds"],
        counters=dict(sorted(counters.items())),
        link_drops={k: v for k, v in sorted(links.items()) if k.startswith("drop.")},
    )


# -- the measurement -----------------------------------------------------------------------------


def _measure_mode(
    topo: Topology,
    mode: str,
    round_no: int,
    packets: int,
    seconds: float,
    batch_size: int,
) -> ModeRun:
    topo.set_mode(mode)
    router: NetfastRouter | None = None
    if mode == "netfast":
        # The thread's bound: warm-up, the run and every settle, with room to spare.
        bound = WARMUP_SECONDS + seconds + 4 * SETTLE_LIMIT + 30
        router = NetfastRouter(topo.ns_m, bound, batch_size)
        router.start()
    try:
        extra = None if router is None else (lambda: router.engine.stats.frames_in)
        topo.generate(WARMUP_PACKETS, WARMUP_SECONDS)
        topo.settle(extra)
        if router is not None and router.error is not None:
            raise RuntimeError(f"the netfast router failed: {router.error}")
        before = topo.link_stats()
        nf_before = router.snapshot() if router is not None else None
        sent, errors, dt = topo.generate(packets, seconds)
        topo.settle(extra)
        after = topo.link_stats()
        nf_after = router.snapshot() if router is not None else None
    finally:
        if router is not None:
            router.stop()
    if router is not None and router.error is not None:
        raise RuntimeError(f"the netfast router failed: {router.error}")

    def delta(key: tuple[str, str], column: int) -> int:
        return after[key][column] - before[key][column]

    return ModeRun(
        mode=mode,
        round=round_no,
        sent=sent,
        send_errors=errors,
        send_seconds=dt,
        entered=delta((topo.ns_m, IF_MA), 0),
        delivered=delta((topo.ns_b, IF_B), 0),
        netfast=None if nf_before is None or nf_after is None else _figures(nf_before, nf_after),
    )


def measure(
    *,
    packets: int = 1_000_000,
    seconds: float = 5.0,
    rounds: int = 2,
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
) -> LiveResult:
    """Build the topology, measure both modes ``rounds`` times, remove the topology.

    Parameters
    ----------
    packets, seconds
        Bounds of each measured generator run (whichever comes first).
    rounds
        Runs per mode; the modes alternate which goes first.
    batch_size
        Frames netfast reads per port per loop turn (``run_live``'s ``batch_size``).

    Raises
    ------
    PermissionError
        Not root (or no ``ip``, ``ethtool``, ``setns``): see :func:`check_environment`.
    RuntimeError
        A setup command, the generator or the netfast router failed.
    """
    if packets < 1 or rounds < 1 or batch_size < 1:
        raise ValueError("packets, rounds and batch_size must be at least 1")
    if not seconds > 0:
        raise ValueError(f"seconds = {seconds}: must be positive")
    reason = check_environment()
    if reason is not None:
        raise PermissionError(reason)
    say = progress or (lambda _msg: None)
    result = LiveResult(packets=packets, seconds=seconds, rounds=rounds, batch_size=batch_size)
    say("building namespaces")
    with Topology() as topo:
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                say(f"round {r + 1}/{rounds}: {mode}")
                result.runs.append(_measure_mode(topo, mode, r, packets, seconds, batch_size))
    return result
