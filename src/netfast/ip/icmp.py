"""ICMP errors a router originates (RFC 792; RFC 1812 section 4.3.2; RFC 1191 for the next-hop
MTU) and their rate limit (FreeBSD's ``icmplim``, as a token bucket).

Contract
--------
:func:`icmp_error_packet` is the pure builder: the whole IPv4 packet of one error message about
an offending packet -- time exceeded, destination unreachable (net, host, protocol, port, ...),
or fragmentation needed carrying the next-hop MTU (RFC 1191 section 4).  The error quotes the
offending packet's IP header and as much of its data as keeps the error within 576 bytes
(RFC 1812 4.3.2.3; RFC 792's minimum is the header plus 8 bytes), never past its total length.

:func:`error_suppressed` says why no error may be sent about a packet (RFC 1812 4.3.2.7, RFC 1122
3.2.2): it is itself an ICMP error, it was sent to a broadcast or multicast address (at the IP or
the link layer), it is a fragment other than the first, or its source is not a unicast host
address (a martian, a multicast or a broadcast source).

:class:`IcmpErrors` joins the two under a token bucket (:class:`TokenBucket`) and counts every
decision in the component's counters:

=================================  ====================================================
counter                            meaning
=================================  ====================================================
``icmp.out.time_exceeded``         a time exceeded message was built
``icmp.out.dest_unreachable``      a destination unreachable message was built
``icmp.out.about_error``           suppressed: the packet is an ICMP error (or unknown type)
``icmp.out.about_broadcast``       suppressed: broadcast/multicast destination (IP or link)
``icmp.out.about_fragment``        suppressed: a non-first fragment
``icmp.out.about_martian``         suppressed: the source is not a unicast host address
``icmp.out.rate_limited``          suppressed by the token bucket
=================================  ====================================================

Nothing here reads the clock: ``now`` is an argument, in seconds.
"""

from __future__ import annotations

import struct
from collections import Counter

from netfast.ip.facts import martian_src
from netfast.ip.local import LocalAddrs
from netfast.wire import checksum
from netfast.wire.buffer import Buffer
from netfast.wire.icmpv4 import (
    DestUnreachableCode,
    Icmpv4DestUnreachable,
    Icmpv4TimeExceeded,
    Icmpv4Type,
    TimeExceededCode,
)
from netfast.wire.ipv4 import FIXED_HEADER, IpProtocol, Ipv4Repr

#: Longest error datagram RFC 1812 4.3.2.3 lets a router send.
MAX_ERROR_LEN = 576
#: Most bytes of the offending packet an error quotes: 576 minus the IP and ICMP headers.
MAX_QUOTE_LEN = MAX_ERROR_LEN - 20 - 8
#: TTL of router-originated packets (RFC 1700's recommended default).
DEFAULT_TTL = 64
#: TOS octet of errors: precedence 6, internetwork control (RFC 1812 4.3.2.5).
ERROR_TOS = 0xC0

#: ICMP types that are queries or replies, not errors: an error may be sent about these only
#: (FreeBSD's ICMP_INFOTYPE; unknown types are treated as errors, which is the safe side).
INFO_TYPES = frozenset({0, 8, 9, 10, 13, 14, 15, 16, 17, 18})

OUT_TIME_EXCEEDED = "icmp.out.time_exceeded"
OUT_DEST_UNREACHABLE = "icmp.out.dest_unreachable"
OUT_ABOUT_ERROR = "icmp.out.about_error"
OUT_ABOUT_BROADCAST = "icmp.out.about_broadcast"
OUT_ABOUT_FRAGMENT = "icmp.out.about_fragment"
OUT_ABOUT_MARTIAN = "icmp.out.about_martian"
OUT_RATE_LIMITED = "icmp.out.rate_limited"

_U16 = struct.Struct(">H")


def echo_reply_message(request: Buffer) -> bytes:
    """The ICMP echo reply to an echo ``request`` message (RFC 792): the same message with type
    0, its checksum updated for that one change (RFC 1624) instead of summed again."""
    code = request[1]
    old = _U16.unpack_from(request, 2)[0]
    new = checksum.update16(old, (Icmpv4Type.ECHO_REQUEST << 8) | code, code)
    return b"\x00" + bytes(request[1:2]) + _U16.pack(new) + bytes(request[4:])


