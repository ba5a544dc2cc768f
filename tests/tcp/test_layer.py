"""Tests of :class:`netfast.tcp.layer.TcpLayer` and :class:`TcpSocket` on two simulated hosts
(:class:`netfast.stack.sim.HostPair`, virtual clock, sans-IO): connect/accept/echo, resets for
closed ports, checksum drops, many short connections, a SYN flood against small SYN-cache
limits, the per-pass input bound, and seeded lossy transfers."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from tests.tcp.segments import flags_of

from netfast.link.impair import Impairment
from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState
from netfast.wire.ethernet import EthernetRepr
from netfast.wire.ipv4 import Ipv4Repr
from netfast.wire.tcp import TcpRepr
from netfast.wire.tcp_options import TcpOptions

B = ("198.18.0.2", 80)


def frame(src: int, dst: int, tcp: TcpRepr, *, corrupt: bool = False) -> bytes:
    """An Ethernet frame from host a's MAC to host b carrying ``tcp`` (checksum right unless
    ``corrupt``)."""
    l4 = bytearray(tcp.to_bytes(src, dst))
    if corrupt:
        l4[16] ^= 0x5A
    ip = Ipv4Repr(src, dst, 6, len(l4)).to_bytes(bytes(l4))
    return EthernetRepr(MAC_B, MAC_A, 0x0800).to_bytes(ip)


def capture(pair: HostPair, host: str) -> list[bytes]:
    """Record every frame ``host`` sends."""
    stack = getattr(pair, host)
    frames: list[bytes] = []
    orig = stack.poll

    def poll(now: float) -> list[tuple[int, bytes]]:
        out = orig(now)
        frames.extend(f for _, f in out)
        return out

    stack.poll = poll
    return frames


def listen(pair: HostPair, port: int = 80, backlog: int = 128) -> TcpSocket:
    srv = pair.tcp_b.socket()
    srv.bind(("198.18.0.2", port))
    srv.listen(backlog)
    return srv


def try_accept(srv: TcpSocket) -> TcpSocket | None:
    try:
        return srv.accept()[0]
    except BlockingIOError:
        return None


def read_all(sock: TcpSocket, into: bytearray) -> bool:
    """Read what is there; True at end of stream."""
    while True:
        try:
            d = sock.recv(1 << 20)
        except BlockingIOError:
            return False
        if not d:
            return True
        into += d


# ---------------------------------------------------------------- basics


def test_connect_accept_echo() -> None:
    p = HostPair()
    srv = listen(p)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    s: dict[str, Any] = {"acc": None, "echo": bytearray(), "sent": False}

    def app() -> None:
        if s["acc"] is None:
            s["acc"] = try_accept(srv)
        if cli.state == TcpState.ESTABLISHED and not s["sent"]:
            cli.send(b"ping " * 100)
            s["sent"] = True
        if s["acc"] is not None:
            buf = bytearray()
            read_all(s["acc"], buf)
            if buf:
                s["acc"].send(bytes(buf))
        read_all(cli, s["echo"])

    r = p.run(lambda: len(s["echo"]) == 500, app=app, max_time=10)
    assert r.ok and bytes(s["echo"]) == b"ping " * 100
    assert s["acc"].getpeername() == (ADDR_A, cli.getsockname()[1])
    # Both close; the closer goes through TIME_WAIT, the other side is gone at once.
    cli.close()
    r = p.run(lambda: s["acc"].state == TcpState.CLOSE_WAIT, max_time=10)
    assert r.ok
    s["acc"].close()
    r = p.run(lambda: s["acc"].state == TcpState.CLOSED, max_time=10)
    assert r.ok and cli.state == TcpState.TIME_WAIT


def test_syn_to_closed_port_gets_rst_ack() -> None:
    p = HostPair()
    frames = capture(p, "b")
    cli = p.tcp_a.socket()
    cli.connect(("198.18.0.2", 81), p.now)
    r = p.run(lambda: cli.state == TcpState.CLOSED, max_time=5)
    assert r.ok and cli.error == "ECONNREFUSED"
    tcp = [Ether(f) for f in frames if TCP in Ether(f)]
    assert len(tcp) == 1
    t = tcp[0][TCP]
    assert t.flags == "RA"
    assert t.seq == 0
    assert t.ack == (cli.conn.iss + 1) & 0xFFFFFFFF  # type: ignore[union-attr]
    assert (t.sport, t.dport) == (81, cli.getsockname()[1])
    # scapy agrees with the checksum.
    raw = bytes(t)
    t2 = IP(bytes(tcp[0][IP]))
    del t2[TCP].chksum
    assert IP(bytes(t2))[TCP].chksum == TCP(raw).chksum
    assert p.b.counters["tcp.in.no_socket"] == 1


def test_ack_to_closed_port_gets_rst_with_seq_of_ack() -> None:
    p = HostPair()
    frames = capture(p, "b")
    p.step()
    seg = TcpRepr(5555, 81, 1000, 0xFFFFFFF0, flags_of("A"), 100)
    p.b.input(0, frame(ADDR_A, ADDR_B, seg), p.now)
    p.run(lambda: any(TCP in Ether(f) for f in frames), max_time=5)
    t = next(Ether(f)[TCP] for f in frames if TCP in Ether(f))
    assert t.flags == "R" and t.seq == 0xFFFFFFF0


def test_rst_to_closed_port_not_answered() -> None:
    p = HostPair()
    frames = capture(p, "b")
    p.b.input(0, frame(ADDR_A, ADDR_B, TcpRepr(5555, 81, 1, 0, flags_of("R"), 0)), p.now)
    p.run(lambda: False, max_time=3)
    assert not any(TCP in Ether(f) for f in frames)


def test_bad_checksum_counted_and_dropped() -> None:
    p = HostPair()
    srv = listen(p)
    frames = capture(p, "b")
    syn = TcpRepr(5555, 80, 1, 0, flags_of("S"), 1000, options=TcpOptions.build(mss=1460))
    p.b.input(0, frame(ADDR_A, ADDR_B, syn, corrupt=True), p.now)
    p.run(lambda: False, max_time=2)
    assert p.b.counters["tcp.in.bad_checksum"] == 1
    assert len(p.tcp_b.syncache) == 0
    assert not any(TCP in Ether(f) for f in frames)
    p.b.input(0, frame(ADDR_A, ADDR_B, syn), p.now)
    assert len(p.tcp_b.syncache) == 1
    assert srv.state == TcpState.LISTEN


# ---------------------------------------------------------------- many connections


def test_many_short_connections_no_pcb_leak() -> None:
    p = HostPair(tcp_config=TcpConfig(msl=1.0))
    srv = listen(p)
    n = 200
    done = 0
    for i in range(n):
        cli = p.tcp_a.socket()
        cli.connect(B, p.now)
        s: dict[str, Any] = {"acc": None, "got": bytearray(), "sent": False, "eof": False}

        def app(cli: TcpSocket = cli, s: dict[str, Any] = s, i: int = i) -> None:
            if s["acc"] is None:
                s["acc"] = try_accept(srv)
            if cli.state == TcpState.ESTABLISHED and not s["sent"]:
                cli.send(b"req %d" % i)
                cli.close()
                s["sent"] = True
            if s["acc"] is not None and not s["eof"]:
                s["eof"] = read_all(s["acc"], s["got"])
                if s["eof"]:
                    s["acc"].close()

        r = p.run(lambda s=s: s["eof"] and s["acc"].state == TcpState.CLOSED, app=app, max_time=5)
        assert r.ok, i
        assert bytes(s["got"]) == b"req %d" % i
        done += 1
        for layer in (p.tcp_a, p.tcp_b):
            tw = sum(1 for c in layer.conns if c.state == TcpState.TIME_WAIT)
            assert len(layer.conns) == tw
    assert done == n
    assert len(p.tcp_b.conns) == 0
    # After 2 MSL every TIME_WAIT is gone too.
    r = p.run(lambda: not p.tcp_a.conns, max_time=10)
    assert r.ok
    assert len(p.tcp_a.queues) == 0 and len(p.tcp_a.sockets) == 0


# ---------------------------------------------------------------- SYN flood


def test_syn_flood_bounded_cookies_and_legit_connection() -> None:
    limit = 8
    p = HostPair(
        tcp_kw_b={"syncache_buckets": 4, "syncache_bucket_limit": 2, "syncache_limit": limit}
    )
    srv = listen(p)
    rng = random.Random(99)
    spoof = 0xCB007100  # 203.0.113.0/24: host b has no route back, as for spoofed sources

    def flood(k: int) -> None:
        for _ in range(k):
            src = spoof | rng.randrange(1, 255)
            syn = TcpRepr(
                rng.randrange(1024, 65536),
                80,
                rng.getrandbits(32),
                0,
                flags_of("S"),
                65535,
                options=TcpOptions.build(mss=1460, sack_permitted=True, wscale=7),
            )
            p.b.input(0, frame(src, ADDR_B, syn), p.now)
            assert len(p.tcp_b.syncache) <= limit

    flood(1000)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    s: dict[str, Any] = {"acc": None, "got": bytearray()}

    def app() -> None:
        flood(20)
        if s["acc"] is None:
            s["acc"] = try_accept(srv)
        conn = cli.conn
        if cli.state == TcpState.ESTABLISHED and conn is not None and conn.snd_max == 1:
            cli.send(b"legit")
        if s["acc"] is not None:
            read_all(s["acc"], s["got"])

    r = p.run(lambda: bytes(s["got"]) == b"legit", app=app, max_time=20)
    assert r.ok
    c = p.tcp_b.syncache.counters
    assert c["tcp.syncache.cookie_sent"] > 500
    assert len(p.tcp_b.syncache) <= limit
    assert len(p.tcp_b.conns) == 1  # only the legitimate connection became one


# ---------------------------------------------------------------- input queue bound


def test_per_pass_input_bound() -> None:
    per_pass = 4
    p = HostPair(tcp_kw_b={"per_pass": per_pass})
    srv = listen(p)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    holder: list[TcpSocket] = []
    r = p.run(lambda: bool(holder), app=lambda: holder.append(a) if (a := try_accept(srv)) else 0)
    assert r.ok
    conn_b = holder[0].conn
    conn_a = cli.conn
    assert conn_b is not None and conn_a is not None
    queue = p.tcp_b.queues[conn_b]
    ack = TcpRepr(
        conn_a.local[1],
        80,
        conn_a.wire(conn_a.snd_nxt),
        conn_a.rcv_nxt,
        flags_of("A"),
        1000,
    )
    burst = 3 * queue.limit
    seen: list[int] = []
    before = p.b.counters["tcp.in.segments"]

    def inject(_conn: object) -> None:
        # While the connection is being processed, many more segments arrive.
        if not seen:
            seen.append(queue.pending)
            for _ in range(burst):
                p.b.input(0, frame(ADDR_A, ADDR_B, ack), p.now)

    conn_b.watchers.insert(0, inject)
    data = TcpRepr(
        conn_a.local[1],
        80,
        conn_a.wire(conn_a.snd_nxt),
        conn_a.rcv_nxt,
        flags_of("PA"),
        1000,
        payload=b"x",
    )
    p.b.input(0, frame(ADDR_A, ADDR_B, data), p.now)
    handled = p.b.counters["tcp.in.segments"] - before
    assert handled == per_pass  # the running pass stops at its budget
    assert queue.pending == queue.limit - (per_pass - 1)
    assert p.b.counters["tcp.in.queue_full"] == burst - queue.limit
    assert p.b.counters["tcp.in.queue_yield"] >= 1
    # Later polls work the backlog off, per_pass at a time.
    p.tcp_b.poll(p.now)
    assert queue.pending == queue.limit - (2 * per_pass - 1)
    while queue.pending:
        p.tcp_b.poll(p.now)
    assert conn_b.state == TcpState.ESTABLISHED


# ---------------------------------------------------------------- lossy transfers


def transfer(
    n: int, seed: int, config: TcpConfig | None, imp: Impairment, max_time: float = 120.0
) -> tuple[bool, bytes, bytes]:
    p = HostPair(impair_ab=imp, impair_ba=imp, seed=seed, tcp_config=config)
    srv = listen(p)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    data = random.Random(seed).randbytes(n)
    s: dict[str, Any] = {"acc": None, "sent": 0, "got": bytearray(), "eof": False}

    def app() -> None:
        if s["acc"] is None:
            s["acc"] = try_accept(srv)
        if s["sent"] < n and cli.state == TcpState.ESTABLISHED:
            with contextlib.suppress(BlockingIOError):
                s["sent"] += cli.send(data[s["sent"] : s["sent"] + 65536])
            if s["sent"] == n:
                cli.shutdown()
        if s["acc"] is not None and not s["eof"]:
            s["eof"] = read_all(s["acc"], s["got"])

    r = p.run(lambda: s["eof"], app=app, max_time=max_time)
    return r.ok, hashlib.sha256(data).digest(), hashlib.sha256(bytes(s["got"])).digest()


LOSSY = Impairment(loss=0.02, reorder=0.05, duplicate=0.01, delay=0.005)

CONFIGS: dict[str, Callable[[], TcpConfig]] = {
    "sack": lambda: TcpConfig(),
    "no_sack": lambda: TcpConfig(sack=False),
    "no_ts": lambda: TcpConfig(timestamps=False),
    "plain": lambda: TcpConfig(sack=False, timestamps=False, window_scale=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lossy_transfer(name: str) -> None:
    ok, want, got = transfer(1_000_000, 3, CONFIGS[name](), LOSSY)
    assert ok and got == want


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(seed=st.integers(0, 10_000), sack=st.booleans())
def test_lossy_transfer_seeds(seed: int, sack: bool) -> None:
    ok, want, got = transfer(200_000, seed, TcpConfig(sack=sack), LOSSY)
    assert ok and got == want


def test_simultaneous_open_between_two_hosts() -> None:
    p = HostPair()
    a = p.tcp_a.socket()
    a.bind(("198.18.0.1", 5000))
    b = p.tcp_b.socket()
    b.bind(("198.18.0.2", 6000))
    a.connect(("198.18.0.2", 6000), p.now)
    b.connect(("198.18.0.1", 5000), p.now)
    r = p.run(
        lambda: a.state == b.state == TcpState.ESTABLISHED and p.next_event() != 0.0,
        max_time=5,
        max_steps=1000,  # crossed SYN-ACKs answered by SYN-ACKs would loop forever
    )
    assert r.ok, (a.state, b.state)
    assert p.a.counters["tcp.conn.simultaneous_open"] == 1
    a.send(b"crossed")
    got = bytearray()
    assert p.run(lambda: read_all(b, got) or bytes(got) == b"crossed", max_time=5).ok
