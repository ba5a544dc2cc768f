"""TCP input (tcp_input): one segment for one connection, RFC 9293 section 3.10.7 step by step.

Contract
--------
:func:`tcp_input` (bound as :meth:`TcpConnection.input <netfast.tcp.conn.TcpConnection>`)
processes a parsed segment at a time ``now``; it never raises on bad input: a segment that breaks
a rule is dropped and counted under a named counter (``tcp.in.paws``, ``tcp.in.outside_window``,
``tcp.in.challenge_ack`` ...), and whatever must be answered is left for the next output.

SYN-SENT is handled on its own (3.10.7.3: the ACK check, RST, the SYN-ACK or a simultaneous
open).  Synchronized states go through PAWS (RFC 7323 5.3), the sequence-number test, RST, SYN
and the ACK, in the RFC's order, with RFC 5961's hardening: an RST is acted on only when its
sequence number is exactly ``RCV.NXT`` (one in the window earns a challenge ACK), a SYN on a
synchronized connection earns a challenge ACK, and an ACK outside ``[SND.UNA - MAX.SND.WND,
SND.NXT]`` is dropped with an ACK.  Challenge ACKs share a per-second budget
(:class:`~netfast.tcp.conn.ChallengeAckLimiter`) owned by the layer.  Every ACK sent in answer to
an unacceptable segment without data also obeys ``TcpConfig.invalid_ratelimit`` (Linux's
``tcp_invalid_ratelimit``, counted in ``tcp.out.invalid_ack_ratelimited``): otherwise a spoofed
segment that puts two hosts' sequence spaces out of step makes them ACK each other forever.  An
acceptable ACK is never answered by an ACK.

An acceptable ACK updates the send window, the SACK scoreboard (:mod:`netfast.tcp.sack`), the RTT
estimate (:mod:`netfast.tcp.rtt`: timestamps give a sample on every ACK that advances
``SND.UNA``, else one timed segment under Karn's rule) and loss detection: duplicate ACKs (RFC
5681 2; with SACK, RFC 6675's DupAck and ``IsLost``) start fast retransmit, NewReno's partial
ACKs (RFC 6582) without SACK, RFC 6675's recovery with it; the window arithmetic is the
congestion controller's (:mod:`netfast.tcp.cc`).  Text goes to the receive buffer directly when
in order with nothing queued, else through the coalescing reassembly queue; the ACK policy is
RFC 5681 4.2's (every second full segment, at once for out-of-order data or a filled hole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netfast.tcp.negotiate import negotiated_from_syn
from netfast.tcp.output import _FLAGS, ACK, FIN, RST, SYN
from netfast.tcp.sack import DUP_THRESH
from netfast.tcp.session import (
    NO_SESSION,
    CachedCookie,
    SessionOptions,
    client_cookie_ok,
    session_options,
)
from netfast.tcp.state import RECEIVING, TcpState
from netfast.wire.seq import SEQ_MASK, seq_diff, seq_le, seq_lt
from netfast.wire.tcp import TcpFlags, TcpRepr

if TYPE_CHECKING:
    from netfast.tcp.conn import TcpConnection


def tcp_input(conn: TcpConnection, seg: TcpRepr, now: float) -> None:
    """Process one segment for this connection (RFC 9293 3.10.7)."""
    conn.counters["tcp.in.segments"] += 1
    if conn.state == TcpState.CLOSED:
        conn.counters["tcp.in.closed"] += 1
        return
    if conn.state == TcpState.SYN_SENT:
        conn._input_syn_sent(seg, now)
        return
    cookie = conn.client_cookie
    if cookie is not None:
        # T/TCPv2: every segment shows the connection's client cookie; one that does not is
        # a spoof (or from an older incarnation), dropped without an answer.
        ok = client_cookie_ok(seg.options, cookie)
        if ok is not True:
            conn.counters[
                "tcp.in.client_cookie_missing" if ok is None else "tcp.in.client_cookie_bad"
            ] += 1
            return
    conn._input_synchronized(seg, now)


def _input_syn_sent(conn: TcpConnection, seg: TcpRepr, now: float) -> None:
    flags = int(seg.flags)
    if flags & ACK:
        ack = conn._unwrap_ack(seg.ack)
        if ack <= 0 or ack > conn.snd_max:
            conn.counters["tcp.in.syn_sent_bad_ack"] += 1
            if not flags & RST:
                conn.out.append(TcpRepr(conn.local[1], conn.remote[1], seg.ack, 0, TcpFlags.RST, 0))
            return
    if flags & RST:
        if flags & ACK:
            conn.counters["tcp.in.refused"] += 1
            conn._drop("ECONNREFUSED")
        else:
            conn.counters["tcp.in.rst_ignored"] += 1
        return
    if not flags & SYN:
        conn.counters["tcp.in.syn_sent_no_syn"] += 1
        return
    session = NO_SESSION
    if conn.ttcp_offer is not None or conn.config.fastopen:
        session = session_options(seg.options)
        if conn.ttcp_offer is not None and session.ttcp is not None and flags & ACK:
            if session.ttcp.client != conn.ttcp_offer:
                conn.counters["tcp.in.client_cookie_bad"] += 1
                return  # not an answer to our SYN
            conn.client_cookie = conn.ttcp_offer
    conn.irs = seg.seq
    conn.rcv_nxt = (seg.seq + 1) & SEQ_MASK
    conn._apply_negotiated(negotiated_from_syn(seg, conn.config))
    conn.rcv_adv = conn.rcv_nxt
    conn.cc.established(conn.mss)
    if flags & ACK:
        ack = conn._unwrap_ack(seg.ack)
        _syn_acked(conn, seg, ack, session, now)
        # The window of a SYN-ACK is never scaled (RFC 7323 2.2).
        conn.snd_wnd = conn.max_snd_wnd = seg.window
        conn.snd_wl1 = seg.seq
        conn.snd_wl2 = ack
        if conn.ts_ok and seg.options.timestamps is not None:
            echo = seg.options.timestamps.tsecr
            if echo:
                conn._rtt_sample((conn.ts_now(now) - echo) % (1 << 32) / 1000.0)
        elif conn.backoff == 0 and conn.rtt_pos == 0:
            conn._rtt_sample(now - conn.rtt_time)
        conn.rtt_pos = None
        conn.last_ack_sent = conn.rcv_nxt
        conn.t_rexmt = None
        conn.backoff = 0
        conn._set_state(TcpState.ESTABLISHED)
        conn.counters["tcp.conn.connected"] += 1
        conn._arm_keepalive(now)
        conn.ack_now = True
        if seg.payload or flags & FIN:
            conn._receive_text(seg, now)
        return
    # Simultaneous open: answer with SYN-ACK (RFC 9293 3.5, figure 8).
    conn.snd_wnd = conn.max_snd_wnd = seg.window
    conn.snd_wl1 = seg.seq
    conn._set_state(TcpState.SYN_RECEIVED)
    conn.snd_nxt = 0
    conn.t_rexmt = None
    conn.counters["tcp.conn.simultaneous_open"] += 1


def _syn_acked(
    conn: TcpConnection, seg: TcpRepr, ack: int, session: SessionOptions, now: float
) -> None:
    """Our SYN is acknowledged: how much of the data it carried went with it, and the cookie
    the SYN-ACK brings remembered for the next connection to this server."""
    conn.snd_una = ack
    taken = ack - 1
    if taken > 0:
        del conn.sndbuf[:taken]
        conn.snd_buf_base += taken
    if conn.syn_data_sent:
        if taken > 0:
            conn.syn_data_acked = True
            conn.counters["tcp.fastopen.active"] += 1
        else:
            # The server did not take it (a stale cookie, or a server that answers cookies
            # but not data): it goes again after the handshake.
            conn.counters["tcp.fastopen.active_fail"] += 1
    conn.snd_nxt = ack  # what the SYN carried beyond the ACK is sent again
    cache = conn.cookie_cache
    if cache is None:
        return
    server = conn.remote[0]
    if session.ttcp is not None and session.ttcp.server is not None:
        cache.put(server, CachedCookie(ttcp=session.ttcp.server, mss=conn.peer_mss, learned=now))
        conn.counters["tcp.fastopen.cookie_learned"] += 1
    elif session.tfo:
        cache.put(
            server,
            CachedCookie(
                tfo=session.tfo, tfo_kind=session.tfo_kind, mss=conn.peer_mss, learned=now
            ),
        )
        conn.counters["tcp.fastopen.cookie_learned"] += 1
    elif conn.syn_data_sent and taken <= 0:
        cache.forget(server)


def _acceptable(conn: TcpConnection, seg: TcpRepr) -> bool:
    """RFC 9293 3.10.7.4's four cases of the sequence-number test."""
    flags = int(seg.flags)
    seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    wnd = max(conn._window_bytes(), seq_diff(conn.rcv_adv, conn.rcv_nxt))
    seq = seg.seq
    nxt = conn.rcv_nxt
    if seg_len == 0:
        if wnd == 0:
            return seq == nxt
        return seq_le(nxt, seq) and seq_lt(seq, (nxt + wnd) & SEQ_MASK)
    if wnd == 0:
        return False
    end = (seq + seg_len - 1) & SEQ_MASK
    right = (nxt + wnd) & SEQ_MASK
    return (seq_le(nxt, seq) and seq_lt(seq, right)) or (seq_le(nxt, end) and seq_lt(end, right))


