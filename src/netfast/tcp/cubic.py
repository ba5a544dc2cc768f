"""CUBIC congestion control (RFC 9438), the window arithmetic only.

Contract
--------
:class:`Cubic` is asked two things by a connection in congestion avoidance: the slow-start
threshold after a congestion event (:meth:`on_congestion`: multiplicative decrease by
``BETA`` = 0.7 instead of Reno's 0.5, with fast convergence) and the new congestion window after
an ACK (:meth:`on_ack`).  Windows are in bytes at the interface and in segments inside, as the
RFC writes them.  Slow start, loss detection and recovery stay the connection's (RFC 6675 /
RFC 6582); a connection using CUBIC differs from NewReno only in these two numbers.

The window grows along ``W_cubic(t) = C (t - K)^3 + W_max`` (section 4.2), ``t`` the time since
the current congestion-avoidance epoch began, ``K`` the time to climb back to ``W_max``; where
that is slower than a Reno flow with the same loss rate would grow (``W_est``, section 4.3, with
``alpha = 3 (1 - beta) / (1 + beta)``), it grows as ``W_est``.  Per ACK the window moves by at
most ``(target - cwnd) / cwnd`` segments per segment acknowledged, and the target is capped at
1.5 cwnd (section 4.4).  Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

C = 0.4
BETA = 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)


class Cubic:
    """One connection's CUBIC state."""

    __slots__ = ("epoch", "k", "w_est", "w_max")

    def __init__(self) -> None:
        self.w_max = 0.0
        self.k = 0.0
        self.w_est = 0.0
        self.epoch: float | None = None

    def on_congestion(self, cwnd: int, flight: int, mss: int) -> int:
        """A loss was detected (or the RTO fired): remember ``W_max`` and return the new
        ``ssthresh`` in bytes (section 4.6, with fast convergence, 4.7)."""
        w = cwnd / mss
        self.w_max = w * (1 + BETA) / 2 if w < self.w_max else w
        self.epoch = None
        return max(int(max(flight, mss) * BETA), 2 * mss)

    def on_ack(self, cwnd: int, acked: int, mss: int, now: float, rtt: float) -> int:
        """The congestion window (bytes) after ``acked`` bytes were acknowledged in congestion
        avoidance at time ``now``; ``rtt`` is the smoothed RTT (seconds)."""
        w = cwnd / mss
        if self.epoch is None:
            self.epoch = now
            if w < self.w_max:
                self.k = ((self.w_max - w) / C) ** (1 / 3)
            else:
                self.k = 0.0
                self.w_max = w
            self.w_est = w
        t = now - self.epoch
        segs = acked / mss
        target = C * (t + rtt - self.k) ** 3 + self.w_max
        self.w_est += ALPHA * segs / w
        if target < self.w_est:
            target = self.w_est  # the Reno-friendly region
        target = min(target, 1.5 * w)
        if target <= w:
            return cwnd
        grow = (target - w) / w * segs
        return cwnd + max(1, int(grow * mss))
