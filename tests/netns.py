"""Kernel peers for link tests: network namespaces, veths and TAP plumbing that always go away.

A :class:`Sandbox` creates namespaces and veth pairs under names unique to this process
(``nf<pid>x<n>``, at most 15 bytes as interface names must be), records how to undo each step,
and undoes them all in reverse order on :meth:`Sandbox.close`, ignoring what is already gone
(deleting a namespace takes the interfaces inside it along).  Addresses are refused unless they
lie in 198.18.0.0/15, the range reserved for benchmarking, so a test can never talk to a real
network.  Every command has a timeout and every receive loop is bounded in frames and time.

The frame builders at the end use :mod:`netfast.wire`; tests check the kernel's answers with
scapy, an independent dissector.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from netfast.link.base import Frame, Link
from netfast.wire.arp import ArpOperation, ArpRepr
from netfast.wire.ethernet import BROADCAST, EthernetRepr, EtherType
from netfast.wire.icmpv4 import Icmpv4Echo
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str

TEST_NET = ipaddress.ip_network("198.18.0.0/15")
_names = itertools.count()


def unique_name(kind: str = "") -> str:
    """A name no other test process uses: ``nf<pid>x<n><kind>`` (``kind`` at most 2 bytes)."""
    name = f"nf{os.getpid()}x{next(_names)}{kind}"
    assert len(name) <= 15, name
    return name


def run(*cmd: str, ns: str | None = None, timeout: float = 10.0, check: bool = True) -> str:
    """Run a command (inside namespace ``ns`` when given) and return its stdout."""
    argv = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def check_test_address(cidr: str) -> None:
    """Refuse any address outside 198.18.0.0/15."""
    iface = ipaddress.ip_interface(cidr)
    if iface.ip not in TEST_NET:
        raise ValueError(f"{cidr}: tests may only use addresses in {TEST_NET}")


def iface_mac(ifname: str, ns: str | None = None) -> bytes:
    """An interface's MAC address."""
    out = run("cat", f"/sys/class/net/{ifname}/address", ns=ns)
    return bytes.fromhex(out.strip().replace(":", ""))


def have_ping() -> bool:
    return shutil.which("ping") is not None


def _disable_ipv6_root(ifname: str) -> None:
    # Keeps router solicitations and MLD reports off the wire the test watches.
    knob = Path("/proc/sys/net/ipv6/conf", ifname, "disable_ipv6")
    if knob.exists():
        knob.write_text("1\n")


