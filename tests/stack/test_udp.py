"""UDP sockets on the host stack: echo through sockets, bind rules, checksums (bad dropped, zero
accepted), the bounded receive queue, port unreachable (rate limited, never for broadcasts),
readiness for the event queue.  scapy builds and checks the datagrams."""

from __future__ import annotations

import errno
import random
from collections import Counter

import pytest
from scapy.all import ICMP, IP, UDP, Ether, Raw
from tests.stack.test_host import HOST_IP, PEER_IP, PEER_MAC, check_sums, ip_frame, learn_peer
from tests.stack.test_host import make_stack as _make_stack

from netfast.stack.host import HostConfig, Stack
from netfast.stack.hostrun import DiscardService, EchoService
from netfast.stack.kqueue import EV_EOF, EV_ERROR, READ, EventQueue
from netfast.udp import UDP_OUTCOMES, UdpLayer, UdpSocket
from netfast.udp.layer import DATAGRAM_COST, EPHEMERAL_HIGH, EPHEMERAL_LOW
from netfast.wire.ipv4 import ip_from_str
from netfast.wire.udp import UdpDatagram, UdpRepr


def make_stack(config: HostConfig | None = None) -> Stack:
    stack = _make_stack(config=config)
    learn_peer(stack)
    return stack


def datagram(dport: int, data: bytes, *, sport: int = 5555, dst: str = HOST_IP) -> bytes:
    return ip_frame(IP(src=PEER_IP, dst=dst) / UDP(sport=sport, dport=dport) / Raw(data))


def test_recv_and_send_through_sockets() -> None:
    stack = make_stack()
    sock = stack.udp_socket()
    sock.bind(("", 7000))
    with pytest.raises(BlockingIOError):
        sock.recvfrom(100)
    stack.input(0, datagram(7000, b"hello"), 1.0)
    data, peer = sock.recvfrom(100)
    assert data == b"hello" and peer == (PEER_IP, 5555)
    assert sock.sendto(b"back at you", peer) == 11
    (out,) = stack.poll(1.0)
    rep = Ether(out[1])
    assert rep.dst == PEER_MAC and rep[IP].src == HOST_IP and rep[IP].dst == PEER_IP
    assert (
        rep[UDP].sport == 7000
        and rep[UDP].dport == 5555
        and bytes(rep[UDP].payload) == (b"back at you")
    )
    csum = rep[UDP].chksum
    del rep[UDP].chksum
    assert Ether(bytes(rep))[UDP].chksum == csum  # scapy agrees on the checksum
    check_sums(stack.counters)


def test_echo_service_over_udp() -> None:
    stack = make_stack()
    echo, discard = EchoService(stack), DiscardService(stack)
    stack.input(0, datagram(7, b"ping!"), 1.0)
    stack.input(0, datagram(9, b"into the void"), 1.0)
    echo.step(1.0)
    discard.step(1.0)
    (out,) = stack.poll(1.0)
    rep = Ether(out[1])
    assert rep[UDP].sport == 7 and rep[UDP].dport == 5555 and bytes(rep[UDP].payload) == b"ping!"
    assert discard.datagrams == 1 and echo.datagrams == 1
    echo.close()
    discard.close()
    assert stack.udp.bindings == {}


def test_truncating_recv_and_zero_length() -> None:
    stack = make_stack()
    sock = stack.udp_socket()
    sock.bind((HOST_IP, 53))
    stack.input(0, datagram(53, b""), 1.0)
    stack.input(0, datagram(53, b"0123456789"), 1.0)
    assert sock.readiness()[0] >= 1
    assert sock.recvfrom(10) == (b"", (PEER_IP, 5555))
    assert sock.recvfrom(4)[0] == b"0123"  # the rest of the datagram is gone
    with pytest.raises(BlockingIOError):
        sock.recvfrom(10)


def test_bind_rules_and_ephemeral_ports() -> None:
    stack = make_stack()
    a = stack.udp_socket()
    a.bind(("0.0.0.0", 4444))
    b = stack.udp_socket()
    with pytest.raises(OSError) as exc:
        b.bind((HOST_IP, 4444))
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as exc:
        b.bind(("198.18.7.99", 1))
    assert exc.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(ValueError):
        b.bind(("", 70000))
    b.bind(("", 0))
    host, port = b.getsockname()
    assert host == "0.0.0.0" and 49152 <= port <= 65535
    with pytest.raises(OSError):
        b.bind(("", 0))  # already bound
    c = stack.udp_socket()
    c.sendto(b"x", (PEER_IP, 1))  # sending binds implicitly
    assert 49152 <= c.getsockname()[1] <= 65535 and c.getsockname()[1] != port
    a.close()
    with pytest.raises(OSError) as exc:
        a.recvfrom(1)
    assert exc.value.errno == errno.EBADF
    d = stack.udp_socket()
    d.bind(("", 4444))  # free again after close