def _invalid_ack(
    conn: TcpConnection, seg: TcpRepr, now: float, reason: str, *, challenge: bool = False
) -> None:
    """Count ``reason`` and send an ACK for an unacceptable segment (RFC 9293 3.10.7.4),
    at most one per ``TcpConfig.invalid_ratelimit`` unless the segment carries data or a
    FIN.  With ``challenge`` the ACK is an RFC 5961 challenge ACK and also spends the
    budget shared by all connections (RFC 5961 section 7).

    Such an ACK may itself be unacceptable to a peer whose sequence space a spoofed
    segment moved, and the peer's answer to us again: without a limit two hosts ACK each
    other as fast as they can, forever.  Segments that occupy sequence space without a SYN
    are exempt, as in Linux's ``tcp_oow_rate_limited``: a loop of ACKs carries no data,
    and a peer resending data we already have needs the ACK it lost.
    """
    conn.counters[reason] += 1
    limited = not (seg.payload or int(seg.flags) & (FIN | SYN) == FIN)
    if limited:
        last = conn.last_invalid_ack
        if last is not None and 0.0 <= now - last < conn.config.invalid_ratelimit:
            conn.counters["tcp.out.invalid_ack_ratelimited"] += 1
            return
    if challenge:
        if not conn.challenge.allow(now):
            conn.counters["tcp.out.challenge_ack_limited"] += 1
            return
        conn.counters["tcp.out.challenge_ack"] += 1
    if limited:
        conn.last_invalid_ack = now
    conn.ack_now = True


