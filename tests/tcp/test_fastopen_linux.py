"""TCP Fast Open between netfast and the Linux kernel, over a TAP in a namespace the test makes
(``net.ipv4.tcp_fastopen=3`` there, the black-hole timer off).

- A Linux client with ``MSG_FASTOPEN`` (and one with ``TCP_FASTOPEN_CONNECT``) against a netfast
  echo listener with ``fastopen``: the first connection fetches a cookie, every later one carries
  its request in the SYN, which netfast delivers before the handshake completes.
- A netfast client against a Linux listener with ``TCP_FASTOPEN``: the same the other way.

Both are proven on the wire (the SYNs netfast receives or sends, with their payloads), by
netfast's counters and by Linux's own (``TCPFastOpenActive`` / ``TCPFastOpenPassive`` in
``/proc/net/netstat``, the ``TCPI_OPT_SYN_DATA`` flag of ``TCP_INFO``).

Addresses are in 198.18.0.0/15 only; every wait is bounded; namespaces always go away.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest
from tests.conftest import have_netns
from tests.tcp.kernel import KERNEL_IP, NETFAST_IP, KernelPeer, kernel_peer

from netfast.bench import netns
from netfast.bench.ttcp import LINUX_CLIENT
from netfast.stack.host import Stack
from netfast.stack.hostrun import EchoService
from netfast.tcp.state import TcpState
from netfast.wire.errors import WireError
from netfast.wire.ethernet import EthernetFrame
from netfast.wire.ipv4 import Ipv4Packet
from netfast.wire.tcp import TcpFlags, TcpRepr, TcpSegment

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SKIP_REASON = have_netns()
ROUNDS = 4


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)


def syns_of(frames: list[bytes]) -> list[TcpRepr]:
    """The TCP SYNs (with or without ACK) among Ethernet frames."""
    out = []
    for f in frames:
        try:
            eth = EthernetFrame.new_checked(f)
            if eth.ethertype != 0x0800:
                continue
            ip = Ipv4Packet.new_checked(eth.payload)
            if ip.protocol != 6:
                continue
            seg = TcpRepr.parse(TcpSegment.new_checked(ip.payload), ip.src, ip.dst)
        except WireError:
            continue
        if seg.flags & TcpFlags.SYN:
            out.append(seg)
    return out


class Wire:
    """Records every frame the host stack receives and sends (made before the host thread
    starts, like the apps)."""

    def __init__(self, stack: Stack) -> None:
        self.rx: list[bytes] = []
        self.tx: list[bytes] = []
        rx_in, tx_poll = stack.input_batch, stack.poll

        def input_batch(ifindex: int, frames: list[Any], now: float) -> Any:
            self.rx.extend(bytes(f) for f in frames)
            return rx_in(ifindex, frames, now)

        def poll(now: float) -> list[tuple[int, bytes]]:
            out = tx_poll(now)
            self.tx.extend(f for _, f in out)
            return out

        stack.input_batch = input_batch  # type: ignore[method-assign]
        stack.poll = poll  # type: ignore[method-assign]

    def step(self, now: float) -> None:
        pass

    def close(self) -> None:
        pass


def enable_fastopen(peer: KernelPeer) -> None:
    netns.enable_fastopen(peer.ns)


def netstat(peer: KernelPeer) -> dict[str, int]:
    """The namespace's TcpExt counters."""
    text = peer.sh("cat", "/proc/net/netstat").stdout.splitlines()
    for names, values in zip(text[::2], text[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    raise AssertionError("no TcpExt line in /proc/net/netstat")


@pytest.mark.parametrize("mode", ["sendto", "connect"])
def test_linux_client_sends_data_in_syn_to_netfast(mode: str) -> None:
    wires: list[Wire] = []

    def apps(stack: Stack) -> list[Any]:
        wires.append(Wire(stack))
        return [wires[0], EchoService(stack, fastopen=True)]

    with kernel_peer(apps=apps) as peer:
        enable_fastopen(peer)
        before = netstat(peer)
        proc = peer.sh("python3", "-c", LINUX_CLIENT, NETFAST_IP, "7", str(ROUNDS), mode, "50",
                       timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        rounds = json.loads(proc.stdout)["rounds"]
        after = netstat(peer)
        c = peer.stack.counters
        assert not peer.errors
    assert all(r["ok"] for r in rounds), rounds
    # The first connection fetched the cookie; every later one had its data taken with the SYN.
    assert [r["syn_data"] for r in rounds] == [False] + [True] * (ROUNDS - 1)
    assert after["TCPFastOpenActive"] - before["TCPFastOpenActive"] == ROUNDS - 1
    assert after.get("TCPFastOpenActiveFail", 0) == before.get("TCPFastOpenActiveFail", 0)
    assert c["tcp.fastopen.passive"] == ROUNDS - 1
    assert c["tcp.fastopen.passive_fail"] == 0
    # On the wire: the SYNs netfast received, the later ones carrying the request and the
    # cookie netfast gave (kind 34, 8 bytes); netfast's SYN-ACKs acknowledged the data.
    syns = [s for s in syns_of(wires[0].rx) if not s.flags & TcpFlags.ACK]
    with_data = [s for s in syns if s.payload]
    assert [s.payload for s in with_data] == [b"GET /%d" % i for i in range(1, ROUNDS)]
    assert all(s.options.tfo_cookie is not None and len(s.options.tfo_cookie) == 8
               for s in with_data)  # fmt: skip
    assert syns[0].options.tfo_cookie == b""  # the first asked for one
    synacks = syns_of(wires[0].tx)
    for s in with_data:
        (answer,) = [a for a in synacks if a.dst_port == s.src_port]
        assert answer.ack == (s.seq + 1 + len(s.payload)) & 0xFFFFFFFF


class FastOpenClient:
    """A netfast client that opens ``rounds`` connections in turn to a Linux listener, each
    with its request queued at connect."""

    def __init__(self, stack: Stack, go: threading.Event, rounds: int) -> None:
        self.stack = stack
        self.go = go
        self.rounds = rounds
        self.sock: Any = None
        self.results: list[tuple[bool, bool]] = []
        self.got = b""
        self.done = threading.Event()
        self.error: str | None = None

    def step(self, now: float) -> None:
        if not self.go.is_set() or self.done.is_set():
            return
        i = len(self.results)
        msg = b"netfast %d" % i
        if self.sock is None:
            self.sock = self.stack.tcp_socket()
            self.sock.setsockopt(fastopen=True)
            self.sock.connect((KERNEL_IP, 8007), now, msg)
            self.got = b""
            return
        if self.sock.error is not None:
            self.error = self.sock.error
            self.done.set()
            return
        try:
            self.got += self.sock.recv(100)
        except BlockingIOError:
            return
        if len(self.got) >= len(msg) + 3 or self.sock.state == TcpState.CLOSED:
            self.results.append((self.got == b"re:" + msg, self.sock.syn_data_acked))
            self.sock.close()
            self.sock = None
            if len(self.results) == self.rounds:
                self.done.set()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


LINUX_SERVER = """
import socket, sys
TCP_FASTOPEN = 23
n = int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
ls.bind((sys.argv[1], 8007))
ls.listen(16)
ls.settimeout(30)
print("listening", flush=True)
for _ in range(n):
    s, _ = ls.accept()
    s.settimeout(5)
    data = s.recv(100)
    s.sendall(b"re:" + data)
    s.close()
"""


def test_netfast_client_sends_data_in_syn_to_linux() -> None:
    go = threading.Event()
    made: list[Any] = []

    def apps(stack: Stack) -> list[Any]:
        made.append(Wire(stack))
        made.append(FastOpenClient(stack, go, ROUNDS))
        return list(made)

    with kernel_peer(apps=apps) as peer:
        enable_fastopen(peer)
        before = netstat(peer)
        server = peer.popen(
            "python3", "-c", LINUX_SERVER, KERNEL_IP, str(ROUNDS),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == b"listening"
            go.set()
            client: FastOpenClient = made[1]
            assert client.done.wait(60), "the netfast client did not finish"
            assert client.error is None, client.error
        finally:
            server.terminate()
            server.wait(10)
        time.sleep(0.1)
        after = netstat(peer)
        c = peer.stack.counters
        assert not peer.errors
    assert [ok for ok, _ in client.results] == [True] * ROUNDS
    assert [acked for _, acked in client.results] == [False] + [True] * (ROUNDS - 1)
    assert after["TCPFastOpenPassive"] - before["TCPFastOpenPassive"] == ROUNDS - 1
    assert after.get("TCPFastOpenPassiveFail", 0) == before.get("TCPFastOpenPassiveFail", 0)
    assert c["tcp.fastopen.active"] == ROUNDS - 1
    syns = [s for s in syns_of(made[0].tx) if not s.flags & TcpFlags.ACK]
    assert [s.payload for s in syns if s.payload] == [b"netfast %d" % i for i in range(1, ROUNDS)]
    assert syns[0].options.tfo_cookie == b""
    learned = [s.options.tfo_cookie for s in syns_of(made[0].rx) if s.flags & TcpFlags.ACK]
    assert learned and learned[0] and len(learned[0]) == 8  # Linux's cookie, 8 bytes
