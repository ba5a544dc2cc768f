"""Segment templates and state fixtures for the sans-IO TCP tests (in the manner of smoltcp's
socket tests).

:func:`seg` builds a segment from the peer to the connection under test from a flag string
(``"SA"`` = SYN+ACK; letters F S R P A).  :class:`Fx` holds one connection, the peer's view of
the sequence spaces (``iss`` ours, ``irs`` the peer's) and a clock; the ``*_state`` builders feed
segments until the connection reaches the named RFC 9293 state.  Every builder takes ISS/IRS
values, and :data:`WRAP` lists values that put the first bytes right at the 2**32 wrap.

Expected values in tests are computed from ``iss``/``irs`` with plain modular arithmetic, never
read back from the connection under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netfast.tcp.config import TcpConfig
from netfast.tcp.conn import TcpConnection
from netfast.tcp.negotiate import Negotiated
from netfast.tcp.state import TcpState
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import TcpOptions

M = 0xFFFFFFFF
LOCAL = (0x0A000001, 49152)
REMOTE = (0x0A000002, 80)
#: ISS/IRS values near the wrap-around (and the middle, where signed comparisons flip).
WRAP = [0xFFFFFFF0, 0x7FFFFFFF, 0, 0xFFFFFFFF]
ISS_IRS = [(0xFFFFFFF0, 0xFFFFFFFE), (0x7FFFFFFF, 0), (0, 0x7FFFFFF8), (0xFFFFFFFF, 0xFFFFFFFF)]
_LETTERS = {
    "F": TcpFlags.FIN,
    "S": TcpFlags.SYN,
    "R": TcpFlags.RST,
    "P": TcpFlags.PSH,
    "A": TcpFlags.ACK,
}


def flags_of(text: str) -> TcpFlags:
    f = TcpFlags(0)
    for ch in text:
        f |= _LETTERS[ch]
    return f


def flag_str(flags: TcpFlags | int) -> str:
    return "".join(ch for ch, f in _LETTERS.items() if int(flags) & int(f))


def seg(
    flags: str = "A",
    seq: int = 0,
    ack: int = 0,
    win: int = 65535,
    payload: bytes = b"",
    opts: TcpOptions | None = None,
    *,
    sport: int = REMOTE[1],
    dport: int = LOCAL[1],
) -> TcpRepr:
    """A segment from the peer (ports swapped from the connection's point of view)."""
    return TcpRepr(
        src_port=sport,
        dst_port=dport,
        seq=seq & M,
        ack=ack & M,
        flags=flags_of(flags),
        window=win,
        options=opts if opts is not None else TcpOptions(),
        payload=payload,
    )


def config(**kw: object) -> TcpConfig:
    """A small, option-free default: no window scaling, no timestamps, SACK on, MSS fixed,
    NewReno (the congestion-control tests check its arithmetic; CUBIC has its own)."""
    base: dict[str, object] = dict(
        cc="newreno",
        mss=1460,
        mss_from_mtu=False,
        rcv_buf=65535,
        snd_buf=1 << 18,
        window_scale=False,
        timestamps=False,
        sack=True,
    )
    base.update(kw)
    return TcpConfig(**base)  # type: ignore[arg-type]


def synack_opts(mss: int = 1460, sack: bool = True, **kw: object) -> TcpOptions:
    return TcpOptions.build(mss=mss, sack_permitted=sack, **kw)  # type: ignore[arg-type]


@dataclass
class Fx:
    """One connection under test and the peer's bookkeeping."""

    conn: TcpConnection
    iss: int
    irs: int
    now: float = 0.0
    sent: list[TcpRepr] = field(default_factory=list)

    # -- sequence numbers, computed independently of the connection --

    def our(self, pos: int) -> int:
        """Wire value of our send position ``pos`` (0 = SYN, 1 = first data byte)."""
        return (self.iss + pos) & M

    def peer(self, pos: int) -> int:
        """Wire value of the peer's position ``pos`` (0 = its SYN, 1 = first data byte)."""
        return (self.irs + pos) & M

    # -- driving --

    def input(self, s: TcpRepr, dt: float = 0.0) -> list[TcpRepr]:
        """Feed one segment (after advancing the clock by ``dt``) and return what comes out."""
        self.now += dt
        self.conn.input(s, self.now)
        return self.output()

    def output(self) -> list[TcpRepr]:
        out = self.conn.output(self.now)
        self.sent += out
        return out

    def advance(self, t: float) -> list[TcpRepr]:
        """Move the clock to ``t``, run due timers, return the output."""
        self.now = t
        self.conn.poll(self.now)
        return self.output()

    def run_timers(self, until: float) -> list[TcpRepr]:
        """Fire every timer due up to ``until`` in order (like an event loop would)."""
        out: list[TcpRepr] = []
        while True:
            t = self.conn.poll_at()
            if t is None or t > until:
                break
            out += self.advance(max(t, self.now))
        self.now = until
        return out

    def ack_data(self, upto: int, win: int = 65535, rcv: int = 1) -> list[TcpRepr]:
        """The peer acknowledges our positions below ``upto`` (its seq at its position ``rcv``)."""
        return self.input(seg("A", self.peer(rcv), self.our(upto), win))


# ---------------------------------------------------------------- state builders


def syn_sent(iss: int, cfg: TcpConfig | None = None, **kw: object) -> tuple[Fx, TcpRepr]:
    conn = TcpConnection.connect(LOCAL, REMOTE, iss, cfg or config(), 0.0, **kw)
    fx = Fx(conn, iss & M, 0)
    out = fx.output()
    assert len(out) == 1 and out[0].flags == TcpFlags.SYN, out
    return fx, out[0]


def established(
    iss: int,
    irs: int,
    cfg: TcpConfig | None = None,
    opts: TcpOptions | None = None,
    win: int = 65535,
    **kw: object,
) -> Fx:
    """Active open completed by a SYN-ACK: ESTABLISHED, our final ACK already collected."""
    fx, _ = syn_sent(iss, cfg, **kw)
    fx.irs = irs & M
    out = fx.input(
        seg("SA", irs, fx.our(1), win, opts=opts if opts is not None else synack_opts()), 0.01
    )
    assert fx.conn.state == TcpState.ESTABLISHED, fx.conn.state
    assert [flag_str(s.flags) for s in out] == ["A"], out
    return fx


def passive(
    iss: int,
    irs: int,
    cfg: TcpConfig | None = None,
    neg: Negotiated | None = None,
    win: int = 65535,
) -> Fx:
    """Passive open as the SYN cache completes it."""
    neg = neg or Negotiated(peer_mss=1460, snd_wscale=None, sack_ok=True)
    conn = TcpConnection.accept_from_syn(LOCAL, REMOTE, iss, irs, neg, cfg or config(), win, 0.0)
    return Fx(conn, iss & M, irs & M)


def fin_wait_1(iss: int, irs: int, cfg: TcpConfig | None = None) -> tuple[Fx, TcpRepr]:
    fx = established(iss, irs, cfg)
    fx.conn.shutdown()
    out = fx.output()
    assert [flag_str(s.flags) for s in out] == ["FA"], out
    assert fx.conn.state == TcpState.FIN_WAIT_1
    return fx, out[0]


def fin_wait_2(iss: int, irs: int, cfg: TcpConfig | None = None) -> Fx:
    fx, _ = fin_wait_1(iss, irs, cfg)
    fx.ack_data(2)
    assert fx.conn.state == TcpState.FIN_WAIT_2
    return fx


def close_wait(iss: int, irs: int, cfg: TcpConfig | None = None) -> Fx:
    fx = established(iss, irs, cfg)
    out = fx.input(seg("FA", fx.peer(1), fx.our(1)))
    assert fx.conn.state == TcpState.CLOSE_WAIT
    assert [(flag_str(s.flags), s.ack) for s in out] == [("A", fx.peer(2))], out
    return fx


def last_ack(iss: int, irs: int, cfg: TcpConfig | None = None) -> tuple[Fx, TcpRepr]:
    fx = close_wait(iss, irs, cfg)
    fx.conn.shutdown()
    out = fx.output()
    assert [flag_str(s.flags) for s in out] == ["FA"], out
    assert fx.conn.state == TcpState.LAST_ACK
    return fx, out[0]


def time_wait(iss: int, irs: int, cfg: TcpConfig | None = None) -> Fx:
    fx = fin_wait_2(iss, irs, cfg)
    fx.input(seg("FA", fx.peer(1), fx.our(2)))
    assert fx.conn.state == TcpState.TIME_WAIT
    return fx


def kinds(out: list[TcpRepr]) -> list[str]:
    return [flag_str(s.flags) for s in out]
