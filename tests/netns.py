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
