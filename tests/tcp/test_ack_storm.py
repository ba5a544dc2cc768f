"""No ACK storms: a spoofed segment never makes two hosts ACK each other without end.

A spoofed in-window data segment moves one host's ``RCV.NXT`` past what the real peer sent.
From then on each host's ACKs are unacceptable to the other (a sequence number below the
window one way, an acknowledgment of data never sent the other way), and RFC 9293 3.10.7.4
answers each unacceptable segment with an ACK: without a limit the two answer each other as
fast as they can while virtual time stands still (issue 17: 200,000 ACKs each way).  The TCP
answers unacceptable segments that carry no data at most once per
``TcpConfig.invalid_ratelimit`` (Linux's ``tcp_invalid_ratelimit``); RFC 5961 challenge ACKs
also share a budget across connections.

Two hosts (``netfast.stack.sim.HostPair``, virtual clock, seeded) get spoofed segments with
correct checksums; the test counts the segments both TCPs send afterwards over a window of
virtual time.  A property test does the same with random segments injected into either side,
with and without a transfer going on.
"""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.tcp.segments import config, established, kinds, seg

from netfast.stack.sim import ADDR_A, ADDR_B, MAC_A, MAC_B, HostPair
from netfast.tcp.config import TcpConfig
from netfast.tcp.conn import TcpConnection
from netfast.tcp.socket import TcpSocket
from netfast.tcp.state import TcpState
from netfast.wire.checksum import IPPROTO_TCP, l4_checksum
from netfast.wire.ethernet import EthernetRepr, EtherType
from netfast.wire.ipv4 import Ipv4Repr
from netfast.wire.tcp_options import TcpOptions

M = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_HDR = struct.Struct("!HHIIHHHH")
CLI_PORT, SRV_PORT = 40000, 80


