"""100,000 short connections between two simulated netfast hosts, 256 in flight at a time:
afterwards nothing is left behind -- PCB table, connection registry, input queues, sockets,
timer heap, SYN cache -- and TIME_WAIT, which the server holds (it closes first), stays bounded
by the connections of the last 2 MSL and drains when they pass.  Client ports are reused
against the server's TIME_WAIT (RFC 6191's check) without one failure."""

from __future__ import annotations

import os

import pytest

from netfast.stack.sim import HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState

pytestmark = pytest.mark.slow

B = ("198.18.0.2", 7)
TOTAL = int(os.environ.get("NETFAST_SHORT_CONNS", "100000"))
IN_FLIGHT = 256
MSL = 0.5


def test_100k_short_connections_leave_nothing_behind() -> None:
    cfg = TcpConfig(msl=MSL, delayed_ack=0.0)
    p = HostPair(tcp_config=cfg, capacity=1 << 20)
    srv = p.tcp_b.socket()
    srv.bind(B)
    srv.listen(1024)
    clients: dict[TcpSocket, int] = {}
    servers: list[TcpSocket] = []
    started = finished = 0
    failures: list[str] = []
    peak_conns = peak_heap = 0

    def app() -> None:
        nonlocal started, finished, peak_conns, peak_heap
        while started < TOTAL and len(clients) < IN_FLIGHT:
            cli = p.tcp_a.socket()
            cli.connect(B, p.now)
            clients[cli] = started
            started += 1
        while True:
            try:
                servers.append(srv.accept()[0])
            except BlockingIOError:
                break
        for conn in list(servers):
            try:
                data = conn.recv(64)
            except BlockingIOError:
                continue
            if data:
                conn.send(data)
                conn.close()  # the server closes first: TIME_WAIT is on its side
                servers.remove(conn)
        for cli, i in list(clients.items()):
            if cli.state == TcpState.ESTABLISHED and cli.conn and not cli.conn.sndbuf \
                    and cli.conn.snd_max == 1:  # fmt: skip
                cli.send(b"%d" % i)
            if cli.error is not None:
                failures.append(f"{i}: {cli.error}")
                del clients[cli]
                continue
            try:
                data = cli.recv(64)
            except BlockingIOError:
                continue
            if data == b"" or cli.state == TcpState.CLOSED:
                cli.close()
                del clients[cli]
                finished += 1
        peak_conns = max(peak_conns, len(p.tcp_b.conns))
        peak_heap = max(peak_heap, len(p.tcp_b._timers))

    r = p.run(lambda: finished + len(failures) == TOTAL, app=app, max_time=3600,
              max_steps=50_000_000)  # fmt: skip
    assert r.ok, (finished, len(failures), started)
    assert failures == []
    assert p.b.counters["tcp.conn.accepted"] == TOTAL
    assert p.b.counters["tcp.syncache.completed"] == TOTAL
    # TIME_WAIT is bounded by what 2 MSL of connections make, not by the total.
    rate = TOTAL / r.sim_time
    assert peak_conns <= IN_FLIGHT + rate * 2 * MSL * 1.5 + 64
    print(f"sim {r.sim_time:.2f} s, rate {rate:,.0f}/s, peak conns {peak_conns}, heap {peak_heap}")
    # Let every TIME_WAIT pass, then look for leftovers on both hosts.
    p.run(lambda: not p.tcp_b.conns and not p.tcp_a.conns, max_time=10 * MSL)
    for layer in (p.tcp_a, p.tcp_b):
        assert len(layer.conns) == 0
        assert len(layer.queues) == 0 and len(layer.sockets) == 0
        assert len(layer.pcbs) == 0  # (the listener is not counted)
        assert not layer._timer_at and not layer.dirty and not layer.backlog
        assert len(layer.syncache) == 0
        layer.poll_at()  # drops stale heap entries from the top
        assert len(layer._timers) <= IN_FLIGHT * 4
    assert peak_heap <= 4 * (IN_FLIGHT + rate * 2 * MSL * 1.5 + 64)
