"""The host Stack, sans-IO: Ethernet demux, ARP, ping (scapy as the oracle), IP reassembly
(scapy's fragment() as the oracle), output routing and fragmentation, ICMP errors to transports,
protocol unreachable, and the accounting identity on every kind of bad frame."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ARP, ICMP, IP, UDP, Ether, IPOption, Raw, defragment, fragment

from netfast.ip.host_input import IP_OUTCOMES
from netfast.ip.iface import IfAddr, Interface
from netfast.ip.input import Ipv4Header
from netfast.ip.reass import Reassembler
from netfast.link.memory import MemoryLink
from netfast.stack.host import FRAME_OUTCOMES, HostConfig, Stack
from netfast.stack.hostrun import DiscardService, EchoService, run_host
from netfast.stack.kqueue import EV_EOF, Watchable
from netfast.wire.ipv4 import ip_from_str

HOST_MAC = "02:00:00:00:aa:02"
PEER_MAC = "02:00:00:00:aa:01"
HOST_IP = "198.18.7.2"
PEER_IP = "198.18.7.1"
FAR_IP = "198.19.1.1"
GW_IP = "198.18.7.254"


def make_stack(
    *,
    mtu: int = 1500,
    gateway: str | None = None,
    config: HostConfig | None = None,
    tcp: bool = True,
) -> Stack:
    iface = Interface(
        0,
        "t0",
        bytes.fromhex(HOST_MAC.replace(":", "")),
        (IfAddr(ip_from_str(HOST_IP), 24),),
        mtu=mtu,
    )
    gw = ip_from_str(gateway) if gateway else None
    return Stack([iface], gateway=gw, config=config, rng=random.Random(1), strict=True, tcp=tcp)


def learn_peer(stack: Stack, now: float = 0.0, ip: str = PEER_IP, mac: str = PEER_MAC) -> None:
    """The peer asks for us by ARP (so we learn it, RFC 826); the reply is consumed."""
    req = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=HOST_IP
    )
    stack.input(0, bytes(req), now)
    stack.poll(now)


def ip_frame(pkt: object) -> bytes:
    return bytes(Ether(src=PEER_MAC, dst=HOST_MAC) / pkt)  # type: ignore[operator]


def check_sums(c: Counter[str]) -> None:
    assert c["eth.in.frames"] == sum(c[k] for k in FRAME_OUTCOMES)
    assert c["ip.in.received"] == sum(c[k] for k in IP_OUTCOMES)


def test_outcome_lists_have_no_duplicates() -> None:
    assert len(set(FRAME_OUTCOMES)) == len(FRAME_OUTCOMES)
    assert len(set(IP_OUTCOMES)) == len(IP_OUTCOMES)


def test_arp_request_answered_and_sender_learned() -> None:
    stack = make_stack()
    req = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=HOST_IP
    )
    stack.input(0, bytes(req), 1.0)
    (out,) = stack.poll(1.0)
    reply = Ether(out[1])
    assert out[0] == 0
    assert reply.dst == PEER_MAC and reply.src == HOST_MAC
    assert reply[ARP].op == 2 and reply[ARP].psrc == HOST_IP and reply[ARP].hwsrc == HOST_MAC
    assert reply[ARP].pdst == PEER_IP and reply[ARP].hwdst == PEER_MAC
    assert stack.arp.lookup(0, ip_from_str(PEER_IP), 1.0) == bytes.fromhex("020000 00aa01")
    # A request for another address is not answered.
    other = req.copy()
    other[ARP].pdst = "198.18.7.3"
    stack.input(0, bytes(other), 1.0)
    assert stack.poll(1.0) == []
    check_sums(stack.counters)


def test_ping_answered() -> None:
    stack = make_stack()
    learn_peer(stack)
    req = (
        IP(src=PEER_IP, dst=HOST_IP, ttl=9, tos=0x10)
        / ICMP(type=8, id=0x1234, seq=7)
        / (b"abcdefgh" * 5)
    )
    stack.input(0, ip_frame(req), 2.0)
    (out,) = stack.poll(2.0)
    rep = Ether(out[1])
    assert rep.dst == PEER_MAC and rep.src == HOST_MAC
    assert rep[IP].src == HOST_IP and rep[IP].dst == PEER_IP and rep[IP].ttl == 64
    assert rep[ICMP].type == 0 and rep[ICMP].id == 0x1234 and rep[ICMP].seq == 7
    assert bytes(rep[ICMP].payload) == b"abcdefgh" * 5
    # Checksums as scapy computes them.
    ip_sum, icmp_sum = rep[IP].chksum, rep[ICMP].chksum
    fresh = Ether(out[1])
    del fresh[IP].chksum
    del fresh[ICMP].chksum
    fresh = Ether(bytes(fresh))
    assert (fresh[IP].chksum, fresh[ICMP].chksum) == (ip_sum, icmp_sum)
    assert stack.counters["icmp.in.echo"] == 1
    check_sums(stack.counters)


def test_ping_before_arp_holds_reply_and_asks() -> None:
    stack = make_stack()
    stack.input(0, ip_frame(IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=8)), 0.0)
    (out,) = stack.poll(0.0)
    assert Ether(out[1])[ARP].op == 1 and Ether(out[1])[ARP].pdst == PEER_IP
    reply = Ether(src=PEER_MAC, dst=HOST_MAC) / ARP(
        op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=HOST_MAC, pdst=HOST_IP
    )
    stack.input(0, bytes(reply), 0.1)
    (out,) = stack.poll(0.1)
    assert Ether(out[1])[ICMP].type == 0


def test_broadcast_ping_ignored_and_foreign_mac_dropped() -> None:
    stack = make_stack()
    learn_peer(stack)
    bc = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=PEER_IP, dst="198.18.7.255")
    stack.input(0, bytes(bc / ICMP(type=8)), 1.0)
    other = Ether(src=PEER_MAC, dst="02:00:00:00:00:77") / IP(src=PEER_IP, dst=HOST_IP)
    stack.input(0, bytes(other / ICMP(type=8)), 1.0)
    not_ours = ip_frame(IP(src=PEER_IP, dst="198.18.7.9") / ICMP(type=8))
    stack.input(0, not_ours, 1.0)
    assert stack.poll(1.0) == []
    c = stack.counters
    assert c["icmp.in.broadcast_echo"] == 1
    assert c["eth.in.not_for_us"] == 1
    assert c["ip.in.not_for_us"] == 1
    check_sums(c)


def test_large_ping_fragmented_both_ways() -> None:
    stack = make_stack(mtu=600)
    learn_peer(stack)
    payload = bytes(range(256)) * 8
    req = IP(src=PEER_IP, dst=HOST_IP, id=77) / ICMP(type=8, id=5, seq=1) / payload
    frags = fragment(req, fragsize=400)
    assert len(frags) > 2
    for f in reversed(frags):  # out of order
        stack.input(0, ip_frame(f), 1.0)
    out = stack.poll(1.0)
    assert len(out) > 1 and all(len(frame) <= 600 + 14 for _, frame in out)
    whole = defragment([Ether(frame)[IP] for _, frame in out])
    (rep,) = [p for p in whole if ICMP in p]
    assert rep[ICMP].type == 0 and bytes(rep[ICMP].payload) == payload
    c = stack.counters
    assert c["ip.reass.done"] == 1 and c["ip.reass.queued"] == len(frags) - 1
    check_sums(c)


def test_reassembly_overlap_keeps_first_bytes_and_duplicates() -> None:
    stack = make_stack()
    learn_peer(stack)
    sock = stack.udp_socket()
    sock.bind(("", 4000))
    data = bytes(range(200)) * 4
    pkt = IP(src=PEER_IP, dst=HOST_IP, id=9) / UDP(sport=1, dport=4000) / data
    frags = fragment(pkt, fragsize=256)
    stack.input(0, ip_frame(frags[0]), 0.0)
    stack.input(0, ip_frame(frags[0]), 0.0)  # duplicate
    for f in frags[1:]:
        stack.input(0, ip_frame(f), 0.0)
    got, peer = sock.recvfrom(4096)
    assert got == data and peer == (PEER_IP, 1)
    check_sums(stack.counters)


def test_reassembly_timeout_sends_time_exceeded() -> None:
    stack = make_stack()
    learn_peer(stack)
    pkt = IP(src=PEER_IP, dst=HOST_IP, id=3) / UDP(sport=1, dport=9) / (b"x" * 1000)
    first = fragment(pkt, fragsize=400)[0]
    stack.input(0, ip_frame(first), 0.0)
    assert stack.poll_at() == 30.0
    assert stack.poll(29.9) == []
    (out,) = stack.poll(30.0)
    err = Ether(out[1])
    assert err[ICMP].type == 11 and err[ICMP].code == 1
    assert stack.counters["ip.reass.timeout"] == 1 and len(stack.reass) == 0


def test_reassembly_bounded() -> None:
    stack = make_stack(config=HostConfig(reass_max_datagrams=4))
    for ident in range(6):
        pkt = IP(src=PEER_IP, dst=HOST_IP, id=ident) / UDP(sport=1, dport=9) / (b"y" * 600)
        stack.input(0, ip_frame(fragment(pkt, fragsize=256)[0]), 0.0)
    assert len(stack.reass) == 4 and stack.counters["ip.reass.overflow"] == 2
    check_sums(stack.counters)


def test_reassembled_datagram_too_big_for_the_first_fragments_header() -> None:
    """The rebuilt datagram takes the first fragment's header: 40 bytes of options there plus a
    last fragment that ends 65,512 bytes in would make a 65,572-byte datagram.  Dropped and
    counted, never raised, and every IP packet still ends in one outcome."""
    stack = make_stack()
    first = IP(src=PEER_IP, dst=HOST_IP, id=7, flags="MF", proto=17,
               options=[IPOption(b"\x01" * 40)]) / Raw(b"a" * 65400)  # fmt: skip
    last = IP(src=PEER_IP, dst=HOST_IP, id=7, frag=65400 // 8, proto=17) / Raw(b"b" * 112)
    assert len(bytes(first)) <= 0xFFFF and len(bytes(last)) <= 0xFFFF
    stack.input(0, ip_frame(first), 0.0)
    stack.input(0, ip_frame(last), 0.0)
    assert stack.counters["ip.reass.too_big"] == 1
    assert stack.counters["host.internal_error"] == 0
    assert len(stack.reass) == 0
    check_sums(stack.counters)


class FakeTcp:
    def __init__(self) -> None:
        self.inputs: list[tuple[Ipv4Header, bytes, int, float]] = []
        self.errors: list[tuple[int, int, int, bytes]] = []
        self.polls: list[float] = []
        self.due: float | None = None

    def input(self, hdr: Ipv4Header, l4: memoryview, ifindex: int, now: float) -> None:
        self.inputs.append((hdr, bytes(l4), ifindex, now))

    def poll(self, now: float) -> None:
        self.polls.append(now)

    def poll_at(self) -> float | None:
        return self.due

    def ctlinput(self, icmp_type: int, icmp_code: int, mtu: int, quoted: bytes, now: float) -> None:
        self.errors.append((icmp_type, icmp_code, mtu, quoted))


def test_transport_gets_payload_errors_and_timers() -> None:
    stack = make_stack(tcp=False)
    tcp = FakeTcp()
    stack.register_protocol(6, tcp)
    learn_peer(stack)
    seg = b"\x12\x34\x00\x50" + bytes(16)
    frame = ip_frame(IP(src=PEER_IP, dst=HOST_IP, proto=6) / Raw(seg)) + b"\0" * 10  # padding
    stack.input(0, frame, 3.0)
    ((hdr, l4, ifindex, now),) = tcp.inputs
    assert l4 == seg and ifindex == 0 and now == 3.0 and hdr.src == ip_from_str(PEER_IP)
    # Fragmentation needed about a segment we sent (RFC 1191): mtu handed over.
    quoted = bytes(IP(src=HOST_IP, dst=FAR_IP, proto=6) / Raw(seg))
    err = IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=3, code=4, nexthopmtu=1280) / Raw(quoted)
    stack.input(0, ip_frame(err), 3.1)
    ((t, code, mtu, q),) = tcp.errors
    assert (t, code, mtu) == (3, 4, 1280) and q == quoted
    # An error about a packet we did not send is not believed.
    forged = (
        IP(src=PEER_IP, dst=HOST_IP)
        / ICMP(type=3, code=4)
        / Raw(bytes(IP(src=FAR_IP, dst=HOST_IP, proto=6) / Raw(seg)))
    )
    stack.input(0, ip_frame(forged), 3.2)
    assert len(tcp.errors) == 1 and stack.counters["icmp.in.error_bad"] == 1
    tcp.due = 7.5
    assert stack.poll_at() is not None and stack.poll_at() <= 7.5  # type: ignore[operator]
    stack.poll(4.0)
    assert tcp.polls[-1] == 4.0
    check_sums(stack.counters)


def test_unknown_protocol_unreachable() -> None:
    stack = make_stack()
    learn_peer(stack)
    stack.input(0, ip_frame(IP(src=PEER_IP, dst=HOST_IP, proto=132) / Raw(b"sctp?")), 1.0)
    (out,) = stack.poll(1.0)
    err = Ether(out[1])
    assert err[ICMP].type == 3 and err[ICMP].code == 2
    assert err[IP].src == HOST_IP and err[IP].dst == PEER_IP
    assert stack.counters["ip.in.unknown_proto"] == 1


def test_ip_output_routes_and_limits() -> None:
    stack = make_stack(mtu=576, gateway=GW_IP)
    peer, far, host = ip_from_str(PEER_IP), ip_from_str(FAR_IP), ip_from_str(HOST_IP)
    assert stack.source_for(far) == host and stack.mtu_for(far) == 576
    assert stack.is_local(host) and not stack.is_local(peer)
    learn_peer(stack)
    learn_peer(stack, ip=GW_IP, mac="02:00:00:00:aa:fe")
    assert stack.output.ip_output(host, far, 253, b"x" * 100, 1.0) is None
    assert stack.output.ip_output(0, peer, 253, b"y" * 100, 1.0, ttl=3, tos=0x28) is None
    assert stack.output.ip_output(host, far, 253, b"z" * 1000, 1.0, df=True) == "ip.out.too_big"
    assert stack.output.ip_output(host, far, 253, b"z" * 1000, 1.0, df=False) is None
    out = [Ether(f) for _, f in stack.poll(1.0)]
    assert out[0].dst == "02:00:00:00:aa:fe" and out[0][IP].dst == FAR_IP  # via the gateway
    assert out[1].dst == PEER_MAC and out[1][IP].ttl == 3 and out[1][IP].tos == 0x28
    assert out[1][IP].src == HOST_IP and out[1][IP].flags == "DF"
    frags = out[2:]
    assert len(frags) == 2 and all(len(bytes(f)) <= 576 + 14 for f in frags)
    (whole,) = defragment([f[IP] for f in frags])
    assert bytes(whole[IP].payload) == b"z" * 1000
    nogw = make_stack()
    assert nogw.output.ip_output(0, far, 253, b"", 0.0) == "ip.out.no_route"
    assert nogw.counters["ip.out.no_route"] == 1 and nogw.source_for(far) is None


def test_unresolved_neighbour_gives_up() -> None:
    stack = make_stack()
    assert stack.output.ip_output(0, ip_from_str("198.18.7.50"), 253, b"q", 0.0) is None
    (req,) = stack.poll(0.0)
    assert Ether(req[1])[ARP].pdst == "198.18.7.50"
    t = 0.0
    for _ in range(10):
        due = stack.poll_at()
        if due is None:
            break
        t = due
        stack.poll(t)
    assert stack.counters["ip.out.arp_failed"] == 1 and stack.counters["arp.out.request"] == 5


def _ip_header(proto: int, body: bytes, *, frag: int = 0, ihl: int = 5) -> bytes:
    pkt = IP(src=PEER_IP, dst=HOST_IP, proto=proto, frag=frag, ihl=ihl) / Raw(body)
    return bytes(pkt)


@given(st.binary(max_size=120))
def test_random_frames_never_raise(blob: bytes) -> None:
    stack = make_stack()
    stack.strict = True  # an internal error must surface as an exception here
    stack.input(0, blob, 0.0)
    stack.input(0, bytes.fromhex(HOST_MAC.replace(":", "")) + blob, 0.0)
    stack.input(0, bytes.fromhex(HOST_MAC.replace(":", "")) + bytes(6) + b"\x08\x00" + blob, 0.0)
    stack.input(0, b"\xff" * 6 + bytes(6) + b"\x08\x06" + blob, 0.0)
    stack.poll(0.0)
    check_sums(stack.counters)
    assert stack.counters["eth.in.frames"] == 4


@given(
    st.sampled_from([1, 6, 17, 99]),
    st.binary(max_size=80),
    st.integers(0, 0x3FFF),
    st.booleans(),
)
def test_valid_ip_random_payload_never_raises(proto: int, body: bytes, frag: int, bc: bool) -> None:
    stack = make_stack(tcp=False)
    stack.register_protocol(6, FakeTcp())
    learn_peer(stack)
    pkt = IP(src=PEER_IP, dst="198.18.7.255" if bc else HOST_IP, proto=proto, frag=frag)
    stack.input(0, ip_frame(pkt / Raw(body)), 1.0)
    stack.poll(1.0)
    c = stack.counters
    check_sums(c)
    assert c["ip.in.received"] == 1 and c["host.internal_error"] == 0


def test_bad_ip_headers_counted() -> None:
    stack = make_stack()
    good = bytes(IP(src=PEER_IP, dst=HOST_IP, proto=17) / UDP(sport=1, dport=2))
    cases = {
        "ip.in.too_short": good[:19],
        "ip.in.bad_version": b"\x65" + good[1:],
        "ip.in.bad_checksum": good[:10] + b"\x00\x00" + good[12:],
        "ip.in.bad_len": good[:2] + b"\x04\x00" + good[4:],
    }
    eth = bytes(Ether(src=PEER_MAC, dst=HOST_MAC, type=0x0800))
    for packet in cases.values():
        stack.input(0, eth + packet, 0.0)
    stack.input(0, eth[:10], 0.0)
    stack.input(0, bytes(Ether(src=PEER_MAC, dst=HOST_MAC, type=0x86DD)) + good, 0.0)
    c = stack.counters
    for name in cases:
        assert c[name] == 1, name
    assert c["eth.in.too_short"] == 1 and c["eth.in.unknown_type"] == 1
    check_sums(c)


# --- the services' TCP side, against a fake socket with the BSD-ish API the lead's TCP offers -----


class FakeConn(Watchable):
    """A connected stream socket: ``inbox`` is what the peer sent, ``sent`` what we sent;
    ``room`` bounds one send() like a send buffer."""

    def __init__(self) -> None:
        self.inbox = bytearray()
        self.eof = False
        self.sent = bytearray()
        self.room = 4
        self.closed = False

    def feed(self, data: bytes = b"", eof: bool = False) -> None:
        self.inbox += data
        self.eof = self.eof or eof
        self._notify()

    def drain(self, room: int) -> None:
        self.room = room
        self._notify()

    def readiness(self) -> tuple[int, int, int]:
        return (len(self.inbox), self.room, EV_EOF if self.eof else 0)

    def recv(self, n: int) -> bytes:
        if not self.inbox:
            if self.eof:
                return b""
            raise BlockingIOError
        data = bytes(self.inbox[:n])
        del self.inbox[:n]
        return data

    def send(self, data: bytes) -> int:
        if self.room == 0:
            raise BlockingIOError
        n = min(self.room, len(data))
        self.sent += data[:n]
        self.room -= n
        return n

    def close(self) -> None:
        self.closed = True


class FakeListener(Watchable):
    def __init__(self) -> None:
        self.backlog: list[FakeConn] = []
        self.bound: tuple[str, int] | None = None
        self.listening = 0

    def bind(self, addr: tuple[str, int]) -> None:
        self.bound = addr

    def listen(self, n: int) -> None:
        self.listening = n

    def readiness(self) -> tuple[int, int, int]:
        return (len(self.backlog), 0, 0)

    def accept(self) -> tuple[FakeConn, tuple[str, int]]:
        if not self.backlog:
            raise BlockingIOError
        return self.backlog.pop(0), (PEER_IP, 40000)

    def close(self) -> None:
        pass


class TcpStack(Stack):
    listeners: list[FakeListener]

    def tcp_socket(self) -> FakeListener:
        sock = FakeListener()
        self.listeners.append(sock)
        return sock


def test_services_serve_tcp_when_the_stack_has_it() -> None:
    iface = Interface(0, "t0", bytes(5) + b"\x02", (IfAddr(ip_from_str(HOST_IP), 24),))
    stack = TcpStack([iface], rng=random.Random(2), tcp=False)
    stack.listeners = []
    echo = EchoService(stack)
    (listener,) = stack.listeners
    assert listener.bound == ("", 7) and listener.listening > 0
    conn = FakeConn()
    listener.backlog.append(conn)
    listener._notify()
    echo.step(0.0)  # accepted
    conn.feed(b"hello world")
    echo.step(0.1)
    assert conn.sent == b"hell"  # the send buffer is full: the rest waits for WRITE
    conn.feed(eof=True)  # the peer is done while bytes are pending
    for t in range(5):
        conn.drain(4)
        echo.step(0.2 + t)
    assert conn.sent == b"hello world"
    assert conn.closed and echo.conns == {}
    echo.close()


class BrokenPipeConn(FakeConn):
    """A connection whose peer vanished: reads still return what arrived, sends fail."""

    def send(self, data: bytes) -> int:
        raise BrokenPipeError("gone")


def test_echo_drops_a_connection_whose_send_fails_mid_read() -> None:
    iface = Interface(0, "t0", bytes(5) + b"\x02", (IfAddr(ip_from_str(HOST_IP), 24),))
    stack = TcpStack([iface], rng=random.Random(2), tcp=False)
    stack.listeners = []
    echo = EchoService(stack)
    (listener,) = stack.listeners
    conn = BrokenPipeConn()
    listener.backlog.append(conn)
    listener._notify()
    echo.step(0.0)  # accepted
    conn.feed(b"x" * 200_000)  # more than one read: the loop goes on after the failed send
    echo.step(0.1)
    assert conn.closed and echo.conns == {}
    echo.close()


def test_run_host_over_a_memory_wire() -> None:
    stack = make_stack()
    ours, theirs = MemoryLink.pair(names=("host", "peer"))
    arp = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=HOST_IP
    )
    ping = IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=8, id=1, seq=1)
    udp = IP(src=PEER_IP, dst=HOST_IP) / UDP(sport=3333, dport=7) / b"echo me"
    theirs.send([bytes(arp), ip_frame(ping), ip_frame(udp)])
    run_host(
        stack,
        {0: ours},
        duration=5.0,
        stop=None,
        apps=[EchoService(stack), DiscardService(stack)],
        max_frames=3,
    )
    got = [Ether(f) for f in theirs.recv_batch(10)]
    assert [p[ARP].op for p in got if ARP in p] == [2]
    assert [p[ICMP].type for p in got if ICMP in p] == [0]
    (echoed,) = [p for p in got if UDP in p]
    assert echoed[UDP].sport == 7 and bytes(echoed[UDP].payload) == b"echo me"
    stop = threading.Event()
    stop.set()
    run_host(stack, {0: ours}, duration=None, stop=stop, apps=[])  # returns at once
    with pytest.raises(ValueError):
        run_host(stack, {5: ours}, duration=1.0, stop=None, apps=[])
    two = Stack(
        [
            Interface(0, "t0", bytes(5) + b"\x02", (IfAddr(ip_from_str(HOST_IP), 24),)),
            Interface(1, "t1", bytes(5) + b"\x03", (IfAddr(ip_from_str("198.19.0.2"), 24),)),
        ],
        rng=random.Random(3),
    )
    with pytest.raises(ValueError, match="interface 1 has no link"):
        run_host(two, {0: ours}, duration=1.0, stop=None, apps=[])


def test_services_on_a_stack_without_tcp_serve_udp() -> None:
    stack = make_stack(tcp=False)
    echo = EchoService(stack)
    assert echo.listener is None
    stack.input(0, ip_frame(IP(src=PEER_IP, dst=HOST_IP) / UDP(sport=3, dport=7) / b"x"), 0.0)
    echo.step(0.0)
    assert echo.datagrams == 1
    echo.close()


def test_reassembler_refuses_inconsistent_fragments() -> None:
    c: Counter[str] = Counter()
    r = Reassembler(c, max_fragments=3)

    def frag(offset: int, data: bytes, mf: bool, ident: int = 1) -> bytes:
        flags = "MF" if mf else 0
        return bytes(IP(src=PEER_IP, dst=HOST_IP, id=ident, frag=offset // 8, flags=flags) / data)

    assert r.input(frag(0, b"a" * 10, True), 0.0) is None  # not a multiple of 8
    assert c["ip.reass.bad"] == 1
    assert r.input(frag(65528, b"b" * 16, False), 0.0) is None  # past 65535
    assert c["ip.reass.too_big"] == 1
    assert r.input(frag(16, b"c" * 8, False), 0.0) is None  # end at 24
    assert r.input(frag(32, b"d" * 8, False), 0.0) is None  # a second, different end
    assert r.input(frag(24, b"e" * 8, True), 0.0) is None  # beyond the known end
    assert c["ip.reass.bad"] == 2 and c["ip.reass.too_big"] == 2
    assert r.input(frag(8, b"f" * 8, True), 0.0) is None
    assert r.input(frag(8, b"F" * 8, True), 0.0) is None  # an overlapping third piece
    assert r.input(frag(0, b"g" * 8, True), 0.0) is None  # a fourth piece: over the bound
    assert c["ip.reass.too_many_frags"] == 1
    assert r.input(frag(0, b"g" * 8, True, ident=2), 0.0) is None
    assert len(r) == 2 and c["ip.reass.done"] == 0
    r2 = Reassembler(c)
    for piece in (frag(8, b"f" * 8, True), frag(8, b"F" * 8, True), frag(16, b"c" * 8, False)):
        assert r2.input(piece, 0.0) is None
    whole = r2.input(frag(0, b"g" * 8, True), 0.0)
    assert whole is not None
    # Checked by scapy: one datagram, the first-arrived bytes kept where pieces overlap.
    assert IP(whole).flags == 0 and IP(whole).frag == 0 and IP(whole).len == 44
    assert bytes(IP(whole).payload) == b"g" * 8 + b"f" * 8 + b"c" * 8
    fresh = IP(whole)
    del fresh.chksum
    assert IP(bytes(fresh)).chksum == IP(whole).chksum
