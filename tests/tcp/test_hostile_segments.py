"""Hostile and random segments never crash the TCP and never break its invariants.

Host b has a listener and an established connection from host a.  Hypothesis fabricates
segments for that 4-tuple (and for the listener): every flag combination, sequence and
acknowledgment numbers near and far from the connection's, random option bytes (valid and not),
random payloads, with correct checksums so they reach the TCP.  The stack runs with
``strict=True``, so an exception anywhere fails the test.  After every segment the send-side
positions stay ordered, and afterwards the connection either was reset by an acceptable RST or
still carries data end to end.
"""

from __future__ import annotations

import contextlib
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.state import TcpState
from netfast.wire.checksum import IPPROTO_TCP, l4_checksum
from netfast.wire.ethernet import EthernetRepr, EtherType
from netfast.wire.ipv4 import Ipv4Repr

_HDR = struct.Struct("!HHIIHHHH")


def _frame(sport: int, dport: int, seq: int, ack: int, flags: int, win: int, opts: bytes,
           payload: bytes) -> bytes:  # fmt: skip
    opts = opts[:40]
    opts += bytes(-len(opts) % 4)
    hl = 20 + len(opts)
    seg = bytearray(_HDR.pack(sport, dport, seq, ack, ((hl // 4) << 12) | flags, win, 0, 0))
    seg += opts + payload
    struct.pack_into("!H", seg, 16, l4_checksum(ADDR_A, ADDR_B, IPPROTO_TCP, seg))
    ip = Ipv4Repr(ADDR_A, ADDR_B, IPPROTO_TCP, len(seg)).to_bytes(bytes(seg))
    return EthernetRepr(MAC_B, MAC_A, EtherType.IPV4).to_bytes(ip)


def _established(config: TcpConfig | None = None) -> tuple[HostPair, object, object]:
    """A listener on b:80 and one connection to it from a:40000, both with ``config``."""
    pair = HostPair(tcp_config=config)
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    cli = pair.tcp_a.socket()
    cli.bind(("198.18.0.1", 40000))
    cli.connect(("198.18.0.2", 80), pair.now)
    assert pair.run(lambda: bool(listener.listener.ready), max_time=5).ok  # type: ignore[union-attr]
    srv, _ = listener.accept()
    return pair, cli, srv


option_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"\x01\x01\x08\x0a" + bytes(8),
            b"\x02\x04\x05\xb4",
            b"\x01\x01\x05\x0a" + bytes(8),  # one SACK block
            b"\x05\x02",  # SACK with no blocks: malformed
            b"\x08\x0a\xff\xff\xff\xff\x00\x00\x00\x01",
            b"\x03\x03\x0f",  # window scale 15
            b"\x00",
        ]
    ),
)

segment = st.tuples(
    st.integers(0, 0x1FF),  # flags, the reserved bits and NS included
    st.integers(-70_000, 70_000),  # seq relative to RCV.NXT
    st.integers(-70_000, 70_000),  # ack relative to SND.UNA
    st.integers(0, 0xFFFF),  # window
    option_bytes,
    st.binary(max_size=1500),
    st.booleans(),  # aim at the listener (port 80 from a new source port) instead
)


@settings(max_examples=60)
@given(segs=st.lists(segment, min_size=1, max_size=25))
def test_random_segments_never_crash_and_keep_invariants(segs: list[tuple]) -> None:  # type: ignore[type-arg]
    pair, cli, srv = _established()
    conn = srv.conn  # type: ignore[attr-defined]
    assert conn is not None
    seen = pair.b.counters["tcp.in.packets"]
    for flags, dseq, dack, win, opts, payload, to_listener in segs:
        sport = 50000 if to_listener else 40000
        seq = (conn.rcv_nxt + dseq) % (1 << 32)
        ack = (conn.wire(conn.snd_una) + dack) % (1 << 32)
        pair.b.input(0, _frame(sport, 80, seq, ack, flags, win, opts, payload), pair.now)
        pair.clock.now += 0.001
        pair.step()
        assert conn.snd_una <= conn.snd_nxt <= conn.snd_max
        assert conn.snd_una <= conn.data_end + 1
        assert conn.reass.bytes_held <= conn.config.rcv_buf
    assert pair.b.counters["host.internal_error"] == 0
    assert pair.b.counters["tcp.in.packets"] >= seen + len(segs)  # every one reached the TCP
    if conn.state == TcpState.CLOSED:
        return  # an acceptable RST (or a FIN exchange) ended it: nothing more to check
    # Whatever was injected, the real peer's data still gets through in order.
    before = bytes(conn.rcvbuf)
    with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionError):
        cli.send(b"after the storm")  # type: ignore[attr-defined]
    pair.run(lambda: conn.closed or b"after the storm" in bytes(conn.rcvbuf), max_time=120)
    if not conn.closed and not conn.fin_rcvd and cli.conn.state == TcpState.ESTABLISHED:  # type: ignore[attr-defined]
        got = bytes(conn.rcvbuf)
        assert got.startswith(before)


# Mostly the shape the receive offload merges (ACK or ACK|PSH, NOP NOP timestamps, in-window
# data), the rest anything.
data_segment = st.one_of(
    st.tuples(
        st.sampled_from([0x10, 0x18]),
        st.integers(-3000, 70_000),
        st.integers(-5, 5),
        st.integers(0, 0xFFFF),
        st.just(b"\x01\x01\x08\x0a" + bytes(8)),
        st.binary(min_size=1, max_size=1500),
        st.just(False),
    ),
    segment,
)


@settings(max_examples=60)
@given(
    segs=st.lists(data_segment, min_size=2, max_size=25),
    batch=st.integers(2, 8),
)
def test_random_segments_in_batches_through_the_receive_offload(
    segs: list[tuple],  # type: ignore[type-arg]
    batch: int,
) -> None:
    # The same storm, in batches: frames of the shape of data transfer take the compiled
    # receive pass and reach the TCP merged, everything else the ordinary path.
    pair, cli, srv = _established()
    conn = srv.conn  # type: ignore[attr-defined]
    assert conn is not None
    seen = pair.b.counters["tcp.in.packets"]
    frames = []
    for flags, dseq, dack, win, opts, payload, to_listener in segs:
        sport = 50000 if to_listener else 40000
        seq = (conn.rcv_nxt + dseq) % (1 << 32)
        ack = (conn.wire(conn.snd_una) + dack) % (1 << 32)
        frames.append(_frame(sport, 80, seq, ack, flags, win, opts, payload))
    for i in range(0, len(frames), batch):
        pair.b.input_batch(0, frames[i : i + batch], pair.now)
        pair.clock.now += 0.001
        pair.step()
        assert conn.snd_una <= conn.snd_nxt <= conn.snd_max
        assert conn.reass.bytes_held <= conn.config.rcv_buf
    assert pair.b.counters["host.internal_error"] == 0
    assert pair.b.counters["tcp.in.packets"] >= seen + len(segs)
    if conn.state == TcpState.CLOSED:
        return
    before = bytes(conn.rcvbuf)
    with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionError):
        cli.send(b"after the storm")  # type: ignore[attr-defined]
    pair.run(lambda: conn.closed or b"after the storm" in bytes(conn.rcvbuf), max_time=120)
    assert bytes(conn.rcvbuf).startswith(before)
