"""TCP output (tcp_output): the segments a connection sends now.

Contract
--------
:func:`tcp_output` (bound as :meth:`TcpConnection.output <netfast.tcp.conn.TcpConnection>`)
returns every segment due: the SYN or SYN-ACK of a handshake, then -- in a synchronized state --
RFC 6675's retransmissions by ``NextSeg()`` within the pipe during SACK recovery
(:func:`_sack_output`, lost retransmissions first), then new data and go-back-N resends from
``SND.NXT`` within ``min(cwnd, SND.WND)`` (:func:`_data_output`) with limited transmit (RFC
3042), sender silly-window avoidance and Nagle (RFC 9293 3.8.6.2.1), zero-window probes
(3.8.6.1), the FIN after the queued data, and an ACK when one is owed.  With ``TcpConfig.tso_max``
a segment may carry several MSS for a link that segments it.  Building a segment
(:func:`_segment`) is where ``RCV.NXT`` is acknowledged: it clears the owed ACK and the delayed-ACK
timer.  The receive window announced never shrinks (3.8.6.2.2); options carry timestamps and up
to four SACK blocks from the reassembly queue.

These functions are bound as methods of :class:`~netfast.tcp.conn.TcpConnection` and work on its
fields; they are split from it by concern, as FreeBSD's ``tcp_output.c`` is from ``tcp_input.c``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from netfast.tcp.sack import DUP_THRESH
from netfast.tcp.session import tfo_option, with_option
from netfast.tcp.state import SYNCHRONIZED, TcpState
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import FastOpenOption, TcpOption, TcpOptions, TtcpCookies

if TYPE_CHECKING:
    from netfast.tcp.conn import TcpConnection

# Plain ints: flag arithmetic on IntFlag members costs an enum call per operation.
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
_FLAGS = [TcpFlags(f) for f in range(0x200)]


def _options(conn: TcpConnection, now: float | None, syn: bool) -> TcpOptions:
    cfg = conn.config
    ts = None
    if now is not None and (conn.ts_ok or (syn and cfg.timestamps)):
        ts = (conn.ts_now(now), conn.ts_recent)
    if syn:
        # Our SYN (active or simultaneous open) offers what the config enables; passive
        # opens are answered by the SYN cache.
        return _syn_options(conn, ts)
    cookie = conn.client_cookie
    ttcp = None if cookie is None else TtcpCookies(cookie)
    blocks: tuple[tuple[int, int], ...] = ()
    if conn.sack_ok and len(conn.reass):
        # 40 option bytes: timestamps and the client cookie take 12 each, a SACK option
        # 2 + 8 per block after two NOPs: 4 blocks alone, 3 beside one of them, 1 beside both.
        both = ts is not None and ttcp is not None
        room = 4 - (ts is not None) - (ttcp is not None) - both
        blocks = tuple(conn.reass.sack_blocks(room))
    if ts is None and not blocks and ttcp is None:
        return TcpOptions()
    return TcpOptions.build(timestamps=ts, sack_blocks=blocks, ttcp=ttcp)


def _syn_options(conn: TcpConnection, ts: tuple[int, int] | None) -> TcpOptions:
    """Our SYN's options: MSS, window scale, SACK, timestamps, and the session options
    (netfast.tcp.session): T/TCPv2's client cookie with the server cookie we hold, or a Fast
    Open cookie (or a request for one).  At most 36 bytes."""
    cfg = conn.config
    cached = conn.syn_cookie
    ttcp = None
    tfo: TcpOption | None = None
    if cfg.fastopen and conn.state == TcpState.SYN_SENT:
        if cached is not None and cached.tfo is not None:
            tfo = tfo_option(cached.tfo, cached.tfo_kind)
        elif cached is None or cached.ttcp is None:
            tfo = FastOpenOption()  # a cookie request
    if (
        conn.ttcp_offer is not None
        and conn.state == TcpState.SYN_SENT
        and not (cached is not None and cached.tfo is not None and cfg.fastopen)
    ):
        # With a Fast Open cookie (a server that did not answer T/TCPv2) the 12 bytes of the
        # client cookie would not fit beside it.
        server = cached.ttcp if cached is not None and cfg.fastopen else None
        ttcp = TtcpCookies(conn.ttcp_offer, server)
    opts = TcpOptions.build(
        mss=cfg.mss,
        wscale=conn.rcv_wscale if cfg.window_scale else None,
        sack_permitted=cfg.sack,
        timestamps=ts,
        ttcp=ttcp,
    )
    return opts if tfo is None else with_option(opts, tfo)


def _syn_segment(conn: TcpConnection, now: float) -> TcpRepr:
    """Our SYN, with data when we hold the server's cookie and this is not a retransmission
    (a resent SYN carries none: the server may have taken the first one's data, or rejected
    its cookie)."""
    seg = conn._segment(0, 0, SYN, now)
    cached = conn.syn_cookie
    if (
        cached is None
        or not conn.config.fastopen
        or conn.backoff
        or not conn.sndbuf
        or conn.syn_data_sent
    ):
        return seg
    room = min(cached.mss, conn.config.mss) - seg.options.buffer_len()
    if room <= 0:
        return seg
    n = min(len(conn.sndbuf), room)
    conn.syn_data_sent = True
    conn.counters["tcp.fastopen.syn_data"] += 1
    return dataclasses.replace(seg, payload=bytes(memoryview(conn.sndbuf)[:n]))


def _fast_synack(conn: TcpConnection, now: float) -> TcpRepr:
    """The SYN-ACK of a passive open by data on SYN: acknowledges the data taken."""
    assert conn.synack_builder is not None
    seg = conn.synack_builder(now)
    conn.last_ack_sent = conn.rcv_nxt
    conn.ack_now = False
    conn.segs_unacked = 0
    conn.t_delack = None
    return dataclasses.replace(seg, ack=conn.rcv_nxt)


def _segment(conn: TcpConnection, pos: int, length: int, flags: int, now: float | None) -> TcpRepr:
    syn = bool(flags & SYN)
    if flags & ACK:
        conn.last_ack_sent = conn.rcv_nxt
        conn.ack_now = False
        conn.segs_unacked = 0
        conn.t_delack = None
    payload = b""
    if length:
        start = pos - conn.snd_buf_base
        # One copy through a transient view (a bytearray slice would copy twice); the view
        # dies at once, so the buffer stays resizable.
        payload = bytes(memoryview(conn.sndbuf)[start : start + length])
    window = conn._window_field(syn) if not flags & RST or flags & ACK else 0
    return TcpRepr(
        src_port=conn.local[1],
        dst_port=conn.remote[1],
        seq=conn.wire(pos),
        ack=conn.rcv_nxt if flags & ACK else 0,
        flags=_FLAGS[flags],
        window=window,
        options=conn._options(now, syn) if not flags & RST else _rst_options(conn),
        payload=payload,
    )


def _rst_options(conn: TcpConnection) -> TcpOptions:
    # A peer that uses the client cookie drops a reset without it.
    if conn.client_cookie is None:
        return TcpOptions()
    return TcpOptions.build(ttcp=TtcpCookies(conn.client_cookie))


def tcp_output(conn: TcpConnection, now: float) -> list[TcpRepr]:
    """Every segment to send now (data the windows allow, retransmissions, FIN, ACKs)."""
    out = conn.out
    conn.out = []
    if conn.state == TcpState.CLOSED:
        return out
    if conn.synack_builder is not None and conn.snd_una == 0:
        # A passive open by data on SYN, its SYN-ACK not yet acknowledged: the SYN-ACK (again,
        # after a timeout or a resent SYN), then what the application has answered already.
        if conn.snd_nxt == 0 or conn.ack_now:
            out.append(conn._fast_synack(now))
            if conn.snd_nxt == 0:
                if conn.backoff == 0:
                    conn.rtt_pos, conn.rtt_time = 0, now
                conn.snd_nxt = 1
                conn.snd_max = max(conn.snd_max, 1)
                if conn.t_rexmt is None:
                    conn.t_rexmt = now + conn.rtt.rto
        if conn.state == TcpState.SYN_RECEIVED:
            conn._data_output(now, out)
            return out
    elif conn.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
        if conn.snd_nxt == 0:
            if conn.state == TcpState.SYN_SENT:
                syn = conn._syn_segment(now)
            else:
                syn = conn._segment(0, 0, SYN | ACK, now)
            out.append(syn)
            if conn.backoff == 0:
                conn.rtt_pos, conn.rtt_time = 0, now
            conn.snd_nxt = 1 + len(syn.payload)
            conn.snd_max = max(conn.snd_max, conn.snd_nxt)
            if conn.t_rexmt is None:
                conn.t_rexmt = now + conn.rtt.rto
        elif conn.ack_now and conn.state == TcpState.SYN_RECEIVED:
            out.append(conn._segment(0, 0, SYN | ACK, now))
        return out
    if conn.state in SYNCHRONIZED and conn.state != TcpState.TIME_WAIT:
        if conn.in_recovery and conn.sack_ok:
            conn._sack_output(now, out)
        conn._data_output(now, out)
    if conn.ack_now:
        out.append(conn._segment(conn.snd_nxt, 0, ACK, now))
    return out


def _max_seg(conn: TcpConnection) -> int:
    tso = conn.config.tso_max
    if tso > conn.mss:
        return (tso // conn.mss) * conn.mss
    return conn.mss


def _data_output(conn: TcpConnection, now: float, out: list[TcpRepr]) -> None:
    """New data and go-back-N retransmission from ``snd_nxt`` within min(cwnd, snd_wnd)."""
    mss = conn.mss
    max_seg = conn._max_seg()
    while True:
        data_end = conn.data_end
        cut = 0  # after a timeout: the next SACKed block, where a resend must stop
        sacked = conn.sack.blocks
        if sacked and conn.snd_nxt < conn.snd_max:
            for a, b in sacked:
                if b <= conn.snd_nxt:
                    continue
                if a <= conn.snd_nxt:
                    # Arrived already: skip it (the scoreboard outlives the timeout).
                    conn.snd_nxt = min(b, conn.snd_max)
                    conn.counters["tcp.out.rexmt_sack_skip"] += 1
                    continue
                cut = a
                break
        avail = data_end - conn.snd_nxt
        if conn.in_recovery and conn.sack_ok:
            wnd = conn.snd_wnd  # the pipe in _sack_output limited what is in flight
            limit = conn.snd_una + wnd
            if conn._pipe() + min(mss, max(avail, 0)) > conn.cc.cwnd:
                return
        else:
            # Limited transmit (RFC 3042): each of the first two duplicate ACKs lets one
            # new segment out beyond cwnd, so a small window still earns three dupacks.
            extra = min(conn.dupacks, DUP_THRESH - 1) * mss if conn.dupacks else 0
            wnd = min(conn.snd_wnd, conn.cc.cwnd + extra)
            limit = conn.snd_una + wnd
        usable = limit - conn.snd_nxt
        fin_due = conn.fin_queued and conn.snd_nxt <= data_end and not conn._fin_acked
        if avail > 0:
            if usable <= 0:
                if conn.force_probe and conn.snd_wnd == 0:
                    # A zero-window probe: the first unacknowledged byte, beyond the window
                    # (RFC 9293 3.8.6.1).  It does not start the retransmission timer: a
                    # peer that keeps its window closed is probed forever, never dropped.
                    conn.force_probe = False
                    conn.persisting = True
                    conn.counters["tcp.out.window_probe"] += 1
                    out.append(conn._segment(conn.snd_una, 1, ACK, now))
                    conn.snd_nxt = conn.snd_una + 1
                    conn.snd_max = max(conn.snd_max, conn.snd_nxt)
                    conn.t_rexmt = None
                conn._arm_persist(now)
                return
            length = min(avail, usable, max_seg)
            if cut and conn.snd_nxt + length > cut:
                length = cut - conn.snd_nxt  # a hole before SACKed data: resend it whole
            elif length < mss and length < avail:
                # Sender SWS avoidance: wait for room for a full segment unless the window
                # itself is small (RFC 9293 3.8.6.2.1).
                if length < conn.max_snd_wnd // 2:
                    conn._arm_persist(now)
                    return
            elif (
                length < mss
                and conn.config.nagle
                and conn.snd_max > max(conn.snd_una, 1)  # data in flight (not our SYN)
                and conn.snd_nxt >= conn.snd_max
                and not (fin_due and length == avail)
            ):
                return  # Nagle: one small segment in flight at a time
            flags = ACK
            if length == avail:
                flags |= PSH
                if fin_due:
                    flags |= FIN
            out.append(conn._segment(conn.snd_nxt, length, flags, now))
            conn._advance(length + (1 if flags & FIN else 0), now)
            continue
        if fin_due and conn.snd_nxt == data_end:
            out.append(conn._segment(conn.snd_nxt, 0, ACK | FIN, now))
            conn._advance(1, now)
        return


def _advance(conn: TcpConnection, n: int, now: float) -> None:
    if conn.snd_nxt == conn.snd_max and conn.rtt_pos is None and not conn.ts_ok:
        conn.rtt_pos = conn.snd_nxt
        conn.rtt_time = now
    conn.snd_nxt += n
    if conn.snd_nxt > conn.snd_max:
        conn.snd_max = conn.snd_nxt
    if conn.t_rexmt is None:
        conn.t_rexmt = now + conn.rtt.rto
        conn.t_persist = None
    if conn.sack_ok:
        conn._arm_tlp(now)


def _arm_persist(conn: TcpConnection, now: float) -> None:
    if (
        conn.t_rexmt is None
        and conn.t_persist is None
        and (conn.snd_max == conn.snd_una or conn.persisting)
    ):
        delay = max(conn.rtt.rto, conn.config.persist_min) * (1 << conn.persist_backoff)
        conn.t_persist = now + min(delay, conn.config.persist_max)


def _retransmit(conn: TcpConnection, pos: int, length: int, now: float, out: list[TcpRepr]) -> int:
    """Resend ``length`` bytes (at most one segment) from ``pos``; returns bytes sent."""
    data_end = conn.data_end
    length = min(length, conn.mss, max(0, min(data_end, conn.snd_max) - pos))
    flags = ACK
    if length == 0:
        if conn.fin_sent and pos == data_end:
            out.append(conn._segment(pos, 0, ACK | FIN, now))
            return 1
        return 0
    if pos + length == data_end and conn.fin_sent:
        flags |= FIN
    out.append(conn._segment(pos, length, flags, now))
    conn.counters["tcp.out.retransmit"] += 1
    conn.counters["tcp.out.retransmit_bytes"] += length
    if conn.in_recovery and conn.sack_ok:
        conn.rxt_marks.append([pos, pos + length, conn.snd_max])
    if conn.rtt_pos is not None and conn.rtt_pos < pos + length:
        conn.rtt_pos = None  # Karn: no sample from retransmitted data
    if conn.t_rexmt is None:
        conn.t_rexmt = now + conn.rtt.rto
    return length


def _pipe(conn: TcpConnection) -> int:
    return conn.sack.pipe(conn.snd_una, conn.snd_max, conn.high_rxt, conn.mss)


def _lost_retransmissions(conn: TcpConnection) -> None:
    """Retransmissions of this recovery that are lost too: DupThresh segments' worth of data
    sent after one has been SACKed while it has not arrived -- the rule that deems an
    original segment lost (RFC 6675 IsLost), applied to the retransmission's send order
    instead of its sequence position, as Linux's lost-retransmit marking and RACK (RFC
    8985) do.  Without this, a lost retransmission waits for the retransmission timer.
    The range goes to :attr:`rxt_again`, sent ahead of other holes; the window is not
    reduced again within the recovery."""
    sack = conn.sack
    if not conn.rxt_marks or not sack.blocks:
        return
    need = DUP_THRESH * conn.mss
    una = conn.snd_una
    keep: list[list[int]] = []
    for mark in conn.rxt_marks:
        lo, hi, sent_at = mark
        lo = max(lo, una)
        if hi <= lo or sack.unsacked_between(lo, hi) == 0:
            continue  # acknowledged or SACKed: it arrived
        if sack.sacked_above(sent_at) >= need:
            conn.rxt_again.append([lo, hi])
            conn.counters["tcp.recovery.lost_retransmit"] += 1
        else:
            keep.append(mark)
    conn.rxt_marks = keep


def _sack_output(conn: TcpConnection, now: float, out: list[TcpRepr]) -> None:
    """RFC 6675 section 5 step (C): while cwnd - pipe >= 1 SMSS, NextSeg() rule 1 (a lost
    hole not yet retransmitted) -- new data (rule 2) is left to :meth:`_data_output`."""
    pipe = conn._pipe()
    cc = conn.cc
    guard = 0
    again = conn.rxt_again
    while again and cc.cwnd - pipe >= conn.mss and guard < 1024:
        guard += 1
        lo, hi = again[0]
        hole = conn.sack.next_hole(max(lo, conn.snd_una), hi, conn.snd_max)
        sent = 0 if hole is None else conn._retransmit(hole[0], hole[1] - hole[0], now, out)
        if sent == 0 or hole is None or hole[0] + sent >= hi:
            again.pop(0)
        else:
            again[0][0] = hole[0] + sent
        pipe += sent
    while cc.cwnd - pipe >= conn.mss and guard < 1024:
        guard += 1
        frontier = conn.sack.lost_frontier(conn.snd_una, conn.mss)
        hole = conn.sack.next_hole(max(conn.high_rxt, conn.snd_una), frontier, conn.snd_max)
        if hole is None:
            return
        sent = conn._retransmit(hole[0], hole[1] - hole[0], now, out)
        if sent == 0:
            return
        conn.high_rxt = hole[0] + sent
        pipe += sent