def test_specific_binding_wins_over_wildcard() -> None:
    stack = make_stack()
    wild, spec = stack.udp_socket(), stack.udp_socket()
    spec.bind((ip_from_str(HOST_IP), 8000))
    wild.bind(("", 8001))
    stack.input(0, datagram(8000, b"s"), 1.0)
    stack.input(0, datagram(8001, b"w"), 1.0)
    assert spec.recvfrom(9)[0] == b"s" and wild.recvfrom(9)[0] == b"w"


def test_checksums() -> None:
    stack = make_stack()
    sock = stack.udp_socket()
    sock.bind(("", 6000))
    bad = IP(src=PEER_IP, dst=HOST_IP) / UDP(sport=1, dport=6000, chksum=0x1234) / b"data"
    zero = IP(src=PEER_IP, dst=HOST_IP) / UDP(sport=1, dport=6000, chksum=0) / b"nocs"
    stack.input(0, ip_frame(bad), 1.0)
    stack.input(0, ip_frame(zero), 1.0)
    assert sock.recvfrom(10)[0] == b"nocs"
    with pytest.raises(BlockingIOError):
        sock.recvfrom(10)
    short = IP(src=PEER_IP, dst=HOST_IP, proto=17) / Raw(b"\x00\x01\x17")
    lying = IP(src=PEER_IP, dst=HOST_IP) / UDP(sport=1, dport=6000, len=200) / b"x"
    stack.input(0, ip_frame(short), 1.0)
    stack.input(0, ip_frame(lying), 1.0)
    c = stack.counters
    assert c["udp.in.bad_checksum"] == 1 and c["udp.in.delivered"] == 1
    assert c["udp.in.too_short"] == 1 and c["udp.in.bad_len"] == 1
    check_sums(c)


def test_empty_datagrams_cannot_pile_up() -> None:
    """Zero-byte datagrams cost no payload bytes; the queue is still bounded (one datagram per
    DATAGRAM_COST bytes of buffer)."""
    stack = make_stack(HostConfig(udp_rcvbuf=1000))
    sock = stack.udp_socket()
    sock.bind(("", 6002))
    for _ in range(1000):
        stack.input(0, datagram(6002, b""), 1.0)
    assert stack.counters["udp.in.delivered"] == 1000 // DATAGRAM_COST
    assert stack.counters["udp.in.rcvbuf_full"] == 1000 - 1000 // DATAGRAM_COST
    assert sock.recvfrom(10)[0] == b""
    check_sums(stack.counters)


def test_receive_queue_bounded() -> None:
    stack = make_stack(HostConfig(udp_rcvbuf=1000))
    sock = stack.udp_socket()
    sock.bind(("", 6001))
    for _ in range(5):
        stack.input(0, datagram(6001, b"x" * 300), 1.0)
    assert stack.counters["udp.in.delivered"] == 3
    assert stack.counters["udp.in.rcvbuf_full"] == 2
    check_sums(stack.counters)


def test_port_unreachable_rate_limited_never_for_broadcast() -> None:
    stack = make_stack(HostConfig(icmp_rate=2.0, icmp_burst=2))
    for _ in range(5):
        stack.input(0, datagram(9999, b"anyone?"), 1.0)
    out = stack.poll(1.0)
    assert len(out) == 2
    err = Ether(out[0][1])
    assert err[ICMP].type == 3 and err[ICMP].code == 3
    assert err[IP].src == HOST_IP and err[IP].dst == PEER_IP
    quoted = IP(bytes(err[ICMP].payload))
    assert quoted[UDP].dport == 9999  # the offending datagram is quoted
    assert stack.counters["icmp.out.rate_limited"] == 3
    stack.input(0, datagram(9999, b"later"), 2.0)  # the bucket refilled
    assert len(stack.poll(2.0)) == 1
    bc = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=PEER_IP, dst="198.18.7.255")
    stack.input(0, bytes(bc / UDP(sport=1, dport=9999)), 10.0)
    assert stack.poll(10.0) == []
    assert stack.counters["icmp.out.about_broadcast"] == 1
    assert stack.counters["udp.in.no_port"] == 7
    check_sums(stack.counters)


