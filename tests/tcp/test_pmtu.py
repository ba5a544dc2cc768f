"""Path MTU discovery (RFC 1191): an ICMP "fragmentation needed" quoting one of our segments lowers
the connection's MSS, and what is outstanding is sent again in segments that fit."""

from __future__ import annotations

import contextlib
import hashlib

from scapy.all import ICMP, IP, Ether, Raw  # type: ignore[import-untyped]
from tests.tcp.segments import established

from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.negotiate import TS_OPTION_LEN
from netfast.wire.ipv4 import ip_to_str


def test_pmtu_update_lowers_mss_and_resends_smaller() -> None:
    fx = established(1000, 2000)
    conn = fx.conn
    conn.send(b"a" * 3000)
    first = [s for s in fx.output() if s.payload]
    assert max(len(s.payload) for s in first) == conn.mss > 1000
    conn.pmtu_update(1000)
    assert conn.mss == 1000 - 40 - (TS_OPTION_LEN if conn.ts_ok else 0)
    assert conn.counters["tcp.pmtu.lowered"] == 1
    again = [s for s in fx.output() if s.payload]
    assert again and all(len(s.payload) <= conn.mss for s in again)
    assert again[0].seq == first[0].seq
    # A larger "MTU" never raises the MSS (RFC 1191: increases come from probing only).
    conn.pmtu_update(9000)
    assert conn.mss == 1000 - 40 - (TS_OPTION_LEN if conn.ts_ok else 0)


def _frag_needed(quoted_ip: bytes, mtu: int) -> bytes:
    """An ICMP frag-needed from b's address to a, quoting ``quoted_ip`` (IP header + 8 bytes)."""
    pkt = (
        Ether(dst=MAC_A, src=MAC_B)
        / IP(src=ip_to_str(ADDR_B), dst=ip_to_str(ADDR_A))
        / ICMP(type=3, code=4, nexthopmtu=mtu)
        / Raw(quoted_ip)
    )
    return bytes(pkt)


def test_frag_needed_through_the_stack_shrinks_segments_and_transfer_completes() -> None:
    pair = HostPair(tcp_config=TcpConfig(timestamps=True))
    srv = pair.tcp_b.socket()
    srv.bind(("198.18.0.2", 80))
    srv.listen()
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    body = bytes(range(256)) * 400
    st: dict[str, object] = {"acc": None, "sent": 0, "got": bytearray(), "icmp": False}

    def app() -> None:
        if st["acc"] is None:
            with contextlib.suppress(BlockingIOError):
                st["acc"], _ = srv.accept()
        sent = int(st["sent"])  # type: ignore[call-overload]
        if cli.state.name == "ESTABLISHED" and sent < len(body):
            with contextlib.suppress(BlockingIOError):
                st["sent"] = sent + cli.send(body[sent:])
        acc = st["acc"]
        if acc is not None:
            with contextlib.suppress(BlockingIOError):
                st["got"] += acc.recv(1 << 20)  # type: ignore[operator, union-attr]

    def established_both() -> bool:
        return st["acc"] is not None and int(st["sent"]) > 0  # type: ignore[call-overload]

    assert pair.run(established_both, app=app, max_time=5).ok
    conn = cli.conn
    assert conn is not None
    big = conn.mss
    # A router on the path has an MTU of 800: it sends back frag-needed quoting a segment.
    quoted = bytes(IP(src=ip_to_str(ADDR_A), dst=ip_to_str(ADDR_B), proto=6))[:20] + (
        conn.local[1].to_bytes(2, "big") + conn.remote[1].to_bytes(2, "big") + bytes(4)
    )
    pair.a.input(0, _frag_needed(quoted, 800), pair.now)
    assert pair.a.counters["tcp.ctl.frag_needed"] == 1
    assert conn.mss == 800 - 40 - (TS_OPTION_LEN if conn.ts_ok else 0) < big
    assert pair.run(lambda: len(st["got"]) == len(body), app=app, max_time=30).ok  # type: ignore[arg-type]
    assert hashlib.sha256(bytes(st["got"])).digest() == hashlib.sha256(body).digest()  # type: ignore[arg-type]
