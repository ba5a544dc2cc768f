"""TCP timers (tcp_timer): retransmission, tail loss probe, persist, delayed ACK, keepalive,
TIME_WAIT and the orphan's FIN_WAIT_2 limit.

Contract
--------
A connection keeps each timer as an absolute time or None; :func:`tcp_poll_at` (bound as
``TcpConnection.poll_at``) is the earliest, and :func:`tcp_poll` (``TcpConnection.poll``) runs
every one due at ``now`` -- segments it causes come out of the next output.  Nothing here reads a
clock.

- Retransmission (RFC 6298 5): exponential backoff, the window collapsed to one segment and
  ``ssthresh`` decreased on the first timeout of a series (RFC 5681 (4), RFC 6582 4.2), then
  go-back-N from ``SND.UNA`` that skips what the kept SACK scoreboard says arrived; after
  ``max_retransmits`` (``syn_retransmits`` in SYN-SENT) the connection is dropped with ETIMEDOUT.
- Tail loss probe (RFC 8985 section 7), with SACK: two smoothed RTTs after a transmission.
- Persist: zero-window probes with backoff, forever.
- Keepalive (RFC 9293 3.8.4): probes at ``SND.UNA - 1``, ``keep_count`` of them.
- TIME_WAIT lasts 2 MSL.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from netfast.tcp.output import ACK, PSH, RST
from netfast.tcp.state import SYNCHRONIZED, TcpState
from netfast.wire.seq import SEQ_MASK

if TYPE_CHECKING:
    from netfast.tcp.conn import TcpConnection


def tcp_poll_at(conn: TcpConnection) -> float | None:
    """The earliest time :meth:`poll` has work, or None."""
    ts = [
        t
        for t in (
            conn.t_rexmt,
            conn.t_persist,
            conn.t_delack,
            conn.t_keep,
            conn.t_2msl,
            conn.t_tlp,
        )
        if t is not None
    ]
    return min(ts) if ts else None


def tcp_poll(conn: TcpConnection, now: float) -> None:
    """Run every due timer (its segments come out of the next :meth:`output`)."""
    if conn.t_2msl is not None and now >= conn.t_2msl:
        conn.t_2msl = None
        if conn.state == TcpState.FIN_WAIT_2:
            conn.counters["tcp.conn.fin_wait2_timeout"] += 1
        conn._drop(None)
        return
    if conn.t_delack is not None and now >= conn.t_delack:
        conn.t_delack = None
        conn.ack_now = True
        conn.counters["tcp.out.delayed_ack"] += 1
    if conn.t_tlp is not None and now >= conn.t_tlp:
        conn.t_tlp = None
        if conn.snd_max > conn.snd_una and not conn.in_recovery:
            conn._tail_loss_probe(now)
    if conn.t_rexmt is not None and now >= conn.t_rexmt:
        conn.t_rexmt = None
        conn._rexmt_timeout(now)
    if conn.t_persist is not None and now >= conn.t_persist:
        conn.t_persist = None
        conn.persist_backoff = min(conn.persist_backoff + 1, 12)
        conn.force_probe = True
    if conn.t_keep is not None and now >= conn.t_keep:
        conn.t_keep = None
        conn._keep_timeout(now)


def _arm_tlp(conn: TcpConnection, now: float) -> None:
    """RFC 8985 section 7: a probe timeout of two smoothed RTTs (plus a delayed ACK when one
    segment is in flight) after a transmission, so a lost tail is repaired by SACK recovery
    instead of a retransmission timeout."""
    if (
        not conn.sack_ok
        or not conn.config.tlp
        or conn.rtt.srtt is None
        or conn.in_recovery
        or conn.tlp_sent
        or conn.snd_una < conn.recover  # still repairing after a timeout
    ):
        conn.t_tlp = None
        return
    pto = 2 * conn.rtt.srtt
    if conn.snd_max - conn.snd_una <= conn.mss:
        pto += conn.config.delayed_ack
    pto = max(pto, 0.01)
    if conn.t_rexmt is not None and now + pto >= conn.t_rexmt:
        conn.t_tlp = None
        return
    conn.t_tlp = now + pto


def _tail_loss_probe(conn: TcpConnection, now: float) -> None:
    """Send new data if there is some the receiver's window allows, else the last segment
    again: its SACK (or ACK) tells the sender what is missing."""
    conn.counters["tcp.out.tlp"] += 1
    conn.tlp_sent = True
    data_end = conn.data_end
    if (
        conn.snd_nxt == conn.snd_max
        and data_end > conn.snd_nxt
        and (conn.snd_una + conn.snd_wnd > conn.snd_nxt)
    ):
        length = min(conn.mss, data_end - conn.snd_nxt, conn.snd_una + conn.snd_wnd - conn.snd_nxt)
        flags = ACK | (PSH if length == data_end - conn.snd_nxt else 0)
        conn.out.append(conn._segment(conn.snd_nxt, length, flags, now))
        conn._advance(length, now)
        return
    end = min(conn.snd_max, data_end)
    start = max(conn.snd_una, end - conn.mss)
    if end > start:
        conn._retransmit(start, end - start, now, conn.out)
    elif conn.fin_sent:
        conn._retransmit(data_end, 0, now, conn.out)


def _rexmt_timeout(conn: TcpConnection, now: float) -> None:
    cfg = conn.config
    conn.backoff += 1
    limit = cfg.syn_retransmits if conn.state == TcpState.SYN_SENT else cfg.max_retransmits
    if conn.backoff > limit:
        conn.counters["tcp.conn.rexmt_drop"] += 1
        if conn.state not in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            conn.out.append(conn._segment(conn.snd_nxt, 0, RST | ACK, None))
        conn._drop("ETIMEDOUT")
        return
    conn.counters["tcp.timer.rexmt"] += 1
    conn.t_tlp = None
    conn.tlp_sent = False
    conn.rtt.back_off()
    conn.rtt_pos = None
    if conn.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
        conn.snd_nxt = 0  # output() sends the SYN again
        conn.t_rexmt = None
        return
    # RFC 5681 (4) and RFC 6582 4.2: collapse the window, remember how far we had sent.
    flight = conn.snd_max - conn.snd_una
    conn.cc.timeout(flight, conn.mss, conn.backoff == 1)
    conn.recover = conn.snd_max
    conn.in_recovery = False
    conn.dupacks = 0
    conn.rxt_marks = []
    conn.rxt_again = []
    # RFC 2018 8 asks a sender to forget what was SACKed after a timeout, in case the
    # receiver reneged; RFC 6675 5.1 and its erratum 1610 allow keeping it where reneging is
    # detected (_process_ack: an ACK into SACKed data clears the scoreboard), as Linux
    # does.  Kept, the go-back-N that follows resends only what did not arrive.
    conn.high_rxt = conn.snd_una
    conn.snd_nxt = conn.snd_una
    conn.t_rexmt = now + conn.rtt.rto


def _keep_timeout(conn: TcpConnection, now: float) -> None:
    cfg = conn.config
    if conn.state not in SYNCHRONIZED or conn.state == TcpState.TIME_WAIT:
        return
    if conn.keep_probes >= cfg.keep_count:
        conn.counters["tcp.conn.keepalive_drop"] += 1
        conn.out.append(conn._segment(conn.snd_nxt, 0, RST | ACK, None))
        conn._drop("ETIMEDOUT")
        return
    # The probe carries SND.UNA - 1 so the peer must answer with an ACK (RFC 9293 3.8.4).
    conn.keep_probes += 1
    conn.counters["tcp.out.keepalive_probe"] += 1
    probe = conn._segment(conn.snd_una, 0, ACK, now)
    conn.out.append(dataclasses.replace(probe, seq=(probe.seq - 1) & SEQ_MASK))
    conn.t_keep = now + cfg.keep_interval


def _arm_keepalive(conn: TcpConnection, now: float) -> None:
    if conn.config.keepalive:
        conn.t_keep = now + conn.config.keep_idle
        conn.keep_probes = 0


def _enter_time_wait(conn: TcpConnection, now: float) -> None:
    conn._set_state(TcpState.TIME_WAIT)
    conn.t_rexmt = conn.t_persist = conn.t_keep = conn.t_tlp = None
    conn.t_2msl = now + 2 * conn.config.msl