def _challenge_ack(conn: TcpConnection, now: float, reason: str) -> None:
    conn.counters[reason] += 1
    if conn.challenge.allow(now):
        conn.counters["tcp.out.challenge_ack"] += 1
        conn.ack_now = True
    else:
        conn.counters["tcp.out.challenge_ack_limited"] += 1


def _input_synchronized(conn: TcpConnection, seg: TcpRepr, now: float) -> None:
    flags = int(seg.flags)
    state = conn.state
    ts = seg.options.timestamps if conn.ts_ok else None

    # PAWS (RFC 7323 5.3): an old timestamp marks an old duplicate.  Segments that occupy
    # sequence space only: a reordered pure ACK cannot corrupt the stream, and the SACK
    # blocks it carries are still news (Linux accepts such "disordered ACKs" too).
    if (
        ts is not None
        and not flags & RST
        and conn.ts_recent
        and seq_lt(ts.tsval, conn.ts_recent)
        and (seg.payload or flags & (SYN | FIN))
    ):
        conn._invalid_ack(seg, now, "tcp.in.paws")
        return

    # Simultaneous open with crossed SYN-ACKs (RFC 9293 figure 8, line 6): the peer's SYN-ACK
    # repeats its SYN (SEG.SEQ = IRS) and acknowledges ours, which completes the handshake.
    # Its SYN was taken already, so it continues as the ACK that follows a SYN; its window
    # is unscaled, so the field is shifted down to read back no larger after scaling.
    if (
        state == TcpState.SYN_RECEIVED
        and flags & (SYN | ACK | RST) == SYN | ACK
        and seg.seq == conn.irs
        and conn._unwrap_ack(seg.ack) == conn.snd_max
    ):
        flags &= ~SYN
        seg = TcpRepr(
            seg.src_port,
            seg.dst_port,
            conn.rcv_nxt,
            seg.ack,
            _FLAGS[flags],
            seg.window >> conn.snd_wscale,
            seg.urgent,
            seg.options,
            seg.payload,
        )

    # First: the sequence number.
    if not conn._acceptable(seg):
        if flags & RST:
            conn.counters["tcp.in.rst_outside_window"] += 1
            return
        if state == TcpState.SYN_RECEIVED and flags & SYN and seg.seq == conn.irs:
            conn.counters["tcp.in.outside_window"] += 1
            conn.ack_now = True  # our SYN-ACK was lost: resend it
            return
        if (
            state == TcpState.TIME_WAIT
            and flags & FIN
            and (seg.seq + len(seg.payload) + 1) & SEQ_MASK == conn.rcv_nxt
        ):
            # The peer's FIN again: our last ACK was lost.  ACK it and restart the 2 MSL
            # wait (RFC 9293 3.10.7.4, eighth step; FreeBSD's tcp_twcheck does the same).
            conn.t_2msl = now + 2 * conn.config.msl
        conn._invalid_ack(seg, now, "tcp.in.outside_window")
        return

    # Second: RST (RFC 5961 3.2).
    if flags & RST:
        if seg.seq != conn.rcv_nxt:
            conn._challenge_ack(now, "tcp.in.rst_in_window")
            return
        conn.counters["tcp.in.rst"] += 1
        if state == TcpState.SYN_RECEIVED:
            conn._drop("ECONNREFUSED")
        elif state in (TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT):
            conn._drop(None)
        else:
            conn._drop("ECONNRESET")
        return

    # Fourth: SYN on a synchronized connection (RFC 5961 4.2).
    if flags & SYN:
        if state == TcpState.SYN_RECEIVED and seg.seq == conn.irs:
            conn.ack_now = True
            return
        conn._challenge_ack(now, "tcp.in.syn_in_window")
        return

    # Fifth: ACK.
    if not flags & ACK:
        conn.counters["tcp.in.no_ack"] += 1
        return

    ack = conn._unwrap_ack(seg.ack)
    if state == TcpState.SYN_RECEIVED:
        if 0 < ack <= conn.snd_max:
            conn.snd_una = 1
            conn.snd_wnd = conn.max_snd_wnd = seg.window << conn.snd_wscale
            conn.snd_wl1 = seg.seq
            conn.snd_wl2 = ack
            conn.t_rexmt = None
            conn.backoff = 0
            conn._set_state(TcpState.ESTABLISHED)
            conn.counters["tcp.conn.connected"] += 1
            state = conn.state
        else:
            conn.counters["tcp.in.syn_received_bad_ack"] += 1
            conn.out.append(TcpRepr(conn.local[1], conn.remote[1], seg.ack, 0, TcpFlags.RST, 0))
            return

    if ack > conn.snd_max:
        conn._invalid_ack(seg, now, "tcp.in.ack_too_much")
        return
    if ack < conn.snd_una - conn.max_snd_wnd:
        conn._invalid_ack(seg, now, "tcp.in.ack_too_old", challenge=True)
        return

    # Timestamps: remember the peer's clock (RFC 7323 4.3) -- only from a segment whose ACK
    # passed, as Linux does: a blind spoof with a wild ACK must not poison PAWS for the
    # real peer's segments.  Nor does it count as a sign of life.
    if ts is not None and seq_le(seg.seq, conn.last_ack_sent):
        conn.ts_recent = ts.tsval
    conn.keep_probes = 0
    conn._arm_keepalive(now)

    if conn.state != TcpState.TIME_WAIT:
        conn._process_ack(seg, ack, now)
        if conn.state == TcpState.CLOSED:
            return

    state = conn.state
    if state == TcpState.FIN_WAIT_1 and conn._fin_acked:
        conn._set_state(TcpState.FIN_WAIT_2)
        if conn.orphan:
            conn.t_2msl = now + conn.config.fin_wait2_timeout
        state = conn.state
    elif state == TcpState.CLOSING and conn._fin_acked:
        conn._enter_time_wait(now)
        return
    elif state == TcpState.LAST_ACK and conn._fin_acked:
        conn.counters["tcp.conn.closed"] += 1
        conn._drop(None)
        return
    elif state == TcpState.TIME_WAIT:
        if flags & FIN:
            conn.ack_now = True
            conn.t_2msl = now + 2 * conn.config.msl
        return

    # Seventh and eighth: text and FIN.
    if seg.payload or flags & FIN:
        conn._receive_text(seg, now)


