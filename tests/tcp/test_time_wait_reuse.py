"""A new connection on a 4-tuple whose previous incarnation sits in TIME_WAIT at the server (the
server closed first, as an HTTP/1.0 server does): its SYN is accepted at once (RFC 6191) instead
of earning a challenge ACK and a one-second retransmission."""

from __future__ import annotations

import contextlib

import pytest

from netfast.stack.sim import HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState


def _one_exchange(pair: HostPair, listener: TcpSocket, port: int) -> tuple[float, TcpState]:
    cli = pair.tcp_a.socket()
    cli.bind(("198.18.0.1", port))
    start = pair.now
    cli.connect(("198.18.0.2", 80), pair.now)
    st: dict[str, object] = {"acc": None, "closed": False, "done": False}

    def app() -> None:
        if st["acc"] is None:
            with contextlib.suppress(BlockingIOError):
                st["acc"], _ = listener.accept()
        acc = st["acc"]
        if acc is not None and not st["closed"] and cli.state == TcpState.ESTABLISHED:
            acc.send(b"bye")  # type: ignore[attr-defined]
            acc.close()  # type: ignore[attr-defined]
            st["closed"] = True
        if st["closed"] and not st["done"]:
            try:
                data = cli.recv(100)
            except BlockingIOError:
                return
            if not data:
                cli.close()
                st["done"] = True

    result = pair.run(lambda: bool(st["done"]) and cli.conn is not None and cli.conn.closed,
                      app=app, max_time=10)  # fmt: skip
    assert result.ok
    server_conn = next(iter(pair.tcp_b.conns), None)
    return pair.now - start, server_conn.state if server_conn else TcpState.CLOSED


@pytest.mark.parametrize("timestamps", [True, False])
def test_syn_reuses_a_time_wait_4_tuple_at_once(timestamps: bool) -> None:
    pair = HostPair(tcp_config=TcpConfig(timestamps=timestamps, msl=30.0))
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    _, state = _one_exchange(pair, listener, 40000)
    assert state == TcpState.TIME_WAIT  # the server closed first
    pair.clock.now += 0.5  # well inside 2 MSL
    second, _ = _one_exchange(pair, listener, 40000)
    assert pair.b.counters["tcp.in.time_wait_reused"] == 1
    assert pair.b.counters["tcp.in.syn_in_window"] == 0
    assert second < 0.5, second  # no RTO-driven SYN retransmission
    assert pair.b.counters["tcp.conn.accepted"] == 2
