"""Listeners with their own settings: the SYN-ACK announces the window scale the connection then
uses (a mismatch would make the peer misread every window), for each listener of a host."""

from __future__ import annotations

import contextlib

import pytest

from netfast.stack.sim import HostPair
from netfast.tcp.negotiate import scale_for


@pytest.mark.parametrize("cookies", ["never", "always"])
def test_each_listener_announces_its_own_window_scale(cookies: str) -> None:
    pair = HostPair(tcp_kw_b={"cookie_mode": cookies})
    bufs = {80: 16_000, 81: 4 << 20, 82: pair.tcp_b.config.rcv_buf}
    listeners = {}
    for port, buf in bufs.items():
        sock = pair.tcp_b.socket()
        sock.setsockopt(rcv_buf=buf)
        sock.bind(("198.18.0.2", port))
        sock.listen()
        listeners[port] = sock
    clients = {}
    for port in bufs:
        cli = pair.tcp_a.socket()
        cli.connect(("198.18.0.2", port), pair.now)
        clients[port] = cli
    accepted = {}

    def app() -> None:
        for port, sock in listeners.items():
            if port not in accepted:
                with contextlib.suppress(BlockingIOError):
                    accepted[port], _ = sock.accept()

    assert pair.run(lambda: len(accepted) == len(bufs), app=app, max_time=10).ok
    body = bytes(range(256)) * 2000
    for port, buf in bufs.items():
        server, client = accepted[port].conn, clients[port].conn
        assert server is not None and client is not None
        assert server.rcv_wscale == scale_for(buf)
        assert client.snd_wscale == server.rcv_wscale  # what the SYN-ACK said
        clients[port].send(body)
    got = {port: bytearray() for port in bufs}

    def reader() -> None:
        for port, sock in accepted.items():
            with contextlib.suppress(BlockingIOError):
                got[port] += sock.recv(1 << 20)

    assert pair.run(lambda: all(len(g) == len(body) for g in got.values()), app=reader,
                    max_time=30).ok  # fmt: skip
    assert all(bytes(g) == body for g in got.values())
