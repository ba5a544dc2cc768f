"""The ARP cache (netfast.ip.arp): requests answered, learning per RFC 826's merge rule, hold
queues (bounded, released on reply), retransmission with a limit, expiry, static entries."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import ARP, Ether

from netfast.ip.arp import ARP_INPUT_OUTCOMES, ArpCache
from netfast.ip.iface import IfAddr, Interface
from netfast.wire.arp import ArpOperation, ArpRepr
from netfast.wire.ipv4 import ip_from_str

MAC0 = bytes.fromhex("020000000000")
MAC1 = bytes.fromhex("020000000001")
ME0 = ip_from_str("198.18.0.1")
ME1 = ip_from_str("198.18.1.1")
PEER = ip_from_str("198.18.0.20")
PEER_MAC = bytes.fromhex("0a0000000020")
OTHER = ip_from_str("198.18.0.30")
OTHER_MAC = bytes.fromhex("0a0000000030")


def cache(**kw: float) -> tuple[ArpCache, Counter[str]]:
    counters: Counter[str] = Counter()
    ifaces = [
        Interface(0, "if0", MAC0, (IfAddr(ME0, 24),)),
        Interface(1, "if1", MAC1, (IfAddr(ME1, 24),)),
    ]
    return ArpCache(ifaces, counters, **kw), counters  # type: ignore[arg-type]


def arp(op: ArpOperation, sha: bytes, spa: int, tpa: int, tha: bytes = bytes(6)) -> bytes:
    return ArpRepr(op, sha, spa, tha, tpa).to_bytes()


def test_request_for_own_address_is_answered_and_sender_learned() -> None:
    c, counters = cache()
    res = c.input(0, arp(ArpOperation.REQUEST, PEER_MAC, PEER, ME0), 10.0)
    assert res.outcome == "arp.in.request" and counters["arp.in.request"] == 1
    ((ifindex, frame),) = res.frames
    eth = Ether(frame)
    assert ifindex == 0 and eth.dst == PEER_MAC.hex(":") and eth.src == MAC0.hex(":")
    a = eth[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        2,
        MAC0.hex(":"),
        "198.18.0.1",
        PEER_MAC.hex(":"),
        "198.18.0.20",
    )
    assert c.lookup(0, PEER, 10.0) == PEER_MAC
    assert c.lookup(1, PEER, 10.0) is None  # per interface


def test_request_for_another_address_on_the_other_interface_is_not_answered() -> None:
    c, _ = cache()
    res = c.input(0, arp(ArpOperation.REQUEST, PEER_MAC, PEER, ME1), 0.0)
    assert res.outcome == "arp.in.not_for_us" and res.frames == []
    assert c.lookup(0, PEER, 0.0) is None  # not learned: not addressed to us


def test_merge_updates_an_existing_entry_whatever_the_target() -> None:
    c, _ = cache()
    c.input(0, arp(ArpOperation.REQUEST, PEER_MAC, PEER, ME0), 0.0)
    new_mac = bytes.fromhex("0a00000000ff")
    res = c.input(0, arp(ArpOperation.REQUEST, new_mac, PEER, OTHER), 5.0)
    assert res.outcome == "arp.in.not_for_us"
    assert c.lookup(0, PEER, 5.0) == new_mac


def test_bad_packets_and_senders() -> None:
    c, counters = cache()
    assert c.input(0, b"\x00\x01" * 5, 0.0).outcome == "arp.in.bad"
    bad_op = bytearray(arp(ArpOperation.REQUEST, PEER_MAC, PEER, ME0))
    bad_op[7] = 9
    assert c.input(0, bytes(bad_op), 0.0).outcome == "arp.in.bad"
    bcast = arp(ArpOperation.REPLY, b"\xff" * 6, PEER, ME0)
    assert c.input(0, bcast, 0.0).outcome == "arp.in.bad_sender"
    conflict = arp(ArpOperation.REPLY, PEER_MAC, ME0, ME0)
    assert c.input(0, conflict, 0.0).outcome == "arp.in.addr_conflict"
    assert c.lookup(0, ME0, 0.0) is None
    assert sum(counters[n] for n in ARP_INPUT_OUTCOMES) == 4


def test_hold_queue_released_on_reply() -> None:
    c, counters = cache(hold=2)
    outcome, frames = c.hold(0, PEER, b"p1", 0.0)
    assert outcome == "arp.hold.queued"
    ((ifindex, request),) = frames
    eth = Ether(request)
    assert ifindex == 0 and eth.dst == "ff:ff:ff:ff:ff:ff" and eth.src == MAC0.hex(":")
    a = eth[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.pdst) == (1, MAC0.hex(":"), "198.18.0.1", "198.18.0.20")
    assert c.hold(0, PEER, b"p2", 0.1) == ("arp.hold.queued", [])
    assert c.hold(0, PEER, b"p3", 0.2) == ("arp.hold.overflow", [])
    assert c.lookup(0, PEER, 0.3) is None
    res = c.input(0, arp(ArpOperation.REPLY, PEER_MAC, PEER, ME0, MAC0), 0.5)
    assert res.outcome == "arp.in.reply"
    assert res.released == [(0, PEER_MAC, b"p1"), (0, PEER_MAC, b"p2")]
    assert counters["arp.hold.released"] == 2 and counters["arp.out.request"] == 1
    assert c.lookup(0, PEER, 0.5) == PEER_MAC


def test_retransmission_and_retry_limit() -> None:
    c, counters = cache(retries=3, retry_interval=1.0)
    c.hold(0, PEER, b"held", 0.0)
    assert c.poll(0.9) == ([], [], [])
    for t in (1.0, 2.0):
        frames, given_up, _ = c.poll(t)
        assert len(frames) == 1 and given_up == []
        assert Ether(frames[0][1])[ARP].pdst == "198.18.0.20"
    assert c.poll_at() == 3.0
    frames, given_up, _ = c.poll(3.0)
    assert frames == [] and given_up == [(0, b"held")]
    assert counters["arp.out.request"] == 3
    assert counters["arp.resolve.failed"] == 1 and counters["arp.hold.timeout"] == 1
    # The next packet starts over with a new request.
    assert len(c.hold(0, PEER, b"again", 4.0)[1]) == 1


def test_expiry() -> None:
    c, counters = cache(timeout=60.0)
    c.input(0, arp(ArpOperation.REPLY, PEER_MAC, PEER, ME0, MAC0), 100.0)
    assert c.lookup(0, PEER, 159.9) == PEER_MAC
    assert c.lookup(0, PEER, 160.0) is None
    assert c.poll_at() == 160.0
    c.poll(160.0)
    assert counters["arp.expired"] == 1 and PEER not in c.tables[0]
    # An expired entry is re-resolved: a miss holds and asks again.
    c.input(0, arp(ArpOperation.REPLY, PEER_MAC, PEER, ME0, MAC0), 200.0)
    outcome, frames = c.hold(0, PEER, b"x", 300.0)
    assert outcome == "arp.hold.queued" and len(frames) == 1


def test_static_entries_never_expire_nor_change() -> None:
    c, _ = cache(timeout=1.0)
    c.add_static(0, PEER, PEER_MAC)
    c.input(0, arp(ArpOperation.REPLY, OTHER_MAC, PEER, ME0, MAC0), 0.0)
    c.poll(1e9)
    assert c.lookup(0, PEER, 1e9) == PEER_MAC


def test_static_entry_releases_held_packets_on_poll() -> None:
    c, _ = cache()
    c.hold(0, OTHER, b"waiting", 0.0)
    c.add_static(0, OTHER, OTHER_MAC)
    _, _, released = c.poll(0.1)
    assert released == [(0, OTHER_MAC, b"waiting")]


def test_request_source_is_the_address_on_the_target_subnet() -> None:
    counters: Counter[str] = Counter()
    iface = Interface(0, "if0", MAC0, (IfAddr(ME0, 24), IfAddr(ip_from_str("203.0.113.1"), 24)))
    c = ArpCache([iface], counters)
    _, frames = c.hold(0, ip_from_str("203.0.113.50"), b"x", 0.0)
    assert Ether(frames[0][1])[ARP].psrc == "203.0.113.1"


@given(st.binary(max_size=60), st.integers(0, 1))
def test_arbitrary_arp_never_raises_and_has_one_outcome(data: bytes, ifindex: int) -> None:
    c, counters = cache()
    res = c.input(ifindex, data, 0.0)
    assert res.outcome in ARP_INPUT_OUTCOMES
    assert sum(counters[n] for n in ARP_INPUT_OUTCOMES) == 1
