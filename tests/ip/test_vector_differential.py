"""The key test of the vector path: "vector + punted rows through router.input" must equal
"router.input on every frame" -- the same frames per egress in the same order, the same router
counters, the same firewall rule counters -- on real captures and on every kind of malformed or
exceptional packet, and on random batches (hypothesis).

Topology (two identical routers, one per run)::

    if0 198.18.0.1/24   ingress; hosts .10 (static ARP), .99 (no ARP entry)
    if1 198.18.1.1/24   gateway 198.18.1.254 (static) for 0.0.0.0/1 and 192.168.0.0/16
    if2 198.19.0.1/24   gateway 198.19.0.254 (static) for 128.0.0.0/2; MTU 576
    if3 198.19.1.1/24   gateway 198.19.1.254 with NO ARP entry, for 203.0.113.0/24
    100.64.0.0/10 -> NextHop on an interface that does not exist (bad next hop)
    everything else in 192.0.0.0/3 has no route
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.ip.router import FRAME_OUTCOMES, IP_OUTCOMES, Router
from netfast.ip.vector import VectorForwarder
from netfast.pfil import Direction
from netfast.pfil.heads import PfilHeads
from netfast.pfil.ipfw import Ruleset, parse_rules
from netfast.route.rib import Rib, parse_prefix
from netfast.route.table import RoutingTable
from netfast.wire.batch import FrameBatch
from netfast.wire.checksum import internet_checksum
from netfast.wire.ipv4 import ip_from_str
from netfast.wire.pcap import open_capture_stream

MAC = [bytes.fromhex(f"0200000000{i:02x}") for i in range(4)]
PEER_MAC = bytes.fromhex("0a0000000010")
HOST = ip_from_str("198.18.0.10")
HOST_UNRESOLVED = ip_from_str("198.18.0.99")
GW1, GW2, GW3 = (ip_from_str(a) for a in ("198.18.1.254", "198.19.0.254", "198.19.1.254"))
GW_MAC = {GW1: bytes.fromhex("0a00000001fe"), GW2: bytes.fromhex("0a00000002fe")}
IF2_MTU = 576
NOW = 1000.0

RULES = """
100 deny tcp from any to any 23
200 reset tcp from any to any 113 out
300 deny udp from any to 10.9.0.0/16
400 unreach port udp from any to any 9
500 count ip from any to any
600 deny icmp from any to any icmptypes 13
700 allow ip from any to any
"""


def interfaces() -> list[Interface]:
    nets = ("198.18.0.1", "198.18.1.1", "198.19.0.1", "198.19.1.1")
    return [
        Interface(i, f"if{i}", MAC[i], (IfAddr(ip_from_str(a), 24),), IF2_MTU if i == 2 else 1500)
        for i, a in enumerate(nets)
    ]


def routing_table() -> RoutingTable:
    t = RoutingTable(Rib(), "dxr")
    for prefix, hop in (
        ("198.18.0.0/24", NextHop(0)),
        ("198.18.1.0/24", NextHop(1)),
        ("198.19.0.0/24", NextHop(2)),
        ("198.19.1.0/24", NextHop(3)),
        ("0.0.0.0/1", NextHop(1, GW1)),
        ("192.168.0.0/16", NextHop(1, GW1)),
        ("128.0.0.0/2", NextHop(2, GW2)),
        ("203.0.113.0/24", NextHop(3, GW3)),
        ("100.64.0.0/10", NextHop(7, GW1)),
    ):
        t.add(*parse_prefix(prefix), hop)
    return t


# Keep-state rules at one head: the vector path runs the firewall ordered, creating states in
# the batch (and punting what an earlier punted packet could change).
STATEFUL = """
100 deny log udp from any to any 7
200 unreach port udp from any to any 9
300 allow tcp from any to any setup keep-state
400 allow udp from any to any keep-state limit 20
500 allow icmp from any to any icmptypes 8 keep-state
600 deny tcp from any to any
700 allow ip from any to any
"""


def make_router(table: RoutingTable, rules: str | None) -> tuple[Router, Ruleset | None]:
    heads = None
    ruleset = None
    if rules is not None:
        heads = PfilHeads()
        ruleset = parse_rules(rules)
        heads.add_hook(Direction.IN, ruleset)
        if rules is not STATEFUL:
            heads.add_hook(Direction.OUT, ruleset)
    router = Router(interfaces(), table, heads, strict=True)
    router.arp.add_static(0, HOST, PEER_MAC)
    for gw, mac in GW_MAC.items():
        router.arp.add_static(1 if gw == GW1 else 2, gw, mac)
    return router, ruleset


# --- frames --------------------------------------------------------------------------------


def ip_packet(
    src: int,
    dst: int,
    *,
    proto: int = 17,
    ttl: int = 64,
    payload: bytes = b"\x9c\x40\x00\x35\x00\x0c\x00\x00data",
    flags_frag: int = 0,
    options: bytes = b"",
    version: int = 4,
    ihl: int | None = None,
    total_delta: int = 0,
    bad_checksum: bool = False,
    tos: int = 0,
    ident: int = 0x1234,
) -> bytes:
    """A raw IPv4 packet, any field as asked (valid checksum unless ``bad_checksum``)."""
    hl = 20 + len(options)
    if ihl is None:
        ihl = hl // 4
    total = hl + len(payload) + total_delta
    header = (
        struct.pack(
            ">BBHHHBBHII",
            (version << 4) | ihl,
            tos,
            total & 0xFFFF,
            ident,
            flags_frag,
            ttl,
            proto,
            0,
            src,
            dst,
        )
        + options
    )
    csum = internet_checksum(header)
    if bad_checksum:
        csum ^= 0x0101
    header = header[:10] + struct.pack(">H", csum) + header[12:]
    return header + payload


def eth(packet: bytes, *, dst_mac: bytes = MAC[0], ethertype: int = 0x0800, pad: int = 0) -> bytes:
    return dst_mac + PEER_MAC + struct.pack(">H", ethertype) + packet + bytes(pad)


def tcp(sport: int, dport: int, flags: int = 0x02) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 8192, 0, 0)


def icmp(icmp_type: int, code: int = 0) -> bytes:
    body = struct.pack(">BBHHH", icmp_type, code, 0, 1, 1) + b"ping"
    return body[:2] + struct.pack(">H", internet_checksum(body)) + body[4:]


A = ip_from_str
SRC = HOST


def zoo() -> list[bytes]:
    """One or more frames of every kind the vector path must forward, drop or punt."""
    big = bytes(600)
    frames = [
        eth(ip_packet(SRC, A("10.1.2.3"))),  # via gw1
        eth(ip_packet(SRC, A("130.1.2.3"))),  # via gw2
        eth(ip_packet(SRC, A("192.168.7.7"), proto=6, payload=tcp(1234, 80))),
        eth(ip_packet(SRC, A("10.1.2.4"), proto=1, payload=icmp(8))),
        eth(ip_packet(SRC, A("10.1.2.5")), pad=20),  # link padding: removed on output
        eth(ip_packet(SRC, A("10.1.2.6"), flags_frag=0x4000)),  # DF, fits
        eth(ip_packet(SRC, A("10.1.2.7"), tos=0xB8, ttl=2)),  # TTL 2 forwarded with TTL 1
        eth(ip_packet(A("198.18.1.77"), A("198.18.0.10"))),  # connected, resolved, back out if0
        # integrity
        eth(ip_packet(SRC, A("10.1.2.3"), bad_checksum=True)),
        eth(ip_packet(SRC, A("10.1.2.3"), total_delta=-20)),  # total length below the header
        eth(ip_packet(SRC, A("10.1.2.3"), total_delta=+40)),  # total length beyond the frame
        eth(ip_packet(SRC, A("10.1.2.3"))[:18]),  # short
        eth(b"")[:10],  # runt Ethernet
        eth(ip_packet(SRC, A("10.1.2.3"), ihl=4)),
        eth(ip_packet(SRC, A("10.1.2.3"), ihl=6)),
        eth(ip_packet(SRC, A("10.1.2.3"), version=6)),
        eth(ip_packet(SRC, A("10.1.2.3"), options=b"\x01\x01\x01\x00")),  # options: forwarded
        eth(ip_packet(SRC, A("10.1.2.3"), options=b"\x07\x09\x04" + bytes(5))),  # bad options
        eth(ip_packet(A("127.0.0.1"), A("10.1.2.3"))),  # martian source
        eth(ip_packet(A("224.0.0.9"), A("10.1.2.3"))),
        eth(ip_packet(SRC, A("0.1.2.3"))),  # martian destination
        eth(ip_packet(SRC, A("127.1.1.1"))),
        eth(ip_packet(SRC, A("250.1.1.1"))),
        # TTL
        eth(ip_packet(SRC, A("10.1.2.3"), ttl=0)),
        eth(ip_packet(SRC, A("10.1.2.3"), ttl=1)),
        eth(ip_packet(SRC, A("198.18.0.1"), ttl=1, proto=1, payload=icmp(8))),  # local, TTL 1
        # fragments
        eth(ip_packet(SRC, A("10.1.2.3"), flags_frag=0x2000)),
        eth(ip_packet(SRC, A("10.1.2.3"), flags_frag=0x0010)),
        # local, broadcast, multicast
        eth(ip_packet(SRC, A("198.18.0.1"), proto=1, payload=icmp(8))),
        eth(ip_packet(SRC, A("198.19.0.1"))),
        eth(ip_packet(SRC, A("198.18.0.255"))),
        eth(ip_packet(SRC, A("255.255.255.255"))),
        eth(ip_packet(SRC, A("224.0.0.5"))),
        eth(ip_packet(SRC, A("10.1.2.3")), dst_mac=b"\xff" * 6),  # link broadcast
        eth(ip_packet(SRC, A("10.1.2.3")), dst_mac=b"\x01\x00\x5e\x00\x00\x01"),
        # routing
        eth(ip_packet(SRC, A("200.1.2.3"))),  # no route
        eth(ip_packet(SRC, A("100.64.1.1"))),  # bad next hop
        eth(ip_packet(SRC, A("130.1.2.3"), flags_frag=0x4000, payload=big)),  # DF, too big
        eth(ip_packet(SRC, A("130.1.2.3"), payload=big)),  # too big: fragmented
        eth(ip_packet(SRC, A("203.0.113.5"))),  # unresolved gateway
        eth(ip_packet(SRC, A("198.18.0.99"))),  # unresolved connected host
        # firewall
        eth(ip_packet(SRC, A("10.1.2.3"), proto=6, payload=tcp(5555, 23))),  # deny
        eth(ip_packet(SRC, A("10.1.2.3"), proto=6, payload=tcp(5555, 113))),  # reset (out)
        eth(ip_packet(SRC, A("10.9.1.1"))),  # deny udp
        eth(ip_packet(SRC, A("10.1.2.3"), payload=b"\x9c\x40\x00\x09\x00\x0c\x00\x00data")),
        eth(ip_packet(SRC, A("10.1.2.3"), proto=1, payload=icmp(13))),  # deny icmp type 13
        eth(ip_packet(SRC, A("10.1.2.3"), proto=6, payload=tcp(5555, 23)[:10])),  # short TCP
        # not IPv4
        eth(bytes(28), ethertype=0x0806),
        eth(bytes(40), ethertype=0x86DD),
        eth(b"\x08\x00" + bytes(40), ethertype=0x8100),
    ]
    return frames


def capture_frames(paths: Sequence[Path], limit: int = 400) -> list[bytes]:
    """Ethernet frames of real captures, addressed to the router's if0 (their IP addresses
    stay; the routes above cover them or not)."""
    out: list[bytes] = []
    for path in paths:
        with path.open("rb") as f:
            try:
                reader = open_capture_stream(f, str(path))
                records = [r for r in reader if r.linktype == 1]
            except ValueError:
                continue
        for r in records[:limit]:
            if len(r.data) >= 14 and len(r.data) <= 1536:
                out.append(MAC[0] + r.data[6:])
    return out


# --- the two runs ---------------------------------------------------------------------------


def run_both(
    frames: Sequence[bytes], rules: str | None = RULES, batches: int = 1
) -> tuple[dict[int, list[bytes]], dict[int, list[bytes]], Router, Router, Counter[str]]:
    """(a) vector + punts, (b) all scalar; the frames out per egress of each, both routers and
    the vector path's counters."""
    table = routing_table()
    ra, rules_a = make_router(table, rules)
    rb, rules_b = make_router(table, rules)
    fwd = VectorForwarder(ra)
    out_a: dict[int, list[bytes]] = {}
    vec_counts: Counter[str] = Counter()
    chunks = np.array_split(np.arange(len(frames)), batches)
    for chunk in chunks:
        part = [frames[i] for i in chunk]
        batch = FrameBatch.from_frames(part)
        res = fwd.forward(batch, 0, NOW)
        vec_counts.update(res.drops)
        per_row: dict[int, list[tuple[int, bytes]]] = {}
        for egress, fb in res.out.items():
            assert list(res.out_rows[egress]) == sorted(res.out_rows[egress])
            for row, data in zip(res.out_rows[egress], fb.frames(), strict=True):
                per_row.setdefault(int(row), []).append((egress, data))
        for row in res.punt:
            per_row[int(row)] = ra.input(0, part[int(row)], NOW)
        for row in sorted(per_row):
            for egress, data in per_row[row]:
                out_a.setdefault(egress, []).append(data)
    out_b: dict[int, list[bytes]] = {}
    for f in frames:
        for egress, data in rb.input(0, f, NOW):
            out_b.setdefault(egress, []).append(data)
    if rules_a is not None and rules_b is not None:
        assert rules_a.packets.tolist() == rules_b.packets.tolist()
        assert rules_a.bytes.tolist() == rules_b.bytes.tolist()
        assert rules_a.stats == rules_b.stats
        assert dict(rules_a.states.items()) == dict(rules_b.states.items())
        assert list(rules_a.log) == list(rules_b.log)
    return out_a, out_b, ra, rb, vec_counts