class Sandbox:
    """Namespaces and interfaces created for one test, removed by :meth:`close`."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def netns(self) -> str:
        """A new namespace with loopback up and IPv6 off; returns its name."""
        name = unique_name("n")
        run("ip", "netns", "add", name)
        self._undo.append(lambda: run("ip", "netns", "delete", name, check=False))
        run("ip", "link", "set", "lo", "up", ns=name)
        for scope in ("all", "default"):
            knob = f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6"
            run("sh", "-c", f"echo 1 > {knob}", ns=name, check=False)
        return name

    def veth(self, ns: str, address: str) -> tuple[str, str]:
        """A veth pair: the first end stays in the root namespace (up, no address), the second
        goes into ``ns`` with ``address`` (CIDR, 198.18.0.0/15 only).  Returns both names."""
        check_test_address(address)
        outer, inner = unique_name("a"), unique_name("b")
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        self._undo.append(lambda: run("ip", "link", "delete", outer, check=False))
        _disable_ipv6_root(outer)
        run("ip", "link", "set", inner, "netns", ns)
        self.address(ns, inner, address)
        run("ip", "link", "set", outer, "up")
        return outer, inner

    def move(self, ifname: str, ns: str) -> None:
        """Move a root-namespace interface (e.g. a TAP) into ``ns``."""
        run("ip", "link", "set", "dev", ifname, "netns", ns)

    def address(self, ns: str, ifname: str, address: str) -> None:
        """Give ``ifname`` in ``ns`` an address (198.18.0.0/15 only) and bring it up."""
        check_test_address(address)
        run("ip", "addr", "add", address, "dev", ifname, ns=ns)
        run("ip", "link", "set", ifname, "up", ns=ns)

    def on_close(self, undo: Callable[[], object]) -> None:
        """Run ``undo`` on :meth:`close` (before the steps recorded earlier)."""
        self._undo.append(undo)

    def close(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            # Best effort: whatever fails, keep removing the rest.
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                undo()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def recv_until(
    link: Link,
    match: Callable[[Frame], bool],
    timeout: float = 3.0,
    max_frames: int = 10_000,
    on_frame: Callable[[Frame], None] | None = None,
) -> Frame | None:
    """The first frame ``match`` accepts, or None after ``timeout`` s or ``max_frames`` frames.

    ``on_frame`` sees every frame first (to answer ARP requests, say)."""
    end = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < end and seen < max_frames:
        frames = link.recv_batch(64)
        for frame in frames:
            seen += 1
            if on_frame is not None:
                on_frame(frame)
            if match(frame):
                return frame
        if not frames:
            time.sleep(0.002)
    return None


# --- raw frames from and into a namespace ------------------------------------------------------

#: Sends the hex frames read from stdin (one a line) on interface argv[1] through a plain
#: AF_PACKET socket, ``burst`` at a time with ``gap`` seconds between bursts; prints how many
#: the kernel took.
_SENDER = """
import socket, sys, time
ifname, burst, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
frames = [bytes.fromhex(line) for line in sys.stdin.read().split()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((ifname, 0))
sent = 0
for i, frame in enumerate(frames):
    try:
        s.send(frame)
        sent += 1
    except OSError:
        pass
    if burst and gap and (i + 1) % burst == 0:
        time.sleep(gap)
print(sent)
"""

#: Captures frames arriving on interface argv[1] (not the ones it sends) with a plain AF_PACKET
#: socket until stdin closes, argv[2] frames matched or argv[3] seconds passed; prints "ready"
#: once bound, then the matching frames in hex, one a line.  Frames match when argv[4] is empty
#: or they come from one of the comma-separated MACs (hex) in it.
_CAPTURE = """
import select, socket, sys, time
ifname, limit, seconds, macs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
wanted = {bytes.fromhex(m) for m in macs.split(",") if m}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(socket.SOL_SOCKET, 33, 1 << 25)  # SO_RCVBUFFORCE: no drops while we wait
s.bind((ifname, 3))
s.setblocking(False)
print("ready", flush=True)
got = []
end = time.monotonic() + seconds
done = False
while not done and len(got) < limit and time.monotonic() < end:
    ready = select.select([s, sys.stdin], [], [], 0.05)[0]
    if sys.stdin in ready:
        done = True  # drain what is queued, then stop
    for _ in range(100000):
        try:
            data, addr = s.recvfrom(70000)
        except BlockingIOError:
            break
        if addr[2] != 4 and (not wanted or data[6:12] in wanted):
            got.append(data)
print("\\n".join(f.hex() for f in got[:limit]))
"""


def send_from(ns: str, ifname: str, frames: list[bytes], burst: int = 0, gap: float = 0.0) -> int:
    """Send ``frames`` on ``ifname`` inside ``ns`` (a plain AF_PACKET socket); how many went."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _SENDER, ifname, str(burst), str(gap)],
        input="\n".join(f.hex() for f in frames),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(proc.stdout.strip())


class Capture:
    """Frames arriving on ``ifname`` inside ``ns``, captured by a plain AF_PACKET socket in a
    child process; :meth:`frames` stops it (or waits for ``limit`` frames) and returns them."""

    def __init__(
        self,
        ns: str,
        ifname: str,
        *,
        limit: int = 100_000,
        seconds: float = 30.0,
        sources: tuple[bytes, ...] = (),
    ) -> None:
        macs = ",".join(m.hex() for m in sources)
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _CAPTURE,
             ifname, str(limit), str(seconds), macs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if line != "ready":
            self._proc.kill()
            self._proc.wait(5)
            raise RuntimeError(f"capture on {ifname} in {ns} did not start: {line!r}")

    def frames(self, wait: bool = False) -> list[bytes]:
        """The captured frames: those queued now, or with ``wait`` once ``limit`` arrived or
        the capture's time ran out."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if not wait:
                proc.stdin.close()  # the capture drains its socket and stops
            out = proc.stdout.read()  # returns when the capture exits (bounded by ``seconds``)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            if not proc.stdin.closed:
                proc.stdin.close()
        return [bytes.fromhex(line) for line in out.split()]

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def offloads_off(ifname: str, ns: str | None = None) -> None:
    """Checksum offloads, TSO, GSO and GRO off on ``ifname`` (ethtool), so packet sockets see
    wire frames: no partial checksums, no super-frames."""
    run("ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
        "gro", "off", ns=ns, check=False)  # fmt: skip


def sys_counter(ifname: str, name: str, ns: str | None = None) -> int:
    """An interface statistic (``/sys/class/net/<if>/statistics/<name>``)."""
    return int(run("cat", f"/sys/class/net/{ifname}/statistics/{name}", ns=ns))


# --- frames -----------------------------------------------------------------------------------

# A locally administered unicast MAC for netfast's side of every test.
NETFAST_MAC = bytes.fromhex("02000000fa57")


def _pad(frame: bytes) -> bytes:
    return frame.ljust(60, b"\0")  # the Ethernet minimum without FCS


def arp_frame(op: ArpOperation, src_mac: bytes, src_ip: str, dst_mac: bytes, dst_ip: str) -> bytes:
    """An ARP request (to broadcast) or reply (to ``dst_mac``) in an Ethernet frame."""
    target_hw = bytes(6) if op == ArpOperation.REQUEST else dst_mac
    eth_dst = BROADCAST if op == ArpOperation.REQUEST else dst_mac
    arp = ArpRepr(op, src_mac, ip_from_str(src_ip), target_hw, ip_from_str(dst_ip))
    return _pad(EthernetRepr(eth_dst, src_mac, EtherType.ARP).to_bytes(arp.to_bytes()))


def echo_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: str,
    dst_ip: str,
    ident: int,
    seq_no: int,
    data: bytes = b"netfast",
    reply: bool = False,
) -> bytes:
    """An ICMP echo request (or reply) in IPv4 in Ethernet."""
    icmp = Icmpv4Echo(ident, seq_no, data, reply=reply).to_bytes()
    ip = Ipv4Repr(ip_from_str(src_ip), ip_from_str(dst_ip), IpProtocol.ICMP, len(icmp))
    return _pad(EthernetRepr(dst_mac, src_mac, EtherType.IPV4).to_bytes(ip.to_bytes(icmp)))
