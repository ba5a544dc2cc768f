"""Sans-IO tests of :class:`netfast.tcp.conn.TcpConnection`: state transitions (RFC 9293 3.3.2),
RST and challenge-ACK rules (RFC 5961), sequence acceptability, window and option rules, SACK and
NewReno loss recovery.  Sequence numbers start near the 2**32 wrap (see tests/tcp/segments.py)."""

from __future__ import annotations

import pytest
from tests.tcp.segments import (
    ISS_IRS,
    LOCAL,
    REMOTE,
    Fx,
    close_wait,
    config,
    established,
    fin_wait_1,
    fin_wait_2,
    kinds,
    last_ack,
    passive,
    seg,
    syn_sent,
    synack_opts,
    time_wait,
)

from netfast.tcp.conn import ChallengeAckLimiter
from netfast.tcp.negotiate import Negotiated
from netfast.tcp.state import TcpState
from netfast.wire.tcp_options import TcpOptions

M = 0xFFFFFFFF


@pytest.fixture(params=ISS_IRS, ids=lambda p: f"iss={p[0]:#x},irs={p[1]:#x}")
def nums(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param  # type: ignore[no-any-return]


def send_data(fx: Fx, data: bytes) -> list:
    fx.conn.send(data)
    return fx.output()


# ---------------------------------------------------------------- active open


def test_syn_carries_iss_and_options(nums: tuple[int, int]) -> None:
    iss, _ = nums
    fx, syn = syn_sent(iss, config(window_scale=True, timestamps=True, rcv_buf=1 << 20))
    assert syn.seq == iss
    assert syn.ack == 0
    assert syn.options.mss == 1460
    assert syn.options.sack_permitted
    assert syn.options.wscale == 5  # 2**20 needs a shift of 5 to fit 16 bits
    assert syn.options.timestamps is not None
    assert syn.window == 0xFFFF  # SYN windows are never scaled
    assert fx.conn.state == TcpState.SYN_SENT


def test_synack_establishes(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    ack = fx.sent[-1]
    assert ack.seq == (iss + 1) & M
    assert ack.ack == (irs + 1) & M
    assert fx.conn.rcv_nxt == (irs + 1) & M
    assert fx.conn.error is None


@pytest.mark.parametrize("delta", [0, 2, -1, 0x80000000])
def test_syn_sent_bad_ack_sends_rst_with_seq_of_ack(nums: tuple[int, int], delta: int) -> None:
    iss, irs = nums
    fx, _ = syn_sent(iss)
    bad = (iss + 1 + delta) & M if delta else iss  # ack == ISS is also unacceptable
    out = fx.input(seg("SA", irs, bad, opts=synack_opts()))
    assert kinds(out) == ["R"]
    assert out[0].seq == bad
    assert fx.conn.state == TcpState.SYN_SENT


def test_syn_sent_rst_ack_refused(nums: tuple[int, int]) -> None:
    iss, _ = nums
    fx, _ = syn_sent(iss)
    fx.input(seg("RA", 0, iss + 1))
    assert fx.conn.state == TcpState.CLOSED
    assert fx.conn.error == "ECONNREFUSED"
    with pytest.raises(ConnectionRefusedError):
        fx.conn.recv(10)


def test_syn_sent_rst_with_bad_ack_or_no_ack_ignored(nums: tuple[int, int]) -> None:
    iss, _ = nums
    fx, _ = syn_sent(iss)
    assert fx.input(seg("RA", 0, iss + 5)) == []
    assert fx.input(seg("R", 0, 0)) == []
    assert fx.conn.state == TcpState.SYN_SENT


def test_simultaneous_open(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, _ = syn_sent(iss)
    fx.irs = irs
    out = fx.input(seg("S", irs, 0, opts=synack_opts()))
    assert fx.conn.state == TcpState.SYN_RECEIVED
    assert kinds(out) == ["SA"]
    assert out[0].seq == iss and out[0].ack == (irs + 1) & M
    # The peer's SYN-ACK (answering our SYN) completes it.
    fx.input(seg("SA", irs, iss + 1, opts=synack_opts()))
    assert fx.conn.state == TcpState.ESTABLISHED


def test_simultaneous_open_completed_by_ack(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, _ = syn_sent(iss)
    fx.irs = irs
    fx.input(seg("S", irs, 0, opts=synack_opts()))
    fx.input(seg("A", irs + 1, iss + 1))
    assert fx.conn.state == TcpState.ESTABLISHED
    fx.conn.send(b"hello")
    out = fx.output()
    assert out[0].seq == (iss + 1) & M and bytes(out[0].payload) == b"hello"


def test_passive_open_is_established(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = passive(iss, irs)
    assert fx.conn.state == TcpState.ESTABLISHED
    out = fx.input(seg("PA", irs + 1, iss + 1, payload=b"abc"))
    assert fx.conn.recv(10) == b"abc"
    fx.conn.send(b"xyz")
    out = fx.output()
    assert [(s.seq, s.ack, bytes(s.payload)) for s in out] == [
        ((iss + 1) & M, (irs + 4) & M, b"xyz")
    ]


# ---------------------------------------------------------------- closing


def test_active_close_to_time_wait_then_closed(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, fin = fin_wait_1(iss, irs)
    assert fin.seq == (iss + 1) & M
    fx.ack_data(2)
    assert fx.conn.state == TcpState.FIN_WAIT_2
    out = fx.input(seg("FA", irs + 1, iss + 2))
    assert fx.conn.state == TcpState.TIME_WAIT
    assert [(kinds(out), out[0].ack)] == [(["A"], (irs + 2) & M)]
    msl = fx.conn.config.msl
    assert fx.conn.poll_at() == pytest.approx(fx.now + 2 * msl)
    fx.advance(fx.now + 2 * msl - 0.001)
    assert fx.conn.state == TcpState.TIME_WAIT
    fx.advance(fx.now + 0.002)
    assert fx.conn.state == TcpState.CLOSED
    assert fx.conn.error is None


def test_fin_wait_1_fin_and_ack_together_goes_to_time_wait(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, _ = fin_wait_1(iss, irs)
    fx.input(seg("FA", irs + 1, iss + 2))
    assert fx.conn.state == TcpState.TIME_WAIT


def test_simultaneous_close_via_closing(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, _ = fin_wait_1(iss, irs)
    out = fx.input(seg("FA", irs + 1, iss + 1))  # the peer's FIN, not acking ours
    assert fx.conn.state == TcpState.CLOSING
    assert out[-1].ack == (irs + 2) & M
    fx.input(seg("A", irs + 2, iss + 2))
    assert fx.conn.state == TcpState.TIME_WAIT


def test_passive_close_close_wait_last_ack_closed(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx, fin = last_ack(iss, irs)
    assert fin.seq == (iss + 1) & M and fin.ack == (irs + 2) & M
    fx.input(seg("A", irs + 2, iss + 2))
    assert fx.conn.state == TcpState.CLOSED
    assert fx.conn.error is None


def test_close_wait_reader_sees_eof_and_can_still_send(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = close_wait(iss, irs)
    assert fx.conn.recv(10) == b""
    out = send_data(fx, b"late")
    assert bytes(out[0].payload) == b"late" and out[0].seq == (iss + 1) & M


def test_half_close_still_receives(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = fin_wait_2(iss, irs)
    fx.input(seg("PA", irs + 1, iss + 2, payload=b"more data"))
    assert fx.conn.recv(100) == b"more data"
    fx.input(seg("FA", irs + 10, iss + 2))
    assert fx.conn.state == TcpState.TIME_WAIT
    assert fx.conn.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        fx.conn.send(b"x")


def test_time_wait_acks_retransmitted_fin_and_restarts_timer(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = time_wait(iss, irs)
    t0 = fx.conn.poll_at()
    assert t0 is not None
    out = fx.input(seg("FA", irs + 1, iss + 2), dt=5.0)
    assert kinds(out) == ["A"] and out[0].ack == (irs + 2) & M
    assert fx.conn.poll_at() == pytest.approx(t0 + 5.0)


def test_abort_sends_rst(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.conn.abort()
    out = fx.output()
    assert kinds(out) == ["RA"]
    assert out[0].seq == (iss + 1) & M
    assert fx.conn.state == TcpState.CLOSED


def test_close_with_unread_data_sends_rst(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.input(seg("PA", irs + 1, iss + 1, payload=b"unread"))
    fx.conn.close()
    out = fx.output()
    assert "R" in kinds(out)[-1]
    assert fx.conn.state == TcpState.CLOSED
    assert fx.conn.counters["tcp.conn.close_unread"] == 1


def test_close_without_unread_data_sends_fin(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.conn.close()
    assert kinds(fx.output()) == ["FA"]
    assert fx.conn.state == TcpState.FIN_WAIT_1


def test_fin_after_queued_data(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False))
    fx.conn.send(b"x" * 100)
    fx.conn.shutdown()
    out = fx.output()
    assert kinds(out) == ["FPA"]
    assert out[0].seq == (iss + 1) & M and len(out[0].payload) == 100
    fx.ack_data(102)
    assert fx.conn.state == TcpState.FIN_WAIT_2


# ---------------------------------------------------------------- RFC 5961


def test_rst_exact_seq_resets(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    out = fx.input(seg("R", irs + 1, 0))
    assert out == []
    assert fx.conn.state == TcpState.CLOSED and fx.conn.error == "ECONNRESET"
    with pytest.raises(ConnectionResetError):
        fx.conn.recv(1)


@pytest.mark.parametrize("off", [1, 1000, 65534])
def test_rst_in_window_not_exact_challenges(nums: tuple[int, int], off: int) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    out = fx.input(seg("R", irs + 1 + off, 0))
    assert kinds(out) == ["A"]
    assert out[0].seq == (iss + 1) & M and out[0].ack == (irs + 1) & M
    assert fx.conn.state == TcpState.ESTABLISHED


@pytest.mark.parametrize("off", [-1, 65535, 1 << 20, 0x80000000])
def test_rst_outside_window_ignored(nums: tuple[int, int], off: int) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    assert fx.input(seg("RA", irs + 1 + off, iss + 1)) == []
    assert fx.conn.state == TcpState.ESTABLISHED


def test_syn_in_established_challenges(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    for s in (seg("S", irs + 1, 0), seg("S", irs + 500, 0), seg("SA", irs, iss + 1)):
        out = fx.input(s)
        assert kinds(out) == ["A"], s
        assert out[0].seq == (iss + 1) & M and out[0].ack == (irs + 1) & M
    assert fx.conn.state == TcpState.ESTABLISHED


def test_ack_beyond_snd_nxt_acked_and_dropped(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.output()
    out = fx.input(seg("PA", irs + 1, iss + 100, payload=b"data"))
    assert kinds(out) == ["A"] and out[0].ack == (irs + 1) & M  # data not taken
    with pytest.raises(BlockingIOError):
        fx.conn.recv(10)


def test_too_old_ack_challenged(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, win=1000)
    # Move SND.UNA on by more than MAX.SND.WND (1000) so an old ACK can fall below the range.
    for i in range(3):
        fx.conn.send(b"x" * 1000)
        fx.output()
        fx.ack_data(1 + 1000 * (i + 1), win=1000)
    out = fx.input(seg("PA", irs + 1, iss + 1, win=1000, payload=b"zz"))
    assert kinds(out) == ["A"] and out[0].ack == (irs + 1) & M
    assert fx.conn.counters["tcp.in.ack_too_old"] == 1
    # An ACK just inside [SND.UNA - MAX.SND.WND, SND.NXT] is fine: its data is taken.
    fx.input(seg("PA", irs + 1, iss + 1 + 2000, win=1000, payload=b"zz"))
    assert fx.conn.recv(10) == b"zz"


def test_challenge_ack_rate_limit(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, challenge=ChallengeAckLimiter(limit=3))
    acks = 0
    for i in range(10):
        acks += len(fx.input(seg("R", irs + 10 + i, 0)))
    assert acks == 3
    assert fx.conn.counters["tcp.out.challenge_ack_limited"] == 7
    fx.now += 1.0  # a new second, a new budget
    assert kinds(fx.input(seg("R", irs + 10, 0))) == ["A"]


# ---------------------------------------------------------------- acceptability


def test_acceptability_four_cases(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(rcv_buf=4000))
    nxt = (irs + 1) & M
    # Zero-length segment, window open: RCV.NXT <= SEG.SEQ < RCV.NXT + RCV.WND.
    assert fx.input(seg("A", nxt + 3999, iss + 1)) == []
    assert kinds(fx.input(seg("A", nxt + 4000, iss + 1))) == ["A"]
    # (answers to unacceptable ACKs are rate-limited per connection: TcpConfig.invalid_ratelimit)
    assert kinds(fx.input(seg("A", nxt - 1, iss + 1), dt=0.5)) == ["A"]
    # Data overlapping the left edge is acceptable (its new part is taken).
    fx.input(seg("PA", nxt - 2, iss + 1, payload=b"..ab"))
    assert fx.conn.recv(10) == b"ab"
    nxt = (nxt + 2) & M
    # Data wholly left of the window: duplicate, ACKed.
    out = fx.input(seg("PA", nxt - 5, iss + 1, payload=b"zzzzz"))
    assert kinds(out) == ["A"] and out[0].ack == nxt
    # Zero window: only SEG.SEQ == RCV.NXT with no data.
    fx.input(seg("PA", nxt, iss + 1, payload=b"y" * 4000))
    assert fx.sent[-1].window in (0, 4000)  # delayed or immediate, window now closed
    nxt = (nxt + 4000) & M
    assert fx.input(seg("A", nxt, iss + 1)) == []
    assert kinds(fx.input(seg("A", nxt + 1, iss + 1), dt=0.5)) == ["A"]
    out = fx.input(seg("PA", nxt, iss + 1, payload=b"q"))
    assert kinds(out) == ["A"] and out[0].ack == nxt and out[0].window == 0


def test_paws_drops_old_timestamp(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(timestamps=True)
    ts = TcpOptions.build(mss=1460, sack_permitted=True, timestamps=(0xFFFFFF00, 1))
    fx = established(iss, irs, cfg, ts)
    assert fx.conn.ts_ok
    # tsval wraps forward: 0x10 is newer than 0xFFFFFF00.
    new = TcpOptions.build(timestamps=(0x10, 1))
    fx.input(seg("PA", irs + 1, iss + 1, payload=b"new", opts=new))
    assert fx.conn.recv(10) == b"new"
    old = TcpOptions.build(timestamps=(0xFFFFFF80, 1))
    out = fx.input(seg("PA", irs + 4, iss + 1, payload=b"old", opts=old))
    assert kinds(out) == ["A"] and out[0].ack == (irs + 4) & M
    assert fx.conn.counters["tcp.in.paws"] == 1
    with pytest.raises(BlockingIOError):
        fx.conn.recv(10)
    # Our segments echo the peer's most recent valid tsval.
    assert out[0].options.timestamps is not None and out[0].options.timestamps.tsecr == 0x10


# ---------------------------------------------------------------- windows and options


def test_window_scaling_applied_after_syn(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(window_scale=True, rcv_buf=1 << 20)
    opts = TcpOptions.build(mss=1460, sack_permitted=True, wscale=3)
    fx = established(iss, irs, cfg, opts, win=1000)
    assert fx.conn.snd_wnd == 1000  # the SYN-ACK's window is not scaled
    fx.ack_data(1, win=1000)
    assert fx.conn.snd_wnd == 8000
    fx.input(seg("PA", irs + 1, iss + 1, win=1000, payload=b"x"))
    out = fx.advance(fx.now + 1.0)
    # Our window field is scaled by our shift (5 for 1 MiB).
    assert out[0].window == ((1 << 20) - 1) >> 5


def test_window_scale_needs_both_sides(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(window_scale=True, rcv_buf=1 << 20)
    fx = established(iss, irs, cfg, synack_opts(), win=1000)
    fx.ack_data(1, win=1000)
    assert fx.conn.snd_wnd == 1000
    fx.input(seg("PA", irs + 1, iss + 1, payload=b"x"))
    out = fx.advance(fx.now + 1.0)
    assert out[0].window == 0xFFFF  # unscaled: the most 16 bits allow


def test_send_limited_by_peer_window(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False), win=3000)
    out = send_data(fx, b"a" * 10000)
    # Two full segments fit; the 80 bytes left of the window are less than half the largest
    # window seen, so sender SWS avoidance holds them (RFC 9293 3.8.6.2.1).
    assert [len(s.payload) for s in out] == [1460, 1460]
    assert [s.seq for s in out] == [(iss + 1) & M, (iss + 1461) & M]
    out = fx.ack_data(1 + 1460, win=3000)
    assert [len(s.payload) for s in out] == [1460]
    assert out[0].seq == (iss + 1 + 2920) & M


def test_sender_sws_sends_small_window_when_it_is_half_the_max(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False), win=600)
    out = send_data(fx, b"a" * 10000)
    assert [len(s.payload) for s in out] == [600]


def test_receive_window_never_shrinks(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(rcv_buf=10000))
    right_edges = []
    for i in range(6):
        out = fx.input(seg("PA", irs + 1 + 1000 * i, iss + 1, payload=b"d" * 1000))
        out += fx.advance(fx.now + 0.5)
        for s in out:
            right_edges.append((s.ack + s.window - irs) & M)
    assert right_edges == sorted(right_edges)
    assert right_edges[-1] >= 10001


def test_zero_window_probes_forever_then_resumes(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(max_retransmits=3, nagle=False), win=0)
    out = send_data(fx, b"p" * 500)
    assert out == []
    probes = []
    t = fx.now
    for _ in range(20):
        t = fx.conn.poll_at()
        assert t is not None
        for s in fx.advance(t):
            probes.append(s)
            # The peer keeps its window closed and acks nothing new.
            fx.input(seg("A", irs + 1, iss + 1, win=0))
    assert len(probes) >= 15
    assert all(s.seq == (iss + 1) & M and len(s.payload) <= 1 for s in probes)
    assert fx.conn.state == TcpState.ESTABLISHED  # never dropped, despite max_retransmits=3
    # Backoff: the interval grows.
    out = fx.input(seg("A", irs + 1, iss + 1, win=5000))
    data = b"".join(bytes(s.payload) for s in out)
    assert data in (b"p" * 500, b"p" * 499)  # the probe byte may already be counted


def test_window_update_when_reader_drains(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(rcv_buf=4000))
    for i in range(4):
        fx.input(seg("PA", irs + 1 + 1000 * i, iss + 1, payload=b"w" * 1000))
    fx.advance(fx.now + 1.0)
    assert fx.sent[-1].window == 0
    assert fx.output() == []
    fx.conn.recv(4000)
    out = fx.output()
    assert kinds(out) == ["A"] and out[0].window == 4000


@pytest.mark.parametrize(
    ("ours", "peer", "ts", "expect"),
    [
        (1460, 1460, False, 1460),
        (1460, 536, False, 536),
        (1200, 1460, False, 1200),
        (1460, 1460, True, 1448),
        (1460, 1000, True, 988),
    ],
)
def test_mss_negotiation(ours: int, peer: int, ts: bool, expect: int) -> None:
    cfg = config(mss=ours, timestamps=ts, nagle=False)
    opts = TcpOptions.build(mss=peer, timestamps=(5, 1) if ts else None)
    fx = established(0xFFFFFFF0, 7, cfg, opts)
    out = send_data(fx, b"m" * 5000)
    assert max(len(s.payload) for s in out) == expect


def test_no_mss_option_means_536() -> None:
    fx = established(1, 2, config(nagle=False), TcpOptions())
    out = send_data(fx, b"m" * 5000)
    assert max(len(s.payload) for s in out) == 536


def test_sack_blocks_most_recent_first(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    base = (irs + 1) & M
    out1 = fx.input(seg("PA", base + 1000, iss + 1, payload=b"a" * 100))
    assert out1[0].ack == base
    assert out1[0].options.sack_blocks == (((base + 1000) & M, (base + 1100) & M),)
    out2 = fx.input(seg("PA", base + 3000, iss + 1, payload=b"b" * 100))
    blocks = out2[0].options.sack_blocks
    assert blocks[0] == ((base + 3000) & M, (base + 3100) & M)
    assert ((base + 1000) & M, (base + 1100) & M) in blocks
    # Filling the first hole delivers through the first block; one block remains.
    out3 = fx.input(seg("PA", base, iss + 1, payload=b"c" * 1000))
    assert out3[0].ack == (base + 1100) & M
    assert out3[0].options.sack_blocks == (((base + 3000) & M, (base + 3100) & M),)


def test_no_sack_blocks_without_sack_permitted(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, opts=TcpOptions.build(mss=1460))
    out = fx.input(seg("PA", irs + 1001, iss + 1, payload=b"a" * 100))
    assert kinds(out) == ["A"] and out[0].options.sack_blocks == ()


# ---------------------------------------------------------------- loss recovery


def _flight(fx: Fx, nseg: int) -> list:
    fx.conn.cc.cwnd = 100 * 1460  # skip slow start
    out = send_data(fx, b"".join(bytes([i]) * 1460 for i in range(nseg)))
    assert len(out) == nseg
    return out


def test_sack_retransmits_only_the_hole(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False))
    mss = 1460
    out = _flight(fx, 10)
    hole_seq = out[2].seq
    # Segments 0-1 acked; 3.. SACKed one by one (segment 2 lost).
    rtx = []
    for k in range(3, 10):
        blk = (fx.our(1 + 3 * mss), fx.our(1 + (k + 1) * mss))
        opts = TcpOptions.build(sack_blocks=(blk,))
        rtx += fx.input(seg("A", irs + 1, fx.our(1 + 2 * mss), opts=opts))
    data_rtx = [s for s in rtx if s.payload]
    assert [s.seq for s in data_rtx] == [hole_seq]
    assert bytes(data_rtx[0].payload) == bytes([2]) * mss
    assert fx.conn.counters["tcp.recovery.fast_retransmit"] == 1


def test_sack_two_holes_retransmitted_in_order(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False))
    mss = 1460
    out = _flight(fx, 12)
    # Lost: segments 1 and 4.  SACKed: 2-3 and 5-11.
    b1 = (fx.our(1 + 2 * mss), fx.our(1 + 4 * mss))
    rtx = []
    for k in range(5, 12):
        b2 = (fx.our(1 + 5 * mss), fx.our(1 + (k + 1) * mss))
        opts = TcpOptions.build(sack_blocks=(b2, b1))
        rtx += fx.input(seg("A", irs + 1, fx.our(1 + mss), opts=opts))
    seqs = [s.seq for s in rtx if s.payload]
    assert seqs[:2] == [out[1].seq, out[4].seq]
    assert len(set(seqs)) == len(seqs)  # nothing sent twice
    assert out[2].seq not in seqs and out[7].seq not in seqs


def test_newreno_fast_retransmit_and_partial_ack(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, sack=False), TcpOptions.build(mss=1460))
    mss = 1460
    out = _flight(fx, 10)
    # Segments 2 and 5 lost; dupacks for segment 2.
    rtx = []
    for _ in range(2):
        rtx += fx.input(seg("A", irs + 1, fx.our(1 + 2 * mss)))
    rtx += fx.input(seg("A", irs + 1, fx.our(1 + 2 * mss)))
    assert [s.seq for s in rtx if s.payload] == []  # first dupacks after the ack moved una
    rtx = fx.input(seg("A", irs + 1, fx.our(1 + 2 * mss)))
    assert [s.seq for s in rtx if s.payload][:1] == [out[2].seq]
    # The retransmission fills hole 1: partial ACK up to segment 5 retransmits segment 5.
    rtx = fx.input(seg("A", irs + 1, fx.our(1 + 5 * mss)))
    assert [s.seq for s in rtx if s.payload][:1] == [out[5].seq]
    assert fx.conn.counters["tcp.recovery.partial_ack"] == 1
    fx.input(seg("A", irs + 1, fx.our(1 + 10 * mss)))
    assert not fx.conn.in_recovery


def test_two_dupacks_do_not_retransmit(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, sack=False), TcpOptions.build(mss=1460))
    _flight(fx, 6)
    fx.input(seg("A", irs + 1, fx.our(1 + 1460)))
    rtx = fx.input(seg("A", irs + 1, fx.our(1 + 1460)))
    rtx += fx.input(seg("A", irs + 1, fx.our(1 + 1460)))
    assert [s for s in rtx if s.payload] == []


def test_negotiated_passive_options_used() -> None:
    neg = Negotiated(peer_mss=1000, snd_wscale=2, sack_ok=True, ts_ok=False)
    fx = passive(5, 6, config(window_scale=True, rcv_buf=1 << 18, nagle=False), neg, win=400)
    assert fx.conn.snd_wnd == 400
    fx.ack_data(1, win=1000, rcv=1)
    assert fx.conn.snd_wnd == 4000
    out = send_data(fx, b"q" * 3000)
    assert [len(s.payload) for s in out] == [1000, 1000, 1000]
    assert (LOCAL[1], REMOTE[1]) == (out[0].src_port, out[0].dst_port)
