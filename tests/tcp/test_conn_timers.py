"""Timer tests of :class:`netfast.tcp.conn.TcpConnection`: RTO (RFC 6298), SYN retransmission,
delayed ACK, Nagle, keepalive, TIME_WAIT, the orphan FIN_WAIT_2 timeout and ``poll_at``."""

from __future__ import annotations

import pytest
from tests.tcp.segments import ISS_IRS, config, established, fin_wait_2, kinds, seg, syn_sent

from netfast.tcp.state import TcpState

M = 0xFFFFFFFF


@pytest.fixture(params=ISS_IRS, ids=lambda p: f"iss={p[0]:#x},irs={p[1]:#x}")
def nums(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param  # type: ignore[no-any-return]


# ---------------------------------------------------------------- RTO


def test_initial_rto_is_one_second_and_doubles(nums: tuple[int, int]) -> None:
    iss, _ = nums
    fx, _ = syn_sent(iss, config(syn_retransmits=4))
    times = []
    for _ in range(4):
        t = fx.conn.poll_at()
        assert t is not None
        out = fx.advance(t)
        assert kinds(out) == ["S"] and out[0].seq == iss
        times.append(t)
    assert times == pytest.approx([1.0, 3.0, 7.0, 15.0])


def test_syn_retransmits_then_etimedout(nums: tuple[int, int]) -> None:
    iss, _ = nums
    fx, _ = syn_sent(iss, config(syn_retransmits=3))
    out = fx.run_timers(1000.0)
    assert kinds(out) == ["S"] * 3  # no RST: nothing was synchronized
    assert fx.conn.state == TcpState.CLOSED and fx.conn.error == "ETIMEDOUT"
    assert fx.conn.poll_at() is None
    with pytest.raises(TimeoutError):
        fx.conn.recv(1)


def test_rto_from_rtt_samples_rfc6298(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, rto_min=0.0))
    # The handshake gave R = 0.01: SRTT = 0.01, RTTVAR = 0.005, RTO = SRTT + 4 RTTVAR.
    srtt, rttvar = 0.01, 0.005
    assert fx.conn.rtt.rto == pytest.approx(srtt + 4 * rttvar)
    pos = 1
    for r in (0.1, 0.3, 0.05):
        fx.conn.send(b"r" * 100)
        out = fx.output()
        assert len(out) == 1
        pos += 100
        fx.input(seg("A", irs + 1, iss + pos), dt=r)
        rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
        srtt = 0.875 * srtt + 0.125 * r
        assert fx.conn.rtt.rto == pytest.approx(srtt + 4 * rttvar)


def test_rto_floor_is_rto_min(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(rto_min=0.2))
    assert fx.conn.rtt.rto == pytest.approx(0.2)


def test_data_rto_backoff_then_etimedout_with_rst(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(max_retransmits=4, rto_min=1.0, rto_max=100.0, tlp=False))
    fx.conn.send(b"lost")
    t_send = fx.now
    first = fx.output()
    assert len(first) == 1
    times, out = [], []
    while fx.conn.state != TcpState.CLOSED:
        t = fx.conn.poll_at()
        assert t is not None
        o = fx.advance(t)
        times.append(t - t_send)
        out += o
    data = [s for s in out if s.payload]
    assert len(data) == 4
    assert all(s.seq == (iss + 1) & M and bytes(s.payload) == b"lost" for s in data)
    # Intervals double (the first RTO is max(rto_min, computed) = 1 s).
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])
    assert kinds(out)[-1] == "RA"
    assert out[-1].seq == (iss + 5) & M or out[-1].seq == (iss + 1) & M
    assert fx.conn.error == "ETIMEDOUT"


def test_rto_max_caps_backoff(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(max_retransmits=10, rto_min=1.0, rto_max=3.0))
    fx.conn.send(b"x")
    fx.output()
    prev = fx.now
    gaps = []
    for _ in range(5):
        t = fx.conn.poll_at()
        assert t is not None
        fx.advance(t)
        gaps.append(t - prev)
        prev = t
    assert max(gaps) == pytest.approx(3.0)


