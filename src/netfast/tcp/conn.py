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

Segment processing follows RFC 9293 section 3.10.7 ("SEGMENT ARRIVES") step by step, with
RFC 5961's hardening: an RST is acted on only when its sequence number is exactly ``RCV.NXT`` (one
in the window earns a challenge ACK), a SYN on a synchronized connection earns a challenge ACK,
and an ACK outside ``[SND.UNA - MAX.SND.WND, SND.NXT]`` is dropped with an ACK.  Challenge ACKs
share a per-second budget (:class:`ChallengeAckLimiter`) owned by the layer.  Every ACK sent in
answer to an unacceptable segment without data (out of window, failing PAWS, an ACK out of range)
also obeys a per-connection limit, ``TcpConfig.invalid_ratelimit`` (Linux's
``tcp_invalid_ratelimit``, counted in ``tcp.out.invalid_ack_ratelimited``): otherwise a spoofed
segment that puts two hosts' sequence spaces out of step makes them ACK each other forever.  An
acceptable ACK is never answered by an ACK.

Sequence spaces.  The send side keeps positions as unwrapped integers counted from the ISS (the
SYN is position 0, the first data byte position 1); the 32-bit wire value is ``(iss + pos) mod
2**32``.  That makes every comparison on the sender an ordinary integer comparison, immune to
wrap-around bugs; incoming acknowledgment numbers are unwrapped relative to ``SND.UNA``.  The
receive side keeps ``RCV.NXT`` as a wire value (the reassembly queue works on wire values).

Options: MSS, window scale and timestamps with PAWS (RFC 7323), SACK-permitted and SACK (RFC 2018).
Loss recovery: RTO per RFC 6298 with exponential backoff and Karn's rule (timestamps give an RTT
sample on every ACK that advances ``SND.UNA``); fast retransmit and NewReno (RFC 6582) without SACK;
the conservative SACK-based recovery of RFC 6675 (scoreboard, ``IsLost``, ``pipe``, ``NextSeg``)
with SACK.  Congestion control is NewReno's slow start / congestion avoidance with appropriate
byte counting (RFC 3465, L = 2) and an initial window of RFC 6928.  Delayed ACKs (every second
full segment, else a timer), Nagle's algorithm, sender and receiver silly-window avoidance, zero-
window probes (persist timer), keepalive, TIME_WAIT for 2 MSL and path MTU updates from ICMP.

Received out-of-order data goes to the paper's coalescing reassembly queue
(:class:`netfast.tcp.reass.ReassemblyQueue`), whose block list also produces the SACK blocks.

Bad input never raises: a segment that breaks a rule is dropped and counted under a named counter
in ``counters`` (``tcp.in.paws``, ``tcp.in.outside_window``, ``tcp.in.challenge_ack`` ...).
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from netfast.tcp.cubic import Cubic
from netfast.tcp.reass import ReassemblyQueue
from netfast.wire.seq import SEQ_MASK, seq_diff, seq_gt, seq_le, seq_lt
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import TcpOptions

# Plain ints: flag arithmetic on IntFlag members costs an enum call per operation.
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
_FLAGS = [TcpFlags(f) for f in range(0x200)]

#: Bytes a timestamps option costs in every segment (10, padded to 12 with two NOPs).
TS_OPTION_LEN = 12
#: RFC 6675's DupThresh.
DUP_THRESH = 3


class TcpState(enum.IntEnum):
    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


#: States in which the connection is synchronized (RFC 9293 3.5: both SYNs seen).
SYNCHRONIZED = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    }
)
#: States in which received data is accepted (RFC 9293 3.10.7.4, seventh step).
_RECEIVING = frozenset({TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2})


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Per-connection settings; times in seconds, sizes in bytes."""

    mss: int = 1460
    """The MSS announced in our SYN.  With ``mss_from_mtu`` the TCP layer replaces it by what
    the route's interface MTU allows (MTU - 40)."""
    mss_from_mtu: bool = True
    rcv_buf: int = 1 << 20
    snd_buf: int = 1 << 20
    window_scale: bool = True
    sack: bool = True
    timestamps: bool = True
    nagle: bool = True
    delayed_ack: float = 0.04
    rto_initial: float = 1.0
    rto_min: float = 0.2
    rto_max: float = 60.0
    max_retransmits: int = 12
    """RTOs in a row before the connection is dropped with ETIMEDOUT."""
    syn_retransmits: int = 6
    msl: float = 30.0
    """Maximum segment lifetime: TIME_WAIT lasts 2 MSL (FreeBSD's net.inet.tcp.msl is 30 s)."""
    fin_wait2_timeout: float = 60.0
    """How long an orphaned connection (closed by the application) may sit in FIN_WAIT_2."""
    keepalive: bool = False
    keep_idle: float = 7200.0
    keep_interval: float = 75.0
    keep_count: int = 8
    persist_min: float = 0.2
    persist_max: float = 60.0
    tlp: bool = True
    """Tail loss probes (RFC 8985 section 7) with SACK."""
    cc: str = "cubic"
    """Congestion avoidance: ``"cubic"`` (RFC 9438, the default: as fast as NewReno on short
    lossy paths, 2.2x at 100 ms RTT and 0.1% loss -- ``netfast bench tcp --only cc``) or
    ``"newreno"`` (RFC 5681).  Loss recovery is the same for both (RFC 6675 with SACK, RFC 6582
    without)."""
    max_holes: int = 32
    """Bound on the reassembly queue's holes (the paper's defence against hole-making attacks).
    32, not fewer: at 2% loss a window of a hundred segments keeps more than 8 holes open for an
    RTT often enough, and every segment refused at the bound must be sent again (with 8, the
    CUBIC rows of ``netfast bench tcp --only cc`` resend far more than they lose)."""
    tso_max: int = 0
    """When non-zero, a segment may carry up to this many payload bytes (a multiple of the MSS)
    for a link that segments it (TSO); 0 sends wire-sized segments only."""
    invalid_ratelimit: float = 0.5
    """Least time between two ACKs this connection sends in answer to unacceptable segments
    that carry no data (out of window, failing PAWS, acknowledging what was never sent or long
    since acknowledged): Linux's ``tcp_invalid_ratelimit``.  Without it two hosts whose sequence
    spaces a spoofed segment put out of step answer each other's ACKs forever.  0 disables."""

    def __post_init__(self) -> None:
        if not 64 <= self.mss <= 65495:
            raise ValueError(f"mss = {self.mss}: outside 64..65495")
        if self.rcv_buf < 1 or self.snd_buf < 1:
            raise ValueError("buffer sizes must be positive")
        if self.cc not in ("newreno", "cubic"):
            raise ValueError(f"cc = {self.cc!r}: must be 'newreno' or 'cubic'")
        if self.rcv_buf > (0xFFFF << 14):
            raise ValueError(f"rcv_buf = {self.rcv_buf}: above the largest scalable window")
        if not 0.0 <= self.invalid_ratelimit <= 3600.0:  # also refuses nan
            raise ValueError(
                f"invalid_ratelimit = {self.invalid_ratelimit}: outside 0..3600 seconds"
            )


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


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What a handshake settled (from the SYN cache, or from a SYN/SYN-ACK exchange)."""

    peer_mss: int = 536
    snd_wscale: int | None = None
    """The peer's shift (None: the peer did not offer window scaling; then neither side scales)."""
    sack_ok: bool = False
    ts_ok: bool = False
    ts_recent: int = 0