class TokenBucket:
    """A token bucket refilled at ``rate`` tokens per second up to ``burst`` tokens, driven by the
    caller's clock (FreeBSD limits ICMP errors with ``icmplim`` per second; a bucket is the same
    limit without the cliff at each second boundary).

    ``rate <= 0`` disables the limit, as ``net.inet.icmp.icmplim=0`` does.  A clock that goes
    backwards refills nothing.
    """

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        if burst < 1 and rate > 0:
            raise ValueError(f"a token bucket needs a burst of at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last: float | None = None

    def take(self, now: float) -> bool:
        """Take one token at time ``now``; False when the bucket is empty."""
        if self.rate <= 0:
            return True
        last = self.last
        if last is None:
            self.last = now
        elif now > last:
            self.tokens = min(self.burst, self.tokens + (now - last) * self.rate)
            self.last = now
        # The tolerance absorbs float error in sums of clock differences (0.05 + 0.05 < 0.1).
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False


def icmp_error_packet(
    original: Buffer,
    icmp_type: int,
    code: int,
    src: int,
    *,
    next_hop_mtu: int = 0,
    ttl: int = DEFAULT_TTL,
    ident: int = 0,
) -> bytes:
    """The IPv4 packet of one ICMP error about ``original`` (RFC 792, RFC 1812 4.3.2.3).

    Parameters
    ----------
    original:
        The offending packet from its IP header on (as received; link padding is cut off by its
        total length).
    icmp_type:
        :attr:`Icmpv4Type.TIME_EXCEEDED` or :attr:`Icmpv4Type.DEST_UNREACHABLE`.
    code:
        A :class:`TimeExceededCode` or :class:`DestUnreachableCode`.
    src:
        The error's source address (RFC 1812 4.3.2.4: an address of the interface it leaves by).
    next_hop_mtu:
        For fragmentation needed (code 4) only: the MTU of the next hop (RFC 1191 section 4).
    ttl, ident:
        TTL and identification of the error's IP header.

    Raises
    ------
    ValueError
        When ``original`` has no whole IP header, or the type/code pair is not an error this
        builder knows.
    """
    if len(original) < 20:
        raise ValueError(f"cannot quote a packet of {len(original)} bytes")
    fixed = FIXED_HEADER.unpack_from(original)
    header_len = (fixed[0] & 0x0F) << 2
    if header_len < 20 or header_len > len(original):
        raise ValueError("cannot quote a packet whose header is incomplete")
    total = fixed[2] if header_len <= fixed[2] <= len(original) else len(original)
    quote = bytes(original[: min(total, MAX_QUOTE_LEN)])
    message: Icmpv4TimeExceeded | Icmpv4DestUnreachable
    if icmp_type == Icmpv4Type.TIME_EXCEEDED:
        message = Icmpv4TimeExceeded(TimeExceededCode(code), quote)
    elif icmp_type == Icmpv4Type.DEST_UNREACHABLE:
        message = Icmpv4DestUnreachable(DestUnreachableCode(code), quote, next_hop_mtu)
    else:
        raise ValueError(f"ICMP type {icmp_type} is not an error this builder sends")
    body = message.to_bytes()
    header = Ipv4Repr(
        src=src,
        dst=fixed[8],
        protocol=IpProtocol.ICMP,
        payload_len=len(body),
        ttl=ttl,
        dscp=ERROR_TOS >> 2,
        identification=ident,
    )
    return header.to_bytes(body)


def error_suppressed(
    original: Buffer, local: LocalAddrs, *, link_broadcast: bool = False
) -> str | None:
    """Why no ICMP error may be sent about ``original`` (RFC 1812 4.3.2.7), as the counter to
    bump, or None when one may be sent.

    ``original`` must hold a whole IP header (the router's input checks ensure it).
    ``link_broadcast`` is True when the packet arrived in a link-layer broadcast or multicast
    frame.
    """
    fixed = FIXED_HEADER.unpack_from(original)
    frag, proto, src, dst = fixed[4], fixed[6], fixed[8], fixed[9]
    if frag & 0x1FFF:
        return OUT_ABOUT_FRAGMENT
    if link_broadcast or dst >> 28 == 0xE or local.is_broadcast(dst):
        return OUT_ABOUT_BROADCAST
    if martian_src(src) or local.is_broadcast(src):
        return OUT_ABOUT_MARTIAN
    if proto == IpProtocol.ICMP:
        header_len = (fixed[0] & 0x0F) << 2
        # A first fragment too short to show its ICMP type is treated as an error message.
        if len(original) <= header_len or original[header_len] not in INFO_TYPES:
            return OUT_ABOUT_ERROR
    return None


class IcmpErrors:
    """The router's ICMP error policy: suppression rules, rate limit, builder and counters.

    Parameters
    ----------
    local:
        The router's addresses (which destinations and sources are broadcasts).
    counters:
        Where decisions are counted (the router's counters).
    rate, burst:
        The token bucket: errors per second and the burst allowed (``rate <= 0``: no limit).
    """

    def __init__(
        self, local: LocalAddrs, counters: Counter[str], *, rate: float = 100.0, burst: int = 50
    ) -> None:
        self.local = local
        self.counters = counters
        self.bucket = TokenBucket(rate, burst)
        self._ident = 0

    def next_ident(self) -> int:
        """The identification for the next router-originated packet (a wrapping counter)."""
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def allowed(self, original: Buffer, now: float, *, link_broadcast: bool = False) -> bool:
        """Whether an error about ``original`` may be sent at ``now``: the suppression rules
        (:func:`error_suppressed`), then the token bucket; a refusal is counted."""
        reason = error_suppressed(original, self.local, link_broadcast=link_broadcast)
        if reason is not None:
            self.counters[reason] += 1
            return False
        if not self.bucket.take(now):
            self.counters[OUT_RATE_LIMITED] += 1
            return False
        return True

    def build(
        self, original: Buffer, icmp_type: int, code: int, src: int, *, next_hop_mtu: int = 0
    ) -> bytes:
        """The error packet (see :func:`icmp_error_packet`), counted by type."""
        packet = icmp_error_packet(
            original, icmp_type, code, src, next_hop_mtu=next_hop_mtu, ident=self.next_ident()
        )
        self.counters[
            OUT_TIME_EXCEEDED if icmp_type == Icmpv4Type.TIME_EXCEEDED else OUT_DEST_UNREACHABLE
        ] += 1
        return packet

    def icmp_error(
        self,
        original: Buffer,
        icmp_type: int,
        code: int,
        src: int,
        now: float,
        *,
        next_hop_mtu: int = 0,
        link_broadcast: bool = False,
    ) -> bytes | None:
        """The error packet about ``original``, or None when the rules or the rate limit forbid
        it (counted either way): :meth:`allowed`, then :meth:`build`."""
        if not self.allowed(original, now, link_broadcast=link_broadcast):
            return None
        return self.build(original, icmp_type, code, src, next_hop_mtu=next_hop_mtu)
