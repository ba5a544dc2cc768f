"""RingLink (PACKET_MMAP rings) against the Linux kernel, across a veth into a namespace.

The namespace end of the veth sends and captures with plain AF_PACKET sockets in a child
process (tests/netns.py ``send_from``, ``Capture``); frames carry the local experimental
EtherType 0x88B5 and a sequence number, so neither kernel reacts to them and every frame is
recognisable.  Offloads are off on both ends and IPv6 is off, so nothing else crosses the veth.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import have_netns
from tests.netns import Capture, Sandbox, iface_mac, offloads_off, run, send_from, sys_counter

from netfast.link import ring as ring_module
from netfast.link.afpacket import AfPacketLink
from netfast.link.base import BatchLink, Link, WaitableLink
from netfast.link.ring import RingConfig, RingLink, RingUnavailable, open_packet_link
from netfast.link.ring_kernels import RX_COUNTS, TX_COUNTS, rx_gather, tx_scatter
from netfast.wire.batch import FrameBatch

pytestmark = pytest.mark.netns
SKIP_REASON = have_netns()

ETHERTYPE = b"\x88\xb5"
RING_MAC = bytes.fromhex("02000000fa57")
IFF_PROMISC = 0x100
#: Small blocks: a page each, about two dozen small frames per block.
TINY = RingConfig(block_size=4096, block_count=2)


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    """Compile the ring kernels before any timed loop (numba compiles on first call)."""
    ring = np.zeros(8192, np.uint8)
    batch = FrameBatch.empty(1)
    state = np.zeros(3, np.int64)
    counts = np.zeros(max(RX_COUNTS, TX_COUNTS), np.int64)
    words16, words32 = ring.view(np.uint16), ring.view(np.uint32)
    data, length, stamps = batch.data, batch.length, batch.timestamp_ns
    rx_gather(ring, words16, words32, state, 4096, 2, 1500, data, length, stamps, 1, counts)
    slots, rows = np.zeros(1, np.int64), np.zeros(0, np.intp)
    tx_scatter(ring, words32, slots, 0, data, length, rows, 1500, 1500, counts)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def peer(sandbox: Sandbox) -> tuple[str, str, str]:
    """(namespace, root-side veth end, namespaced end), offloads off on both."""
    ns = sandbox.netns()
    outer, inner = sandbox.veth(ns, "198.18.0.1/24")
    offloads_off(outer)
    offloads_off(inner, ns)
    return ns, outer, inner


def marked(i: int, size: int, src: bytes, dst: bytes) -> bytes:
    """Frame ``i`` of ``size`` bytes: EtherType 0x88B5, the index, then bytes derived from it."""
    head = dst + src + ETHERTYPE + i.to_bytes(4, "big")
    body = bytes((i * 7 + k) & 0xFF for k in range(size - len(head)))
    return head + body


def sizes(n: int) -> list[int]:
    """Frame sizes from the minimum to the largest an MTU of 1500 allows, mixed."""
    return [60 + (i * 397) % (1514 - 60 + 1) for i in range(n)]


def recv_all(
    link: RingLink, count: int, timeout: float = 5.0, max_frames: int = 256
) -> list[bytes]:
    """Frames from ``link`` until ``count`` arrived or ``timeout`` seconds passed."""
    got: list[bytes] = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        batch = link.recv_frame_batch(max_frames)
        got.extend(batch.frames())
        if not len(batch):
            select.select([link], [], [], 0.05)
    return got


def test_link_interfaces_and_geometry(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    with RingLink(outer) as link:
        assert isinstance(link, Link) and isinstance(link, WaitableLink)
        assert isinstance(link, BatchLink)
        assert (link.name, link.mtu, link.slot) == (outer, 1500, 1536)
        assert link.tx_slots == 512 and link.fileno() >= 0
        assert link.config == RingConfig()
    with RingLink(outer, mtu=9000) as jumbo:
        assert jumbo.slot == 9024 and jumbo.config.frame_size(9000) >= 48 + 9018
    assert not isinstance(AfPacketLink.__new__(AfPacketLink), BatchLink)


def test_receives_exactly_the_frames_sent(peer: tuple[str, str, str]) -> None:
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    frames = [marked(i, n, src, RING_MAC) for i, n in enumerate(sizes(300))]
    with RingLink(outer) as link:
        before = time.time_ns()
        assert send_from(ns, inner, frames) == len(frames)
        got = recv_all(link, len(frames))
        assert got == frames
        c = link.counters
        assert c["rx.frames"] == len(frames)
        assert c["rx.bytes"] == sum(len(f) for f in frames)
        assert c["rx.ring_offered"] == len(frames)
        assert c["drop.rx_ring"] == 0 and c["drop.rx_oversize"] == 0
        # Nothing else arrives, and recv_batch (bytes) reads the same ring.
        assert link.recv_batch(64) == []
        more = [marked(1000 + i, 64 + i, src, RING_MAC) for i in range(10)]
        send_from(ns, inner, more)
        end = time.monotonic() + 3
        seen: list[bytes] = []
        while len(seen) < len(more) and time.monotonic() < end:
            seen += link.recv_batch(4)
            time.sleep(0.005)
        assert seen == more
    # Timestamps are the kernel's receive times, in order.
    with RingLink(outer) as link:
        send_from(ns, inner, frames[:50])
        batches: list[FrameBatch] = []
        end = time.monotonic() + 3
        while sum(len(b) for b in batches) < 50 and time.monotonic() < end:
            batches.append(link.recv_frame_batch(64))
            time.sleep(0.01)
        stamps = np.concatenate([b.timestamp_ns for b in batches])
        assert len(stamps) == 50 and np.all(np.diff(stamps) >= 0)
        assert before <= stamps[0] <= time.time_ns()


def test_one_batch_spans_blocks_and_rows_stay_zero_past_each_frame(
    peer: tuple[str, str, str],
) -> None:
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    geometry = RingConfig(block_size=4096, block_count=16)
    frames = [marked(i, 60 + (i % 5) * 40, src, RING_MAC) for i in range(150)]
    with RingLink(outer, config=geometry) as link:
        send_from(ns, inner, frames)
        time.sleep(0.1)  # the last, part-full block retires after retire_ms
        batch = link.recv_frame_batch(256)
        # 150 frames of 60..220 bytes (plus a ~100-byte header each) fill six or more pages.
        assert list(batch.frames()) == frames
        for i in range(len(batch)):
            assert not batch.data[i, batch.length[i] :].any()
        # Into a reused batch: longer frames first, then shorter ones over them.
        out = FrameBatch.empty(32, link.slot)
        long = [marked(i, 1400, src, RING_MAC) for i in range(20)]
        short = [marked(100 + i, 60, src, RING_MAC) for i in range(20)]
        for group in (long, short):
            send_from(ns, inner, group)
            time.sleep(0.05)
            view = link.recv_frame_batch(32, out)
            assert list(view.frames()) == group
            assert np.shares_memory(view.data, out.data)
            for i in range(len(view)):
                assert not view.data[i, view.length[i] :].any()
        # A batch that ends inside a block keeps the rest of it for the next call.
        send_from(ns, inner, frames[:45])
        time.sleep(0.05)
        parts = [link.recv_frame_batch(10) for _ in range(6)]
        assert [len(p) for p in parts] == [10, 10, 10, 10, 5, 0]
        assert [f for p in parts for f in p.frames()] == frames[:45]
        with pytest.raises(ValueError, match="rows"):
            link.recv_frame_batch(4, FrameBatch.empty(4, 1024))


def test_overrun_is_counted_and_adds_up(peer: tuple[str, str, str]) -> None:
    """A two-page ring flooded while nobody reads: what was not received was dropped by the
    kernel, and the counters say so exactly."""
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    frames = [marked(i, 60, src, RING_MAC) for i in range(3000)]
    with RingLink(outer, config=TINY) as link:
        tx_before = sys_counter(inner, "tx_packets", ns)
        dropped_before = sys_counter(inner, "tx_dropped", ns)
        assert send_from(ns, inner, frames) == len(frames)
        offered = sys_counter(inner, "tx_packets", ns) - tx_before
        assert sys_counter(inner, "tx_dropped", ns) == dropped_before
        assert offered == len(frames)
        time.sleep(0.05)
        got = recv_all(link, len(frames), timeout=0.5)
        # Two small blocks hold a few dozen frames, in the order sent.  Mostly the first ones,
        # but not always a prefix: a frame arriving while the kernel switches blocks may be the
        # one dropped (seen once in a fresh-clone run: frame 24 missing, 25 kept).  Every drop
        # is counted below either way.
        index = {f: i for i, f in enumerate(frames)}
        positions = [index[f] for f in got]
        assert 0 < len(got) < 200 and positions == sorted(set(positions))
        # A later burst lands in a block marked TP_STATUS_LOSING (drops not yet read).
        late = [marked(5000 + i, 60, src, RING_MAC) for i in range(5)]
        send_from(ns, inner, late)
        assert recv_all(link, 5, timeout=3) == late
        assert link._counters["rx.ring_losing"] >= 1  # read the statistics by itself
        c = link.counters
        assert c["rx.frames"] == len(got) + 5
        assert c["drop.rx_ring"] > 0
        assert c["rx.frames"] + c["drop.rx_ring"] == offered + 5
        assert c["rx.ring_offered"] == offered + 5
        assert c["rx.ring_freezes"] >= 1


def test_sends_exactly_the_frames(peer: tuple[str, str, str]) -> None:
    ns, outer, inner = peer
    dst = iface_mac(inner, ns)
    frames = [marked(i, n, RING_MAC, dst) for i, n in enumerate(sizes(400))]
    with RingLink(outer) as link, Capture(ns, inner, limit=400, sources=(RING_MAC,)) as cap:
        batch = FrameBatch.from_frames(frames)
        assert link.send_frame_batch(batch) == 400  # one scatter, one send()
        assert cap.frames(wait=True) == frames
        c = link.counters
        assert (c["tx.frames"], c["tx.bytes"]) == (400, sum(len(f) for f in frames))
        # Its own frames never come back to it.
        assert link.recv_batch(64) == []
    with RingLink(outer) as link, Capture(ns, inner, limit=30, sources=(RING_MAC,)) as cap:
        rows = np.array([5, 3, 1, 3], np.intp)
        assert link.send_frame_batch(batch, rows) == 4
        assert link.send(frames[10:36]) == 26  # bytes go through the same ring
        assert cap.frames(wait=True) == [frames[5], frames[3], frames[1], frames[3], *frames[10:36]]


def test_send_drops_runts_oversize_and_what_the_ring_cannot_hold(
    peer: tuple[str, str, str],
) -> None:
    ns, outer, inner = peer
    dst = iface_mac(inner, ns)
    with RingLink(outer, config=RingConfig(tx_frames=4)) as link:
        assert link.tx_slots == 4
        legal = marked(0, 1514, RING_MAC, dst)
        tagged = dst + RING_MAC + b"\x81\x00\x00\x05" + ETHERTYPE + bytes(1500)  # 1518 bytes
        assert link.send([legal + b"x", b"\x00" * 10, legal, tagged]) == 2
        c = link.counters
        assert (c["drop.oversize"], c["drop.runt"], c["tx.frames"]) == (1, 1, 2)
        time.sleep(0.05)  # the two slots come back once the veth peer took the frames
        frames = [marked(i, 100, RING_MAC, dst) for i in range(10)]
        with Capture(ns, inner, limit=4, sources=(RING_MAC,)) as cap:
            assert link.send_frame_batch(FrameBatch.from_frames(frames)) == 4
            assert link.counters["drop.tx_ring_full"] == 6
            assert cap.frames(wait=True) == frames[:4]
        time.sleep(0.05)
        assert link.send(frames[4:6]) == 2


def test_oversize_frames_are_not_received(peer: tuple[str, str, str]) -> None:
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    with RingLink(outer, mtu=1000) as link:
        fits = marked(1, 1014, src, RING_MAC)
        big = marked(2, 1015, src, RING_MAC)
        send_from(ns, inner, [fits, big, fits])
        assert recv_all(link, 2) == [fits, fits]
        assert link.counters["drop.rx_oversize"] == 1


def test_vlan_tag_comes_back_into_the_frame(peer: tuple[str, str, str]) -> None:
    """The kernel moves an 802.1Q tag out of the frame before packet sockets see it; the ring
    hands it over beside the frame and the gather puts it back."""
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    tagged = RING_MAC + src + b"\x81\x00\x20\x07" + ETHERTYPE + bytes(range(100))
    with RingLink(outer, mtu=1500) as link, AfPacketLink(outer) as plain:
        send_from(ns, inner, [tagged])
        assert recv_all(link, 1) == [tagged]
        # A plain socket gets the frame without its tag (the tag is only in PACKET_AUXDATA).
        end, seen = time.monotonic() + 3, list[bytes]()
        while not seen and time.monotonic() < end:
            seen = plain.recv_batch(4)
            time.sleep(0.005)
        assert seen == [tagged[:12] + tagged[16:]]


def test_select_wakes_when_a_block_is_ready(peer: tuple[str, str, str]) -> None:
    ns, outer, inner = peer
    src = iface_mac(inner, ns)
    with RingLink(outer) as link:
        assert select.select([link], [], [], 0.05)[0] == []
        send_from(ns, inner, [marked(0, 60, src, RING_MAC)])
        # Within the block timeout (2 ms, in timer ticks), not after the poll's own timeout.
        t0 = time.monotonic()
        assert select.select([link], [], [], 2.0)[0] == [link]
        assert time.monotonic() - t0 < 0.5
        assert len(link.recv_frame_batch()) == 1


def test_promiscuous_mode_and_close(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    flags = Path(f"/sys/class/net/{outer}/flags")
    link = RingLink(outer, promiscuous=True)
    assert int(flags.read_text(), 16) & IFF_PROMISC
    link.close()
    link.close()
    assert not int(flags.read_text(), 16) & IFF_PROMISC
    assert len(link.recv_frame_batch()) == 0 and link.recv_batch() == []
    assert link.send([bytes(60)]) == 0
    assert link.send_frame_batch(FrameBatch.empty(3)) == 0
    assert link.counters["drop.closed"] == 4


def test_errors_that_are_not_about_rings_raise(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    with pytest.raises(OSError) as info:
        open_packet_link("nf-no-such-if")
    assert not isinstance(info.value, RingUnavailable)
    with pytest.raises(ValueError, match="block_size"):
        RingLink(outer, config=RingConfig(block_size=5000))
    with pytest.raises(ValueError, match="tx_frame_size"):
        RingLink(outer, mtu=4000, config=RingConfig(tx_frame_size=2048))
    plain = open_packet_link(outer, ring=None)
    assert isinstance(plain, AfPacketLink) and "link.ring_fallback" not in plain.counters
    plain.close()


class _NoTxRingSocket(socket.socket):
    """A packet socket whose kernel (as before Linux 4.11) refuses a TPACKET_V3 TX ring."""

    def setsockopt(self, level: int, option: int, value: object, *rest: object) -> None:
        if level == ring_module.SOL_PACKET and option == ring_module.PACKET_TX_RING:
            raise OSError(errno.EINVAL, "Invalid argument")
        super().setsockopt(level, option, value, *rest)  # type: ignore[call-overload]


def _no_mapping(*args: object, **kwargs: object) -> object:
    raise OSError(errno.ENOMEM, "Cannot allocate memory")


@pytest.mark.parametrize("failure", ["setsockopt", "mmap"])
def test_fallback_to_a_plain_socket_is_said_once_counted_and_works(
    peer: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    ns, outer, inner = peer
    if failure == "setsockopt":
        monkeypatch.setattr(
            ring_module,
            "_new_socket",
            lambda: _NoTxRingSocket(socket.AF_PACKET, socket.SOCK_RAW, 0),
        )
        why = "PACKET_TX_RING"
    else:
        monkeypatch.setattr(ring_module, "_mmap", _no_mapping)
        why = "mmap"
    with pytest.raises(RingUnavailable, match=why):
        RingLink(outer)
    caplog.set_level(logging.WARNING, logger="netfast.link.ring")
    link = open_packet_link(outer, promiscuous=False, mtu=None, ring=RingConfig())
    try:
        assert isinstance(link, AfPacketLink)
        assert link.counters["link.ring_fallback"] == 1
        notes = [r for r in caplog.records if r.name == "netfast.link.ring"]
        assert len(notes) == 1 and outer in notes[0].getMessage() and why in notes[0].getMessage()
        dst, src = iface_mac(inner, ns), iface_mac(inner, ns)
        out = [marked(i, 80, RING_MAC, dst) for i in range(5)]
        with Capture(ns, inner, limit=5, sources=(RING_MAC,)) as cap:
            assert link.send(out) == 5
            assert cap.frames(wait=True) == out
        back = [marked(10 + i, 80, src, RING_MAC) for i in range(5)]
        send_from(ns, inner, back)
        end, got = time.monotonic() + 3, list[bytes]()
        while len(got) < 5 and time.monotonic() < end:
            got += link.recv_batch(64)
            time.sleep(0.005)
        assert got == back
    finally:
        link.close()


def test_frames_the_kernel_refuses_are_taken_back_not_sent_later(
    peer: tuple[str, str, str],
) -> None:
    """On an interface that is down the kernel takes no frame from the ring (ENETDOWN): they are
    counted and freed, and the ring head moves back, so the next send sends only its own -- all
    of them, though the socket still holds the ENETDOWN it reports once (a plain socket loses
    a frame to it)."""
    ns, outer, inner = peer
    dst = iface_mac(inner, ns)
    frames = [marked(i, 200, RING_MAC, dst) for i in range(12)]
    with RingLink(outer) as link:
        assert link.send(frames[:3]) == 3
        run("ip", "link", "set", outer, "down")
        assert link.send_frame_batch(FrameBatch.from_frames(frames[3:8])) == 0
        c = link.counters
        assert (c["drop.error"], c["tx.frames"]) == (5, 3)
        run("ip", "link", "set", outer, "up")
        deadline = time.monotonic() + 10  # the carrier comes back a moment after
        while "LOWER_UP" not in run("ip", "link", "show", outer) and time.monotonic() < deadline:
            time.sleep(0.05)
        with Capture(ns, inner, limit=4, sources=(RING_MAC,)) as cap:
            assert link.send(frames[8:12]) == 4
            assert cap.frames(wait=True) == frames[8:12]
        assert link.counters["tx.frames"] == 7
