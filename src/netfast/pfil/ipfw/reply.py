"""Replies of ``reset`` and ``unreach`` rules, as whole IPv4 packets.

:func:`tcp_reset_for` builds the RST of RFC 793 "Reset Generation"; :func:`icmp_unreach_for`
the destination unreachable of RFC 792, not sent where RFC 1812 4.3.2.7 forbids an ICMP error
(about an ICMP error, a non-first fragment, a multicast or broadcast address).  Each returns
None when no reply is due; neither raises for any packet.
"""

from __future__ import annotations

import struct

from netfast.pfil import PfilPacket
from netfast.pfil.ipfw.rules import (
    _ICMP_ERRORS,
)
from netfast.wire.icmpv4 import DestUnreachableCode, Icmpv4DestUnreachable
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr
from netfast.wire.tcp import TcpFlags, TcpRepr

# -- replies -------------------------------------------------------------------------------------

_U32 = struct.Struct("!I")


def tcp_reset_for(pkt: PfilPacket) -> bytes | None:
    """The RST answering ``pkt`` (RFC 793 "Reset Generation"), or None when it gets none: not
    TCP, a RST itself, a fragment without the TCP header, a multicast/broadcast destination."""
    data = bytes(pkt.data)
    if pkt.proto != IpProtocol.TCP or len(data) < 20 or pkt.tcp_flags < 0:
        return None
    if pkt.tcp_flags & TcpFlags.RST or _not_unicast(pkt.dst) or _not_unicast(pkt.src):
        return None
    ihl = (data[0] & 0x0F) * 4
    tcp = data[ihl:]
    if len(tcp) < 20:
        return None
    total = int.from_bytes(data[2:4], "big")
    offset = (tcp[12] >> 4) * 4
    seq = _U32.unpack_from(tcp, 4)[0]
    ack = _U32.unpack_from(tcp, 8)[0]
    flags = pkt.tcp_flags
    seg_len = max(0, total - ihl - offset) + bool(flags & TcpFlags.SYN) + bool(flags & TcpFlags.FIN)
    if flags & TcpFlags.ACK:
        rst = TcpRepr(pkt.dport, pkt.sport, ack, 0, TcpFlags.RST, 0)
    else:
        rst = TcpRepr(
            pkt.dport, pkt.sport, 0, (seq + seg_len) & 0xFFFFFFFF, TcpFlags.RST | TcpFlags.ACK, 0
        )
    segment = rst.to_bytes(pkt.dst, pkt.src)
    ip = Ipv4Repr(src=pkt.dst, dst=pkt.src, protocol=IpProtocol.TCP, payload_len=len(segment))
    return ip.to_bytes(segment)


def _not_unicast(addr: int) -> bool:
    return addr >= 0xE0000000 or addr == 0 or addr >> 24 == 127


def icmp_unreach_for(pkt: PfilPacket, code: int, source: int) -> bytes | None:
    """The ICMP destination unreachable answering ``pkt`` (quoting its IP header and 8 bytes of
    payload, RFC 792), or None where RFC 1812 4.3.2.7 forbids one."""
    data = bytes(pkt.data)
    if len(data) < 20 or _not_unicast(pkt.src) or _not_unicast(pkt.dst):
        return None
    frag_offset = int.from_bytes(data[6:8], "big") & 0x1FFF
    if frag_offset:
        return None
    if pkt.proto == IpProtocol.ICMP and (pkt.icmp_type < 0 or pkt.icmp_type in _ICMP_ERRORS):
        return None
    ihl = (data[0] & 0x0F) * 4
    total = int.from_bytes(data[2:4], "big")
    quote = data[: min(ihl + 8, total, len(data))]
    message = Icmpv4DestUnreachable(DestUnreachableCode(code), quote).to_bytes()
    ip = Ipv4Repr(src=source, dst=pkt.src, protocol=IpProtocol.ICMP, payload_len=len(message))
    return ip.to_bytes(message)
