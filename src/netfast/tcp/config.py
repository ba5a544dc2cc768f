"""Per-connection TCP settings (:class:`TcpConfig`), validated when built.

Contract
--------
A :class:`TcpConfig` is a frozen value: the TCP layer, the SYN cache and every connection read it,
nothing writes it.  Construction refuses values the protocol cannot carry (an MSS outside what an
IPv4 packet holds, a receive buffer beyond the largest window RFC 7323's scaling describes, an
unknown congestion controller) with a ``ValueError`` that names the value.  Times are in seconds,
sizes in bytes.  Which RFC each setting follows is said beside it.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    ttcp: bool = False
    """T/TCPv2's client cookie (the paper's "Session Layer"): an active open offers 48 random
    bits in its SYN, a listener echoes them, and then every segment of the connection carries
    them; a segment with a missing or wrong one is dropped.  A listener with it also gives out
    server cookies in T/TCPv2's form (see :mod:`netfast.tcp.session`)."""
    fastopen: bool = False
    """Data on SYN.  An active open sends the first bytes queued with the SYN when it holds a
    server cookie of that server (else it asks for one); a listener accepts data on a SYN with
    a valid cookie, delivering it at once, and gives cookies to clients that ask, in T/TCPv2's
    form or in TCP Fast Open's (RFC 7413, as Linux sends it)."""
    fastopen_queue: int = 64
    """A listener's bound on connections opened by data on SYN whose handshake has not yet
    completed (Linux's ``TCP_FASTOPEN`` queue length); beyond it a SYN falls back to the normal
    handshake."""

    def __post_init__(self) -> None:
        if not 64 <= self.mss <= 65495:
            raise ValueError(f"mss = {self.mss}: outside 64..65495")
        if self.rcv_buf < 1 or self.snd_buf < 1:
            raise ValueError("buffer sizes must be positive")
        if self.cc not in ("newreno", "cubic"):
            raise ValueError(f"cc = {self.cc!r}: must be 'newreno' or 'cubic'")
        if self.rcv_buf > (0xFFFF << 14):
            raise ValueError(f"rcv_buf = {self.rcv_buf}: above the largest scalable window")
        if self.fastopen_queue < 0:
            raise ValueError(f"fastopen_queue = {self.fastopen_queue}: must not be negative")
        if not 0.0 <= self.invalid_ratelimit <= 3600.0:  # also refuses nan
            raise ValueError(
                f"invalid_ratelimit = {self.invalid_ratelimit}: outside 0..3600 seconds"
            )
