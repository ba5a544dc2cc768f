"""Hostile session options: random T/TCPv2 and Fast Open options (valid shapes with guessed
cookies, bad lengths, truncated, the experimental kind 254) in random segments, aimed at a
T/TCPv2 connection and at a listener that takes data on SYN.  Nothing crashes (the stack runs
``strict``), no guessed cookie opens a connection or delivers data, and the real client's data
still gets through."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.tcp.test_hostile_segments import _established, _frame

from netfast.tcp.config import TcpConfig
from netfast.tcp.state import TcpState

CFG = TcpConfig(ttcp=True, fastopen=True)


def _u48(n: int) -> bytes:
    return n.to_bytes(6, "big")


session_option = st.one_of(
    # T/TCPv2: client cookie only, or client and server cookie (guessed values).
    st.integers(0, (1 << 48) - 1).map(lambda c: b"\xfd\x0a\x54\x32" + _u48(c)),
    st.tuples(st.integers(0, (1 << 48) - 1), st.integers(0, (1 << 48) - 1)).map(
        lambda t: b"\xfd\x10\x54\x32" + _u48(t[0]) + _u48(t[1])
    ),
    st.binary(min_size=0, max_size=14).map(lambda b: b"\xfd" + bytes([2 + len(b)]) + b),
    # Fast Open: requests, guessed cookies of every length, and the experimental form.
    st.binary(min_size=0, max_size=18).map(lambda b: b"\x22" + bytes([2 + len(b)]) + b),
    st.binary(min_size=0, max_size=16).map(
        lambda b: b"\xfe" + bytes([4 + len(b)]) + b"\xf9\x89" + b
    ),
    st.binary(max_size=40),
)
segment = st.tuples(
    st.sampled_from([0x02, 0x10, 0x18, 0x12, 0x04, 0x11, 0x03]),
    st.integers(-3000, 70_000),
    st.integers(-5, 5),
    st.integers(0, 0xFFFF),
    st.lists(session_option, max_size=3).map(lambda xs: b"".join(xs)),
    st.binary(max_size=600),
    st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(segs=st.lists(segment, min_size=1, max_size=20))
def test_guessed_cookies_open_nothing_and_break_nothing(segs: list[tuple]) -> None:  # type: ignore[type-arg]
    pair, cli, srv = _established(CFG)
    conn = srv.conn  # type: ignore[attr-defined]
    assert conn is not None and conn.client_cookie is not None
    for flags, dseq, dack, win, opts, payload, to_listener in segs:
        sport = 50000 if to_listener else 40000
        seq = (conn.rcv_nxt + dseq) % (1 << 32)
        ack = (conn.wire(conn.snd_una) + dack) % (1 << 32)
        pair.b.input(0, _frame(sport, 80, seq, ack, flags, win, opts, payload), pair.now)
        pair.clock.now += 0.001
        pair.step()
        assert conn.snd_una <= conn.snd_nxt <= conn.snd_max
    c = pair.b.counters
    assert c["host.internal_error"] == 0
    assert c["tcp.fastopen.passive"] == 0  # no guessed cookie opened a connection
    assert pair.tcp_b.pcbs.lookup(*(conn.local[0], 80, conn.remote[0], 50000)) is None
    # Without the client cookie nothing reached the connection: its state is the real peer's.
    assert conn.state == TcpState.ESTABLISHED and not conn.rcvbuf
    with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionError):
        cli.send(b"after the storm")  # type: ignore[attr-defined]
    assert pair.run(lambda: b"after the storm" in bytes(conn.rcvbuf), max_time=60).ok
