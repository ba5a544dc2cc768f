"""SACK loss recovery beyond RFC 6675's first pass: a lost retransmission is found without
waiting for the timer, the scoreboard outlives a timeout (and a reneging receiver clears it),
and a new recovery does not resend what the last one resent and is still in flight."""

from __future__ import annotations

import pytest
from tests.tcp.segments import ISS_IRS, Fx, config, established, seg

from netfast.tcp.sack import DUP_THRESH
from netfast.wire.tcp_options import TcpOptions

MSS = 1460


@pytest.fixture(params=ISS_IRS, ids=lambda p: f"iss={p[0]:#x},irs={p[1]:#x}")
def nums(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param  # type: ignore[no-any-return]


def _flight(fx: Fx, nseg: int, first: int = 0) -> list:
    fx.conn.cc.cwnd = 100 * MSS  # skip slow start
    fx.conn.send(b"".join(bytes([(first + i) % 256]) * MSS for i in range(nseg)))
    out = [s for s in fx.output() if s.payload]
    assert len(out) == nseg
    return out


def _pos(k: int) -> int:
    """Send position of segment ``k``'s first byte."""
    return 1 + k * MSS


def _sack(fx: Fx, irs: int, una_seg: int, *blocks: tuple[int, int]) -> list:
    """The peer acknowledges below segment ``una_seg`` and SACKs segment ranges [a, b)."""
    opts = TcpOptions.build(
        sack_blocks=tuple((fx.our(_pos(a)), fx.our(_pos(b))) for a, b in blocks)
    )
    return [s for s in fx.input(seg("A", irs + 1, fx.our(_pos(una_seg)), opts=opts)) if s.payload]


def test_a_lost_retransmission_is_sent_again_before_the_timer(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, tlp=False))
    out = _flight(fx, 10)
    # Segment 2 is lost; 3..9 arrive.  Recovery resends segment 2.
    rtx = []
    for k in range(4, 11):
        rtx += _sack(fx, irs, 2, (3, k))
    assert [s.seq for s in rtx] == [out[2].seq]
    # New data goes out within the pipe -- after the retransmission.
    fx.conn.send(b"n" * (6 * MSS))
    new = [s for s in fx.output() if s.payload]
    assert new and new[0].seq == fx.our(_pos(10))
    # The retransmission is lost too: DupThresh segments sent after it are SACKed.
    again = []
    for k in range(11, 11 + DUP_THRESH):
        again += _sack(fx, irs, 2, (3, k))
    assert out[2].seq in [s.seq for s in again]
    assert fx.conn.counters["tcp.recovery.lost_retransmit"] == 1
    assert fx.conn.counters["tcp.timer.rexmt"] == 0
    # Only that segment: nothing the peer SACKed (3 .. 10 + DupThresh) went again.
    sacked = {fx.our(_pos(k)) for k in range(3, 10 + DUP_THRESH)}
    assert not sacked & {s.seq for s in again}


def test_sacks_below_the_retransmission_mark_do_not_make_it_lost(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, tlp=False))
    out = _flight(fx, 12)
    # Segments 2 and 6 lost; the SACKs of 7..11 (all sent before the retransmissions) must not
    # mark the resent segments lost again.
    rtx = []
    for k in range(4, 7):
        rtx += _sack(fx, irs, 2, (3, k))
    for k in range(8, 13):
        rtx += _sack(fx, irs, 2, (7, k), (3, 6))
    seqs = [s.seq for s in rtx]
    assert seqs.count(out[2].seq) == 1 and seqs.count(out[6].seq) == 1
    assert fx.conn.counters["tcp.recovery.lost_retransmit"] == 0


