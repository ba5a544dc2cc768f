"""TCP sockets on the kqueue-style event queue: a listener reports connections to accept, a
connection reports bytes to read, room to write and end of stream, and registrations persist."""

from __future__ import annotations

from netfast.stack.kqueue import EV_EOF, EV_ERROR, READ, WRITE, EventQueue
from netfast.stack.sim import HostPair
from netfast.tcp.config import TcpConfig


def _events(q: EventQueue) -> dict[tuple[int, int], tuple[int, int]]:
    return {(id(e.ident), e.filter): (e.data, e.flags) for e in q.events()}


def test_listener_connection_and_eof_events() -> None:
    pair = HostPair(tcp_config=TcpConfig(snd_buf=100_000))
    q = EventQueue()
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    q.register(listener, READ, "listener")
    assert q.events() == []

    clients = []
    for port in (40001, 40002):
        cli = pair.tcp_a.socket()
        cli.bind(("198.18.0.1", port))
        cli.connect(("198.18.0.2", 80), pair.now)
        clients.append(cli)
    assert pair.run(lambda: len(listener.listener.ready) == 2, max_time=5).ok  # type: ignore[union-attr]
    ev = _events(q)
    assert ev[(id(listener), READ)] == (2, 0)  # two connections to accept, one event
    srv, _ = listener.accept()
    assert _events(q)[(id(listener), READ)] == (1, 0)  # level-triggered, still one ready
    listener.accept()
    assert (id(listener), READ) not in _events(q)

    q.register(srv, READ, "conn")
    q.register(srv, WRITE, "conn")
    ev = _events(q)
    assert (id(srv), READ) not in ev
    assert ev[(id(srv), WRITE)] == (pair.tcp_b.config.snd_buf, 0)

    clients[0].send(b"x" * 5000)
    assert pair.run(lambda: (id(srv), READ) in _events(q), max_time=5).ok
    assert 0 < _events(q)[(id(srv), READ)][0] <= 5000  # as soon as the first bytes are in
    assert pair.run(lambda: _events(q)[(id(srv), READ)][0] == 5000, max_time=5).ok
    assert _events(q)[(id(srv), READ)] == (5000, 0)
    assert len(srv.recv(3000)) == 3000
    assert _events(q)[(id(srv), READ)] == (2000, 0)
    srv.recv(3000)
    assert (id(srv), READ) not in _events(q)

    clients[0].shutdown()
    assert pair.run(lambda: (id(srv), READ) in _events(q), max_time=5).ok
    data, flags = _events(q)[(id(srv), READ)]
    assert data == 0 and flags & EV_EOF
    assert srv.recv(10) == b""

    # Registrations persist until removed.
    q.unregister(srv, WRITE)
    assert (id(srv), WRITE) not in _events(q)


def test_reset_reports_error() -> None:
    pair = HostPair()
    q = EventQueue()
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    assert pair.run(lambda: bool(listener.listener.ready), max_time=5).ok  # type: ignore[union-attr]
    srv, _ = listener.accept()
    q.register(srv, READ)
    cli.abort()
    assert pair.run(lambda: srv.error is not None, max_time=5).ok
    (event,) = q.events()
    assert event.flags & EV_ERROR and event.flags & EV_EOF
    assert srv.error == "ECONNRESET"
