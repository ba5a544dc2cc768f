"""The host's IPv4 output (RFC 791, RFC 1122 section 3.3): routes, the header, fragmentation,
ARP resolution, TSO/GSO hand-off and the ICMP errors the host originates.

Contract
--------
:class:`HostOutput` is the :class:`netfast.ip.api.IpOutput` of a host: the transports (TCP, UDP)
are given it, not the stack.  The route toward a destination is the most specific connected
subnet of an interface, else the default gateway (a host has no routing table, RFC 1122
3.3.1); :meth:`HostOutput.ip_output` builds the fixed header (no options, :data:`FIXED_HEADER`
packed at once), resolves the next hop with ARP (a miss holds the packet and asks), fragments a
packet larger than the MTU unless DF is set (RFC 791 3.2), and hands a TCP super-segment to a
link with TSO or cuts it here (software GSO, :func:`netfast.link.offload.gso_segment`).  Frames
are appended to :attr:`HostOutput.out`; the host stack's ``poll`` hands them out.  It returns
None when the packet was queued (or held for ARP), else the counter naming why it was dropped.

:meth:`HostOutput.icmp_error` sends an ICMP error about a received packet, with the suppression
rules and the token-bucket rate limit of :class:`netfast.ip.icmp.IcmpErrors` (RFC 1122 3.2.2).

Accounting: the ``ip.out.*`` counters below are informational (no identity ties them).
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from netfast.ip.arp import HOLD_QUEUED, ArpCache
from netfast.ip.frag import ip_fragment
from netfast.ip.icmp import IcmpErrors
from netfast.ip.iface import Interface
from netfast.ip.input import LIMITED_BROADCAST
from netfast.link.base import GsoFrame
from netfast.link.offload import gso_segment
from netfast.route.rib import prefix_mask
from netfast.wire import checksum
from netfast.wire.ethernet import BROADCAST
from netfast.wire.ipv4 import FIXED_HEADER, FLAG_DF, IpProtocol

__all__ = ["OUTPUT_DROPS", "HostOutput", "OutputConfig"]

OUT_SENT = "ip.out.sent"
OUT_NO_ROUTE = "ip.out.no_route"
OUT_TOO_BIG = "ip.out.too_big"
OUT_ARP_HELD = "ip.out.arp_held"
OUT_ARP_OVERFLOW = "ip.out.arp_overflow"
OUT_ARP_FAILED = "ip.out.arp_failed"
OUT_FRAGMENTS = "ip.out.fragments"
OUT_GSO = "ip.out.gso"
OUT_GSO_SOFTWARE = "ip.out.gso_software"
OUT_GSO_SEGMENTS = "ip.out.gso_segments"
OUT_GSO_UNRESOLVED = "ip.out.gso_unresolved"
#: The reasons :meth:`HostOutput.ip_output` may return (None: queued or held).
OUTPUT_DROPS: tuple[str, ...] = (OUT_NO_ROUTE, OUT_TOO_BIG, OUT_ARP_OVERFLOW, OUT_GSO_UNRESOLVED)

_ETH_IPV4 = b"\x08\x00"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class OutputConfig(Protocol):
    """The host settings output reads at every packet (:class:`netfast.stack.host.HostConfig`
    has them; they may change while the host runs)."""

    ttl: int
    gso: bool


def _with_tcp_checksum(packet: bytes) -> bytes:
    """An IPv4/TCP packet with its TCP checksum computed (the field's old value ignored)."""
    buf = bytearray(packet)
    ihl = (buf[0] & 0x0F) * 4
    src, dst = _U32.unpack_from(buf, 12)[0], _U32.unpack_from(buf, 16)[0]
    buf[ihl + 16 : ihl + 18] = b"\0\0"
    value = checksum.l4_checksum(src, dst, IpProtocol.TCP, memoryview(buf)[ihl:])
    _U16.pack_into(buf, ihl + 16, value)
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class _Connected:
    network: int
    mask: int
    plen: int
    broadcast: int
    addr: int
    ifindex: int


class HostOutput:
    """IPv4 output of a host (see the module docstring).

    Parameters
    ----------
    interfaces:
        The interfaces by ifindex.
    gateway:
        The default router (on a connected subnet), or None.
    config:
        TTL and GSO (read at each packet).
    arp, icmp:
        The neighbour cache and the ICMP error source.
    counters:
        The host's counters.
    rng:
        Randomness for the IP identification start.
    """

    def __init__(
        self,
        interfaces: Mapping[int, Interface],
        *,
        gateway: int | None,
        config: OutputConfig,
        arp: ArpCache,
        icmp: IcmpErrors,
        unicast: frozenset[int] | set[int],
        counters: Counter[str],
        rng: random.Random,
    ) -> None:
        self.interfaces = interfaces
        self.config = config
        self.arp = arp
        self.icmp = icmp
        self.counters = counters
        self._unicast = unicast
        # Longest prefix first: the first match is the most specific connected route.
        self._connected = sorted(
            (
                _Connected(a.network, prefix_mask(a.plen), a.plen, a.broadcast, a.addr, i.index)
                for i in interfaces.values()
                for a in i.addrs
            ),
            key=lambda c: -c.plen,
        )
        self.gateway = gateway
        self._gateway_route: _Connected | None = None
        if gateway is not None:
            self._gateway_route = self._connected_route(gateway)
            if self._gateway_route is None:
                raise ValueError("the gateway is not on a connected subnet")
        self._eth_tail = {i: f.mac + _ETH_IPV4 for i, f in interfaces.items()}
        self._ident = rng.randrange(0x10000)
        #: The time of the host's latest input or poll (the host stack sets it): "now" for
        #: socket calls, which carry no time of their own.
        self.now = 0.0
        #: Frames queued for the links, ``(ifindex, frame)``; the host's ``poll`` takes them.
        self.out: list[tuple[int, bytes]] = []
        #: Interfaces whose links segment large TCP frames themselves (:meth:`enable_tso`).
        self.tso: set[int] = set()

    def is_local(self, addr: int) -> bool:
        """True for one of our unicast addresses."""
        return addr in self._unicast

    def _connected_route(self, dst: int) -> _Connected | None:
        for c in self._connected:
            if dst & c.mask == c.network:
                return c
        return None

    def route(self, dst: int) -> tuple[_Connected, int] | None:
        """(the route, the next hop) for ``dst``: a connected subnet, else the gateway."""
        c = self._connected_route(dst)
        if c is not None:
            return c, dst
        if dst == LIMITED_BROADCAST and self._connected:
            return self._connected[-1], dst
        if self._gateway_route is not None and self.gateway is not None:
            return self._gateway_route, self.gateway
        return None

    def source_for(self, dst: int) -> int | None:
        """The local address used to reach ``dst`` (None: no route)."""
        route = self.route(dst)
        return None if route is None else route[0].addr

    def mtu_for(self, dst: int) -> int:
        """The MTU of the interface ``dst`` is reached by (the smallest MTU when unroutable)."""
        route = self.route(dst)
        if route is None:
            return min(f.mtu for f in self.interfaces.values())
        return self.interfaces[route[0].ifindex].mtu

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def ip_output(
        self,
        src: int,
        dst: int,
        proto: int,
        payload: bytes,
        now: float,
        *,
        ttl: int | None = None,
        df: bool = True,
        tos: int = 0,
        gso_mss: int = 0,
    ) -> str | None:
        """Send one IP datagram: route, build the header, fragment if needed, resolve, queue.

        Parameters
        ----------
        src:
            Source address; 0 picks :meth:`source_for`.
        dst, proto, payload:
            Destination, protocol number, the transport's bytes (checksum already filled).
        now:
            The current time (ARP).
        ttl, df, tos:
            TTL (default: the config's), Don't Fragment, the TOS octet.
        gso_mss:
            For a TCP segment larger than the MTU on an interface with TSO (:meth:`enable_tso`):
            the MSS the link cuts it at.  The frame goes out as a
            :class:`~netfast.link.base.GsoFrame`, or cut here (:attr:`OutputConfig.gso`).  The
            TCP checksum field of such a segment may be left zero: every piece gets its own,
            and a segment that is not cut after all has it filled in here.

        Returns
        -------
        str or None
            None when the packet was queued (as frames, or held for ARP); otherwise the counter
            naming why it was dropped: ``"ip.out.no_route"``, ``"ip.out.too_big"`` (larger than
            the MTU with DF set), ``"ip.out.arp_overflow"``.

        Raises
        ------
        ValueError
            For a payload that no IP datagram can carry, or out-of-range fields.
        """
        route = self.route(dst)
        if route is None:
            self.counters[OUT_NO_ROUTE] += 1
            return OUT_NO_ROUTE
        if src == 0:
            src = route[0].addr
        n = len(payload)
        if not 0 <= n <= 0xFFFF - 20 or not 0 <= tos <= 0xFF or not 0 <= proto <= 0xFF:
            raise ValueError(f"no IPv4 datagram carries {n} bytes of protocol {proto}, tos {tos}")
        # The fixed header packed at once (every field of Ipv4Repr.emit, no options): this runs
        # for every segment a TCP sends.
        header = bytearray(
            FIXED_HEADER.pack(
                0x45,
                tos,
                20 + n,
                self.next_ident(),
                FLAG_DF if df else 0,
                self.config.ttl if ttl is None else ttl,
                proto,
                0,
                src,
                dst,
            )
        )
        _U16.pack_into(header, 10, checksum.internet_checksum(header))
        header += payload
        return self.send(bytes(header), route, now, gso_mss)

    def enable_tso(self, ifindex: int) -> None:
        """The link of ``ifindex`` cuts large TCP segments itself (TSO): the TCP may hand it
        segments of up to 64 KiB."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface {ifindex}")
        self.tso.add(ifindex)

    def tso_for(self, dst: int) -> bool:
        """True when the TCP may hand down segments larger than the MTU toward ``dst``: the
        route leaves through an interface with TSO, or software GSO is on
        (:attr:`OutputConfig.gso`)."""
        route = self.route(dst)
        return route is not None and (self.config.gso or route[0].ifindex in self.tso)

    def send(
        self, packet: bytes, route: tuple[_Connected, int], now: float, gso_mss: int = 0
    ) -> str | None:
        conn, hop = route
        egress = conn.ifindex
        if gso_mss and len(packet) > self.interfaces[egress].mtu:
            # Cut by the link (TSO) or here -- also when HostConfig.gso was turned off after
            # the TCP learned it may hand down large segments.
            mac = self.arp.lookup(egress, hop, now)
            if mac is None:
                # Not worth holding: the TCP resends it when resolution is done.
                self.counters[OUT_GSO_UNRESOLVED] += 1
                return OUT_GSO_UNRESOLVED
            self.counters[OUT_SENT] += 1
            frame = mac + self._eth_tail[egress] + packet
            if egress in self.tso:
                self.counters[OUT_GSO] += 1
                self.out.append((egress, GsoFrame(frame, gso_mss)))
                return None
            segments = gso_segment(frame, gso_mss)
            self.counters[OUT_GSO_SOFTWARE] += 1
            self.counters[OUT_GSO_SEGMENTS] += len(segments)
            # The segments took consecutive identifications from the super-frame's.
            self._ident = (self._ident + len(segments) - 1) & 0xFFFF
            self.out.extend([(egress, f) for f in segments])
            return None
        if gso_mss:
            packet = _with_tcp_checksum(packet)
        if len(packet) > self.interfaces[egress].mtu and _U16.unpack_from(packet, 6)[0] & FLAG_DF:
            self.counters[OUT_TOO_BIG] += 1
            return OUT_TOO_BIG
        if hop == LIMITED_BROADCAST or (hop == conn.broadcast and conn.plen < 31):
            self.frame(egress, BROADCAST, packet)
            return None
        mac = self.arp.lookup(egress, hop, now)
        if mac is None:
            outcome, requests = self.arp.hold(egress, hop, packet, now)
            self.out.extend(requests)
            if outcome != HOLD_QUEUED:
                self.counters[OUT_ARP_OVERFLOW] += 1
                return OUT_ARP_OVERFLOW
            self.counters[OUT_ARP_HELD] += 1
            return None
        self.frame(egress, mac, packet)
        return None

    def originate(self, packet: bytes, now: float) -> bool:
        """Route and send a packet built whole here (echo replies, ICMP errors)."""
        route = self.route(_U32.unpack_from(packet, 16)[0])
        if route is None:
            self.counters[OUT_NO_ROUTE] += 1
            return False
        return self.send(packet, route, now) is None

    def frame(self, egress: int, mac: bytes, packet: bytes) -> None:
        """Frame an IP packet for ``egress``, fragmenting it to the MTU (RFC 791 3.2)."""
        head = mac + self._eth_tail[egress]
        mtu = self.interfaces[egress].mtu
        if len(packet) <= mtu:
            self.counters[OUT_SENT] += 1
            self.out.append((egress, head + packet))
            return
        if _U16.unpack_from(packet, 6)[0] & FLAG_DF:
            # Held packets whose route changed MTU; checked before for fresh ones.
            self.counters[OUT_TOO_BIG] += 1
            return
        fragments = ip_fragment(packet, mtu)
        self.counters[OUT_SENT] += 1
        self.counters[OUT_FRAGMENTS] += len(fragments)
        self.out.extend((egress, head + f) for f in fragments)

    def icmp_error(
        self,
        original: bytes,
        icmp_type: int,
        code: int,
        now: float,
        *,
        link_broadcast: bool = False,
    ) -> bool:
        """An ICMP error about ``original`` (suppression rules and rate limit applied), sent
        from the address the packet was sent to when it is ours (RFC 1122 3.2.2)."""
        if not self.icmp.allowed(original, now, link_broadcast=link_broadcast):
            return False
        dst = _U32.unpack_from(original, 16)[0]
        src = dst if dst in self._unicast else self.source_for(_U32.unpack_from(original, 12)[0])
        if src is None:
            self.counters[OUT_NO_ROUTE] += 1
            return False
        return self.originate(self.icmp.build(original, icmp_type, code, src), now)