def test_after_a_timeout_what_was_sacked_is_not_sent_again(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, tlp=False))
    out = _flight(fx, 10)
    # Segments 2 and 6 lost, 3..5 and 7..9 SACKed; the recovery's resends are lost as well.
    _sack(fx, irs, 2, (3, 4))
    _sack(fx, irs, 2, (3, 5))
    _sack(fx, irs, 2, (7, 10), (3, 6))
    assert fx.conn.in_recovery
    rto_out = [s for s in fx.run_timers(fx.now + 5.0) if s.payload]
    assert fx.conn.counters["tcp.timer.rexmt"] >= 1
    assert rto_out and rto_out[0].seq == out[2].seq
    # The resent segment 2 arrives: the peer acknowledges through 5.  Next goes segment 6 and
    # nothing of 7..9, which the peer holds.
    after = _sack(fx, irs, 6, (7, 10))
    after += _sack(fx, irs, 6, (7, 10))
    seqs = [s.seq for s in after]
    assert out[6].seq in seqs
    assert not {out[k].seq for k in (7, 8, 9)} & set(seqs)
    assert fx.conn.counters["tcp.out.rexmt_sack_skip"] >= 1
    # The peer acknowledges everything: nothing is outstanding or pending.
    fx.input(seg("A", irs + 1, fx.our(_pos(10))))
    assert fx.conn.snd_una == fx.conn.snd_max == _pos(10)


def test_an_ack_into_sacked_data_means_reneging(nums: tuple[int, int]) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, tlp=False))
    _flight(fx, 10)
    _sack(fx, irs, 2, (3, 6))
    assert fx.conn.sack.blocks
    # The peer now acknowledges into the middle of what it SACKed: it dropped the rest.
    fx.input(seg("A", irs + 1, fx.our(_pos(4))))
    assert fx.conn.counters["tcp.in.sack_reneging"] == 1
    assert fx.conn.sack.blocks == [] and fx.conn.sack.sacked_bytes == 0


def test_a_new_recovery_does_not_resend_what_the_last_one_has_in_flight(
    nums: tuple[int, int],
) -> None:
    iss, irs = nums
    fx = established(iss, irs, config(nagle=False, tlp=False))
    out = _flight(fx, 10)
    # Recovery 1 (its recover point: the end of segment 9): segment 0 is lost ...
    rtx = _sack(fx, irs, 0, (1, 10))
    assert [s.seq for s in rtx] == [out[0].seq] and fx.conn.in_recovery
    # ... and so is segment 12 of the new data sent during the recovery.  The peer SACKs
    # everything else.
    fx.conn.send(b"".join(bytes([100 + i]) * MSS for i in range(30)))
    for _ in range(40):
        sent = (fx.conn.snd_max - 1) // MSS  # segments sent so far
        blocks = [(1, min(sent, 12))] if sent <= 13 else [(13, sent), (1, 12)]
        rtx += _sack(fx, irs, 0, *blocks)
        if [s.seq for s in rtx].count(fx.our(_pos(12))) == 2:  # sent, then resent
            break
    # (Segment 0's resend counts as lost too once data sent after it is SACKed: it goes again.)
    seqs = [s.seq for s in rtx]
    assert seqs.count(out[0].seq) >= 1 and seqs.count(fx.our(_pos(12))) == 2
    assert fx.conn.counters["tcp.recovery.fast_retransmit"] == 1
    # The peer SACKs only what was sent before segment 12's resend: nothing tells the sender
    # that the resend is lost.
    resend = len(seqs) - 1 - seqs[::-1].index(fx.our(_pos(12)))
    top = 1 + max(((q - fx.our(1)) & 0xFFFFFFFF) // MSS for q in seqs[:resend])
    # The resent segment 0 arrives: the ACK passes recovery 1's end and stops at 12.  The SACKs
    # that follow start recovery 2 at segment 12, whose resend is still on its way.
    more = _sack(fx, irs, 12, (13, top))
    more += _sack(fx, irs, 12, (13, top))
    more += _sack(fx, irs, 12, (13, top))
    assert fx.conn.counters["tcp.recovery.fast_retransmit"] == 2
    assert fx.our(_pos(12)) not in [s.seq for s in more]
