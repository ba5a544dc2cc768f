"""The router's scalar path (netfast.ip.router): every outcome counter fed the packet that causes
it, output frames checked with scapy, and the accounting invariant under hypothesis."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPerror
from scapy.layers.l2 import ARP, Ether
from tests.ip.router_kit import (
    ADDR,
    BEHIND_GW1,
    BEHIND_GW2,
    GW1_MAC,
    HOST_A,
    HOST_A_MAC,
    HOST_B,
    HOST_B_MAC,
    IF2_MTU,
    MAC,
    NO_ROUTE,
    UNRESOLVED,
    FakePfil,
    assert_accounted,
    frame,
    make_router,
    udp_packet,
)

from netfast.ip.router import FRAME_OUTCOMES, IP_OUTCOMES, Router
from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.wire import checksum
from netfast.wire.arp import ArpOperation, ArpRepr
from netfast.wire.ethernet import BROADCAST, EthernetRepr, EtherType
from netfast.wire.icmpv4 import Icmpv4Echo
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str, ip_to_str


def only(router: Router) -> dict[str, int]:
    """The outcome counters that are non-zero."""
    names = set(FRAME_OUTCOMES) | set(IP_OUTCOMES) | {"eth.in.frames"}
    return {k: v for k, v in router.counters.items() if k in names and v}


def feed(router: Router, packet: bytes, now: float = 0.0, **kw: bytes) -> list[tuple[int, bytes]]:
    out = router.input(0, frame(packet, **kw), now)
    assert_accounted(router)
    return out


def set_checksum(packet: bytearray) -> bytearray:
    hl = (packet[0] & 0x0F) * 4
    packet[10:12] = b"\0\0"
    packet[10:12] = checksum.internet_checksum(packet[:hl]).to_bytes(2, "big")
    return packet


def icmp_error_of(out: list[tuple[int, bytes]]) -> Ether:
    """The one frame sent, back to host A on if0, parsed by scapy and checked for checksums."""
    assert len(out) == 1
    ifindex, data = out[0]
    assert ifindex == 0
    eth = Ether(data)
    assert eth.dst == "0a:00:00:00:00:10" and eth.src == "02:00:00:00:00:00"
    ip = eth[IP]
    assert ip.src == ip_to_str(ADDR[0]) and ip.dst == ip_to_str(HOST_A)
    assert ip.proto == 1 and ip.tos == 0xC0
    raw_ip = bytes(data[14:])
    assert checksum.verify(raw_ip[:20])
    assert checksum.verify(raw_ip[20 : ip.len])
    return eth


# --- forwarding --------------------------------------------------------------------------------


def test_forward_through_gateway_decrements_ttl_and_rewrites_macs() -> None:
    r = make_router()
    packet = udp_packet(dst=BEHIND_GW1, ttl=17)
    out = feed(r, packet)
    assert only(r) == {"eth.in.frames": 1, "ip.in.received": 1, "ip.fwd.forwarded": 1}
    assert len(out) == 1 and out[0][0] == 1
    eth = Ether(out[0][1])
    assert eth.dst == GW1_MAC.hex(":") and eth.src == MAC[1].hex(":")
    ip = eth[IP]
    assert ip.ttl == 16 and ip.dst == ip_to_str(BEHIND_GW1)
    chk = ip.chksum
    del ip.chksum
    assert IP(bytes(ip)).chksum == chk  # scapy recomputes the same header checksum
    assert bytes(eth[UDP]) == packet[20:]


def test_forward_connected_route_resolves_destination_itself() -> None:
    r = make_router()
    out = r.input(1, frame(udp_packet(src=BEHIND_GW1, dst=HOST_B), dst_mac=MAC[1]), 0.0)
    assert [i for i, _ in out] == [0]
    assert Ether(out[0][1]).dst == HOST_B_MAC.hex(":")
    assert_accounted(r)


def test_link_padding_is_not_forwarded() -> None:
    r = make_router()
    packet = udp_packet(payload=b"")
    out = r.input(0, frame(packet) + bytes(20), 0.0)
    assert out[0][1][14:] != packet  # TTL changed
    assert len(out[0][1]) == 14 + len(packet)


def test_fragment_is_forwarded_as_is() -> None:
    r = make_router()
    packet = bytearray(udp_packet(payload=bytes(64)))
    packet[6:8] = (0x2000 | 3).to_bytes(2, "big")  # MF, offset 24
    out = feed(r, bytes(set_checksum(packet)))
    assert r.counters["ip.fwd.forwarded"] == 1
    ip = Ether(out[0][1])[IP]
    assert ip.flags == "MF" and ip.frag == 3


def test_options_are_counted_and_forwarded_intact() -> None:
    r = make_router()
    options = bytes((7, 7, 4)) + bytes(4) + b"\x01"  # record route with room for one address
    packet = udp_packet(options=options)
    out = feed(r, packet)
    assert r.counters["ip.in.options"] == 1
    assert r.counters["ip.fwd.forwarded"] == 1
    ip = Ether(out[0][1])[IP]
    assert ip.ihl == 7 and bytes(out[0][1])[34:42] == options
    assert checksum.verify(out[0][1][14:42])


def test_malformed_options_are_dropped() -> None:
    r = make_router()
    packet = bytearray(udp_packet(options=bytes((7, 1, 0, 0))))  # option length 1 < 3
    feed(r, bytes(set_checksum(packet)))
    assert r.counters["ip.in.bad_options"] == 1


# --- integrity checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "counter"),
    [
        (lambda p: p[:19], "ip.in.too_short"),
        (lambda p: set_checksum(bytearray(b"\x65" + p[1:])), "ip.in.bad_version"),
        (lambda p: set_checksum(bytearray(b"\x44" + p[1:])), "ip.in.bad_hlen"),
        (lambda p: p[:-1], "ip.in.bad_len"),  # total length > frame
        (lambda p: set_checksum(bytearray(p[:2] + b"\x00\x13" + p[4:])), "ip.in.bad_len"),
        (lambda p: p[:10] + b"\xde\xad" + p[12:], "ip.in.bad_checksum"),
    ],
    ids=["too_short", "version", "ihl<5", "total>frame", "total<header", "checksum"],
)
def test_integrity_drops(mutate, counter) -> None:  # type: ignore[no-untyped-def]
    r = make_router()
    out = feed(r, bytes(mutate(bytearray(udp_packet()))))
    assert out == []
    assert only(r) == {"eth.in.frames": 1, "ip.in.received": 1, counter: 1}


@pytest.mark.parametrize(
    "src", ["0.1.2.3", "127.0.0.1", "224.0.0.5", "240.0.0.1", "255.255.255.255"]
)
def test_martian_source(src: str) -> None:
    r = make_router()
    assert feed(r, udp_packet(src=ip_from_str(src))) == []
    assert r.counters["ip.in.martian_src"] == 1
    assert r.counters["icmp.out.dest_unreachable"] == 0


@pytest.mark.parametrize("dst", ["0.0.0.1", "127.1.1.1", "240.0.0.1", "254.255.255.255"])
def test_martian_destination(dst: str) -> None:
    r = make_router()
    assert feed(r, udp_packet(dst=ip_from_str(dst))) == []
    assert r.counters["ip.in.martian_dst"] == 1


def test_multicast_destination_is_not_forwarded() -> None:
    r = make_router()
    assert feed(r, udp_packet(dst=ip_from_str("239.1.2.3"))) == []
    assert r.counters["ip.fwd.multicast"] == 1


def test_unicast_in_link_broadcast_is_not_forwarded() -> None:
    r = make_router()
    assert feed(r, udp_packet(), dst_mac=BROADCAST) == []
    assert r.counters["ip.fwd.link_broadcast"] == 1


# --- TTL, routes, MTU: ICMP errors -------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, 1])
def test_ttl_exceeded_sends_time_exceeded(ttl: int) -> None:
    r = make_router()
    packet = udp_packet(ttl=ttl)
    eth = icmp_error_of(feed(r, packet))
    assert r.counters["ip.in.ttl_exceeded"] == 1
    assert r.counters["icmp.out.time_exceeded"] == 1
    icmp = eth[ICMP]
    assert (icmp.type, icmp.code) == (11, 0)
    # RFC 1812 4.3.2.3: as much of the packet as fits in 576 bytes -- all of this small one.
    assert bytes(icmp.payload) == packet
    assert eth[IPerror].ttl == ttl


def test_ttl_2_is_forwarded_with_ttl_1() -> None:
    r = make_router()
    out = feed(r, udp_packet(ttl=2))
    assert Ether(out[0][1])[IP].ttl == 1


def test_no_route_sends_net_unreachable() -> None:
    r = make_router()
    packet = udp_packet(dst=NO_ROUTE)
    eth = icmp_error_of(feed(r, packet))
    assert r.counters["ip.fwd.no_route"] == 1
    icmp = eth[ICMP]
    assert (icmp.type, icmp.code) == (3, 0)
    assert eth[IPerror].dst == ip_to_str(NO_ROUTE)


def test_df_too_big_sends_frag_needed_with_egress_mtu() -> None:
    r = make_router()
    packet = udp_packet(dst=BEHIND_GW2, payload=bytes(1400), dont_frag=True)
    out = feed(r, packet)
    eth = icmp_error_of(out)
    assert r.counters["ip.fwd.frag_needed"] == 1
    icmp = eth[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, IF2_MTU)
    # The quote is cut at 576 bytes for the whole error (RFC 1812 4.3.2.3).
    assert len(eth[IP]) == 576
    assert out[0][1][14 + 28 :] == packet[:548]
    assert eth[IPerror].len == len(packet)


def test_too_big_without_df_is_fragmented() -> None:
    from scapy.layers.inet import defragment

    r = make_router()
    packet = udp_packet(dst=BEHIND_GW2, payload=bytes(range(256)) * 10, ttl=9)
    out = feed(r, packet)
    assert r.counters["ip.fwd.fragmented"] == 1
    assert r.counters["ip.frag.created"] == len(out) == 3
    parts = [Ether(f)[IP] for _, f in out]
    for p in parts:
        assert len(p) <= IF2_MTU and p.ttl == 8
        assert checksum.verify(bytes(p)[:20])
    (whole,) = defragment(parts)
    assert bytes(whole[UDP]) == packet[20:]


def test_icmp_error_rate_limit_uses_now() -> None:
    r = make_router(icmp_rate=2.0, icmp_burst=3)
    sent = [len(feed(r, udp_packet(ttl=1), now=10.0)) for _ in range(5)]
    assert sent == [1, 1, 1, 0, 0]
    assert r.counters["icmp.out.rate_limited"] == 2
    assert len(feed(r, udp_packet(ttl=1), now=10.4)) == 0  # 0.8 tokens
    assert len(feed(r, udp_packet(ttl=1), now=10.5)) == 1  # 1.0 token
    assert r.counters["ip.in.ttl_exceeded"] == 7


def test_no_error_about_icmp_errors() -> None:
    r = make_router()
    quote = udp_packet()
    error = bytes((3, 1, 0, 0, 0, 0, 0, 0)) + quote
    error = error[:2] + checksum.internet_checksum(error).to_bytes(2, "big") + error[4:]
    packet = Ipv4Repr(HOST_A, NO_ROUTE, IpProtocol.ICMP, len(error)).to_bytes(error)
    assert feed(r, packet) == []
    assert r.counters["ip.fwd.no_route"] == 1
    assert r.counters["icmp.out.about_error"] == 1


# --- local delivery ----------------------------------------------------------------------------


def echo_request(dst: int, data: bytes = b"ping!") -> bytes:
    icmp = Icmpv4Echo(0x4242, 7, data).to_bytes()
    return Ipv4Repr(HOST_A, dst, IpProtocol.ICMP, len(icmp), ttl=1).to_bytes(icmp)


@pytest.mark.parametrize("addr", [0, 2])  # the ingress interface's address and another one
def test_echo_request_is_answered(addr: int) -> None:
    r = make_router()
    out = feed(r, echo_request(ADDR[addr]))
    assert r.counters["ip.local.echo_reply"] == 1
    eth = Ether(out[0][1])
    assert out[0][0] == 0 and eth.dst == HOST_A_MAC.hex(":")
    ip, icmp = eth[IP], eth[ICMP]
    assert ip.src == ip_to_str(ADDR[addr]) and ip.dst == ip_to_str(HOST_A)
    assert (icmp.type, icmp.code, icmp.id, icmp.seq, bytes(icmp.payload)) == (
        0,
        0,
        0x4242,
        7,
        b"ping!",
    )
    raw = bytes(out[0][1][14:])
    assert checksum.verify(raw[:20]) and checksum.verify(raw[20:])


@pytest.mark.parametrize("dst", ["255.255.255.255", "198.18.0.255", "198.19.0.255"])
def test_broadcast_echo_is_ignored(dst: str) -> None:
    r = make_router()
    assert feed(r, echo_request(ip_from_str(dst))) == []
    assert r.counters["ip.local.broadcast_echo"] == 1


def test_echo_with_bad_checksum_or_too_short() -> None:
    r = make_router()
    packet = bytearray(echo_request(ADDR[0]))
    packet[-1] ^= 0xFF
    feed(r, bytes(packet))
    assert r.counters["icmp.in.bad_checksum"] == 1
    short = Ipv4Repr(HOST_A, ADDR[0], IpProtocol.ICMP, 4).to_bytes(b"\x08\0\0\0")
    feed(r, short)
    assert r.counters["icmp.in.too_short"] == 1


def test_local_other_protocols_and_fragments_are_counted() -> None:
    r = make_router()
    feed(r, udp_packet(dst=ADDR[1]))
    feed(r, udp_packet(dst=ip_from_str("255.255.255.255")))
    assert r.counters["ip.local.unhandled_proto"] == 2
    frag = bytearray(echo_request(ADDR[0]))
    frag[6] = 0x20  # MF
    feed(r, bytes(set_checksum(frag)))
    assert r.counters["ip.local.fragment"] == 1


# --- ARP through the router --------------------------------------------------------------------


def arp_frame(op: ArpOperation, sha: bytes, spa: int, tpa: int, dst: bytes = BROADCAST) -> bytes:
    arp = ArpRepr(op, sha, spa, bytes(6) if op == ArpOperation.REQUEST else MAC[1], tpa)
    return EthernetRepr(dst, sha, EtherType.ARP).to_bytes(arp.to_bytes())


def test_unresolved_next_hop_holds_packet_and_sends_request_then_releases() -> None:
    r = make_router()
    out = r.input(0, frame(udp_packet(dst=UNRESOLVED)), 0.0)
    assert r.counters["arp.hold.queued"] == 1
    (request,) = out
    assert request[0] == 1
    arp = Ether(request[1])[ARP]
    assert Ether(request[1]).dst == "ff:ff:ff:ff:ff:ff" and Ether(request[1]).src == MAC[1].hex(":")
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (
        1,
        MAC[1].hex(":"),
        ip_to_str(ADDR[1]),
        ip_to_str(UNRESOLVED),
    )
    assert r.input(0, frame(udp_packet(dst=UNRESOLVED)), 0.1) == []  # held, no second request
    mac = bytes.fromhex("0a0000000177")
    out = r.input(1, arp_frame(ArpOperation.REPLY, mac, UNRESOLVED, ADDR[1], MAC[1]), 0.2)
    assert r.counters["arp.in.reply"] == 1 and r.counters["arp.hold.released"] == 2
    assert [Ether(f).dst for _, f in out] == [mac.hex(":")] * 2
    assert all(Ether(f)[IP].ttl == 63 for _, f in out)
    assert_accounted(r)
    # Now resolved: straight through.
    assert len(r.input(0, frame(udp_packet(dst=UNRESOLVED)), 0.3)) == 1
    assert r.counters["ip.fwd.forwarded"] == 1


def test_hold_queue_overflow_drops_and_counts() -> None:
    r = make_router(arp_hold=3)
    for _ in range(5):
        feed(r, udp_packet(dst=UNRESOLVED))
    assert r.counters["arp.hold.queued"] == 3
    assert r.counters["arp.hold.overflow"] == 2


def test_failed_resolution_sends_host_unreachable() -> None:
    r = make_router(arp_retries=2, arp_retry_interval=1.0)
    packet = udp_packet(dst=UNRESOLVED)
    feed(r, packet)
    assert r.poll(0.5) == []
    (retry,) = r.poll(1.0)
    assert Ether(retry[1])[ARP].pdst == ip_to_str(UNRESOLVED)
    out = r.poll(2.0)
    assert r.counters["arp.hold.timeout"] == 1
    eth = icmp_error_of(out)
    assert (eth[ICMP].type, eth[ICMP].code) == (3, 1)
    assert eth[IPerror].dst == ip_to_str(UNRESOLVED)


def test_arp_request_for_router_address_is_answered() -> None:
    r = make_router()
    asker = bytes.fromhex("0a00000000aa")
    out = r.input(0, arp_frame(ArpOperation.REQUEST, asker, ip_from_str("198.18.0.99"), ADDR[0]), 0)
    assert r.counters["arp.in.request"] == 1
    eth = Ether(out[0][1])
    assert out[0][0] == 0 and eth.dst == asker.hex(":") and eth.src == MAC[0].hex(":")
    assert (eth[ARP].op, eth[ARP].hwsrc, eth[ARP].psrc) == (2, MAC[0].hex(":"), "198.18.0.1")
    assert_accounted(r)


# --- pfil --------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("verdict", [Verdict.DROP, Verdict.CONSUMED])
def test_pfil_verdicts(direction: Direction, verdict: Verdict) -> None:
    pfil = FakePfil()
    pfil.add(direction, lambda pkt: verdict)
    r = make_router(pfil)
    assert feed(r, udp_packet()) == []
    name = {Direction.IN: "in", Direction.FORWARD: "forward", Direction.OUT: "out"}[direction]
    assert r.counters[f"pfil.{name}.{'drop' if verdict == Verdict.DROP else 'consumed'}"] == 1


def test_pfil_sees_parsed_fields_in_order_and_egress_on_out() -> None:
    seen: list[PfilPacket] = []

    def hook(pkt: PfilPacket) -> Verdict:
        seen.append(PfilPacket(**{f: getattr(pkt, f) for f in PfilPacket.__dataclass_fields__}))
        return Verdict.PASS

    pfil = FakePfil()
    for d in Direction:
        pfil.add(d, hook)
    r = make_router(pfil)
    packet = udp_packet()
    assert len(feed(r, packet)) == 1
    assert [(p.direction, p.ifindex) for p in seen] == [
        (Direction.IN, 0),
        (Direction.FORWARD, 0),
        (Direction.OUT, 1),
    ]
    p = seen[0]
    assert (p.src, p.dst, p.proto, p.ttl, p.length) == (HOST_A, BEHIND_GW1, 17, 64, len(packet))
    assert (p.sport, p.dport, p.fragment, bytes(p.data)) == (40000, 53, False, packet)


def test_pfil_replies_are_routed_and_sent() -> None:
    def reject(pkt: PfilPacket) -> Verdict:
        reply = udp_packet(src=ADDR[0], dst=pkt.src, payload=b"go away")
        pkt.replies = [reply]
        return Verdict.DROP

    pfil = FakePfil()
    pfil.add(Direction.FORWARD, reject)
    r = make_router(pfil)
    out = feed(r, udp_packet())
    assert r.counters["pfil.forward.drop"] == 1 and r.counters["pfil.replies"] == 1
    (sent,) = out
    assert sent[0] == 0 and bytes(Ether(sent[1])[UDP].payload) == b"go away"


# --- layer 2 and accounting --------------------------------------------------------------------


def test_short_and_unknown_frames() -> None:
    r = make_router()
    r.input(0, b"\x01\x02", 0.0)
    r.input(0, EthernetRepr(MAC[0], HOST_A_MAC, EtherType.IPV6).to_bytes(bytes(40)), 0.0)
    assert r.counters["eth.in.too_short"] == 1 and r.counters["eth.in.unknown_type"] == 1
    assert_accounted(r)


def test_unknown_ifindex_is_api_misuse() -> None:
    with pytest.raises(ValueError, match="index 9"):
        make_router().input(9, frame(udp_packet()), 0.0)


_ETHERTYPES = st.sampled_from([b"\x08\x00", b"\x08\x06", b"\x86\xdd", b"\x81\x00"])


@given(st.binary(max_size=120), _ETHERTYPES, st.integers(0, 2), st.booleans())
def test_arbitrary_frames_never_raise_and_are_accounted(
    body: bytes, ethertype: bytes, ifindex: int, bcast: bool
) -> None:
    r = make_router()
    frame_ = (BROADCAST if bcast else MAC[ifindex]) + HOST_A_MAC + ethertype + body
    r.input(ifindex, frame_, 0.0)
    r.input(ifindex, frame_[: len(body) // 2], 0.0)
    assert_accounted(r)
    assert r.counters["eth.in.frames"] == 2


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    """Valid IPv4 packets most of the time (so the deep paths are reached), sometimes with a few
    bytes changed (the header checksum fixed up or not) or cut short."""
    addr = st.one_of(
        st.sampled_from([HOST_A, BEHIND_GW1, BEHIND_GW2, NO_ROUTE, UNRESOLVED, *ADDR]),
        st.sampled_from([0xFFFFFFFF, ip_from_str("198.18.0.255"), ip_from_str("224.0.0.1")]),
        st.integers(0, 2**32 - 1),
    )
    proto = draw(st.sampled_from([1, 6, 17, 47]))
    payload = draw(st.binary(max_size=64)) * draw(st.sampled_from([1, 1, 40]))
    if proto == 1 and draw(st.booleans()):
        payload = Icmpv4Echo(1, 2, payload).to_bytes()
    options = draw(st.sampled_from([b"", b"", b"\x01\x01\x01\x00", bytes((7, 7, 4)) + bytes(5)]))
    ip = Ipv4Repr(
        src=draw(st.one_of(st.sampled_from([HOST_A, BEHIND_GW1, BEHIND_GW2]), addr)),
        dst=draw(addr),
        protocol=proto,
        payload_len=len(payload),
        ttl=draw(st.sampled_from([0, 1, 2, 64, 255])),
        dont_frag=draw(st.booleans()),
        more_frags=draw(st.sampled_from([False, False, True])),
        frag_offset=draw(st.sampled_from([0, 0, 0, 8, 1480])),
        options=options,
    )
    packet = bytearray(ip.to_bytes(payload))
    mutations = draw(st.sampled_from([0, 0, 0, 1, 3]))
    for _ in range(mutations):
        i = draw(st.integers(0, len(packet) - 1))
        packet[i] = draw(st.integers(0, 255))
    if mutations and draw(st.booleans()) and (packet[0] & 0x0F) * 4 <= len(packet):
        set_checksum(packet)
    if draw(st.sampled_from([False, False, False, True])):
        return bytes(packet[: draw(st.integers(0, len(packet)))])
    return bytes(packet)


@given(st.lists(st.tuples(mutated_packets(), st.integers(0, 2), st.floats(0, 10)), max_size=8))
def test_mutated_packets_never_raise_and_are_accounted(
    items: list[tuple[bytes, int, float]],
) -> None:
    pfil = FakePfil()
    pfil.add(Direction.FORWARD, lambda p: Verdict.DROP if p.dport == 9 else Verdict.PASS)
    r = make_router(pfil, arp_hold=2, icmp_burst=2)
    now = 0.0
    for packet, ifindex, dt in items:
        now += dt
        r.input(ifindex, frame(packet, dst_mac=MAC[ifindex]), now)
        r.poll(now)
    assert_accounted(r)
    held = sum(len(e.hold) for t in r.arp.tables.values() for e in t.values())
    c = r.counters
    assert (
        c["arp.hold.queued"] + c["ip.out.arp_held"]
        == c["arp.hold.released"] + c["arp.hold.timeout"] + held
    )


def test_outcome_names_are_distinct() -> None:
    assert len(set(IP_OUTCOMES)) == len(IP_OUTCOMES)
    assert len(set(FRAME_OUTCOMES)) == len(FRAME_OUTCOMES)


def test_struct_sanity_of_kit() -> None:
    """The kit's frames are what scapy builds for the same fields (the oracle agrees)."""
    packet = udp_packet()
    ours = IP(packet)
    theirs = (
        IP(src=ip_to_str(HOST_A), dst=ip_to_str(BEHIND_GW1), id=0x1234, ttl=64, flags=0)
        / UDP(sport=40000, dport=53)
        / b"hello router"
    )
    assert bytes(ours) == bytes(IP(bytes(theirs)))
    assert struct.unpack(">H", packet[10:12])[0] == IP(bytes(theirs)).chksum