def assert_same(
    frames: Sequence[bytes], rules: str | None = RULES, batches: int = 1
) -> Counter[str]:
    out_a, out_b, ra, rb, vec = run_both(frames, rules, batches)
    assert out_a.keys() == out_b.keys()
    for egress in out_b:
        assert out_a[egress] == out_b[egress], f"egress {egress}"
    total = Counter(ra.counters)
    total.update(vec)
    assert +total == +rb.counters
    c = rb.counters
    assert sum(c[n] for n in FRAME_OUTCOMES) == c["eth.in.frames"]
    assert sum(c[n] for n in IP_OUTCOMES) == c["ip.in.received"]
    return vec


@pytest.mark.parametrize(
    "rules", [None, RULES, STATEFUL], ids=["no-firewall", "firewall", "keep-state"]
)
def test_zoo_identical(rules: str | None) -> None:
    vec = assert_same(zoo(), rules)
    # The vector path really did the common work: forwarded and dropped some itself (with
    # keep-state, the states of flows next to this many punted rows are left to the scalar path).
    assert vec["ip.fwd.forwarded"] >= (7 if rules is not STATEFUL else 1)
    assert vec["ip.in.bad_checksum"] == 1
    assert vec["ip.in.martian_src"] == 2 and vec["ip.in.martian_dst"] == 3
    if rules is RULES:
        assert vec["pfil.in.drop"] == 3  # tcp 23, udp 10.9/16, icmp 13