def _process_ack(conn: TcpConnection, seg: TcpRepr, ack: int, now: float) -> None:
    flags = int(seg.flags)
    wnd = seg.window << conn.snd_wscale
    sacked_before = conn.sack.sacked_bytes
    if conn.sack_ok and seg.options:
        blocks = seg.options.sack_blocks
        if blocks:
            conn._sack_update(blocks)
            if conn.in_recovery:
                conn._lost_retransmissions()

    # Window update (RFC 9293 3.10.7.4, fifth step).
    if seq_lt(conn.snd_wl1, seg.seq) or (conn.snd_wl1 == seg.seq and conn.snd_wl2 <= ack):
        window_changed = wnd != conn.snd_wnd
        conn.snd_wnd = wnd
        conn.snd_wl1 = seg.seq
        conn.snd_wl2 = ack
        if wnd > conn.max_snd_wnd:
            conn.max_snd_wnd = wnd
        if wnd:
            conn.t_persist = None
            conn.persist_backoff = 0
            conn.force_probe = False
            if conn.persisting:
                conn.persisting = False
                conn.snd_nxt = max(conn.snd_una, min(conn.snd_nxt, ack))
    else:
        window_changed = False

    if ack <= conn.snd_una:
        # A duplicate ACK in the sense of RFC 5681 section 2 (or an old one).
        # With SACK, an ACK that SACKs new data counts whatever its window says (RFC 6675
        # section 2's DupAck): receivers' windows change with every read.
        if (
            ack == conn.snd_una
            and conn.snd_max > conn.snd_una
            and not seg.payload
            and not flags & (SYN | FIN)
            and (not window_changed or conn.sack.sacked_bytes > sacked_before)
        ):
            conn._dupack(now)
        return

    # New data acknowledged.
    acked = ack - conn.snd_una
    if conn.ts_ok and seg.options.timestamps is not None and seg.options.timestamps.tsecr:
        echo = seg.options.timestamps.tsecr
        conn._rtt_sample(((conn.ts_now(now) - echo) & SEQ_MASK) / 1000.0)
    elif conn.rtt_pos is not None and ack > conn.rtt_pos:
        conn._rtt_sample(now - conn.rtt_time)
        conn.rtt_pos = None
    conn.backoff = 0

    data_end = conn.data_end
    data_acked = min(ack, data_end) - conn.snd_buf_base
    if data_acked > 0:
        del conn.sndbuf[:data_acked]
        conn.snd_buf_base += data_acked
    if conn.sack.covers(ack):
        # The ACK points into data the receiver SACKed: it has reneged (RFC 2018 8), so
        # what it SACKed before tells nothing any more.
        conn.counters["tcp.in.sack_reneging"] += 1
        conn.sack.clear()
    conn.snd_una = ack
    if conn.snd_nxt < ack:
        conn.snd_nxt = ack
    if conn.high_rxt < ack:
        conn.high_rxt = ack
    conn.sack.trim(ack)
    conn._congestion_ack(acked, ack, now)

    conn.tlp_sent = False
    if conn.snd_una >= conn.snd_max:
        conn.t_rexmt = None
        conn.t_tlp = None
    else:
        conn.t_rexmt = now + conn.rtt.rto
        conn._arm_tlp(now)
    conn._notify()


