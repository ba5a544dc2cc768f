"""The retransmission timeout from round-trip samples (RFC 6298).

Contract
--------
:class:`RttEstimator` turns RTT samples (seconds, measured by the caller: from a timestamp echo,
RFC 7323 section 4, or from one timed segment under Karn's rule) into the smoothed RTT, its
variation and the RTO of RFC 6298 section 2:

- first sample R: ``SRTT = R``, ``RTTVAR = R / 2``;
- later ones: ``RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|``, then ``SRTT = 7/8 SRTT + 1/8 R``;
- ``RTO = SRTT + max(G, 4 RTTVAR)`` with a clock granularity G of 1 ms, clamped to
  ``[rto_min, rto_max]`` (section 2.4's 1 s floor is the config's choice, 0.2 s by default as in
  Linux and FreeBSD);
- :meth:`back_off` doubles the RTO up to ``rto_max`` after a timeout (section 5.5).

A negative sample (a peer's echo from the future) counts as zero.  Which samples are valid
(Karn's rule) is the connection's business; nothing here reads a clock.
"""

from __future__ import annotations

#: Clock granularity G of RFC 6298 section 2 (seconds).
GRANULARITY = 0.001


class RttEstimator:
    """One connection's SRTT, RTTVAR and RTO (RFC 6298)."""

    __slots__ = ("rto", "rto_max", "rto_min", "rttvar", "srtt")

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float) -> None:
        self.srtt: float | None = None
        """The smoothed RTT, None before the first sample."""
        self.rttvar = 0.0
        self.rto = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max

    def sample(self, r: float) -> None:
        """Take one RTT measurement ``r`` (seconds) and recompute the RTO."""
        r = max(r, 0.0)
        srtt = self.srtt
        if srtt is None:
            srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
        self.srtt = srtt
        rto = srtt + max(GRANULARITY, 4 * self.rttvar)
        self.rto = min(max(rto, self.rto_min), self.rto_max)

    def back_off(self) -> None:
        """A retransmission timeout fired: double the RTO (RFC 6298 5.5), up to ``rto_max``."""
        self.rto = min(self.rto * 2, self.rto_max)