def _ts_option(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01\x08\x0a" + struct.pack("!II", tsval & M, tsecr & M)


def spoof(to_b: bool, seq: int, ack: int, flags: int, win: int = 65535, opts: bytes = b"",
          payload: bytes = b"") -> bytes:  # fmt: skip
    """A frame that looks as if the other host of the pair sent it (checksums correct)."""
    src, dst = (ADDR_A, ADDR_B) if to_b else (ADDR_B, ADDR_A)
    sport, dport = (CLI_PORT, SRV_PORT) if to_b else (SRV_PORT, CLI_PORT)
    opts = opts[:40]
    opts += bytes(-len(opts) % 4)
    hl = 20 + len(opts)
    hdr = _HDR.pack(sport, dport, seq & M, ack & M, ((hl // 4) << 12) | flags, win, 0, 0)
    tcp = bytearray(hdr) + opts + payload
    struct.pack_into("!H", tcp, 16, l4_checksum(src, dst, IPPROTO_TCP, tcp))
    ip = Ipv4Repr(src, dst, IPPROTO_TCP, len(tcp)).to_bytes(bytes(tcp))
    dmac, smac = (MAC_B, MAC_A) if to_b else (MAC_A, MAC_B)
    return EthernetRepr(dmac, smac, EtherType.IPV4).to_bytes(ip)


def established_pair(cfg: TcpConfig | None = None) -> tuple[HostPair, TcpSocket, TcpSocket]:
    pair = HostPair(tcp_config=cfg)
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", SRV_PORT))
    listener.listen()
    cli = pair.tcp_a.socket()
    cli.bind(("198.18.0.1", CLI_PORT))
    cli.connect(("198.18.0.2", SRV_PORT), pair.now)
    assert listener.listener is not None
    assert pair.run(lambda: bool(listener.listener.ready), max_time=5).ok  # type: ignore[union-attr]
    srv, _ = listener.accept()
    while pair.step():  # the handshake's last frames
        pass
    return pair, cli, srv


def sent(pair: HostPair) -> int:
    return pair.a.counters["tcp.out.segments"] + pair.b.counters["tcp.out.segments"]


def segments_over(pair: HostPair, seconds: float, app: object = None, cap: int = 20_000) -> int:
    """Segments both TCPs send while the pair runs for ``seconds`` of virtual time (at most
    ``cap`` steps: a storm stops there instead of hanging the test)."""
    start, before = pair.now, sent(pair)
    steps = 0
    while steps < cap:
        steps += 1
        if callable(app):
            app()
        if pair.step():
            continue
        nxt = pair.next_event()
        if nxt is None or nxt > start + seconds:
            break
        pair.clock.now = max(pair.now, nxt)
    pair.clock.now = max(pair.now, start + seconds)
    return sent(pair) - before


def conn_of(sock: TcpSocket) -> TcpConnection:
    assert sock.conn is not None
    return sock.conn


# ---------------------------------------------------------------- reproduction, case by case


def _cases(c: TcpConnection) -> dict[str, tuple[int, int, int, bytes, bytes]]:
    """Spoofed segments for connection ``c`` (seq, ack, flags, options, payload), as its peer."""
    nxt, una, mx = c.rcv_nxt, c.wire(c.snd_una), c.wire(c.snd_max)
    ts = _ts_option(c.ts_recent + 5, c.ts_now(0.0)) if c.ts_ok else b""
    old_ts = _ts_option(c.ts_recent - 100_000, 0) if c.ts_ok else b""
    return {
        "in-window data": (nxt, una, ACK | PSH, ts, b"x" * 100),
        "in-window data, future timestamp": (
            nxt,
            una,
            ACK | PSH,
            _ts_option(c.ts_recent + 0x40000000, 0),
            b"x" * 100,
        ),
        "ack for data not yet sent": (nxt, mx + 1000, ACK, ts, b""),
        "data acking what was never sent": (nxt, mx + 1000, ACK | PSH, ts, b"y" * 50),
        "old duplicate": ((nxt - 200) & M, una, ACK | PSH, ts, b"z" * 100),
        "out of window": ((nxt + 10**8) & M, una, ACK, ts, b""),
        "PAWS-failing data": (nxt, una, ACK | PSH, old_ts, b"p" * 100),
        "PAWS-failing SYN": (nxt, una, SYN, old_ts, b""),
        "in-window RST": ((nxt + 10) & M, 0, RST, b"", b""),
        "in-window SYN": ((nxt + 10) & M, 0, SYN, ts, b""),
        "in-window FIN": (nxt, una, ACK | FIN, ts, b""),
    }


CASES = [
    "in-window data",
    "in-window data, future timestamp",
    "ack for data not yet sent",
    "data acking what was never sent",
    "old duplicate",
    "out of window",
    "PAWS-failing data",
    "PAWS-failing SYN",
    "in-window RST",
    "in-window SYN",
    "in-window FIN",
]


@pytest.mark.parametrize("to_b", [True, False], ids=["into-server", "into-client"])
@pytest.mark.parametrize("case", CASES)
def test_one_spoofed_segment_does_not_start_an_ack_storm(case: str, to_b: bool) -> None:
    pair, cli, srv = established_pair()
    target = conn_of(srv if to_b else cli)
    seq, ack, flags, opts, payload = _cases(target)[case]
    host = pair.b if to_b else pair.a
    host.input(0, spoof(to_b, seq, ack, flags, opts=opts, payload=payload), pair.now)
    # Before the limit, "in-window data" reached the step cap here with virtual time at 0.04 s.
    n = segments_over(pair, 2.0)
    # Each side answers at most once per 0.5 s (5 windows in 2 s), plus one delayed ACK,
    # one challenge ACK and one answer to the peer's FIN.
    assert n <= 2 * 5 + 3, n
    # And then the pair is quiet: no segment without a timer or new data.
    assert segments_over(pair, 10.0) <= 2 * 21, "unbounded exchange after the spoof"


def test_storm_case_is_bounded_and_counted() -> None:
    pair, _cli, srv = established_pair()
    c = conn_of(srv)
    pair.b.input(0, spoof(True, c.rcv_nxt, c.wire(c.snd_una), ACK | PSH, payload=b"x" * 100), 0)
    # Before the fix virtual time stood at the delayed ACK (0.04 s) while the ACKs flew.
    assert segments_over(pair, 0.2) <= 4
    limited = pair.a.counters["tcp.out.invalid_ack_ratelimited"]
    limited += pair.b.counters["tcp.out.invalid_ack_ratelimited"]
    assert limited == 1


# ---------------------------------------------------------------- the rule, sans-IO


def test_unacceptable_pure_acks_answered_once_per_interval() -> None:
    fx = established(0xFFFFFFF0, 0x7FFFFFF0, config(rcv_buf=4000))
    nxt = (0x7FFFFFF0 + 1) & M
    assert kinds(fx.input(seg("A", nxt + 4000, 0xFFFFFFF1))) == ["A"]
    # The same instant, and just before the interval ends: nothing, but counted.
    assert fx.input(seg("A", nxt - 1, 0xFFFFFFF1)) == []
    assert fx.input(seg("A", nxt - 1, 0xFFFFFFF1), dt=0.49) == []
    assert fx.conn.counters["tcp.in.outside_window"] == 3
    assert fx.conn.counters["tcp.out.invalid_ack_ratelimited"] == 2
    # An ACK for data never sent shares the connection's limit.
    assert fx.input(seg("A", nxt, 0xFFFFFFF1 + 5000)) == []
    assert fx.conn.counters["tcp.in.ack_too_much"] == 1
    # Once the interval has passed, the next one gets its ACK (a keepalive probe still does).
    out = fx.input(seg("A", nxt - 1, 0xFFFFFFF1), dt=0.02)
    assert kinds(out) == ["A"] and out[0].ack == nxt
    assert kinds(fx.input(seg("A", nxt, 0xFFFFFFF1 + 5000), dt=0.5)) == ["A"]


def test_segments_with_data_or_fin_are_always_answered() -> None:
    # A peer resending data we have (its ACK was lost) must hear where we are every time;
    # loops are made of ACKs without data, so Linux exempts these too.
    fx = established(0, 0x1000, config())
    nxt = 0x1001
    assert kinds(fx.input(seg("A", nxt - 1, 1))) == ["A"]  # spends the interval
    for _ in range(3):
        out = fx.input(seg("PA", nxt - 10, 1, payload=b"0123456789"))
        assert kinds(out) == ["A"] and out[0].ack == nxt
    out = fx.input(seg("PA", nxt, 5000, payload=b"too much"))  # data acking unsent data
    assert kinds(out) == ["A"]
    assert fx.conn.counters["tcp.out.invalid_ack_ratelimited"] == 0


def test_syn_failing_paws_is_rate_limited() -> None:
    ts = TcpOptions.build(mss=1460, sack_permitted=True, timestamps=(1000, 1))
    fx = established(0, 0x1000, config(timestamps=True), ts)
    old = TcpOptions.build(timestamps=(10, 1))
    assert kinds(fx.input(seg("S", 0x1001, 0, opts=old))) == ["A"]
    assert fx.input(seg("S", 0x1001, 0, opts=old)) == []
    assert fx.conn.counters["tcp.in.paws"] == 2
    # A data segment failing PAWS is still answered (see above).
    assert kinds(fx.input(seg("PA", 0x1001, 1, payload=b"d", opts=old))) == ["A"]


def test_zero_interval_answers_every_segment() -> None:
    fx = established(0, 0x1000, config(invalid_ratelimit=0.0))
    for _ in range(5):
        assert kinds(fx.input(seg("A", 0x1000, 1))) == ["A"]


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, 3601.0])
def test_config_refuses_unusable_intervals(bad: float) -> None:
    with pytest.raises(ValueError, match="invalid_ratelimit"):
        TcpConfig(invalid_ratelimit=bad)


def test_duplicate_pure_ack_is_never_answered() -> None:
    # An acceptable ACK that acknowledges nothing new, with no data, no window change and no
    # SACK news, has nothing to answer: not once, not after any time.
    fx = established(0, 0x1000, config())
    fx.conn.send(b"a" * 100)
    assert kinds(fx.output()) == ["PA"]
    fx.ack_data(101)
    for i in range(50):
        assert fx.input(seg("A", 0x1001, 101), dt=0.3 * (i % 3)) == []


def test_ack_out_of_range_does_not_take_the_timestamp() -> None:
    # A blind spoof with a wild ACK must not move TS.Recent: the real peer's next segments
    # would then fail PAWS and the connection stall.
    ts = TcpOptions.build(mss=1460, sack_permitted=True, timestamps=(1000, 1))
    fx = established(0, 0x1000, config(timestamps=True), ts)
    spoofed = TcpOptions.build(timestamps=(0x7FFFFFFF, 1))
    fx.input(seg("A", 0x1001, 0x40000000, opts=spoofed))  # ACK of data never sent
    assert fx.conn.counters["tcp.in.ack_too_much"] == 1
    assert fx.conn.ts_recent == 1000
    real = TcpOptions.build(timestamps=(1010, 1))
    fx.input(seg("PA", 0x1001, 1, payload=b"real", opts=real), dt=0.01)
    assert fx.conn.recv(10) == b"real"
    assert fx.conn.counters["tcp.in.paws"] == 0


# ---------------------------------------------------------------- property: quiescence

option_bytes = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    st.sampled_from(["ts-now", "ts-old", "ts-future", "sack"]),
)

spoofed = st.tuples(
    st.booleans(),  # into the server (b) or the client (a)
    st.sampled_from([ACK, ACK | PSH, ACK | FIN, SYN, RST, RST | ACK, SYN | ACK, 0])
    | st.integers(0, 0x1FF),
    st.integers(-3000, 3000) | st.integers(-(1 << 31), (1 << 31) - 1),  # seq from RCV.NXT
    st.integers(-3000, 3000) | st.integers(-(1 << 31), (1 << 31) - 1),  # ack from SND.UNA
    st.integers(0, 0xFFFF),
    option_bytes,
    st.binary(max_size=300),
    st.floats(0.0, 0.1),  # virtual time before it arrives
)


def _opts(kind: bytes | str, c: TcpConnection) -> bytes:
    if isinstance(kind, bytes):
        return kind
    if kind == "sack":
        left = c.wire(c.snd_una)
        return b"\x01\x01\x05\x0a" + struct.pack("!II", left + 100, left + 200)
    shift = {"ts-now": 1, "ts-old": -100_000, "ts-future": 0x40000000}[kind]
    return _ts_option(c.ts_recent + shift, c.ts_now(0.0))


QUIET = 5.0
# In QUIET seconds: each side's rate-limited answers (one per 0.5 s, and the peer's answer to
# each), retransmissions (RTO >= 0.2 s doubling, each answered), a tail-loss probe, a delayed
# ACK, a FIN exchange and window probes.  A storm exceeds any of this by orders of magnitude.
BUDGET = 2 * 2 * (int(QUIET / 0.5) + 1) + 2 * 2 * (int(math.log2(QUIET / 0.2)) + 2) + 12


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    segs=st.lists(spoofed, min_size=1, max_size=12),
    transfer=st.sampled_from([0, 3000, 60_000]),
)
def test_random_spoofed_segments_end_in_quiescence(
    segs: list[tuple],  # type: ignore[type-arg]
    transfer: int,
) -> None:
    pair, cli, srv = established_pair()
    data = bytes(i & 0xFF for i in range(transfer))
    todo = [data]
    got = bytearray()

    def app() -> None:
        # The client writes its data, the server reads whatever arrives.
        with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionError, OSError):
            if todo[0]:
                todo[0] = todo[0][cli.send(todo[0]) :]
        with contextlib.suppress(BlockingIOError, ConnectionError, OSError):
            while chunk := srv.recv(65536):
                got.extend(chunk)

    for to_b, flags, dseq, dack, win, okind, payload, dt in segs:
        app()
        target = srv.conn if to_b else cli.conn
        if target is None or target.state == TcpState.CLOSED:
            break
        seq = (target.rcv_nxt + dseq) & M
        ack = (target.wire(target.snd_una) + dack) & M
        frame = spoof(to_b, seq, ack, flags, win, _opts(okind, target), payload)
        (pair.b if to_b else pair.a).input(0, frame, pair.now)
        pair.clock.now += dt
        pair.step()
    # Let the transfer (if any) finish or fail, then watch a window with nothing to send.
    segments_over(pair, 10.0, app=app)
    todo[0] = b""
    n = segments_over(pair, QUIET, app=app)
    assert n <= BUDGET, f"{n} segments in {QUIET} s of quiet"
    assert pair.a.counters["host.internal_error"] == pair.b.counters["host.internal_error"] == 0
