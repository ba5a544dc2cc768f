"""What a TCP handshake settles: the options both sides offered (RFC 9293 3.7.1, RFC 7323,
RFC 2018).

Contract
--------
:class:`Negotiated` is the frozen outcome of a SYN / SYN-ACK exchange -- the peer's MSS (536 when
it sent none), whether and by how much windows scale, SACK and timestamps -- built by
:func:`negotiated_from_syn` from the peer's SYN and our :class:`~netfast.tcp.config.TcpConfig`:
an option is used only when both sides offer it.  The SYN cache and an active open both take it
from here, so a passive and an active open cannot disagree on a rule.  :func:`scale_for` is the
window-scale shift our side announces for a receive buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from netfast.tcp.config import TcpConfig
from netfast.wire.tcp import TcpRepr

#: Bytes a timestamps option costs in every segment (10, padded to 12 with two NOPs).
TS_OPTION_LEN = 12


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