@pytest.mark.parametrize("rules", [RULES, STATEFUL], ids=["firewall", "keep-state"])
def test_zoo_repeated_in_several_batches(rules: str) -> None:
    frames = zoo() * 5
    assert_same(frames, rules, batches=3)


def test_firewall_without_vector_form_punts_all() -> None:
    table = routing_table()
    router, _ = make_router(table, None)
    heads = PfilHeads()
    heads.add_hook(Direction.FORWARD, lambda pkt: 0)  # type: ignore[arg-type,return-value]
    router.pfil = heads
    res = VectorForwarder(router).forward(FrameBatch.from_frames(zoo()), 0, NOW)
    assert not res.out
    assert res.drops["ip.fwd.forwarded"] == 0


def test_real_captures(shared_data: Path) -> None:
    frames = capture_frames(sorted((shared_data / "pcap").glob("*.pcap")))
    assert len(frames) > 100
    vec = assert_same(frames, RULES, batches=2)
    assert vec["ip.fwd.forwarded"] > 0
    assert_same(frames, None)
    for batches in (1, 3):
        assert_same(frames, STATEFUL, batches=batches)


def test_real_captures_keep_state_decided_in_the_batch(shared_data: Path) -> None:
    """Stateful traffic (real TCP and UDP flows, both directions arriving on one port) is
    decided by the vector path exactly as by the scalar one: the flows' first packets create
    their states in the batch and the rest of each flow follows them.  (Frames too big for
    if2's MTU are left out: the scalar path would fragment them, and a flow with a punted
    packet is punted from there on.)"""
    frames = capture_frames(sorted((shared_data / "pcap").glob("*.pcap")))
    frames = [f for f in frames if len(f) <= 14 + IF2_MTU]
    assert_same(frames, STATEFUL)
    router, ruleset = make_router(routing_table(), STATEFUL)
    assert ruleset is not None
    ruleset.now = NOW
    res = VectorForwarder(router).forward(FrameBatch.from_frames(frames), 0, NOW)
    # no scalar path ran: the states were created and hit in the batch
    assert ruleset.stats["ipfw.state.created"] > 0 and ruleset.stats["ipfw.state.hit"] > 0
    assert ruleset.stats["ipfw.state.hit"] > len(res.punt) // 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=60),
    ttls=st.lists(st.integers(0, 4), min_size=1, max_size=60),
    firewall=st.sampled_from([None, RULES, STATEFUL]),
)
def test_random_batches(picks: list[int], ttls: list[int], firewall: str | None) -> None:
    kinds = zoo()
    frames = []
    for i, p in enumerate(picks):
        f = bytearray(kinds[p % len(kinds)])
        if len(f) >= 34 and p % 3 == 0 and f[12:14] == b"\x08\x00":
            # a TTL variation that keeps the checksum right (or, for some, breaks it)
            ttl = ttls[i % len(ttls)]
            f[24:26] = struct.pack(">H", ((f[24] << 8) | f[25]) ^ ((f[22] ^ ttl) << 8) ^ (p & 4))
            f[22] = ttl
        frames.append(bytes(f))
    assert_same(frames, firewall)
