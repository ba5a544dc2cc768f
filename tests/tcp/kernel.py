"""A netfast host facing the Linux kernel over a TAP, for TCP interoperability tests and benchmarks.

The TAP's kernel side sits in a namespace the test creates, at 198.18.9.1/24; netfast is
198.18.9.2 on the TAP's descriptor, run by :func:`netfast.stack.hostrun.run_host` in a thread.
With ``impair``, netfast does not read the TAP itself: a :class:`netfast.link.bridge.Bridge`
joins the TAP to one end of a memory wire through netfast's impairment layer (both directions),
and the host sits on the other end.  Everything is undone on exit (thread, bridge, TAP,
namespace).
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.netns import NETFAST_MAC, Sandbox, unique_name

from netfast.bench.netns import icmp_echo
from netfast.ip.iface import IfAddr, Interface
from netfast.link.bridge import Bridge
from netfast.link.impair import Impairment
from netfast.link.memory import MemoryLink
from netfast.link.tap import TapLink
from netfast.stack.host import Stack
from netfast.stack.hostrun import run_host
from netfast.tcp.config import TcpConfig
from netfast.tcp.layer import TcpLayer
from netfast.wire.ipv4 import ip_from_str

KERNEL_IP = "198.18.9.1"
NETFAST_IP = "198.18.9.2"


@dataclass
class KernelPeer:
    ns: str
    stack: Stack
    apps: list[Any]
    errors: list[BaseException] = field(default_factory=list)
    bridge: Bridge | None = None

    def sh(self, *cmd: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], **kw)


@contextmanager
def kernel_peer(
    *,
    impair: Impairment | None = None,
    seed: int = 1,
    run_seconds: float = 240.0,
    tcp_config: TcpConfig | None = None,
    mtu: int = 1500,
    offloads: bool = False,
    apps: Callable[[Stack], list[Any]] = lambda stack: [],
    tcp_kw: dict[str, Any] | None = None,
) -> Iterator[KernelPeer]:
    """A netfast host and a Linux namespace joined by a TAP (see the module docstring)."""
    with Sandbox() as sandbox:
        tap = TapLink(
            unique_name("t"), mtu=mtu, vnet_hdr=offloads, rx_gso="keep" if offloads else "segment"
        )
        sandbox.on_close(tap.close)
        ns = sandbox.netns()
        sandbox.move(tap.name, ns)
        sandbox.address(ns, tap.name, f"{KERNEL_IP}/24")
        # The kernel resolves netfast without ARP round trips racing the first SYN.
        subprocess.run(
            ["ip", "netns", "exec", ns, "ip", "neigh", "replace", NETFAST_IP, "lladdr",
             NETFAST_MAC.hex(":"), "dev", tap.name, "nud", "permanent"],
            check=True, capture_output=True, timeout=10,
        )  # fmt: skip
        iface = Interface(0, tap.name, NETFAST_MAC, (IfAddr(ip_from_str(NETFAST_IP), 24),), mtu)
        stack = Stack([iface], rng=random.Random(seed), tcp_config=tcp_config, tcp=not tcp_kw)
        if tcp_kw:  # TCP layer settings of the test's own (SYN cache limits ...)
            stack.attach_tcp(TcpLayer(stack.output, random.Random(seed + 1), tcp_config, **tcp_kw))
        if offloads:
            stack.enable_tso(0)
        link: Any = tap
        bridge = None
        if impair is not None:
            near, far = MemoryLink.pair(mtu=mtu, capacity=8192, names=("br", "nf"))
            bridge = Bridge(tap, near, impair_ab=impair, impair_ba=impair, seed=seed)
            bridge.start(duration=run_seconds)
            sandbox.on_close(lambda: bridge.stop(timeout=5))
            link = far
        # Apps are made before the host thread starts: only that thread touches the stack.
        peer = KernelPeer(ns, stack, apps(stack), bridge=bridge)
        stop = threading.Event()

        def loop() -> None:
            try:
                run_host(stack, {0: link}, duration=run_seconds, stop=stop, apps=peer.apps)
            except BaseException as exc:  # surfaced by the fixture's user
                peer.errors.append(exc)

        thread = threading.Thread(target=loop, name="netfast-host", daemon=True)
        thread.start()
        try:
            # Ready when the kernel reaches netfast (a new TAP takes a moment to carry).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if icmp_echo(ns, NETFAST_IP, timeout=1.0):
                    break
            yield peer
        finally:
            stop.set()
            thread.join(timeout=10)
            for app in peer.apps:
                app.close()
        assert not thread.is_alive(), "the netfast host thread did not stop"