def test_ack_after_rto_resets_backoff(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(rto_min=1.0))
    fx.conn.send(b"x" * 10)
    fx.output()
    fx.advance(fx.conn.poll_at() or 0)
    fx.advance(fx.conn.poll_at() or 0)
    fx.input(seg("A", irs + 1, iss + 11))
    assert fx.conn.poll_at() is None
    fx.conn.send(b"y")
    t = fx.now
    fx.output()
    due = fx.conn.poll_at()
    assert due is not None and due - t <= 4.0 + 1e-9  # not the backed-off 4+ seconds


# ---------------------------------------------------------------- delayed ACK


def test_second_full_segment_acked_at_once(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    assert fx.input(seg("A", irs + 1, iss + 1, payload=b"a" * 1460)) == []
    out = fx.input(seg("A", irs + 1461, iss + 1, payload=b"b" * 1460))
    assert kinds(out) == ["A"] and out[0].ack == (irs + 2921) & M


def test_single_segment_acked_after_delack_timer(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(delayed_ack=0.04))
    t0 = fx.now
    assert fx.input(seg("PA", irs + 1, iss + 1, payload=b"hi")) == []
    assert fx.conn.poll_at() == pytest.approx(t0 + 0.04)
    assert fx.advance(t0 + 0.039) == []
    out = fx.advance(t0 + 0.04)
    assert kinds(out) == ["A"] and out[0].ack == (irs + 3) & M
    assert fx.conn.poll_at() is None


def test_delayed_ack_piggybacks_on_data(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.input(seg("PA", irs + 1, iss + 1, payload=b"req"))
    fx.conn.send(b"resp")
    out = fx.output()
    assert len(out) == 1 and out[0].ack == (irs + 4) & M and bytes(out[0].payload) == b"resp"
    assert fx.conn.t_delack is None


# ---------------------------------------------------------------- Nagle


def test_nagle_holds_small_segment_until_ack(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.conn.send(b"a")
    assert [bytes(s.payload) for s in fx.output()] == [b"a"]
    fx.conn.send(b"b")
    fx.conn.send(b"c")
    assert fx.output() == []
    out = fx.input(seg("A", irs + 1, iss + 2))
    assert [bytes(s.payload) for s in out] == [b"bc"]
    assert out[0].seq == (iss + 2) & M


def test_nagle_off_sends_at_once(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False))
    fx.conn.send(b"a")
    fx.output()
    fx.conn.send(b"b")
    assert [bytes(s.payload) for s in fx.output()] == [b"b"]


def test_nagle_lets_full_segments_through(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    fx.conn.send(b"a")
    fx.output()
    fx.conn.send(b"f" * 1460)
    out = fx.output()
    assert [len(s.payload) for s in out] == [1460]


# ---------------------------------------------------------------- keepalive


def test_keepalive_probes_and_drop(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(keepalive=True, keep_idle=100.0, keep_interval=10.0, keep_count=3)
    fx = established(iss, irs, cfg)
    t0 = fx.now
    assert fx.conn.poll_at() == pytest.approx(t0 + 100.0)
    out = fx.run_timers(t0 + 100.0 + 3 * 10.0 - 0.001)
    assert kinds(out) == ["A"] * 3
    assert all(s.seq == iss for s in out)  # SND.UNA - 1 = ISS
    assert all(s.ack == (irs + 1) & M for s in out)
    assert fx.conn.state == TcpState.ESTABLISHED
    out = fx.run_timers(t0 + 131.0)
    assert kinds(out) == ["RA"]
    assert fx.conn.state == TcpState.CLOSED and fx.conn.error == "ETIMEDOUT"


def test_keepalive_answer_restarts_idle(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(keepalive=True, keep_idle=100.0, keep_interval=10.0, keep_count=2)
    fx = established(iss, irs, cfg)
    t0 = fx.now
    out = fx.run_timers(t0 + 100.0)
    assert kinds(out) == ["A"]
    fx.input(seg("A", irs + 1, iss + 1), dt=0.1)  # the peer answers
    assert fx.conn.poll_at() == pytest.approx(fx.now + 100.0)
    assert fx.run_timers(t0 + 200.0) == []  # the idle time counts from the answer
    assert fx.conn.state == TcpState.ESTABLISHED
    assert kinds(fx.run_timers(t0 + 200.2)) == ["A"]


def test_keepalive_off_no_timer(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(keepalive=False))
    assert fx.conn.poll_at() is None


# ---------------------------------------------------------------- TIME_WAIT, FIN_WAIT_2


def test_fin_wait_2_orphan_times_out(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(fin_wait2_timeout=60.0))
    fx.conn.close()
    fx.output()
    fx.input(seg("A", irs + 1, iss + 2))
    assert fx.conn.state == TcpState.FIN_WAIT_2
    assert fx.conn.poll_at() == pytest.approx(fx.now + 60.0)
    fx.run_timers(fx.now + 60.0)
    assert fx.conn.state == TcpState.CLOSED
    assert fx.conn.counters["tcp.conn.fin_wait2_timeout"] == 1


def test_fin_wait_2_not_orphaned_waits(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = fin_wait_2(iss, irs)  # shutdown(), not close(): the reader is still there
    assert fx.conn.poll_at() is None
    fx.run_timers(1000.0)
    assert fx.conn.state == TcpState.FIN_WAIT_2


def test_time_wait_lasts_two_msl(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = fin_wait_2(iss, irs, config(msl=5.0))
    fx.input(seg("FA", irs + 1, iss + 2))
    t = fx.now
    assert fx.conn.poll_at() == pytest.approx(t + 10.0)
    fx.run_timers(t + 9.99)
    assert fx.conn.state == TcpState.TIME_WAIT
    fx.run_timers(t + 10.0)
    assert fx.conn.state == TcpState.CLOSED


# ---------------------------------------------------------------- poll_at


def test_poll_at_is_earliest_timer(nums: tuple[int, int]) -> None:
    iss, irs = nums
    cfg = config(keepalive=True, keep_idle=50.0, delayed_ack=0.2, rto_min=1.0, tlp=False)
    fx = established(iss, irs, cfg)
    assert fx.conn.poll_at() == pytest.approx(fx.now + 50.0)
    fx.input(seg("PA", irs + 1, iss + 1, payload=b"x"))
    assert fx.conn.poll_at() == pytest.approx(fx.now + 0.2)
    fx.conn.send(b"y")
    fx.output()  # the data piggybacks the ACK: delack cancelled, RTO armed
    assert fx.conn.poll_at() == pytest.approx(fx.now + fx.conn.rtt.rto)
    # Polling before anything is due changes nothing.
    assert fx.advance(fx.now + 0.1) == []


def test_poll_at_none_when_idle_and_closed(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs)
    assert fx.conn.poll_at() is None
    fx.conn.abort()
    fx.output()
    assert fx.conn.poll_at() is None


def test_tail_loss_probe_resends_the_last_segment_before_the_rto(nums: tuple[int, int]) -> None:
    """RFC 8985 7: with SACK and an RTT sample, a lost tail is probed after about two SRTTs (plus
    the delayed-ACK allowance for a single segment), well before the RTO, and only once."""
    iss, irs = nums
    fx = established(iss, irs, config(rto_min=1.0))
    assert fx.conn.sack_ok and fx.conn.rtt.srtt is not None
    fx.conn.send(b"tail")
    t_send = fx.now
    assert [bytes(s.payload) for s in fx.output()] == [b"tail"]
    t = fx.conn.poll_at()
    assert t is not None and t - t_send < fx.conn.rtt.rto
    probe = fx.advance(t)
    assert [bytes(s.payload) for s in probe] == [b"tail"]
    assert probe[0].seq == (iss + 1) & M
    assert fx.conn.counters["tcp.out.tlp"] == 1
    # The next timer is the RTO, not a second probe.
    t2 = fx.conn.poll_at()
    assert t2 is not None
    again = fx.advance(t2)
    assert fx.conn.counters["tcp.out.tlp"] == 1
    assert fx.conn.counters["tcp.timer.rexmt"] == 1
    assert [bytes(s.payload) for s in again] == [b"tail"]
