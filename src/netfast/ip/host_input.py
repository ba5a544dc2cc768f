"""The host's IPv4 input (RFC 791, RFC 1122 section 3.2) and its ICMP (RFC 792, RFC 1122
section 3.2.2): the checks, local-or-not, reassembly and the demultiplexing to ICMP, UDP and
the registered transports.

Contract
--------
:meth:`HostInput.ip_input` takes one received Ethernet frame carrying IPv4, cheapest step
first (the paper's integrity checks and local-or-not hash, a host's half):

1. :func:`~netfast.ip.input.ip_input_check`; options are walked (malformed: dropped).
2. Local or not (one hash probe): a packet for neither one of our addresses nor a broadcast is
   dropped -- a host does not forward (RFC 1122 3.3.1.6).
3. Fragments go to :class:`~netfast.ip.reass.Reassembler` (RFC 791, RFC 815).
4. By protocol: ICMP (echo answered, RFC 792 and RFC 1122 3.2.2.6; errors handed to the
   quoted protocol's ``ctlinput``, RFC 1122 3.2.2.1), UDP (:class:`netfast.udp.UdpLayer`; no
   socket: port unreachable), registered transports (unicast only, RFC 1122 4.2.3.10),
   anything else: protocol unreachable.  Errors are sent by
   :meth:`netfast.ip.host_output.HostOutput.icmp_error` (rate limited, never about
   broadcasts, errors or non-first fragments).

Accounting: ``ip.in.received`` counts each packet, and exactly one of :data:`IP_OUTCOMES`
counts it too (a fragment that completes a datagram by the datagram's delivery outcome, the
others by a reassembly outcome); :data:`ICMP_OUTCOMES` and
:data:`netfast.udp.layer.UDP_OUTCOMES` are the ICMP and UDP parts of it.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping

from netfast.ip.api import TransportProtocol
from netfast.ip.host_output import HostOutput
from netfast.ip.icmp import echo_reply_message
from netfast.ip.input import INPUT_DROPS, Ipv4Header, ip_input_check, options_ok
from netfast.ip.reass import REASS_OUTCOMES, Reassembler
from netfast.udp.layer import IN_NO_PORT as UDP_NO_PORT
from netfast.udp.layer import UDP_OUTCOMES, UdpLayer
from netfast.wire import checksum
from netfast.wire.icmpv4 import DestUnreachableCode, Icmpv4Type
from netfast.wire.ipv4 import IpProtocol

__all__ = ["ICMP_OUTCOMES", "IP_OUTCOMES", "HostInput"]

IN_RECEIVED = "ip.in.received"
IN_OPTIONS = "ip.in.options"  # informational
IN_BAD_OPTIONS = "ip.in.bad_options"
IN_NOT_FOR_US = "ip.in.not_for_us"
IN_BROADCAST_TRANSPORT = "ip.in.broadcast_transport"
IN_TRANSPORT = "ip.in.transport"
IN_UNKNOWN_PROTO = "ip.in.unknown_proto"
ICMP_TOO_SHORT = "icmp.in.too_short"
ICMP_BAD_CHECKSUM = "icmp.in.bad_checksum"
ICMP_ECHO = "icmp.in.echo"
ICMP_BROADCAST_ECHO = "icmp.in.broadcast_echo"
ICMP_ERROR_DELIVERED = "icmp.in.error_delivered"
ICMP_ERROR_UNHANDLED = "icmp.in.error_unhandled"
ICMP_ERROR_BAD = "icmp.in.error_bad"
ICMP_OTHER = "icmp.in.other"

#: Exactly one of these is what :meth:`HostInput.icmp_input` returns for each ICMP message.
ICMP_OUTCOMES: tuple[str, ...] = (
    ICMP_TOO_SHORT,
    ICMP_BAD_CHECKSUM,
    ICMP_ECHO,
    ICMP_BROADCAST_ECHO,
    ICMP_ERROR_DELIVERED,
    ICMP_ERROR_UNHANDLED,
    ICMP_ERROR_BAD,
    ICMP_OTHER,
)

#: Exactly one of these counts each received IPv4 packet (sum == ``ip.in.received``).
IP_OUTCOMES: tuple[str, ...] = (
    *INPUT_DROPS,
    IN_BAD_OPTIONS,
    IN_NOT_FOR_US,
    *REASS_OUTCOMES,
    *ICMP_OUTCOMES,
    *UDP_OUTCOMES,
    IN_BROADCAST_TRANSPORT,
    IN_TRANSPORT,
    IN_UNKNOWN_PROTO,
)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_FRAG_ANY = 0x3FFF
#: ICMP errors handed to transports (RFC 1122 3.2.2.1); source quench is obsolete (RFC 6633).
_ERROR_TYPES = frozenset(
    (Icmpv4Type.DEST_UNREACHABLE, Icmpv4Type.TIME_EXCEEDED, Icmpv4Type.PARAMETER_PROBLEM)
)


class HostInput:
    """IPv4 and ICMP input of a host (see the module docstring).

    Parameters
    ----------
    unicast, broadcast:
        The host's unicast addresses and the broadcasts it accepts.
    reass:
        The reassembler.
    output:
        The host's output (echo replies, ICMP errors).
    udp:
        The UDP layer.
    transports:
        The registered transports by protocol number (the host's own dict, so later
        registrations are seen).
    counters:
        The host's counters.
    """

    def __init__(
        self,
        *,
        unicast: frozenset[int],
        broadcast: frozenset[int],
        reass: Reassembler,
        output: HostOutput,
        udp: UdpLayer,
        transports: Mapping[int, TransportProtocol],
        counters: Counter[str],
    ) -> None:
        self._unicast = unicast
        self._broadcast = broadcast
        self.reass = reass
        self.output = output
        self.udp = udp
        self.transports = transports
        self.counters = counters

    def ip_input(self, ifindex: int, frame: bytes, link_broadcast: bool, now: float) -> None:
        counters = self.counters
        counters[IN_RECEIVED] += 1
        header = ip_input_check(frame, 14)
        if type(header) is str:
            counters[header] += 1
            return
        assert isinstance(header, Ipv4Header)
        hl = header.header_len
        if hl > 20:
            counters[IN_OPTIONS] += 1
            if not options_ok(frame[34 : 14 + hl]):
                counters[IN_BAD_OPTIONS] += 1
                return
        dst = header.dst
        if dst in self._unicast:
            broadcast = False
        elif dst in self._broadcast:
            broadcast = True
        else:
            # Not ours (multicast included: no group is joined): a host does not forward.
            counters[IN_NOT_FOR_US] += 1
            return
        packet = frame[14 : 14 + header.total_length]
        if header.frag & _FRAG_ANY:
            whole = self.reass.input(packet, now)
            if whole is None:
                return
            packet = whole
            parsed = ip_input_check(packet)
            if type(parsed) is str:  # cannot happen: the header is the first fragment's
                counters[parsed] += 1
                return
            assert isinstance(parsed, Ipv4Header)
            header = parsed
        self.local_input(ifindex, header, packet, broadcast or link_broadcast, now)

    def local_input(
        self, ifindex: int, header: Ipv4Header, packet: bytes, broadcast: bool, now: float
    ) -> None:
        proto = header.proto
        l4 = memoryview(packet)[header.header_len :]
        counters = self.counters
        if proto == IpProtocol.ICMP:
            counters[self.icmp_input(header, packet, l4, broadcast, now)] += 1
            return
        if proto == IpProtocol.UDP:
            if self.udp.input(header.src, header.dst, l4) == UDP_NO_PORT:
                self.output.icmp_error(
                    packet,
                    Icmpv4Type.DEST_UNREACHABLE,
                    DestUnreachableCode.PORT_UNREACHABLE,
                    now,
                    link_broadcast=broadcast,
                )
            return
        transport = self.transports.get(proto)
        if transport is not None:
            if broadcast:
                # Connection-oriented transports never take broadcasts (RFC 1122 4.2.3.10).
                counters[IN_BROADCAST_TRANSPORT] += 1
                return
            counters[IN_TRANSPORT] += 1
            transport.input(header, l4, ifindex, now)
            return
        counters[IN_UNKNOWN_PROTO] += 1
        self.output.icmp_error(
            packet,
            Icmpv4Type.DEST_UNREACHABLE,
            DestUnreachableCode.PROTOCOL_UNREACHABLE,
            now,
            link_broadcast=broadcast,
        )

    def icmp_input(
        self, header: Ipv4Header, packet: bytes, message: memoryview, broadcast: bool, now: float
    ) -> str:
        """ICMP for us (RFC 792, RFC 1122 3.2.2); returns the outcome counter."""
        if len(message) < 8:
            return ICMP_TOO_SHORT
        if not checksum.verify(message):
            return ICMP_BAD_CHECKSUM
        icmp_type = message[0]
        if icmp_type == Icmpv4Type.ECHO_REQUEST:
            if broadcast:
                # RFC 1122 3.2.2.6 lets a host ignore broadcast echoes; FreeBSD does by default.
                return ICMP_BROADCAST_ECHO
            self.echo_reply(header, message, now)
            return ICMP_ECHO
        if icmp_type not in _ERROR_TYPES:
            return ICMP_OTHER
        quoted = bytes(message[8:])
        if len(quoted) < 20 or quoted[0] >> 4 != 4 or (quoted[0] & 0x0F) < 5:
            return ICMP_ERROR_BAD
        qhl = (quoted[0] & 0x0F) << 2
        qproto = quoted[9]
        qsrc = _U32.unpack_from(quoted, 12)[0]
        if qsrc not in self._unicast:
            # An error about a packet we did not send: forged or misdirected.
            return ICMP_ERROR_BAD
        code = message[1]
        mtu = 0
        if icmp_type == Icmpv4Type.DEST_UNREACHABLE and code == DestUnreachableCode.FRAG_NEEDED:
            mtu = _U16.unpack_from(message, 6)[0]
        if qproto == IpProtocol.UDP:
            if (
                icmp_type == Icmpv4Type.DEST_UNREACHABLE
                and code == DestUnreachableCode.PORT_UNREACHABLE
                and len(quoted) >= qhl + 2
                and self.udp.port_unreachable(qsrc, _U16.unpack_from(quoted, qhl)[0])
            ):
                return ICMP_ERROR_DELIVERED
            return ICMP_ERROR_UNHANDLED
        transport = self.transports.get(qproto)
        if transport is None:
            return ICMP_ERROR_UNHANDLED
        transport.ctlinput(icmp_type, code, mtu, quoted, now)
        return ICMP_ERROR_DELIVERED

    def echo_reply(self, header: Ipv4Header, message: memoryview, now: float) -> None:
        self.output.ip_output(
            header.dst,
            header.src,
            IpProtocol.ICMP,
            echo_reply_message(message),
            now,
            df=False,
            tos=header.tos & 0xFC,  # the request's DSCP, no ECN
        )
