"""One TCP connection, sans-IO (RFC 9293): segments and a time in, segments and events out.

Theory of operation
-------------------
A :class:`TcpConnection` never reads a clock, never draws randomness and never touches a socket.
The owner (the TCP layer of a host stack, a test, a simulator) calls

- :meth:`TcpConnection.input` with each parsed segment addressed to it and the current time,
- :meth:`TcpConnection.output` to collect the segments it wants sent now,
- :meth:`TcpConnection.poll` when :meth:`TcpConnection.poll_at` says a timer is due,

and the application side calls :meth:`send`, :meth:`recv`, :meth:`shutdown`, :meth:`close` and
:meth:`abort`.  Whenever something a reader or writer may care about changes (data arrived, buffer
space freed, the state changed, an error), the callbacks in ``watchers`` are called; the socket
layer turns them into event-queue activations.

The work is split by concern, gVisor- and FreeBSD-style: :mod:`netfast.tcp.input` (RFC 9293
3.10.7, "SEGMENT ARRIVES", with RFC 5961's hardening), :mod:`netfast.tcp.output` and
:mod:`netfast.tcp.timer` hold the functions this class binds as its ``input``, ``output``,
``poll`` and ``poll_at`` (and their helpers); the state and its transition table are
:mod:`netfast.tcp.state`'s (every change goes through :meth:`TcpConnection._set_state`), the
SACK scoreboard :mod:`netfast.tcp.sack`'s, the congestion window :mod:`netfast.tcp.cc`'s, the RTO
:mod:`netfast.tcp.rtt`'s.  This module keeps the connection's fields, its construction (active
open, passive open from the SYN cache), the application side and the receive window.

Sequence spaces.  The send side keeps positions as unwrapped integers counted from the ISS (the
SYN is position 0, the first data byte position 1); the 32-bit wire value is ``(iss + pos) mod
2**32``.  That makes every comparison on the sender an ordinary integer comparison, immune to
wrap-around bugs; incoming acknowledgment numbers are unwrapped relative to ``SND.UNA``.  The
receive side keeps ``RCV.NXT`` as a wire value (the reassembly queue works on wire values).

Options: MSS, window scale and timestamps with PAWS (RFC 7323), SACK-permitted and SACK (RFC 2018).
Loss recovery: RTO per RFC 6298 with exponential backoff and Karn's rule; fast retransmit and
NewReno (RFC 6582) without SACK; the conservative SACK-based recovery of RFC 6675 with SACK, with
lost retransmissions found by send order and tail loss probes (RFC 8985 section 7; not the rest
of RACK).  Congestion control is CUBIC (RFC 9438) or NewReno (RFC 5681), both with slow start by
bytes acknowledged (RFC 3465) and an initial window of RFC 6928.  Delayed ACKs (every second
full segment, else a timer), Nagle's algorithm, sender and receiver silly-window avoidance, zero-
window probes (persist timer), keepalive, TIME_WAIT for 2 MSL and path MTU updates from ICMP.

Received out-of-order data goes to the paper's coalescing reassembly queue
(:class:`netfast.tcp.reass.ReassemblyQueue`), whose block list also produces the SACK blocks.

Bad input never raises: a segment that breaks a rule is dropped and counted under a named counter
in ``counters`` (``tcp.in.paws``, ``tcp.in.outside_window``, ``tcp.in.challenge_ack`` ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from netfast.tcp import input as _input
from netfast.tcp import output as _output
from netfast.tcp import timer as _timer
from netfast.tcp.cc import controller_for
from netfast.tcp.config import TcpConfig
from netfast.tcp.negotiate import TS_OPTION_LEN, Negotiated, scale_for
from netfast.tcp.output import ACK, RST
from netfast.tcp.reass import ReassemblyQueue
from netfast.tcp.rtt import RttEstimator
from netfast.tcp.sack import SackScoreboard
from netfast.tcp.session import CLIENT_COOKIE_LEN, CachedCookie, CookieCache
from netfast.tcp.state import SYNCHRONIZED, TcpState, check_transition
from netfast.wire.seq import SEQ_MASK, seq_diff, seq_gt
from netfast.wire.tcp import TcpRepr


class ChallengeAckLimiter:
    """RFC 5961 section 7: at most ``limit`` challenge ACKs per second, shared by connections."""

    __slots__ = ("_count", "_second", "limit")

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._second = -1
        self._count = 0

    def allow(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second = second
            self._count = 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True


class TcpConnection:
    """One TCP connection's state and its sans-IO processing (see the module docstring).

    Build one with :meth:`connect` (active open) or :meth:`accept_from_syn` (passive open
    completed by the SYN cache: the connection starts in ESTABLISHED).
    """

    def __init__(
        self,
        local: tuple[int, int],
        remote: tuple[int, int],
        iss: int,
        config: TcpConfig,
        *,
        ts_offset: int = 0,
        challenge: ChallengeAckLimiter | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.local = local
        self.remote = remote
        self.config = config
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.challenge = challenge if challenge is not None else ChallengeAckLimiter()
        self.state = TcpState.CLOSED
        self.error: str | None = None
        self.watchers: list[Callable[[TcpConnection], None]] = []
        self.orphan = False
        """True once the application closed its socket: nobody reads any more."""

        # -- send side (positions counted from the ISS; see the module docstring) --
        self.iss = iss & SEQ_MASK
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.sndbuf = bytearray()
        self.snd_buf_base = 1  # position of sndbuf[0]
        self.fin_queued = False
        self.mss = min(config.mss, 536)  # effective send MSS (payload bytes per segment)
        self.peer_mss = 536
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.sack_ok = False
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_offset = ts_offset & SEQ_MASK

        # -- receive side (wire values) --
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.rcvbuf = bytearray()
        self.reass = ReassemblyQueue(max_bytes=config.rcv_buf, max_holes=config.max_holes)
        self.fin_seq: int | None = None  # wire seq of a FIN received (maybe out of order)
        self.fin_rcvd = False
        self.last_ack_sent = 0

        # -- congestion control and loss recovery --
        self.cc = controller_for(config.cc)
        self.dupacks = 0
        self.recover = 0
        self.in_recovery = False
        self.high_rxt = 0
        self.sack = SackScoreboard()
        # Retransmissions in recovery not yet known to have arrived: [start, end, snd_max when
        # sent]; and the ones found lost, to be sent again first (_lost_retransmissions).  Both
        # outlive a recovery (the next may begin before the last one's resends arrive) and are
        # forgotten at a timeout.
        self.rxt_marks: list[list[int]] = []
        self.rxt_again: list[list[int]] = []

        # -- RTT and timers --
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self.backoff = 0
        self.rtt_pos: int | None = None  # Karn-style timing of one segment when no timestamps
        self.rtt_time = 0.0
        self.t_rexmt: float | None = None
        self.t_persist: float | None = None
        self.persist_backoff = 0
        self.t_delack: float | None = None
        self.t_keep: float | None = None
        self.t_2msl: float | None = None
        self.keep_probes = 0
        self.ack_now = False
        self.segs_unacked = 0
        self.force_probe = False
        self.persisting = False
        self.t_tlp: float | None = None
        self.tlp_sent = False
        self.last_invalid_ack: float | None = None
        """When the last ACK answering an unacceptable segment went out (``_invalid_ack``)."""
        self.out: list[TcpRepr] = []

        # -- the session layer (netfast.tcp.session) --
        self.ttcp_offer: int | None = None
        """The client cookie our SYN offers (active open with ``TcpConfig.ttcp``)."""
        self.client_cookie: int | None = None
        """The client cookie both ends use: every segment carries it, and one without it or
        with another is dropped."""
        self.syn_cookie: CachedCookie | None = None
        """Active open with ``TcpConfig.fastopen``: the server cookie our SYN shows (None:
        the SYN asks for one)."""
        self.cookie_cache: CookieCache | None = None
        """Where a cookie the SYN-ACK brings is remembered."""
        self.syn_data_sent = False
        """Our SYN carried data (an active open with a server cookie)."""
        self.syn_data_acked = False
        """The peer's SYN-ACK acknowledged the data of our SYN."""
        self.syn_data_accepted = False
        """Passive open: the peer's SYN carried data with a valid cookie, and it was taken."""
        self.synack_builder: Callable[[float], TcpRepr] | None = None
        """Passive open by data on SYN: makes our SYN-ACK (the SYN cache's, with the session
        options it answers with), which acknowledges the data taken."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def connect(
        cls,
        local: tuple[int, int],
        remote: tuple[int, int],
        iss: int,
        config: TcpConfig,
        now: float,
        **kw: object,
    ) -> TcpConnection:
        """An active open: the connection is in SYN_SENT with its SYN ready in :meth:`output`."""
        conn = cls(local, remote, iss, config, **kw)  # type: ignore[arg-type]
        conn._set_state(TcpState.SYN_SENT)
        conn.rcv_wscale = scale_for(config.rcv_buf) if config.window_scale else 0
        return conn

    @classmethod
    def accept_from_syn(
        cls,
        local: tuple[int, int],
        remote: tuple[int, int],
        iss: int,
        irs: int,
        neg: Negotiated,
        config: TcpConfig,
        snd_wnd: int,
        now: float,
        **kw: object,
    ) -> TcpConnection:
        """A passive open completed by the SYN cache: the third segment of the handshake acked our
        SYN-ACK, so the connection starts ESTABLISHED.  ``snd_wnd`` is the window of that
        segment, already scaled."""
        client_cookie = kw.pop("client_cookie", None)
        conn = cls(local, remote, iss, config, **kw)  # type: ignore[arg-type]
        conn.client_cookie = client_cookie  # type: ignore[assignment]
        conn.irs = irs & SEQ_MASK
        conn.rcv_nxt = (irs + 1) & SEQ_MASK
        conn._apply_negotiated(neg)
        conn.last_ack_sent = conn.rcv_nxt
        conn.rcv_adv = (conn.rcv_nxt + conn._window_bytes()) & SEQ_MASK
        conn.snd_una = conn.snd_nxt = conn.snd_max = 1
        conn.snd_wnd = conn.max_snd_wnd = snd_wnd
        conn.snd_wl1 = conn.rcv_nxt
        conn.snd_wl2 = 1
        conn.cc.established(conn.mss)
        # The SYN cache held the handshake in LISTEN and SYN_RECEIVED (netfast.tcp.state).
        for state in (TcpState.LISTEN, TcpState.SYN_RECEIVED, TcpState.ESTABLISHED):
            conn._set_state(state)
        conn._arm_keepalive(now)
        conn.counters["tcp.conn.accepted"] += 1
        return conn

    @classmethod
    def accept_fast_open(
        cls,
        local: tuple[int, int],
        remote: tuple[int, int],
        iss: int,
        seg: TcpRepr,
        neg: Negotiated,
        config: TcpConfig,
        now: float,
        *,
        client_cookie: int | None,
        synack: Callable[[float], TcpRepr],
        **kw: object,
    ) -> TcpConnection:
        """A passive open by data on SYN (the cookie was checked by the caller): the
        connection starts in SYN_RECEIVED with the SYN's data in its receive buffer, and its
        output sends ``synack(now)``, acknowledging that data, then whatever the application
        answers before the handshake completes (RFC 7413 4.2.2)."""
        conn = cls(local, remote, iss, config, **kw)  # type: ignore[arg-type]
        conn.client_cookie = client_cookie
        conn.synack_builder = synack
        conn.irs = seg.seq & SEQ_MASK
        conn._apply_negotiated(neg)
        data = seg.payload[: config.rcv_buf]
        conn.rcvbuf += data
        conn.rcv_nxt = (seg.seq + 1 + len(data)) & SEQ_MASK
        conn.last_ack_sent = conn.rcv_nxt
        conn.rcv_adv = (conn.rcv_nxt + conn._window_bytes()) & SEQ_MASK
        conn.snd_wnd = conn.max_snd_wnd = seg.window  # a SYN's window is never scaled
        conn.snd_wl1 = seg.seq
        conn.cc.established(conn.mss)
        conn.syn_data_accepted = True
        conn.counters["tcp.in.bytes"] += len(data)
        for state in (TcpState.LISTEN, TcpState.SYN_RECEIVED):
            conn._set_state(state)
        conn._arm_keepalive(now)
        conn.counters["tcp.conn.accepted"] += 1
        return conn

    def _apply_negotiated(self, neg: Negotiated) -> None:
        cfg = self.config
        self.peer_mss = neg.peer_mss
        if neg.snd_wscale is not None and cfg.window_scale:
            self.snd_wscale = neg.snd_wscale
            self.rcv_wscale = scale_for(cfg.rcv_buf)
        else:
            self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = neg.sack_ok and cfg.sack
        self.ts_ok = neg.ts_ok and cfg.timestamps
        self.ts_recent = neg.ts_recent
        self.mss = max(64, min(neg.peer_mss, cfg.mss) - self._option_room())

    def _option_room(self) -> int:
        """Option bytes every segment carries (timestamps, the client cookie)."""
        room = TS_OPTION_LEN if self.ts_ok else 0
        if self.client_cookie is not None:
            room += CLIENT_COOKIE_LEN
        return room

    # ------------------------------------------------------------------ helpers

    def wire(self, pos: int) -> int:
        """The 32-bit sequence number of send position ``pos``."""
        return (self.iss + pos) & SEQ_MASK

    def _unwrap_ack(self, ack: int) -> int:
        return self.snd_una + seq_diff(ack, self.wire(self.snd_una))

    @property
    def data_end(self) -> int:
        """Send position just after the last byte the application has queued."""
        return self.snd_buf_base + len(self.sndbuf)

    @property
    def fin_sent(self) -> bool:
        return self.fin_queued and self.snd_max > self.data_end

    def ts_now(self, now: float) -> int:
        return (int(now * 1000) + self.ts_offset) & SEQ_MASK

    def _notify(self) -> None:
        for cb in list(self.watchers):
            cb(self)

    def _set_state(self, state: TcpState) -> None:
        """The one place the state changes: along an edge of ``netfast.tcp.state``'s table."""
        if state != self.state:
            check_transition(self.state, state)
            self.state = state
            self._notify()

    def _drop(self, error: str | None) -> None:
        """The connection is over (reset, timed out, or closed): no timers, nothing to send."""
        if error is not None and self.error is None:
            self.error = error
            self.counters[f"tcp.conn.{error.lower()}"] += 1
        self.t_rexmt = self.t_persist = self.t_delack = self.t_keep = self.t_2msl = None
        self.t_tlp = None
        self.ack_now = False
        self.reass.clear()
        if self.state != TcpState.CLOSED:
            check_transition(self.state, TcpState.CLOSED)
            self.state = TcpState.CLOSED
        self._notify()

    @property
    def closed(self) -> bool:
        return self.state == TcpState.CLOSED

    # ------------------------------------------------------------------ application side

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue up to the free space of the send buffer; returns the bytes taken (0 when full).

        Raises ``ConnectionResetError``/``TimeoutError`` after such an error, ``BrokenPipeError``
        after :meth:`shutdown` or in a state that cannot send."""
        self._raise_error()
        if self.fin_queued or self.state not in (
            TcpState.SYN_SENT,
            TcpState.SYN_RECEIVED,
            TcpState.ESTABLISHED,
            TcpState.CLOSE_WAIT,
        ):
            raise BrokenPipeError("the connection cannot send any more")
        room = self.config.snd_buf - len(self.sndbuf)
        if room <= 0:
            return 0
        take = data[:room] if len(data) > room else data
        self.sndbuf += take
        return len(take)

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes in order; ``b""`` at end of stream.  Raises
        ``BlockingIOError`` when nothing is there yet, or the connection's error."""
        if self.rcvbuf:
            before = self._window_bytes()
            data = bytes(memoryview(self.rcvbuf)[:bufsize])
            del self.rcvbuf[:bufsize]
            self._maybe_window_update(before)
            return data
        if self.fin_rcvd:
            return b""
        self._raise_error()
        if self.state in (TcpState.CLOSED, TcpState.TIME_WAIT):
            return b""
        raise BlockingIOError("no data yet")

    def _raise_error(self) -> None:
        if self.error == "ECONNRESET":
            raise ConnectionResetError("connection reset by peer")
        if self.error == "ECONNREFUSED":
            raise ConnectionRefusedError("connection refused")
        if self.error == "ETIMEDOUT":
            raise TimeoutError("connection timed out")
        if self.error == "ECONNABORTED":
            raise ConnectionAbortedError("connection aborted")

    def shutdown(self) -> None:
        """No more data from us: a FIN follows the queued data (half close)."""
        if self.fin_queued or self.state in (TcpState.CLOSED, TcpState.TIME_WAIT):
            return
        if self.state == TcpState.SYN_SENT:
            self._drop(None)
            return
        self.fin_queued = True
        if self.state in (TcpState.SYN_RECEIVED, TcpState.ESTABLISHED):
            self._set_state(TcpState.FIN_WAIT_1)
        elif self.state == TcpState.CLOSE_WAIT:
            self._set_state(TcpState.LAST_ACK)

    def close(self) -> None:
        """The application lets go.  Unread received data makes it an abortive close (RST, as
        RFC 2525 2.17 recommends); otherwise a graceful one that finishes in the background."""
        self.orphan = True
        if self.rcvbuf and self.state in SYNCHRONIZED:
            self.counters["tcp.conn.close_unread"] += 1
            self.abort()
            return
        self.shutdown()

    def abort(self) -> None:
        """Abortive close: send RST, forget everything (SO_LINGER with a zero timeout)."""
        self.orphan = True
        if self.state != TcpState.TIME_WAIT and (
            self.state in SYNCHRONIZED or self.state == TcpState.SYN_RECEIVED
        ):
            self.out.append(self._segment(self.snd_nxt, 0, RST | ACK, None))
        self._drop("ECONNABORTED" if self.error is None else None)

    def readiness(self) -> tuple[int, int, bool, bool]:
        """(bytes readable, bytes writable, end of stream, error) for the event queue."""
        writable = 0
        if (
            self.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)
            or (self.state == TcpState.SYN_RECEIVED and self.syn_data_accepted)
        ) and not self.fin_queued:
            writable = max(0, self.config.snd_buf - len(self.sndbuf))
        eof = self.fin_rcvd or self.state == TcpState.CLOSED
        return len(self.rcvbuf), writable, eof, self.error is not None

    # ------------------------------------------------------------------ receive window

    def _window_bytes(self) -> int:
        return max(0, self.config.rcv_buf - len(self.rcvbuf))

    def _maybe_window_update(self, before: int) -> None:
        # Receiver SWS avoidance (RFC 9293 3.8.6.2.2): announce a reopened window only when it
        # grew by two segments or half the buffer.
        after = self._window_bytes()
        adv = seq_diff(self.rcv_adv, self.rcv_nxt)
        if after - max(adv, 0) >= min(2 * self.mss, self.config.rcv_buf // 2) and after > before:
            self.ack_now = True
            self._notify()

    def _window_field(self, syn: bool) -> int:
        win = self._window_bytes()
        if syn:
            return min(win, 0xFFFF)
        adv = seq_diff(self.rcv_adv, self.rcv_nxt)
        if win < adv:
            win = adv  # never shrink the window (RFC 9293 3.8.6.2.2)
        elif win < min(self.config.rcv_buf // 4, self.mss) and win - max(adv, 0) < self.mss:
            win = max(adv, 0)
        field = min(win >> self.rcv_wscale, 0xFFFF)
        edge = (self.rcv_nxt + (field << self.rcv_wscale)) & SEQ_MASK
        if seq_gt(edge, self.rcv_adv):
            self.rcv_adv = edge
        return field

    # ------------------------------------------------------------------ output (netfast.tcp.output)

    # Functions of netfast.tcp.output, bound here so a call costs what a method call does.
    _options = _output._options
    _segment = _output._segment
    _syn_segment = _output._syn_segment
    _fast_synack = _output._fast_synack
    output = _output.tcp_output
    _max_seg = _output._max_seg
    _data_output = _output._data_output
    _advance = _output._advance
    _arm_persist = _output._arm_persist
    _retransmit = _output._retransmit
    _pipe = _output._pipe
    _lost_retransmissions = _output._lost_retransmissions
    _sack_output = _output._sack_output

    @property
    def _fin_acked(self) -> bool:
        return self.fin_queued and self.snd_una > self.data_end

    # ------------------------------------------------------------------ timers (netfast.tcp.timer)

    poll_at = _timer.tcp_poll_at
    poll = _timer.tcp_poll
    _arm_tlp = _timer._arm_tlp
    _tail_loss_probe = _timer._tail_loss_probe
    _rexmt_timeout = _timer._rexmt_timeout
    _keep_timeout = _timer._keep_timeout
    _arm_keepalive = _timer._arm_keepalive
    _enter_time_wait = _timer._enter_time_wait

    # ------------------------------------------------------------------ RTT (RFC 6298)

    def _rtt_sample(self, r: float) -> None:
        self.rtt.sample(r)
        self.backoff = 0

    # ------------------------------------------------------------------ input (netfast.tcp.input)

    input = _input.tcp_input
    _input_syn_sent = _input._input_syn_sent
    _acceptable = _input._acceptable
    _invalid_ack = _input._invalid_ack
    _challenge_ack = _input._challenge_ack
    _input_synchronized = _input._input_synchronized
    _process_ack = _input._process_ack
    _dupack = _input._dupack
    _enter_recovery = _input._enter_recovery
    _congestion_ack = _input._congestion_ack
    _receive_text = _input._receive_text
    _receive_fin = _input._receive_fin
    _sack_update = _input._sack_update

    # ------------------------------------------------------------------ ICMP

    def pmtu_update(self, mtu: int) -> None:
        """ICMP fragmentation needed (RFC 1191): shrink the MSS and resend what is outstanding."""
        hdr = 40 + self._option_room()
        new = max(64, mtu - hdr)
        if new < self.mss:
            self.counters["tcp.pmtu.lowered"] += 1
            self.mss = new
            if self.snd_max > self.snd_una:
                self.snd_nxt = self.snd_una  # resend in smaller segments