def negotiated_from_syn(seg: TcpRepr, config: TcpConfig) -> Negotiated:
    """What a SYN (or SYN-ACK) offered, as far as ``config`` enables it on our side (RFC 9293
    3.7.1: MSS 536 when absent; RFC 7323, RFC 2018: an option is used only when both offer it)."""
    opts = seg.options
    ts = opts.timestamps
    return Negotiated(
        peer_mss=opts.mss or 536,
        snd_wscale=opts.wscale if config.window_scale else None,
        sack_ok=opts.sack_permitted and config.sack,
        ts_ok=ts is not None and config.timestamps,
        ts_recent=ts.tsval if ts is not None else 0,
    )


def scale_for(buf: int) -> int:
    """The window-scale shift that lets a window field describe ``buf`` bytes."""
    shift = 0
    while shift < 14 and (buf >> shift) > 0xFFFF:
        shift += 1
    return shift


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
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.dupacks = 0
        self.recover = 0
        self.in_recovery = False
        self.high_rxt = 0
        self.sacked: list[list[int]] = []  # scoreboard: disjoint sorted [start, end) positions
        self.sacked_bytes = 0
        # Retransmissions in recovery not yet known to have arrived: [start, end, snd_max when
        # sent]; and the ones found lost, to be sent again first (_lost_retransmissions).  Both
        # outlive a recovery (the next may begin before the last one's resends arrive) and are
        # forgotten at a timeout.
        self.rxt_marks: list[list[int]] = []
        self.rxt_again: list[list[int]] = []
        self.bytes_acked = 0  # for appropriate byte counting in congestion avoidance
        self.cubic = Cubic() if config.cc == "cubic" else None

        # -- RTT and timers --
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = config.rto_initial
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
        conn.state = TcpState.SYN_SENT
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
        conn = cls(local, remote, iss, config, **kw)  # type: ignore[arg-type]
        conn.irs = irs & SEQ_MASK
        conn.rcv_nxt = (irs + 1) & SEQ_MASK
        conn._apply_negotiated(neg)
        conn.last_ack_sent = conn.rcv_nxt
        conn.rcv_adv = (conn.rcv_nxt + conn._window_bytes()) & SEQ_MASK
        conn.snd_una = conn.snd_nxt = conn.snd_max = 1
        conn.snd_wnd = conn.max_snd_wnd = snd_wnd
        conn.snd_wl1 = conn.rcv_nxt
        conn.snd_wl2 = 1
        conn.cwnd = conn._initial_cwnd()
        conn.state = TcpState.ESTABLISHED
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
        self.mss = max(64, min(neg.peer_mss, cfg.mss) - (TS_OPTION_LEN if self.ts_ok else 0))

    def _initial_cwnd(self) -> int:
        # RFC 6928: min(10 * MSS, max(2 * MSS, 14600)).
        return min(10 * self.mss, max(2 * self.mss, 14600))

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
        if state != self.state:
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
        if self.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT) and not self.fin_queued:
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

    # ------------------------------------------------------------------ segment building

    def _options(self, now: float | None, syn: bool) -> TcpOptions:
        cfg = self.config
        ts = None
        if now is not None and (self.ts_ok or (syn and cfg.timestamps)):
            ts = (self.ts_now(now), self.ts_recent)
        if syn:
            # Our SYN (active or simultaneous open) offers what the config enables; passive
            # opens are answered by the SYN cache.
            return TcpOptions.build(
                mss=cfg.mss,
                wscale=self.rcv_wscale if cfg.window_scale else None,
                sack_permitted=cfg.sack,
                timestamps=ts,
            )
        blocks: tuple[tuple[int, int], ...] = ()
        if self.sack_ok and len(self.reass):
            blocks = tuple(self.reass.sack_blocks(3 if ts is not None else 4))
        if ts is None and not blocks:
            return TcpOptions()
        return TcpOptions.build(timestamps=ts, sack_blocks=blocks)

    def _segment(self, pos: int, length: int, flags: int, now: float | None) -> TcpRepr:
        syn = bool(flags & SYN)
        if flags & ACK:
            self.last_ack_sent = self.rcv_nxt
            self.ack_now = False
            self.segs_unacked = 0
            self.t_delack = None
        payload = b""
        if length:
            start = pos - self.snd_buf_base
            # One copy through a transient view (a bytearray slice would copy twice); the view
            # dies at once, so the buffer stays resizable.
            payload = bytes(memoryview(self.sndbuf)[start : start + length])
        window = self._window_field(syn) if not flags & RST or flags & ACK else 0
        return TcpRepr(
            src_port=self.local[1],
            dst_port=self.remote[1],
            seq=self.wire(pos),
            ack=self.rcv_nxt if flags & ACK else 0,
            flags=_FLAGS[flags],
            window=window,
            options=self._options(now, syn) if not flags & RST else TcpOptions(),
            payload=payload,
        )

    # ------------------------------------------------------------------ output

    def output(self, now: float) -> list[TcpRepr]:
        """Every segment to send now (data the windows allow, retransmissions, FIN, ACKs)."""
        out = self.out
        self.out = []
        if self.state == TcpState.CLOSED:
            return out
        if self.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            if self.snd_nxt == 0:
                flags = SYN if self.state == TcpState.SYN_SENT else SYN | ACK
                out.append(self._segment(0, 0, flags, now))
                if self.backoff == 0:
                    self.rtt_pos, self.rtt_time = 0, now
                self.snd_nxt = 1
                self.snd_max = max(self.snd_max, 1)
                if self.t_rexmt is None:
                    self.t_rexmt = now + self.rto
            elif self.ack_now and self.state == TcpState.SYN_RECEIVED:
                out.append(self._segment(0, 0, SYN | ACK, now))
            return out
        if self.state in SYNCHRONIZED and self.state != TcpState.TIME_WAIT:
            if self.in_recovery and self.sack_ok:
                self._sack_output(now, out)
            self._data_output(now, out)
        if self.ack_now:
            out.append(self._segment(self.snd_nxt, 0, ACK, now))
        return out

    def _max_seg(self) -> int:
        tso = self.config.tso_max
        if tso > self.mss:
            return (tso // self.mss) * self.mss
        return self.mss

    def _data_output(self, now: float, out: list[TcpRepr]) -> None:
        """New data and go-back-N retransmission from ``snd_nxt`` within min(cwnd, snd_wnd)."""
        mss = self.mss
        max_seg = self._max_seg()
        while True:
            data_end = self.data_end
            cut = 0  # after a timeout: the next SACKed block, where a resend must stop
            if self.sacked and self.snd_nxt < self.snd_max:
                for a, b in self.sacked:
                    if b <= self.snd_nxt:
                        continue
                    if a <= self.snd_nxt:
                        # Arrived already: skip it (the scoreboard outlives the timeout).
                        self.snd_nxt = min(b, self.snd_max)
                        self.counters["tcp.out.rexmt_sack_skip"] += 1
                        continue
                    cut = a
                    break
            avail = data_end - self.snd_nxt
            if self.in_recovery and self.sack_ok:
                wnd = self.snd_wnd  # the pipe in _sack_output limited what is in flight
                limit = self.snd_una + wnd
                if self._pipe() + min(mss, max(avail, 0)) > self.cwnd:
                    return
            else:
                # Limited transmit (RFC 3042): each of the first two duplicate ACKs lets one
                # new segment out beyond cwnd, so a small window still earns three dupacks.
                extra = min(self.dupacks, DUP_THRESH - 1) * mss if self.dupacks else 0
                wnd = min(self.snd_wnd, self.cwnd + extra)
                limit = self.snd_una + wnd
            usable = limit - self.snd_nxt
            fin_due = self.fin_queued and self.snd_nxt <= data_end and not self._fin_acked
            if avail > 0:
                if usable <= 0:
                    if self.force_probe and self.snd_wnd == 0:
                        # A zero-window probe: the first unacknowledged byte, beyond the window
                        # (RFC 9293 3.8.6.1).  It does not start the retransmission timer: a
                        # peer that keeps its window closed is probed forever, never dropped.
                        self.force_probe = False
                        self.persisting = True
                        self.counters["tcp.out.window_probe"] += 1
                        out.append(self._segment(self.snd_una, 1, ACK, now))
                        self.snd_nxt = self.snd_una + 1
                        self.snd_max = max(self.snd_max, self.snd_nxt)
                        self.t_rexmt = None
                    self._arm_persist(now)
                    return
                length = min(avail, usable, max_seg)
                if cut and self.snd_nxt + length > cut:
                    length = cut - self.snd_nxt  # a hole before SACKed data: resend it whole
                elif length < mss and length < avail:
                    # Sender SWS avoidance: wait for room for a full segment unless the window
                    # itself is small (RFC 9293 3.8.6.2.1).
                    if length < self.max_snd_wnd // 2:
                        self._arm_persist(now)
                        return
                elif (
                    length < mss
                    and self.config.nagle
                    and self.snd_max > self.snd_una
                    and self.snd_nxt >= self.snd_max
                    and not (fin_due and length == avail)
                ):
                    return  # Nagle: one small segment in flight at a time
                flags = ACK
                if length == avail:
                    flags |= PSH
                    if fin_due:
                        flags |= FIN
                out.append(self._segment(self.snd_nxt, length, flags, now))
                self._advance(length + (1 if flags & FIN else 0), now)
                continue
            if fin_due and self.snd_nxt == data_end:
                out.append(self._segment(self.snd_nxt, 0, ACK | FIN, now))
                self._advance(1, now)
            return

    @property
    def _fin_acked(self) -> bool:
        return self.fin_queued and self.snd_una > self.data_end

    def _advance(self, n: int, now: float) -> None:
        if self.snd_nxt == self.snd_max and self.rtt_pos is None and not self.ts_ok:
            self.rtt_pos = self.snd_nxt
            self.rtt_time = now
        self.snd_nxt += n
        if self.snd_nxt > self.snd_max:
            self.snd_max = self.snd_nxt
        if self.t_rexmt is None:
            self.t_rexmt = now + self.rto
            self.t_persist = None
        if self.sack_ok:
            self._arm_tlp(now)

    def _arm_persist(self, now: float) -> None:
        if (
            self.t_rexmt is None
            and self.t_persist is None
            and (self.snd_max == self.snd_una or self.persisting)
        ):
            delay = max(self.rto, self.config.persist_min) * (1 << self.persist_backoff)
            self.t_persist = now + min(delay, self.config.persist_max)

    def _retransmit(self, pos: int, length: int, now: float, out: list[TcpRepr]) -> int:
        """Resend ``length`` bytes (at most one segment) from ``pos``; returns bytes sent."""
        data_end = self.data_end
        length = min(length, self.mss, max(0, min(data_end, self.snd_max) - pos))
        flags = ACK
        if length == 0:
            if self.fin_sent and pos == data_end:
                out.append(self._segment(pos, 0, ACK | FIN, now))
                return 1
            return 0
        if pos + length == data_end and self.fin_sent:
            flags |= FIN
        out.append(self._segment(pos, length, flags, now))
        self.counters["tcp.out.retransmit"] += 1
        self.counters["tcp.out.retransmit_bytes"] += length
        if self.in_recovery and self.sack_ok:
            self.rxt_marks.append([pos, pos + length, self.snd_max])
        if self.rtt_pos is not None and self.rtt_pos < pos + length:
            self.rtt_pos = None  # Karn: no sample from retransmitted data
        if self.t_rexmt is None:
            self.t_rexmt = now + self.rto
        return length

    # ------------------------------------------------------------------ SACK scoreboard (RFC 6675)

    def _sack_update(self, blocks: tuple[tuple[int, int], ...]) -> None:
        for left, right in blocks:
            lo = self._unwrap_ack(left)
            hi = self._unwrap_ack(right)
            if hi <= lo or lo < self.snd_una or hi > self.snd_max:
                self.counters["tcp.in.sack_invalid"] += 1
                continue
            self._sack_add(lo, hi)

    def _sack_add(self, lo: int, hi: int) -> None:
        sb = self.sacked
        merged: list[list[int]] = []
        i = 0
        while i < len(sb) and sb[i][1] < lo:
            merged.append(sb[i])
            i += 1
        while i < len(sb) and sb[i][0] <= hi:
            lo = min(lo, sb[i][0])
            hi = max(hi, sb[i][1])
            i += 1
        merged.append([lo, hi])
        merged.extend(sb[i:])
        self.sacked = merged
        self.sacked_bytes = sum(b - a for a, b in merged)

    def _sack_trim(self) -> None:
        una = self.snd_una
        if self.sacked and self.sacked[0][0] < una:
            sb = [b for b in self.sacked if b[1] > una]
            if sb and sb[0][0] < una:
                sb[0] = [una, sb[0][1]]
            self.sacked = sb
            self.sacked_bytes = sum(b - a for a, b in sb)

    def _lost_frontier(self) -> int:
        """Positions below this are ``IsLost`` unless SACKed: DupThresh segments' worth of SACKed
        bytes lie above them (RFC 6675 section 4)."""
        need = DUP_THRESH * self.mss
        acc = 0
        by_bytes = self.snd_una
        for lo, hi in reversed(self.sacked):
            if acc + (hi - lo) >= need:
                by_bytes = hi - (need - acc)
                break
            acc += hi - lo
        # Or DupThresh discontiguous SACKed ranges above (the same section's other rule).
        sb = self.sacked
        by_ranges = sb[-DUP_THRESH][0] if len(sb) >= DUP_THRESH else self.snd_una
        return max(by_bytes, by_ranges)

    def _pipe(self) -> int:
        """RFC 6675 SetPipe(): outstanding bytes not SACKed and not deemed lost, plus the lost
        ones already retransmitted."""
        frontier = self._lost_frontier()
        outstanding = self.snd_max - self.snd_una - self.sacked_bytes
        lost = self._unsacked_between(self.snd_una, frontier)
        rxt = self._unsacked_between(self.snd_una, min(self.high_rxt, frontier))
        return max(0, outstanding - lost + rxt)

    def _unsacked_between(self, lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        total = hi - lo
        for a, b in self.sacked:
            if b <= lo:
                continue
            if a >= hi:
                break
            total -= min(b, hi) - max(a, lo)
        return total

    def _next_hole(self, start: int, frontier: int) -> tuple[int, int] | None:
        """The first unSACKed range at or after ``start`` below ``frontier``."""
        pos = start
        for a, b in self.sacked:
            if b <= pos:
                continue
            if a > pos:
                end = min(a, frontier)
                return (pos, end) if end > pos else None
            pos = b
        end = min(frontier, self.snd_max)
        return (pos, end) if end > pos else None

    def _lost_retransmissions(self) -> None:
        """Retransmissions of this recovery that are lost too: DupThresh segments' worth of data
        sent after one has been SACKed while it has not arrived -- the rule that deems an
        original segment lost (RFC 6675 IsLost), applied to the retransmission's send order
        instead of its sequence position, as Linux's lost-retransmit marking and RACK (RFC
        8985) do.  Without this, a lost retransmission waits for the retransmission timer.
        The range goes to :attr:`rxt_again`, sent ahead of other holes; the window is not
        reduced again within the recovery."""
        if not self.rxt_marks or not self.sacked:
            return
        need = DUP_THRESH * self.mss
        una = self.snd_una
        keep: list[list[int]] = []
        for mark in self.rxt_marks:
            lo, hi, sent_at = mark
            lo = max(lo, una)
            if hi <= lo or self._unsacked_between(lo, hi) == 0:
                continue  # acknowledged or SACKed: it arrived
            above = 0
            for a, b in reversed(self.sacked):
                if b <= sent_at:
                    break
                above += b - max(a, sent_at)
            if above >= need:
                self.rxt_again.append([lo, hi])
                self.counters["tcp.recovery.lost_retransmit"] += 1
            else:
                keep.append(mark)
        self.rxt_marks = keep

    def _sack_output(self, now: float, out: list[TcpRepr]) -> None:
        """RFC 6675 section 5 step (C): while cwnd - pipe >= 1 SMSS, NextSeg() rule 1 (a lost
        hole not yet retransmitted) -- new data (rule 2) is left to :meth:`_data_output`."""
        pipe = self._pipe()
        guard = 0
        again = self.rxt_again
        while again and self.cwnd - pipe >= self.mss and guard < 1024:
            guard += 1
            lo, hi = again[0]
            hole = self._next_hole(max(lo, self.snd_una), hi)
            sent = 0 if hole is None else self._retransmit(hole[0], hole[1] - hole[0], now, out)
            if sent == 0 or hole is None or hole[0] + sent >= hi:
                again.pop(0)
            else:
                again[0][0] = hole[0] + sent
            pipe += sent
        while self.cwnd - pipe >= self.mss and guard < 1024:
            guard += 1
            frontier = self._lost_frontier()
            hole = self._next_hole(max(self.high_rxt, self.snd_una), frontier)
            if hole is None:
                return
            sent = self._retransmit(hole[0], hole[1] - hole[0], now, out)
            if sent == 0:
                return
            self.high_rxt = hole[0] + sent
            pipe += sent

    # ------------------------------------------------------------------ timers

    def poll_at(self) -> float | None:
        """The earliest time :meth:`poll` has work, or None."""
        ts = [
            t
            for t in (
                self.t_rexmt,
                self.t_persist,
                self.t_delack,
                self.t_keep,
                self.t_2msl,
                self.t_tlp,
            )
            if t is not None
        ]
        return min(ts) if ts else None

    def poll(self, now: float) -> None:
        """Run every due timer (its segments come out of the next :meth:`output`)."""
        if self.t_2msl is not None and now >= self.t_2msl:
            self.t_2msl = None
            if self.state == TcpState.FIN_WAIT_2:
                self.counters["tcp.conn.fin_wait2_timeout"] += 1
            self._drop(None)
            return
        if self.t_delack is not None and now >= self.t_delack:
            self.t_delack = None
            self.ack_now = True
            self.counters["tcp.out.delayed_ack"] += 1
        if self.t_tlp is not None and now >= self.t_tlp:
            self.t_tlp = None
            if self.snd_max > self.snd_una and not self.in_recovery:
                self._tail_loss_probe(now)
        if self.t_rexmt is not None and now >= self.t_rexmt:
            self.t_rexmt = None
            self._rexmt_timeout(now)
        if self.t_persist is not None and now >= self.t_persist:
            self.t_persist = None
            self.persist_backoff = min(self.persist_backoff + 1, 12)
            self.force_probe = True
        if self.t_keep is not None and now >= self.t_keep:
            self.t_keep = None
            self._keep_timeout(now)

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 section 7: a probe timeout of two smoothed RTTs (plus a delayed ACK when one
        segment is in flight) after a transmission, so a lost tail is repaired by SACK recovery
        instead of a retransmission timeout."""
        if (
            not self.sack_ok
            or not self.config.tlp
            or self.srtt is None
            or self.in_recovery
            or self.tlp_sent
            or self.snd_una < self.recover  # still repairing after a timeout
        ):
            self.t_tlp = None
            return
        pto = 2 * self.srtt
        if self.snd_max - self.snd_una <= self.mss:
            pto += self.config.delayed_ack
        pto = max(pto, 0.01)
        if self.t_rexmt is not None and now + pto >= self.t_rexmt:
            self.t_tlp = None
            return
        self.t_tlp = now + pto

    def _tail_loss_probe(self, now: float) -> None:
        """Send new data if there is some the receiver's window allows, else the last segment
        again: its SACK (or ACK) tells the sender what is missing."""
        self.counters["tcp.out.tlp"] += 1
        self.tlp_sent = True
        data_end = self.data_end
        if (
            self.snd_nxt == self.snd_max
            and data_end > self.snd_nxt
            and (self.snd_una + self.snd_wnd > self.snd_nxt)
        ):
            length = min(
                self.mss, data_end - self.snd_nxt, self.snd_una + self.snd_wnd - self.snd_nxt
            )
            flags = ACK | (PSH if length == data_end - self.snd_nxt else 0)
            self.out.append(self._segment(self.snd_nxt, length, flags, now))
            self._advance(length, now)
            return
        end = min(self.snd_max, data_end)
        start = max(self.snd_una, end - self.mss)
        if end > start:
            self._retransmit(start, end - start, now, self.out)
        elif self.fin_sent:
            self._retransmit(data_end, 0, now, self.out)

    def _rexmt_timeout(self, now: float) -> None:
        cfg = self.config
        self.backoff += 1
        limit = cfg.syn_retransmits if self.state == TcpState.SYN_SENT else cfg.max_retransmits
        if self.backoff > limit:
            self.counters["tcp.conn.rexmt_drop"] += 1
            if self.state not in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
                self.out.append(self._segment(self.snd_nxt, 0, RST | ACK, None))
            self._drop("ETIMEDOUT")
            return
        self.counters["tcp.timer.rexmt"] += 1
        self.t_tlp = None
        self.tlp_sent = False
        self.rto = min(self.rto * 2, cfg.rto_max)
        self.rtt_pos = None
        if self.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            self.snd_nxt = 0  # output() sends the SYN again
            self.t_rexmt = None
            return
        # RFC 5681 (4) and RFC 6582 4.2: collapse the window, remember how far we had sent.
        flight = self.snd_max - self.snd_una
        if self.backoff == 1:
            self.ssthresh = self._decrease(flight)
        self.cwnd = self.mss
        self.recover = self.snd_max
        self.in_recovery = False
        self.dupacks = 0
        self.rxt_marks = []
        self.rxt_again = []
        # RFC 2018 8 asks a sender to forget what was SACKed after a timeout, in case the
        # receiver reneged; RFC 6675 5.1 and its erratum 1610 allow keeping it where reneging is
        # detected (_process_ack: an ACK into SACKed data clears the scoreboard), as Linux
        # does.  Kept, the go-back-N that follows resends only what did not arrive.
        self.high_rxt = self.snd_una
        self.snd_nxt = self.snd_una
        self.t_rexmt = now + self.rto

    def _keep_timeout(self, now: float) -> None:
        cfg = self.config
        if self.state not in SYNCHRONIZED or self.state == TcpState.TIME_WAIT:
            return
        if self.keep_probes >= cfg.keep_count:
            self.counters["tcp.conn.keepalive_drop"] += 1
            self.out.append(self._segment(self.snd_nxt, 0, RST | ACK, None))
            self._drop("ETIMEDOUT")
            return
        # The probe carries SND.UNA - 1 so the peer must answer with an ACK (RFC 9293 3.8.4).
        self.keep_probes += 1
        self.counters["tcp.out.keepalive_probe"] += 1
        probe = self._segment(self.snd_una, 0, ACK, now)
        self.out.append(dataclasses.replace(probe, seq=(probe.seq - 1) & SEQ_MASK))
        self.t_keep = now + cfg.keep_interval

    def _arm_keepalive(self, now: float) -> None:
        if self.config.keepalive:
            self.t_keep = now + self.config.keep_idle
            self.keep_probes = 0

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(TcpState.TIME_WAIT)
        self.t_rexmt = self.t_persist = self.t_keep = self.t_tlp = None
        self.t_2msl = now + 2 * self.config.msl

    # ------------------------------------------------------------------ RTT (RFC 6298)

    def _rtt_sample(self, r: float) -> None:
        r = max(r, 0.0)
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        rto = self.srtt + max(0.001, 4 * self.rttvar)
        self.rto = min(max(rto, self.config.rto_min), self.config.rto_max)
        self.backoff = 0

    # ------------------------------------------------------------------ input

    def input(self, seg: TcpRepr, now: float) -> None:
        """Process one segment for this connection (RFC 9293 3.10.7)."""
        self.counters["tcp.in.segments"] += 1
        if self.state == TcpState.CLOSED:
            self.counters["tcp.in.closed"] += 1
            return
        if self.state == TcpState.SYN_SENT:
            self._input_syn_sent(seg, now)
            return
        self._input_synchronized(seg, now)

    def _input_syn_sent(self, seg: TcpRepr, now: float) -> None:
        flags = int(seg.flags)
        if flags & ACK:
            ack = self._unwrap_ack(seg.ack)
            if ack <= 0 or ack > self.snd_max:
                self.counters["tcp.in.syn_sent_bad_ack"] += 1
                if not flags & RST:
                    self.out.append(
                        TcpRepr(self.local[1], self.remote[1], seg.ack, 0, TcpFlags.RST, 0)
                    )
                return
        if flags & RST:
            if flags & ACK:
                self.counters["tcp.in.refused"] += 1
                self._drop("ECONNREFUSED")
            else:
                self.counters["tcp.in.rst_ignored"] += 1
            return
        if not flags & SYN:
            self.counters["tcp.in.syn_sent_no_syn"] += 1
            return
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & SEQ_MASK
        self._apply_negotiated(negotiated_from_syn(seg, self.config))
        self.rcv_adv = self.rcv_nxt
        self.cwnd = self._initial_cwnd()
        if flags & ACK:
            self.snd_una = 1
            # The window of a SYN-ACK is never scaled (RFC 7323 2.2).
            self.snd_wnd = self.max_snd_wnd = seg.window
            self.snd_wl1 = seg.seq
            self.snd_wl2 = 1
            if self.ts_ok and seg.options.timestamps is not None:
                echo = seg.options.timestamps.tsecr
                if echo:
                    self._rtt_sample((self.ts_now(now) - echo) % (1 << 32) / 1000.0)
            elif self.backoff == 0 and self.rtt_pos == 0:
                self._rtt_sample(now - self.rtt_time)
            self.rtt_pos = None
            self.last_ack_sent = self.rcv_nxt
            self.t_rexmt = None
            self.backoff = 0
            self._set_state(TcpState.ESTABLISHED)
            self.counters["tcp.conn.connected"] += 1
            self._arm_keepalive(now)
            self.ack_now = True
            if seg.payload or flags & FIN:
                self._receive_text(seg, now)
            return
        # Simultaneous open: answer with SYN-ACK (RFC 9293 3.5, figure 8).
        self.snd_wnd = self.max_snd_wnd = seg.window
        self.snd_wl1 = seg.seq
        self._set_state(TcpState.SYN_RECEIVED)
        self.snd_nxt = 0
        self.t_rexmt = None
        self.counters["tcp.conn.simultaneous_open"] += 1

    def _acceptable(self, seg: TcpRepr) -> bool:
        """RFC 9293 3.10.7.4's four cases of the sequence-number test."""
        flags = int(seg.flags)
        seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        wnd = max(self._window_bytes(), seq_diff(self.rcv_adv, self.rcv_nxt))
        seq = seg.seq
        nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return seq_le(nxt, seq) and seq_lt(seq, (nxt + wnd) & SEQ_MASK)
        if wnd == 0:
            return False
        end = (seq + seg_len - 1) & SEQ_MASK
        right = (nxt + wnd) & SEQ_MASK
        return (seq_le(nxt, seq) and seq_lt(seq, right)) or (
            seq_le(nxt, end) and seq_lt(end, right)
        )

    def _invalid_ack(
        self, seg: TcpRepr, now: float, reason: str, *, challenge: bool = False
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
        self.counters[reason] += 1
        limited = not (seg.payload or int(seg.flags) & (FIN | SYN) == FIN)
        if limited:
            last = self.last_invalid_ack
            if last is not None and 0.0 <= now - last < self.config.invalid_ratelimit:
                self.counters["tcp.out.invalid_ack_ratelimited"] += 1
                return
        if challenge:
            if not self.challenge.allow(now):
                self.counters["tcp.out.challenge_ack_limited"] += 1
                return
            self.counters["tcp.out.challenge_ack"] += 1
        if limited:
            self.last_invalid_ack = now
        self.ack_now = True

    def _challenge_ack(self, now: float, reason: str) -> None:
        self.counters[reason] += 1
        if self.challenge.allow(now):
            self.counters["tcp.out.challenge_ack"] += 1
            self.ack_now = True
        else:
            self.counters["tcp.out.challenge_ack_limited"] += 1

    def _input_synchronized(self, seg: TcpRepr, now: float) -> None:
        flags = int(seg.flags)
        state = self.state
        ts = seg.options.timestamps if self.ts_ok else None

        # PAWS (RFC 7323 5.3): an old timestamp marks an old duplicate.  Segments that occupy
        # sequence space only: a reordered pure ACK cannot corrupt the stream, and the SACK
        # blocks it carries are still news (Linux accepts such "disordered ACKs" too).
        if (
            ts is not None
            and not flags & RST
            and self.ts_recent
            and seq_lt(ts.tsval, self.ts_recent)
            and (seg.payload or flags & (SYN | FIN))
        ):
            self._invalid_ack(seg, now, "tcp.in.paws")
            return

        # Simultaneous open with crossed SYN-ACKs (RFC 9293 figure 8, line 6): the peer's SYN-ACK
        # repeats its SYN (SEG.SEQ = IRS) and acknowledges ours, which completes the handshake.
        # Its SYN was taken already, so it continues as the ACK that follows a SYN; its window
        # is unscaled, so the field is shifted down to read back no larger after scaling.
        if (
            state == TcpState.SYN_RECEIVED
            and flags & (SYN | ACK | RST) == SYN | ACK
            and seg.seq == self.irs
            and self._unwrap_ack(seg.ack) == self.snd_max
        ):
            flags &= ~SYN
            seg = TcpRepr(
                seg.src_port,
                seg.dst_port,
                self.rcv_nxt,
                seg.ack,
                _FLAGS[flags],
                seg.window >> self.snd_wscale,
                seg.urgent,
                seg.options,
                seg.payload,
            )

        # First: the sequence number.
        if not self._acceptable(seg):
            if flags & RST:
                self.counters["tcp.in.rst_outside_window"] += 1
                return
            if state == TcpState.SYN_RECEIVED and flags & SYN and seg.seq == self.irs:
                self.counters["tcp.in.outside_window"] += 1
                self.ack_now = True  # our SYN-ACK was lost: resend it
                return
            if (
                state == TcpState.TIME_WAIT
                and flags & FIN
                and (seg.seq + len(seg.payload) + 1) & SEQ_MASK == self.rcv_nxt
            ):
                # The peer's FIN again: our last ACK was lost.  ACK it and restart the 2 MSL
                # wait (RFC 9293 3.10.7.4, eighth step; FreeBSD's tcp_twcheck does the same).
                self.t_2msl = now + 2 * self.config.msl
            self._invalid_ack(seg, now, "tcp.in.outside_window")
            return

        # Second: RST (RFC 5961 3.2).
        if flags & RST:
            if seg.seq != self.rcv_nxt:
                self._challenge_ack(now, "tcp.in.rst_in_window")
                return
            self.counters["tcp.in.rst"] += 1
            if state == TcpState.SYN_RECEIVED:
                self._drop("ECONNREFUSED")
            elif state in (TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT):
                self._drop(None)
            else:
                self._drop("ECONNRESET")
            return

        # Fourth: SYN on a synchronized connection (RFC 5961 4.2).
        if flags & SYN:
            if state == TcpState.SYN_RECEIVED and seg.seq == self.irs:
                self.ack_now = True
                return
            self._challenge_ack(now, "tcp.in.syn_in_window")
            return

        # Fifth: ACK.
        if not flags & ACK:
            self.counters["tcp.in.no_ack"] += 1
            return

        ack = self._unwrap_ack(seg.ack)
        if state == TcpState.SYN_RECEIVED:
            if 0 < ack <= self.snd_max:
                self.snd_una = 1
                self.snd_wnd = self.max_snd_wnd = seg.window << self.snd_wscale
                self.snd_wl1 = seg.seq
                self.snd_wl2 = ack
                self.t_rexmt = None
                self.backoff = 0
                self._set_state(TcpState.ESTABLISHED)
                self.counters["tcp.conn.connected"] += 1
                state = self.state
            else:
                self.counters["tcp.in.syn_received_bad_ack"] += 1
                self.out.append(TcpRepr(self.local[1], self.remote[1], seg.ack, 0, TcpFlags.RST, 0))
                return

        if ack > self.snd_max:
            self._invalid_ack(seg, now, "tcp.in.ack_too_much")
            return
        if ack < self.snd_una - self.max_snd_wnd:
            self._invalid_ack(seg, now, "tcp.in.ack_too_old", challenge=True)
            return

        # Timestamps: remember the peer's clock (RFC 7323 4.3) -- only from a segment whose ACK
        # passed, as Linux does: a blind spoof with a wild ACK must not poison PAWS for the
        # real peer's segments.  Nor does it count as a sign of life.
        if ts is not None and seq_le(seg.seq, self.last_ack_sent):
            self.ts_recent = ts.tsval
        self.keep_probes = 0
        self._arm_keepalive(now)

        if self.state != TcpState.TIME_WAIT:
            self._process_ack(seg, ack, now)
            if self.state == TcpState.CLOSED:
                return

        state = self.state
        if state == TcpState.FIN_WAIT_1 and self._fin_acked:
            self._set_state(TcpState.FIN_WAIT_2)
            if self.orphan:
                self.t_2msl = now + self.config.fin_wait2_timeout
            state = self.state
        elif state == TcpState.CLOSING and self._fin_acked:
            self._enter_time_wait(now)
            return
        elif state == TcpState.LAST_ACK and self._fin_acked:
            self.counters["tcp.conn.closed"] += 1
            self._drop(None)
            return
        elif state == TcpState.TIME_WAIT:
            if flags & FIN:
                self.ack_now = True
                self.t_2msl = now + 2 * self.config.msl
            return

        # Seventh and eighth: text and FIN.
        if seg.payload or flags & FIN:
            self._receive_text(seg, now)

    def _process_ack(self, seg: TcpRepr, ack: int, now: float) -> None:
        flags = int(seg.flags)
        wnd = seg.window << self.snd_wscale
        sacked_before = self.sacked_bytes
        if self.sack_ok and seg.options:
            blocks = seg.options.sack_blocks
            if blocks:
                self._sack_update(blocks)
                if self.in_recovery:
                    self._lost_retransmissions()

        # Window update (RFC 9293 3.10.7.4, fifth step).
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and self.snd_wl2 <= ack):
            window_changed = wnd != self.snd_wnd
            self.snd_wnd = wnd
            self.snd_wl1 = seg.seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if wnd:
                self.t_persist = None
                self.persist_backoff = 0
                self.force_probe = False
                if self.persisting:
                    self.persisting = False
                    self.snd_nxt = max(self.snd_una, min(self.snd_nxt, ack))
        else:
            window_changed = False

        if ack <= self.snd_una:
            # A duplicate ACK in the sense of RFC 5681 section 2 (or an old one).
            # With SACK, an ACK that SACKs new data counts whatever its window says (RFC 6675
            # section 2's DupAck): receivers' windows change with every read.
            if (
                ack == self.snd_una
                and self.snd_max > self.snd_una
                and not seg.payload
                and not flags & (SYN | FIN)
                and (not window_changed or self.sacked_bytes > sacked_before)
            ):
                self._dupack(now)
            return

        # New data acknowledged.
        acked = ack - self.snd_una
        if self.ts_ok and seg.options.timestamps is not None and seg.options.timestamps.tsecr:
            echo = seg.options.timestamps.tsecr
            self._rtt_sample(((self.ts_now(now) - echo) & SEQ_MASK) / 1000.0)
        elif self.rtt_pos is not None and ack > self.rtt_pos:
            self._rtt_sample(now - self.rtt_time)
            self.rtt_pos = None
        self.backoff = 0

        data_end = self.data_end
        data_acked = min(ack, data_end) - self.snd_buf_base
        if data_acked > 0:
            del self.sndbuf[:data_acked]
            self.snd_buf_base += data_acked
        sb = self.sacked
        if sb and sb[0][0] <= ack and any(a <= ack < b for a, b in sb):
            # The ACK points into data the receiver SACKed: it has reneged (RFC 2018 8), so
            # what it SACKed before tells nothing any more.
            self.counters["tcp.in.sack_reneging"] += 1
            self.sacked = []
            self.sacked_bytes = 0
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self.high_rxt < ack:
            self.high_rxt = ack
        self._sack_trim()
        self._congestion_ack(acked, ack, now)

        self.tlp_sent = False
        if self.snd_una >= self.snd_max:
            self.t_rexmt = None
            self.t_tlp = None
        else:
            self.t_rexmt = now + self.rto
            self._arm_tlp(now)
        self._notify()

    def _dupack(self, now: float) -> None:
        self.counters["tcp.in.dupack"] += 1
        self.dupacks += 1
        if self.in_recovery:
            if not self.sack_ok:
                self.cwnd += self.mss  # NewReno: inflate by one segment per dupack
            return
        lost = self.dupacks >= DUP_THRESH or (
            self.sack_ok and self.sacked_bytes > (DUP_THRESH - 1) * self.mss
        )
        if not lost:
            return
        if self.snd_una < self.recover and self.recover:
            return  # RFC 6582 4.1: no new recovery until the last one's data is acked
        self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        self.counters["tcp.recovery.fast_retransmit"] += 1
        flight = self.snd_max - self.snd_una
        self.ssthresh = self._decrease(flight)
        self.recover = self.snd_max
        self.in_recovery = True
        self.t_tlp = None
        self.rtt_pos = None
        if self.sack_ok:
            # RFC 6675 5 (4): cwnd = ssthresh, then retransmit by NextSeg() within the pipe.
            # Holes the last recovery resent above its end are still in flight (high_rxt is
            # kept): resending them again would be spurious; if they are lost,
            # _lost_retransmissions finds out.
            self.cwnd = self.ssthresh
            self.high_rxt = max(self.high_rxt, self.snd_una)
            out: list[TcpRepr] = []
            frontier = max(self._lost_frontier(), self.snd_una + 1)
            hole = self._next_hole(self.high_rxt, frontier)
            if hole is not None:
                sent = self._retransmit(hole[0], hole[1] - hole[0], now, out)
                self.high_rxt = hole[0] + sent
            self.out.extend(out)
        else:
            self.cwnd = self.ssthresh + DUP_THRESH * self.mss
            self._retransmit(self.snd_una, self.mss, now, self.out)
        self.t_rexmt = now + self.rto

    def _decrease(self, flight: int) -> int:
        """The slow-start threshold after a congestion event (RFC 5681 (4); RFC 9438 4.6)."""
        if self.cubic is not None:
            return self.cubic.on_congestion(self.cwnd, flight, self.mss)
        return max(flight // 2, 2 * self.mss)

    def _congestion_ack(self, acked: int, ack: int, now: float) -> None:
        mss = self.mss
        if self.in_recovery:
            if ack >= self.recover:
                # Full acknowledgment: leave recovery with cwnd = ssthresh (RFC 6582 3.2 (3),
                # its second option; RFC 6675 5).  The first option, min(ssthresh, FlightSize +
                # SMSS), collapses the window to a segment or two whenever one ACK covers the
                # whole flight -- as coalesced or delayed ACKs often do.
                self.in_recovery = False
                self.dupacks = 0
                self.cwnd = self.ssthresh
                self.counters["tcp.recovery.exit"] += 1
                return
            # Partial acknowledgment.
            if self.sack_ok:
                return  # the pipe governs; _sack_output retransmits the next hole
            self._retransmit(self.snd_una, mss, now, self.out)
            self.cwnd = max(self.cwnd - acked + mss, mss)
            self.counters["tcp.recovery.partial_ack"] += 1
            return
        self.dupacks = 0
        if self.cwnd < self.ssthresh:
            # Slow start by bytes acknowledged (RFC 3465).  No per-ACK cap (its L): ACKs that
            # cover many segments are normal here, from receive coalescing on either side.
            self.cwnd += min(acked, self.ssthresh - self.cwnd + mss)
        elif self.cubic is not None:
            self.cwnd = self.cubic.on_ack(self.cwnd, acked, mss, now, self.srtt or 0.0)
        else:
            self.bytes_acked += acked
            if self.bytes_acked >= self.cwnd:
                self.bytes_acked -= self.cwnd
                self.cwnd += mss
        limit = self.config.snd_buf * 2 + 16 * mss
        if self.cwnd > limit:
            self.cwnd = limit

    def _receive_text(self, seg: TcpRepr, now: float) -> None:
        flags = int(seg.flags)
        if flags & FIN:
            fin = (seg.seq + len(seg.payload)) & SEQ_MASK
            if self.fin_seq is None:
                self.fin_seq = fin
        if seg.payload and self.state in _RECEIVING:
            was_ooo = len(self.reass) > 0
            in_order = seg.seq == self.rcv_nxt
            wnd = max(self._window_bytes(), seq_diff(self.rcv_adv, self.rcv_nxt))
            delivered: bytes | memoryview
            if in_order and not was_ooo:
                # Header prediction's data case: the next bytes with nothing queued go straight
                # to the receive buffer (one copy), trimmed to the window.
                delivered = seg.payload
                if len(delivered) > wnd:
                    delivered = memoryview(delivered)[:wnd]
                    self.counters["tcp.in.beyond_window"] += 1
            else:
                delivered = self.reass.add(self.rcv_nxt, wnd, seg.seq, seg.payload)
            if delivered:
                self.rcvbuf += delivered
                self.rcv_nxt = (self.rcv_nxt + len(delivered)) & SEQ_MASK
                self.counters["tcp.in.bytes"] += len(delivered)
                self._notify()
            if not in_order or was_ooo:
                # Out of order, or filling a hole: ACK at once (RFC 5681 4.2).
                self.ack_now = True
                if not in_order:
                    self.counters["tcp.in.out_of_order"] += 1
            elif delivered:
                # A merged run (software GRO) counts as the segments it was made of.
                self.segs_unacked += 1 + len(delivered) // (self.config.mss + 1)
                if self.segs_unacked >= 2:
                    self.ack_now = True
                elif self.t_delack is None:
                    self.t_delack = now + self.config.delayed_ack
        elif seg.payload:
            self.counters["tcp.in.data_after_fin"] += 1
        if self.fin_seq is not None and self.rcv_nxt == self.fin_seq and not self.fin_rcvd:
            self._receive_fin(now)

    def _receive_fin(self, now: float) -> None:
        self.fin_rcvd = True
        self.rcv_nxt = (self.rcv_nxt + 1) & SEQ_MASK
        self.ack_now = True
        self.counters["tcp.in.fin"] += 1
        state = self.state
        if state in (TcpState.SYN_RECEIVED, TcpState.ESTABLISHED):
            self._set_state(TcpState.CLOSE_WAIT)
        elif state == TcpState.FIN_WAIT_1:
            if self._fin_acked:
                self._enter_time_wait(now)
            else:
                self._set_state(TcpState.CLOSING)
        elif state == TcpState.FIN_WAIT_2:
            self._enter_time_wait(now)
        else:
            self._notify()

    # ------------------------------------------------------------------ ICMP

    def pmtu_update(self, mtu: int) -> None:
        """ICMP fragmentation needed (RFC 1191): shrink the MSS and resend what is outstanding."""
        hdr = 40 + (TS_OPTION_LEN if self.ts_ok else 0)
        new = max(64, mtu - hdr)
        if new < self.mss:
            self.counters["tcp.pmtu.lowered"] += 1
            self.mss = new
            if self.snd_max > self.snd_una:
                self.snd_nxt = self.snd_una  # resend in smaller segments
