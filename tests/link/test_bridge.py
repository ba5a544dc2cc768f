"""Bridge: two links joined through the impairment layer, in memory and between namespaces."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from tests.conftest import have_netns
from tests.netns import Sandbox, have_ping, iface_mac, run

from netfast.link.afpacket import AfPacketLink
from netfast.link.bridge import Bridge
from netfast.link.impair import Impairment
from netfast.link.memory import MemoryLink


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def frame(n: int, size: int = 60) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + n.to_bytes(4, "big")
    return head + bytes(size - len(head))


def wires(
    capacity: int = 1024,
) -> tuple[MemoryLink, MemoryLink, MemoryLink, MemoryLink]:
    """host_a -- port_a [bridge] port_b -- host_b, two memory wires."""
    host_a, port_a = MemoryLink.pair(capacity=capacity, names=("host_a", "port_a"))
    port_b, host_b = MemoryLink.pair(capacity=capacity, names=("port_b", "host_b"))
    return host_a, port_a, port_b, host_b


def test_poll_forwards_both_ways() -> None:
    host_a, port_a, port_b, host_b = wires()
    bridge = Bridge(port_a, port_b)
    host_a.send([frame(1), frame(2)])
    host_b.send([frame(3)])
    assert bridge.poll() == 3
    assert host_b.recv_batch() == [frame(1), frame(2)]
    assert host_a.recv_batch() == [frame(3)]
    c = bridge.counters
    assert (c["ab.in.frames"], c["ab.out.frames"]) == (2, 2)
    assert (c["ba.in.frames"], c["ba.out.frames"]) == (1, 1)
    assert c["ab.in.bytes"] == 120
    assert bridge.poll() == 0


def test_poll_reads_at_most_a_batch_per_side() -> None:
    host_a, port_a, port_b, host_b = wires()
    bridge = Bridge(port_a, port_b, batch=8)
    host_a.send(frame(i) for i in range(20))
    assert bridge.poll() == 8
    assert len(host_b.recv_batch(100)) == 8


def test_destination_refusals_are_counted() -> None:
    host_a, port_a = MemoryLink.pair()
    port_b, _ = MemoryLink.pair(capacity=4)
    bridge = Bridge(port_a, port_b)
    host_a.send(frame(i) for i in range(10))
    bridge.poll()
    assert bridge.counters["ab.out.frames"] == 4
    assert bridge.counters["ab.out.failed"] == 6
    assert port_b.counters["drop.queue_full"] == 6


def test_impairment_per_direction() -> None:
    host_a, port_a, port_b, host_b = wires(capacity=5000)
    bridge = Bridge(port_a, port_b, impair_ab=Impairment(loss=0.5), seed=3, batch=4096)
    host_a.send(frame(i) for i in range(4000))
    host_b.send(frame(i) for i in range(4000))
    bridge.poll()
    got_b = len(host_b.recv_batch(5000))
    got_a = len(host_a.recv_batch(5000))
    assert got_a == 4000  # b -> a is not impaired
    assert abs(got_b - 2000) <= 5 * (4000 * 0.25) ** 0.5
    assert bridge.counters["ab.impair.loss"] == 4000 - got_b
    assert bridge.counters["ba.impair.loss"] == 0


def test_delay_uses_the_injected_clock() -> None:
    clock = FakeClock()
    host_a, port_a, port_b, host_b = wires()
    bridge = Bridge(port_a, port_b, impair_ab=Impairment(delay=0.05), clock=clock)
    host_a.send([frame(1)])
    bridge.poll()
    assert host_b.recv_batch() == []
    assert bridge.poll_at() == pytest.approx(0.05)
    clock.t = 0.05
    bridge.poll()
    assert host_b.recv_batch() == [frame(1)]
    assert bridge.poll_at() is None


def test_same_seed_same_forwarding() -> None:
    def once(seed: int) -> list[bytes]:
        host_a, port_a, port_b, host_b = wires(capacity=5000)
        imp = Impairment(loss=0.1, duplicate=0.1, corrupt=0.1, reorder=0.1)
        bridge = Bridge(port_a, port_b, impair_ab=imp, seed=seed, batch=4096)
        host_a.send(frame(i) for i in range(2000))
        bridge.poll()
        bridge.run(duration=0.05)  # let reorder holds expire
        return host_b.recv_batch(5000)

    assert once(1) == once(1)
    assert once(1) != once(2)


def test_run_stops_at_max_frames() -> None:
    host_a, port_a, port_b, host_b = wires()
    bridge = Bridge(port_a, port_b, batch=10)
    host_a.send(frame(i) for i in range(100))
    assert bridge.run(max_frames=30, duration=5.0) == 30
    assert len(host_b.recv_batch(100)) == 30


def test_run_stops_at_duration() -> None:
    _, port_a, port_b, _ = wires()
    bridge = Bridge(port_a, port_b)
    start = time.monotonic()
    assert bridge.run(duration=0.1) == 0
    assert 0.09 <= time.monotonic() - start < 1.0


def test_run_needs_a_bound() -> None:
    _, port_a, port_b, _ = wires()
    with pytest.raises(ValueError, match="max_frames, duration or stop"):
        Bridge(port_a, port_b).run()


def test_run_stops_on_event() -> None:
    _, port_a, port_b, _ = wires()
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    start = time.monotonic()
    Bridge(port_a, port_b).run(stop=stop, duration=5.0)
    assert time.monotonic() - start < 1.0
    timer.join()


def test_thread_forwards_until_stopped() -> None:
    host_a, port_a, port_b, host_b = wires()
    with Bridge(port_a, port_b) as bridge:
        host_a.send([frame(7)])
        got: list[bytes] = []
        end = time.monotonic() + 2.0
        while not got and time.monotonic() < end:
            got = host_b.recv_batch()
            time.sleep(0.001)
        assert got == [frame(7)]
    bridge.start(duration=1.0)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            bridge.start(duration=1.0)
    finally:
        bridge.stop()


def test_thread_errors_surface_on_stop() -> None:
    class Broken(MemoryLink):
        def recv_batch(self, max_frames: int = 64) -> list[bytes]:
            raise OSError("link gone")

    _, port_b = MemoryLink.pair()
    broken = Broken("broken", 1500, 16)
    bridge = Bridge(broken, port_b)
    bridge.start(duration=1.0)
    with pytest.raises(OSError, match="link gone"):
        bridge.stop()


# --- between two namespaces -------------------------------------------------------------------

SKIP_REASON = have_netns()
LEFT_IP, RIGHT_IP = "198.18.2.1", "198.18.2.2"


@pytest.fixture
def bridged(request: pytest.FixtureRequest) -> Iterator[tuple[str, Bridge]]:
    """Two namespaces, each with a veth whose root end is a port of a running Bridge,
    impaired both ways by ``request.param`` (an Impairment or None).  Yields (left ns, bridge)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    if not have_ping():
        pytest.skip("ping is not installed")
    impair = getattr(request, "param", None)
    with Sandbox() as sandbox:
        left, right = sandbox.netns(), sandbox.netns()
        left_port, left_if = sandbox.veth(left, f"{LEFT_IP}/24")
        right_port, right_if = sandbox.veth(right, f"{RIGHT_IP}/24")
        if impair is not None:
            # Static neighbours keep ARP out of the loss: a lost ARP exchange would hold every
            # echo for the kernel's 1 s ARP retry, longer than the whole ping run.
            for ns, dev, ip, peer_ns, peer_dev in (
                (left, left_if, RIGHT_IP, right, right_if),
                (right, right_if, LEFT_IP, left, left_if),
            ):
                mac = iface_mac(peer_dev, ns=peer_ns).hex(":")
                neigh = ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", dev]
                run(*neigh, "nud", "permanent", ns=ns)
        a = AfPacketLink(left_port, promiscuous=True)
        b = AfPacketLink(right_port, promiscuous=True)
        bridge = Bridge(a, b, impair_ab=impair, impair_ba=impair, seed=20)
        try:
            bridge.start(duration=60.0)
            yield left, bridge
        finally:
            try:
                bridge.stop()
            finally:
                a.close()
                b.close()


