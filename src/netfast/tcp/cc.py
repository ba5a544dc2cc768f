"""Congestion control behind one interface: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).

Contract
--------
A connection owns one :class:`CongestionControl` (:func:`controller_for` builds it from
``TcpConfig.cc``) and tells it what loss detection found; the controller owns ``cwnd`` and
``ssthresh`` (bytes) and nothing else of the connection.  Loss *detection* and *recovery* (when
a dup ACK counts, RFC 6675's pipe, NewReno's partial ACK retransmission) stay the connection's,
as in gVisor's split of ``reno.go``/``cubic.go`` from ``snd.go``, or smoltcp's ``Controller``.

The events, in the order a connection meets them:

- :meth:`~CongestionControl.established` -- the handshake is over: the initial window of
  RFC 6928, ``min(10 MSS, max(2 MSS, 14600))``;
- :meth:`~CongestionControl.acked` -- new data acknowledged outside recovery: slow start by
  bytes acknowledged (RFC 3465, with no per-ACK cap: coalesced ACKs are normal here), then the
  controller's congestion avoidance; the window never exceeds ``limit``;
- :meth:`~CongestionControl.enter_recovery` -- fast retransmit: ``ssthresh`` from the
  controller's decrease, and ``cwnd = ssthresh`` with SACK (RFC 6675 5 (4)) or ``ssthresh + 3
  MSS`` without (RFC 6582 3.2 (2));
- :meth:`~CongestionControl.recovery_dupack` -- NewReno's inflation by one MSS per further
  dup ACK (without SACK only);
- :meth:`~CongestionControl.partial_ack` -- RFC 6582 3.2 (5)'s deflation (without SACK);
- :meth:`~CongestionControl.exit_recovery` -- full acknowledgment: ``cwnd = ssthresh``
  (RFC 6582 3.2 (3), second option);
- :meth:`~CongestionControl.timeout` -- an RTO: ``ssthresh`` decreased on the first timeout
  of a series only (RFC 5681 (4); RFC 6582 4.2), ``cwnd`` one segment.

NewReno and CUBIC differ in two numbers only: the decrease (half the flight vs RFC 9438's
``BETA`` = 0.7 with fast convergence) and the growth in congestion avoidance (one MSS per window
acknowledged, by appropriate byte counting, vs the cubic curve of :mod:`netfast.tcp.cubic`).
"""

from __future__ import annotations

from typing import Protocol

from netfast.tcp.cubic import Cubic
from netfast.tcp.sack import DUP_THRESH


class CongestionControl(Protocol):
    """What a connection asks of its congestion controller (see the module docstring)."""

    cwnd: int
    ssthresh: int

    def established(self, mss: int) -> None: ...

    def acked(self, acked: int, mss: int, now: float, srtt: float, limit: int) -> None: ...

    def enter_recovery(self, flight: int, mss: int, sack: bool) -> None: ...

    def recovery_dupack(self, mss: int) -> None: ...

    def partial_ack(self, acked: int, mss: int) -> None: ...

    def exit_recovery(self) -> None: ...

    def timeout(self, flight: int, mss: int, first: bool) -> None: ...


def initial_window(mss: int) -> int:
    """RFC 6928's initial window: ``min(10 MSS, max(2 MSS, 14600))`` bytes."""
    return min(10 * mss, max(2 * mss, 14600))


class _LossBased:
    """Slow start and the recovery rules both controllers share; subclasses give the decrease
    and the growth in congestion avoidance."""

    __slots__ = ("cwnd", "ssthresh")

    def __init__(self) -> None:
        self.cwnd = 0
        self.ssthresh = 1 << 30

    def decrease(self, flight: int, mss: int) -> int:
        """The slow-start threshold after a congestion event."""
        raise NotImplementedError

    def avoid(self, acked: int, mss: int, now: float, srtt: float) -> None:
        """Grow ``cwnd`` in congestion avoidance."""
        raise NotImplementedError

    def established(self, mss: int) -> None:
        self.cwnd = initial_window(mss)

    def acked(self, acked: int, mss: int, now: float, srtt: float, limit: int) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.ssthresh - self.cwnd + mss)
        else:
            self.avoid(acked, mss, now, srtt)
        if self.cwnd > limit:
            self.cwnd = limit

    def enter_recovery(self, flight: int, mss: int, sack: bool) -> None:
        self.ssthresh = self.decrease(flight, mss)
        self.cwnd = self.ssthresh if sack else self.ssthresh + DUP_THRESH * mss

    def recovery_dupack(self, mss: int) -> None:
        self.cwnd += mss

    def partial_ack(self, acked: int, mss: int) -> None:
        self.cwnd = max(self.cwnd - acked + mss, mss)

    def exit_recovery(self) -> None:
        self.cwnd = self.ssthresh

    def timeout(self, flight: int, mss: int, first: bool) -> None:
        if first:
            self.ssthresh = self.decrease(flight, mss)
        self.cwnd = mss


class NewReno(_LossBased):
    """RFC 5681 congestion avoidance: one MSS per window of bytes acknowledged (RFC 3465)."""

    __slots__ = ("bytes_acked",)

    def __init__(self) -> None:
        super().__init__()
        self.bytes_acked = 0

    def decrease(self, flight: int, mss: int) -> int:
        return max(flight // 2, 2 * mss)

    def avoid(self, acked: int, mss: int, now: float, srtt: float) -> None:
        self.bytes_acked += acked
        if self.bytes_acked >= self.cwnd:
            self.bytes_acked -= self.cwnd
            self.cwnd += mss


class CubicControl(_LossBased):
    """RFC 9438: the decrease and the growth of :class:`netfast.tcp.cubic.Cubic`."""

    __slots__ = ("cubic",)

    def __init__(self) -> None:
        super().__init__()
        self.cubic = Cubic()

    def decrease(self, flight: int, mss: int) -> int:
        return self.cubic.on_congestion(self.cwnd, flight, mss)

    def avoid(self, acked: int, mss: int, now: float, srtt: float) -> None:
        self.cwnd = self.cubic.on_ack(self.cwnd, acked, mss, now, srtt)


#: The controllers ``TcpConfig.cc`` may name.
CONTROLLERS: dict[str, type[NewReno] | type[CubicControl]] = {
    "newreno": NewReno,
    "cubic": CubicControl,
}


def controller_for(name: str) -> CongestionControl:
    """A fresh controller for ``TcpConfig.cc``'s ``name`` (``"newreno"`` or ``"cubic"``)."""
    return CONTROLLERS[name]()