def _dupack(conn: TcpConnection, now: float) -> None:
    conn.counters["tcp.in.dupack"] += 1
    conn.dupacks += 1
    if conn.in_recovery:
        if not conn.sack_ok:
            conn.cc.recovery_dupack(conn.mss)  # NewReno: one segment per dupack
        return
    lost = conn.dupacks >= DUP_THRESH or (
        conn.sack_ok and conn.sack.sacked_bytes > (DUP_THRESH - 1) * conn.mss
    )
    if not lost:
        return
    if conn.snd_una < conn.recover and conn.recover:
        return  # RFC 6582 4.1: no new recovery until the last one's data is acked
    conn._enter_recovery(now)


def _enter_recovery(conn: TcpConnection, now: float) -> None:
    conn.counters["tcp.recovery.fast_retransmit"] += 1
    flight = conn.snd_max - conn.snd_una
    conn.cc.enter_recovery(flight, conn.mss, conn.sack_ok)
    conn.recover = conn.snd_max
    conn.in_recovery = True
    conn.t_tlp = None
    conn.rtt_pos = None
    if conn.sack_ok:
        # RFC 6675 5 (4): cwnd = ssthresh, then retransmit by NextSeg() within the pipe.
        # Holes the last recovery resent above its end are still in flight (high_rxt is
        # kept): resending them again would be spurious; if they are lost,
        # _lost_retransmissions finds out.
        conn.high_rxt = max(conn.high_rxt, conn.snd_una)
        out: list[TcpRepr] = []
        frontier = max(conn.sack.lost_frontier(conn.snd_una, conn.mss), conn.snd_una + 1)
        hole = conn.sack.next_hole(conn.high_rxt, frontier, conn.snd_max)
        if hole is not None:
            sent = conn._retransmit(hole[0], hole[1] - hole[0], now, out)
            conn.high_rxt = hole[0] + sent
        conn.out.extend(out)
    else:
        conn._retransmit(conn.snd_una, conn.mss, now, conn.out)
    conn.t_rexmt = now + conn.rtt.rto