def test_port_unreachable_flags_the_socket() -> None:
    stack = make_stack()
    sock = stack.udp_socket()
    sock.sendto(b"q", (PEER_IP, 53))
    (out,) = stack.poll(1.0)
    sent = Ether(out[1])[IP]
    err = IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=3, code=3) / Raw(bytes(sent)[:28])
    q = EventQueue()
    q.register(sock, READ)
    assert q.events() == []
    stack.input(0, ip_frame(err), 1.1)
    (ev,) = q.events()
    assert ev.flags & EV_ERROR
    assert sock.take_error() == errno.ECONNREFUSED and sock.take_error() == 0
    assert q.events() == []
    sock.close()
    (ev,) = q.events()
    assert ev.flags & EV_EOF


def test_socket_readiness_drives_the_queue() -> None:
    stack = make_stack()
    socks = [stack.udp_socket() for _ in range(3)]
    q = EventQueue()
    for i, s in enumerate(socks):
        s.bind(("", 7100 + i))
        q.register(s, READ, i)
    assert q.events() == []
    stack.input(0, datagram(7101, b"abc"), 1.0)
    (ev,) = q.events()
    assert ev.udata == 1 and ev.data == 3
    socks[1].recvfrom(10)
    assert q.events() == []


def test_sendto_errors() -> None:
    stack = make_stack()
    sock = stack.udp_socket()
    with pytest.raises(OSError) as exc:
        sock.sendto(b"x", ("198.19.0.1", 1))  # no gateway
    assert exc.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as exc:
        sock.sendto(bytes(65508), (PEER_IP, 1))
    assert exc.value.errno == errno.EMSGSIZE
    assert sock.sendto(bytes(3000), (PEER_IP, 1)) == 3000  # fragmented by IP
    assert len(stack.poll(1.0)) == 3


class _FakeIp:
    """An IP layer as far as UDP can tell (``netfast.ip.api.IpOutput``): no Stack behind it."""

    def __init__(self, local: int) -> None:
        self.counters: Counter[str] = Counter()
        self.now = 0.0
        self.local = local
        self.sent: list[tuple[int, int, int, bytes, float, bool]] = []

    def ip_output(
        self,
        src: int,
        dst: int,
        proto: int,
        payload: bytes,
        now: float,
        *,
        ttl: int | None = None,
        df: bool = True,
        tos: int = 0,
        gso_mss: int = 0,
    ) -> str | None:
        self.sent.append((src, dst, proto, payload, now, df))
        return None

    def source_for(self, dst: int) -> int | None:
        return self.local

    def mtu_for(self, dst: int) -> int:
        return 1500

    def is_local(self, addr: int) -> bool:
        return addr == self.local

    def tso_for(self, dst: int) -> bool:
        return False


def test_udp_core_runs_on_any_ip_output() -> None:
    a_addr, b_addr = ip_from_str("10.9.0.1"), ip_from_str("10.9.0.2")
    a_ip, b_ip = _FakeIp(a_addr), _FakeIp(b_addr)
    a_ip.now = 7.5
    a = UdpLayer(a_ip, a_ip.counters, random.Random(1))
    b = UdpLayer(b_ip, b_ip.counters, random.Random(2))
    receiver = UdpSocket(b)
    receiver.bind(("10.9.0.2", 53))
    sender = UdpSocket(a)
    assert sender.sendto(b"query", ("10.9.0.2", 53)) == 5
    [(src, dst, proto, payload, now, df)] = a_ip.sent
    assert (src, dst, proto, now, df) == (a_addr, b_addr, 17, 7.5, False)
    hdr = UdpRepr.parse(UdpDatagram.new_checked(payload), src, dst)  # the checksum verifies
    assert (hdr.dst_port, hdr.payload_len) == (53, 5)
    assert EPHEMERAL_LOW <= hdr.src_port <= EPHEMERAL_HIGH
    assert a_ip.counters["udp.out.datagrams"] == 1
    assert b.input(src, dst, memoryview(payload)) == "udp.in.delivered"
    assert receiver.recvfrom(100) == (b"query", ("10.9.0.1", hdr.src_port))
    corrupt = payload[:-1] + bytes([payload[-1] ^ 1])
    assert b.input(src, dst, corrupt) == "udp.in.bad_checksum"
    assert b.input(src, dst, payload[:7]) == "udp.in.too_short"
    assert sum(b_ip.counters[k] for k in UDP_OUTCOMES) == 3