def ping(ns: str, count: int, interval: float) -> tuple[int, int]:
    """(transmitted, received) of a bounded ping from ``ns`` to RIGHT_IP."""
    cmd = ["ping", "-c", str(count), "-i", str(interval), "-W", "1", RIGHT_IP]
    out = run(*cmd, ns=ns, timeout=count * interval + 15, check=False)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m[1]), int(m[2])


@pytest.mark.netns
def test_ping_crosses_the_bridge(bridged: tuple[str, Bridge]) -> None:
    ns, bridge = bridged
    assert ping(ns, 3, 0.2) == (3, 3)
    c = bridge.counters
    assert c["ab.out.frames"] >= 4  # ARP request + 3 echo requests
    assert c["ba.out.frames"] >= 4


@pytest.mark.netns
@pytest.mark.parametrize("bridged", [Impairment(loss=0.3)], indirect=True)
def test_lossy_bridge_loses_some_pings(bridged: tuple[str, Bridge]) -> None:
    ns, bridge = bridged
    sent, received = ping(ns, 20, 0.05)
    assert sent == 20
    # Each echo crosses twice at 30 % loss: about half come back (0 or 20 has odds ~1e-6).
    assert 0 < received < 20, f"{received} of 20 received"
    c = bridge.counters
    assert c["ab.impair.loss"] + c["ba.impair.loss"] > 0