def _congestion_ack(conn: TcpConnection, acked: int, ack: int, now: float) -> None:
    mss = conn.mss
    if conn.in_recovery:
        if ack >= conn.recover:
            # Full acknowledgment: leave recovery with cwnd = ssthresh (RFC 6582 3.2 (3),
            # its second option; RFC 6675 5).  The first option, min(ssthresh, FlightSize +
            # SMSS), collapses the window to a segment or two whenever one ACK covers the
            # whole flight -- as coalesced or delayed ACKs often do.
            conn.in_recovery = False
            conn.dupacks = 0
            conn.cc.exit_recovery()
            conn.counters["tcp.recovery.exit"] += 1
            return
        # Partial acknowledgment.
        if conn.sack_ok:
            return  # the pipe governs; _sack_output retransmits the next hole
        conn._retransmit(conn.snd_una, mss, now, conn.out)
        conn.cc.partial_ack(acked, mss)
        conn.counters["tcp.recovery.partial_ack"] += 1
        return
    conn.dupacks = 0
    conn.cc.acked(acked, mss, now, conn.rtt.srtt or 0.0, conn.config.snd_buf * 2 + 16 * mss)


def _receive_text(conn: TcpConnection, seg: TcpRepr, now: float) -> None:
    flags = int(seg.flags)
    if flags & FIN:
        fin = (seg.seq + len(seg.payload)) & SEQ_MASK
        if conn.fin_seq is None:
            conn.fin_seq = fin
    if seg.payload and conn.state in RECEIVING:
        was_ooo = len(conn.reass) > 0
        in_order = seg.seq == conn.rcv_nxt
        wnd = max(conn._window_bytes(), seq_diff(conn.rcv_adv, conn.rcv_nxt))
        delivered: bytes | memoryview
        if in_order and not was_ooo:
            # Header prediction's data case: the next bytes with nothing queued go straight
            # to the receive buffer (one copy), trimmed to the window.
            delivered = seg.payload
            if len(delivered) > wnd:
                delivered = memoryview(delivered)[:wnd]
                conn.counters["tcp.in.beyond_window"] += 1
        else:
            delivered = conn.reass.add(conn.rcv_nxt, wnd, seg.seq, seg.payload)
        if delivered:
            conn.rcvbuf += delivered
            conn.rcv_nxt = (conn.rcv_nxt + len(delivered)) & SEQ_MASK
            conn.counters["tcp.in.bytes"] += len(delivered)
            conn._notify()
        if not in_order or was_ooo:
            # Out of order, or filling a hole: ACK at once (RFC 5681 4.2).
            conn.ack_now = True
            if not in_order:
                conn.counters["tcp.in.out_of_order"] += 1
        elif delivered:
            # A merged run (software GRO) counts as the segments it was made of.
            conn.segs_unacked += 1 + len(delivered) // (conn.config.mss + 1)
            if conn.segs_unacked >= 2:
                conn.ack_now = True
            elif conn.t_delack is None:
                conn.t_delack = now + conn.config.delayed_ack
    elif seg.payload:
        conn.counters["tcp.in.data_after_fin"] += 1
    if conn.fin_seq is not None and conn.rcv_nxt == conn.fin_seq and not conn.fin_rcvd:
        conn._receive_fin(now)


def _receive_fin(conn: TcpConnection, now: float) -> None:
    conn.fin_rcvd = True
    conn.rcv_nxt = (conn.rcv_nxt + 1) & SEQ_MASK
    conn.ack_now = True
    conn.counters["tcp.in.fin"] += 1
    state = conn.state
    if state in (TcpState.SYN_RECEIVED, TcpState.ESTABLISHED):
        conn._set_state(TcpState.CLOSE_WAIT)
    elif state == TcpState.FIN_WAIT_1:
        if conn._fin_acked:
            conn._enter_time_wait(now)
        else:
            conn._set_state(TcpState.CLOSING)
    elif state == TcpState.FIN_WAIT_2:
        conn._enter_time_wait(now)
    else:
        conn._notify()


def _sack_update(conn: TcpConnection, blocks: tuple[tuple[int, int], ...]) -> None:
    for left, right in blocks:
        lo = conn._unwrap_ack(left)
        hi = conn._unwrap_ack(right)
        if hi <= lo or lo < conn.snd_una or hi > conn.snd_max:
            conn.counters["tcp.in.sack_invalid"] += 1
            continue
        conn.sack.add(lo, hi)
