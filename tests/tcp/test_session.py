"""The session layer (T/TCPv2 and TCP Fast Open) between two simulated netfast hosts: round
trips saved on repeat connections, spoofed and stale cookies refused, the client cookie on
every segment, and the pieces (:mod:`netfast.tcp.session`) on their own."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable

import pytest
from tests.tcp.test_layer import frame

from netfast.bench.ttcp import Answerer, request
from netfast.link.impair import Impairment
from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.session import (
    CachedCookie,
    CookieCache,
    ServerCookies,
    session_options,
)
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState
from netfast.wire.ethernet import EthernetFrame
from netfast.wire.ipv4 import Ipv4Packet, ip_from_str
from netfast.wire.tcp import TcpFlags, TcpRepr, TcpSegment
from netfast.wire.tcp_options import (
    OPT_FAST_OPEN,
    TFO_EXPERIMENTAL_EXID,
    ExperimentalOption,
    TcpOptions,
    TtcpCookies,
)

B = ("198.18.0.2", 7)
ONE_WAY = 0.05
RTT = 2 * ONE_WAY
TTCP = TcpConfig(ttcp=True, fastopen=True)
TFO = TcpConfig(fastopen=True)
PLAIN = TcpConfig()
OTHER_HOST = ip_from_str("198.18.0.77")


Server = Answerer


def make_pair(cfg_a: TcpConfig, cfg_b: TcpConfig, delay: float = ONE_WAY) -> HostPair:
    imp = Impairment(delay=delay)
    p = HostPair(impair_ab=imp, impair_ba=imp, tcp_config=cfg_a, tcp_config_b=cfg_b)
    # Static neighbours: the first connection's round trips are TCP's, not ARP's.
    p.a.arp.add_static(0, ADDR_B, MAC_B)
    p.b.arp.add_static(0, ADDR_A, MAC_A)
    return p


@pytest.mark.parametrize(("name", "cfg"), [("ttcp", TTCP), ("tfo", TFO)])
def test_first_connection_two_round_trips_every_later_one_one(name: str, cfg: TcpConfig) -> None:
    p = make_pair(cfg, cfg)
    srv = Server(p, cfg)
    times = []
    for i in range(4):
        elapsed, cli, answer = request(p, srv, b"GET /%d" % i)
        assert answer == b"re:GET /%d" % i
        times.append(elapsed)
        assert cli.syn_data_sent == (i > 0)
        assert cli.syn_data_acked == (i > 0)
        assert srv.accepted[-1].syn_data_accepted == (i > 0)
    assert times[0] == pytest.approx(2 * RTT, abs=0.005)
    for t in times[1:]:
        assert t == pytest.approx(RTT, abs=0.005)
    assert srv.early == [b"GET /%d" % i for i in (1, 2, 3)]  # answered before the handshake
    assert p.b.counters["tcp.fastopen.passive"] == 3
    assert p.a.counters["tcp.fastopen.active"] == 3
    assert p.b.counters["tcp.fastopen.passive_fail"] == 0
    cached = p.tcp_a.cookie_cache.get(ADDR_B, p.now)
    assert cached is not None
    if name == "ttcp":
        assert cached.ttcp is not None and cached.tfo is None
        assert all(c.client_cookie for c in srv.accepted)
    else:
        assert cached.tfo is not None and len(cached.tfo) == 8 and cached.ttcp is None
        assert not any(c.client_cookie for c in srv.accepted)


@pytest.mark.parametrize(
    ("cfg_a", "cfg_b"), [(PLAIN, PLAIN), (TTCP, PLAIN), (PLAIN, TTCP), (TcpConfig(ttcp=True), TTCP)]
)
def test_without_both_ends_willing_every_connection_takes_two_round_trips(
    cfg_a: TcpConfig, cfg_b: TcpConfig
) -> None:
    p = make_pair(cfg_a, cfg_b)
    srv = Server(p, cfg_b)
    for i in range(3):
        elapsed, cli, answer = request(p, srv, b"x%d" % i)
        assert answer == b"re:x%d" % i
        assert elapsed == pytest.approx(2 * RTT, abs=0.005)
        assert not cli.syn_data_acked
    assert p.b.counters["tcp.fastopen.passive"] == 0
    # Client cookies are used exactly when both ends speak T/TCPv2.
    assert srv.accepted[-1].client_cookie == (cfg_a.ttcp and cfg_b.ttcp)


def test_client_cookie_rides_on_every_segment_of_a_lossy_transfer() -> None:
    """With timestamps, the client cookie and SACK blocks in one header (40 option bytes), a
    lossy 300 kB transfer arrives whole, and every segment both ways shows the cookie."""
    imp = Impairment(loss=0.03, delay=0.005)
    cfg = TcpConfig(ttcp=True)
    p = HostPair(impair_ab=imp, impair_ba=imp, tcp_config=cfg, seed=5)
    seen: list[TcpRepr] = []
    for stack in (p.a, p.b):
        orig = stack.poll

        def poll(now: float, orig: Callable[[float], list[tuple[int, bytes]]] = orig) -> list:
            out = orig(now)
            for _, f in out:
                eth = EthernetFrame.new_checked(f)
                if eth.ethertype != 0x0800:
                    continue
                ip = Ipv4Packet.new_checked(eth.payload)
                seen.append(TcpRepr.parse(TcpSegment.new_checked(ip.payload), ip.src, ip.dst))
            return out

        stack.poll = poll  # type: ignore[method-assign]
    srv = p.tcp_b.socket()
    srv.setsockopt(ttcp=True)
    srv.bind(("198.18.0.2", 80))
    srv.listen()
    cli = p.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), p.now)
    blob = random.Random(1).randbytes(300_000)
    sent = 0
    got = bytearray()
    conns: list[TcpSocket] = []

    def app() -> None:
        nonlocal sent
        with contextlib.suppress(BlockingIOError):
            conns.append(srv.accept()[0])
        if cli.state == TcpState.ESTABLISHED and sent < len(blob):
            with contextlib.suppress(BlockingIOError):
                sent += cli.send(blob[sent : sent + 65536])
        for c in conns:
            with contextlib.suppress(BlockingIOError):
                got.extend(c.recv(1 << 20))

    r = p.run(lambda: len(got) == len(blob), app=app, max_time=120)
    assert r.ok
    assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
    assert p.a.counters["tcp.out.retransmit"] > 0
    cookie = cli.conn.client_cookie if cli.conn else None
    assert cookie is not None
    after_syn = [s for s in seen if not s.flags & TcpFlags.SYN]
    assert len(after_syn) > 100
    assert all(s.options.ttcp is not None and s.options.ttcp.client == cookie for s in after_syn)
    assert any(s.options.sack_blocks for s in after_syn)  # SACK still fits beside it
    assert p.b.counters["tcp.in.client_cookie_bad"] == 0
    assert p.b.counters["tcp.in.client_cookie_missing"] == 0


def established_ttcp() -> tuple[HostPair, TcpSocket, TcpSocket]:
    p = make_pair(TTCP, TTCP, delay=0.001)
    srv = Server(p, TTCP)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    r = p.run(lambda: bool(srv.accepted), app=srv.step, max_time=5)
    assert r.ok
    p.run(lambda: srv.accepted[0].state == TcpState.ESTABLISHED, max_time=5)
    return p, cli, srv.accepted[0]


def inject(p: HostPair, src: int, seg: TcpRepr) -> None:
    p.b.input_batch(0, [frame(src, ADDR_B, seg)], p.now)
    p.run(lambda: False, max_time=0.05)


def test_segment_with_wrong_or_missing_client_cookie_is_dropped_and_counted() -> None:
    p, cli, conn = established_ttcp()
    c = conn.conn
    assert c is not None and c.client_cookie is not None
    seq, ack = c.rcv_nxt, c.wire(c.snd_nxt)
    wrong = TtcpCookies((c.client_cookie + 1) & ((1 << 48) - 1))
    for opts in (TcpOptions.build(ttcp=wrong), TcpOptions()):
        inject(p, ADDR_A, TcpRepr(cli.local[1], 7, seq, ack, TcpFlags.ACK | TcpFlags.PSH, 65535,
                                  options=opts, payload=b"spoofed"))  # fmt: skip
    # A reset with the wrong cookie does not tear the connection down.
    inject(p, ADDR_A, TcpRepr(cli.local[1], 7, seq, 0, TcpFlags.RST, 0,
                              options=TcpOptions.build(ttcp=wrong)))  # fmt: skip
    assert p.b.counters["tcp.in.client_cookie_bad"] == 2
    assert p.b.counters["tcp.in.client_cookie_missing"] == 1
    assert conn.state == TcpState.ESTABLISHED and c.rcv_nxt == seq
    with pytest.raises(BlockingIOError):
        conn.recv(100)
    # The real client's data, with its cookie, still goes through.
    cli.send(b"real")
    p.run(lambda: conn.readiness()[0] > 0, max_time=2)
    assert conn.recv(100) == b"real"


def learned_cookie(p: HostPair) -> CachedCookie:
    cached = p.tcp_a.cookie_cache.get(ADDR_B, p.now)
    assert cached is not None
    return cached


def data_syn(sport: int, opts: TcpOptions, payload: bytes = b"GET /secret") -> TcpRepr:
    return TcpRepr(sport, 7, 12345, 0, TcpFlags.SYN, 65535, options=opts, payload=payload)


@pytest.mark.parametrize("case", ["forged", "missing", "other_host", "tfo_forged", "tfo_other"])
def test_spoofed_data_syn_opens_nothing_and_delivers_nothing(case: str) -> None:
    cfg = TTCP if not case.startswith("tfo") else TFO
    p = make_pair(cfg, cfg, delay=0.001)
    srv = Server(p, cfg)
    request(p, srv, b"hello")  # a learns a cookie
    cached = learned_cookie(p)
    client = 0x4242
    src = ADDR_A
    if case == "forged":
        opts = TcpOptions.build(mss=1460, ttcp=TtcpCookies(client, (cached.ttcp or 0) ^ 0x5A5A))
    elif case == "missing":
        opts = TcpOptions.build(mss=1460, ttcp=TtcpCookies(client))
    elif case == "other_host":
        opts = TcpOptions.build(mss=1460, ttcp=TtcpCookies(client, cached.ttcp))
        src = OTHER_HOST
    elif case == "tfo_forged":
        assert cached.tfo is not None
        opts = TcpOptions.build(mss=1460, tfo_cookie=bytes(b ^ 1 for b in cached.tfo))
    else:
        opts = TcpOptions.build(mss=1460, tfo_cookie=cached.tfo)
        src = OTHER_HOST
    before = len(srv.accepted)
    p.b.input_batch(0, [frame(src, ADDR_B, data_syn(40000, opts))], p.now)
    assert p.tcp_b.pcbs.lookup(ADDR_B, 7, src, 40000) is None  # no connection state ...
    assert p.tcp_b.syncache.has((ADDR_B, 7, src, 40000))  # ... beyond the SYN cache
    p.run(lambda: False, max_time=0.05, app=srv.step)  # (a resets the SYN-ACK it never asked for)
    assert len(srv.accepted) == before  # nothing to accept
    assert b"GET /secret" not in b"".join(srv.early)
    counter = "tcp.fastopen.no_cookie" if case == "missing" else "tcp.fastopen.passive_fail"
    assert p.b.counters[counter] == 1
    assert p.b.counters["tcp.fastopen.passive"] == 0


def test_stale_cookie_falls_back_to_a_handshake_and_a_fresh_cookie() -> None:
    p = make_pair(TTCP, TTCP)
    rotate = 30.0
    p.tcp_b.server_cookies = ServerCookies(lambda: random.randbytes(16), now=p.now, rotate=rotate)
    srv = Server(p, TTCP)
    first, _, _ = request(p, srv, b"a")
    old = learned_cookie(p).ttcp
    # One rotation later the cookie still opens (the previous secret is kept) ...
    p.clock.now = rotate + 1
    t, cli, answer = request(p, srv, b"b")
    assert answer == b"re:b" and cli.syn_data_acked and t == pytest.approx(RTT, abs=0.005)
    renewed = learned_cookie(p).ttcp
    assert renewed != old  # ... and its SYN-ACK brings the new one
    # Two rotations after it was made, a cookie no longer opens: the data waits for the
    # handshake, and a fresh cookie comes back.
    p.clock.now = 2 * rotate + 1
    p.tcp_a.cookie_cache.put(ADDR_B, CachedCookie(ttcp=old, mss=1460, learned=p.now))
    t, cli, answer = request(p, srv, b"c")
    assert answer == b"re:c"
    assert cli.syn_data_sent and not cli.syn_data_acked
    assert t == pytest.approx(2 * RTT, abs=0.005)
    assert p.b.counters["tcp.fastopen.passive_fail"] == 1
    assert p.a.counters["tcp.fastopen.active_fail"] == 1
    t, cli, _ = request(p, srv, b"d")
    assert cli.syn_data_acked and t == pytest.approx(RTT, abs=0.005)
    assert first == pytest.approx(2 * RTT, abs=0.005)


def test_retransmitted_syn_carries_no_data() -> None:
    p = make_pair(TTCP, TTCP, delay=0.01)
    srv = Server(p, TTCP)
    request(p, srv, b"learn")
    # Lose the next SYN a sends.
    send = p.link_a.send
    lost: list[bytes] = []
    syns: list[TcpRepr] = []

    def lossy(frames):  # type: ignore[no-untyped-def]
        keep = []
        for f in frames:
            ip = Ipv4Packet.new_checked(EthernetFrame.new_checked(f).payload)
            s = TcpRepr.parse(TcpSegment.new_checked(ip.payload), ip.src, ip.dst)
            if s.flags & TcpFlags.SYN:
                syns.append(s)
                if not lost:
                    lost.append(f)
                    continue
            keep.append(f)
        return send(keep)

    p.link_a.send = lossy  # type: ignore[method-assign]
    _t, cli, answer = request(p, srv, b"again")
    assert answer == b"re:again"
    assert [s.payload for s in syns] == [b"again", b""]
    assert cli.syn_data_sent and not cli.syn_data_acked
    assert srv.accepted[-1].syn_data_accepted is False


def test_syn_option_space_and_forms() -> None:
    """The SYN of each form fits the 40 option bytes; a Linux-style Fast Open SYN (kind 34 or
    the experimental kind 254) is read as such."""
    p = make_pair(TTCP, TTCP)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now, b"x")
    (syn,) = [s for s in (cli.conn.output(p.now) if cli.conn else [])]
    session = session_options(syn.options)
    assert session.ttcp is not None and session.ttcp.server is None
    assert session.tfo == b"" and session.tfo_kind == OPT_FAST_OPEN  # a cookie request
    assert syn.payload == b""  # no cookie yet: no data in the SYN
    assert len(syn.options.to_bytes()) <= 40
    raw = bytes((254, 12, 0xF9, 0x89)) + b"ABCDEFGH"
    exp = session_options(TcpOptions.parse(raw))
    assert exp.tfo == b"ABCDEFGH" and exp.tfo_kind == 254


def test_server_cookies_unique_per_host_and_rotating() -> None:
    rng = random.Random(3)
    cookies = ServerCookies(lambda: rng.randbytes(16), now=0.0, rotate=100.0)
    a, b = ADDR_A, OTHER_HOST
    ca = cookies.ttcp(a, 0.0)
    assert ca != cookies.ttcp(b, 0.0)
    assert 0 <= ca < 1 << 48
    assert cookies.generation(a, ca, 50.0) == 0 and cookies.generation(b, ca, 50.0) is None
    tfo = cookies.tfo(a, 0.0)
    assert len(tfo) == 8 and cookies.generation(a, tfo, 99.0) == 0
    assert cookies.generation(a, tfo[:4] + bytes(4), 99.0) is None
    assert cookies.generation(a, tfo[:6], 99.0) is None  # a Fast Open cookie of another size
    assert cookies.generation(a, ca, 150.0) == 1  # the previous secret
    assert cookies.ttcp(a, 150.0) != ca
    assert cookies.generation(a, ca, 200.0) is None  # two rotations: gone
    assert cookies.generation(a, tfo, 200.0) is None


def test_cookie_cache_is_bounded_and_expires() -> None:
    cache = CookieCache(limit=3, ttl=10.0)
    for i in range(5):
        cache.put(i, CachedCookie(ttcp=i, learned=0.0))
    assert len(cache) == 3 and cache.get(0, 1.0) is None and cache.get(4, 1.0) is not None
    cache.get(2, 1.0)  # used: kept before 3
    cache.put(9, CachedCookie(ttcp=9, learned=0.0))
    assert cache.get(3, 1.0) is None and cache.get(2, 1.0) is not None
    assert cache.get(2, 11.0) is None  # expired
    with pytest.raises(ValueError, match="limit"):
        CookieCache(limit=0)


def test_experimental_form_is_answered_in_kind() -> None:
    """A client that asks in the pre-RFC form (kind 254, ExID 0xF989) gets its cookie in that
    form, and a later SYN with that cookie and data is taken (as Linux does for such peers)."""
    p = make_pair(TFO, TFO, delay=0.001)
    srv = Server(p, TFO)
    synacks = capture_synacks(p)
    request_opts = TcpOptions((ExperimentalOption(254, TFO_EXPERIMENTAL_EXID, b""),))
    p.b.input_batch(0, [frame(ADDR_A, ADDR_B, data_syn(41000, request_opts))], p.now)
    p.step()
    (answer,) = [s for s in synacks if s.dst_port == 41000]
    session = session_options(answer.options)
    assert session.tfo_kind == 254 and session.tfo is not None and len(session.tfo) == 8
    assert answer.ack == 12346  # the data was not taken: there was no cookie
    opts = TcpOptions((ExperimentalOption(254, TFO_EXPERIMENTAL_EXID, session.tfo),))
    p.b.input_batch(0, [frame(ADDR_A, ADDR_B, data_syn(41001, opts, b"hi"))], p.now)
    p.step()
    (answer,) = [s for s in synacks if s.dst_port == 41001]
    assert answer.ack == 12345 + 1 + 2  # SYN and data acknowledged
    assert p.b.counters["tcp.fastopen.passive"] == 1
    srv.step()
    assert srv.accepted and srv.accepted[-1].syn_data_accepted


def capture_synacks(p: HostPair) -> list[TcpRepr]:
    out: list[TcpRepr] = []
    orig = p.b.poll

    def poll(now: float) -> list[tuple[int, bytes]]:
        frames = orig(now)
        for _, f in frames:
            ip = Ipv4Packet.new_checked(EthernetFrame.new_checked(f).payload)
            s = TcpRepr.parse(TcpSegment.new_checked(ip.payload), ip.src, ip.dst)
            if s.flags & TcpFlags.SYN:
                out.append(s)
        return frames

    p.b.poll = poll  # type: ignore[method-assign]
    return out


@pytest.mark.parametrize(("ts", "ttcp", "blocks"), [(False, False, 4), (True, False, 3),
                                                    (False, True, 3), (True, True, 1)])  # fmt: skip
def test_sack_blocks_fill_the_option_space_beside_the_client_cookie(
    ts: bool, ttcp: bool, blocks: int
) -> None:
    """Every segment's options fit 40 bytes, with as many SACK blocks as still fit."""
    from tests.tcp.segments import LOCAL, REMOTE

    from netfast.tcp.conn import TcpConnection
    from netfast.tcp.negotiate import Negotiated

    cfg = TcpConfig(ttcp=ttcp, timestamps=ts)
    conn = TcpConnection.accept_from_syn(
        LOCAL, REMOTE, 1000, 5000, Negotiated(1460, 7, True, ts, 1 if ts else 0), cfg, 65535,
        0.0, client_cookie=0xABCDEF if ttcp else None,
    )  # fmt: skip
    base = conn.rcv_nxt
    for k in range(6):  # six holes' worth of out-of-order data
        conn.input(TcpRepr(REMOTE[1], LOCAL[1], (base + 100 + 200 * k) & 0xFFFFFFFF, conn.wire(1),
                           TcpFlags.ACK, 65535, options=TcpOptions.build(
                               timestamps=(5, 0) if ts else None,
                               ttcp=TtcpCookies(0xABCDEF) if ttcp else None),
                           payload=b"x" * 100), 0.1)  # fmt: skip
    (ack,) = [s for s in conn.output(0.1) if s.flags & TcpFlags.ACK]
    assert len(ack.options.sack_blocks) == blocks
    assert len(ack.options.to_bytes()) <= 40
    assert (ack.options.ttcp is not None) == ttcp
