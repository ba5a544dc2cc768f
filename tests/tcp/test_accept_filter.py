"""The listener's accept filter (FreeBSD's SO_ACCEPTFILTER / accf_http, the paper's application
section): a connection reaches ``accept`` only once its bytes pass the filter, the peer closes,
or the backlog needs the room -- on two simulated hosts with a virtual clock."""

from __future__ import annotations

from netfast.stack.sim import HostPair
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState

B = ("198.18.0.2", 80)


def whole_request(buf: bytearray) -> bool:
    return b"\r\n\r\n" in buf


def filtered_listener(pair: HostPair, backlog: int = 8) -> TcpSocket:
    srv = pair.tcp_b.socket()
    srv.bind(("", 80))
    srv.listen(backlog)
    srv.set_accept_filter(whole_request)
    return srv


def accepted(srv: TcpSocket) -> list[TcpSocket]:
    out = []
    while True:
        try:
            out.append(srv.accept()[0])
        except BlockingIOError:
            return out


def test_connection_is_held_until_the_request_is_whole() -> None:
    p = HostPair()
    srv = filtered_listener(p)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    r = p.run(lambda: cli.state == TcpState.ESTABLISHED, max_time=5)
    assert r.ok
    p.run(lambda: False, max_time=0.2)
    assert accepted(srv) == [] and srv.readiness()[0] == 0  # established, but not for accept
    cli.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    p.run(lambda: False, max_time=0.2)
    assert accepted(srv) == []
    assert p.b.counters["tcp.accf.held_wakeups"] >= 1
    cli.send(b"\r\n")
    r = p.run(lambda: srv.readiness()[0] == 1, max_time=2)
    assert r.ok
    (conn,) = accepted(srv)
    assert conn.recv(1000) == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert p.b.counters["tcp.accf.passed"] == 1


def test_peer_close_and_full_backlog_pass_connections_on() -> None:
    p = HostPair()
    srv = filtered_listener(p, backlog=2)
    quiet = [p.tcp_a.socket() for _ in range(3)]
    for c in quiet:
        c.connect(B, p.now)
    r = p.run(lambda: all(c.state == TcpState.ESTABLISHED for c in quiet), max_time=5)
    assert r.ok
    p.run(lambda: False, max_time=0.2)
    # Three silent connections on a backlog of two: the oldest was passed on to make room.
    got = accepted(srv)
    assert len(got) == 1 and p.b.counters["tcp.accf.passed_full"] == 1
    quiet[1].close()  # the peer gives up: the held connection reaches the application (EOF)
    r = p.run(lambda: srv.readiness()[0] >= 1, max_time=2)
    assert r.ok
    (eof_conn,) = accepted(srv)
    assert eof_conn.recv(100) == b""
    assert p.b.counters["tcp.accf.passed_eof"] == 1


def test_turning_the_filter_off_releases_held_connections() -> None:
    p = HostPair()
    srv = filtered_listener(p)
    cli = p.tcp_a.socket()
    cli.connect(B, p.now)
    p.run(lambda: cli.state == TcpState.ESTABLISHED, max_time=5)
    p.run(lambda: False, max_time=0.1)
    assert accepted(srv) == []
    srv.set_accept_filter(None)
    assert len(accepted(srv)) == 1
