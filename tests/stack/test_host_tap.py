"""netfast's host stack as a peer of the Linux kernel: a TAP whose kernel side lives in a
namespace at 198.18.7.1/24, netfast at 198.18.7.2 driven by run_host in a thread.  Linux pings
netfast and sends UDP to its echo service from an ordinary kernel socket."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.conftest import have_netns
from tests.netns import NETFAST_MAC, Sandbox, have_ping, unique_name

from netfast.ip.iface import IfAddr, Interface
from netfast.link.tap import TapLink
from netfast.stack.host import Stack
from netfast.stack.hostrun import DiscardService, EchoService, run_host
from netfast.wire.ipv4 import ip_from_str

pytestmark = [pytest.mark.netns, pytest.mark.slow]
SKIP_REASON = have_netns()

KERNEL_IP = "198.18.7.1"
NETFAST_IP = "198.18.7.2"
#: Bound on the stack thread's life, whatever the test does.
RUN_SECONDS = 60.0


@dataclass
class Host:
    ns: str
    stack: Stack
    echo: EchoService

    def sh(self, *cmd: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def host() -> Iterator[Host]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with Sandbox() as sandbox:
        tap = TapLink(unique_name("t"))
        sandbox.on_close(tap.close)
        ns = sandbox.netns()
        sandbox.move(tap.name, ns)
        sandbox.address(ns, tap.name, f"{KERNEL_IP}/24")
        iface = Interface(0, tap.name, NETFAST_MAC, (IfAddr(ip_from_str(NETFAST_IP), 24),))
        stack = Stack([iface], rng=random.Random(7))
        echo = EchoService(stack)
        apps = [echo, DiscardService(stack)]
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                run_host(stack, {0: tap}, duration=RUN_SECONDS, stop=stop, apps=apps)
            except BaseException as exc:  # surfaced by the test below
                errors.append(exc)

        thread = threading.Thread(target=loop, name="netfast-host", daemon=True)
        thread.start()
        try:
            yield Host(ns, stack, echo)
        finally:
            stop.set()
            thread.join(timeout=5)
        assert not thread.is_alive()
        assert not errors, errors
        assert stack.counters["host.internal_error"] == 0


@pytest.mark.skipif(not have_ping(), reason="ping is not installed")
def test_kernel_pings_netfast(host: Host) -> None:
    proc = host.sh("ping", "-c", "3", "-i", "0.2", "-W", "2", NETFAST_IP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 received" in proc.stdout
    assert host.stack.counters["icmp.in.echo"] >= 3
    assert host.stack.counters["arp.in.request"] >= 1


UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3.0)
s.bind(("198.18.7.1", 0))
msgs = [b"netfast echo %d " % i * (1 + 300 * i) for i in range(3)]
for m in msgs:
    s.sendto(m, (sys.argv[1], 7))
    data, peer = s.recvfrom(65536)
    assert data == m and peer == (sys.argv[1], 7), (len(data), peer)
print("ok", len(msgs))
"""


def test_kernel_udp_echo(host: Host) -> None:
    # The last message (602 x 17 bytes) is larger than the MTU: fragmented both ways.
    proc = host.sh(sys.executable, "-c", UDP_CLIENT, NETFAST_IP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok 3"
    assert host.echo.datagrams == 3
    assert host.stack.counters["ip.reass.done"] >= 1
