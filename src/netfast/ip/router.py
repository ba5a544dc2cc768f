"""The router's scalar path: one Ethernet frame in, the frames it causes out (docs/ROUTER.md).

Theory of operation
-------------------
:class:`Router` is sans-IO: :meth:`Router.input` takes a frame, the index of the interface it
arrived on and the time, and returns ``(egress ifindex, frame)`` pairs; :meth:`Router.poll` runs
the timers (ARP retransmission, resolution failure, entry expiry).  Nothing reads a clock.

It handles every corner case -- options, fragments, ICMP errors, ARP -- and is what the vector
path punts to.  Like FreeBSD's ``ip_fastfwd.c`` it works in numbered steps, cheapest first
(RFC 1812 section 5.2.2 for the checks, 5.2.3 for the local delivery decision, 5.2.4 and 5.3 for
forwarding):

1. Ethernet demux: ARP to :class:`~netfast.ip.arp.ArpCache`, IPv4 on, anything else counted.
2. IPv4 integrity and martian checks (:func:`~netfast.ip.input.ip_input_check`); a packet with
   options is counted (``ip.in.options``), its options walked (malformed: dropped) and then
   treated like any other (forwarded with its options intact; the record-route and timestamp
   processing of RFC 1812 5.3.13 is not done).
3. pfil IN.
4. Local or not (the paper's "Local or non-Local": one hash probe): a local unicast or broadcast
   destination is delivered -- an echo request to a unicast address is answered (RFC 792), an
   echo to a broadcast is ignored (RFC 1812 4.3.3.6 allows it), everything else is counted
   ``ip.local.unhandled_proto`` (the router has no transports; the host stack,
   :mod:`netfast.stack.host`, is a separate product).  Multicast is not forwarded
   (there is no multicast routing here), nor is a unicast packet that came in a link-layer
   broadcast or multicast frame (RFC 1812 5.3.4).
5. TTL: a packet that must be forwarded with TTL <= 1 is dropped with time exceeded
   (RFC 1812 5.3.1).
6. FIB lookup; no route: net unreachable (RFC 1812 5.2.7.1).
7. pfil FORWARD, then pfil OUT (with the egress ifindex).
8. MTU: too big with DF set: fragmentation needed carrying the egress MTU (RFC 1191); without
   DF: fragmented (RFC 791, :func:`~netfast.ip.frag.ip_fragment`).
9. TTL - 1 with the RFC 1624 incremental checksum update (RFC 1812 5.3.1, 5.2.2).
10. Next hop (the route's gateway, or the destination itself on a connected route) resolved by
    ARP; a miss holds the packet and broadcasts a request.  Frame out: destination MAC resolved,
    source MAC the egress interface's.

Accounting
----------
The counters say where every frame went.  ``eth.in.frames`` counts frames given to
:meth:`Router.input`; exactly one of :data:`FRAME_OUTCOMES` counts each of them, one of which is
``ip.in.received``; exactly one of :data:`IP_OUTCOMES` counts each received IPv4 packet.  So

    ``eth.in.frames == sum(FRAME_OUTCOMES)`` and ``ip.in.received == sum(IP_OUTCOMES)``.

A packet held for ARP (``arp.hold.queued``) later ends in ``arp.hold.released`` or
``arp.hold.timeout`` (then host unreachable, RFC 1812 4.3.3.1).  Everything else -- ICMP errors
sent or suppressed (``icmp.out.*``), router-originated packets (``ip.out.*``), pfil replies,
ARP events, ``ip.in.options`` and fragment counts -- is informational and not part of the sums.

Router-originated packets (ICMP errors, echo replies, replies a pfil hook asks for) are routed
and resolved like forwarded ones but do not run the pfil heads: a firewall's answer must not be
filtered by the same firewall, and the vector path never sees them either.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from netfast.ip.arp import (
    ARP_INPUT_OUTCOMES,
    HOLD_OVERFLOW,
    HOLD_QUEUED,
    ArpCache,
    Frames,
)
from netfast.ip.facts import l4_fields
from netfast.ip.frag import ip_fragment
from netfast.ip.icmp import DEFAULT_TTL, IcmpErrors, echo_reply_message
from netfast.ip.iface import Interface, NextHop
from netfast.ip.input import INPUT_DROPS, Ipv4Header, ip_input_check, options_ok
from netfast.ip.local import LocalAddrs
from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.heads import HookInfo
from netfast.route.table import RoutingTable
from netfast.wire import checksum
from netfast.wire.icmpv4 import DestUnreachableCode, Icmpv4Type, TimeExceededCode
from netfast.wire.ipv4 import FLAG_DF, IpProtocol, Ipv4Repr


class PfilRunner(Protocol):
    """What the router and its vector path need of ``netfast.pfil.heads.PfilHeads``: the
    scalar path runs a head; the vector path reads the hooks to run their batch forms."""

    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict: ...

    def has_hooks(self, direction: Direction) -> bool: ...

    def hooks(self, direction: Direction) -> Sequence[HookInfo]: ...


# --- counter names ------------------------------------------------------------------------------

ETH_FRAMES = "eth.in.frames"
ETH_TOO_SHORT = "eth.in.too_short"
ETH_UNKNOWN_TYPE = "eth.in.unknown_type"
IN_RECEIVED = "ip.in.received"
INTERNAL_ERROR = "router.internal_error"

IN_OPTIONS = "ip.in.options"  # informational
IN_BAD_OPTIONS = "ip.in.bad_options"
IN_TTL_EXCEEDED = "ip.in.ttl_exceeded"
LOCAL_ECHO_REPLY = "ip.local.echo_reply"
LOCAL_BROADCAST_ECHO = "ip.local.broadcast_echo"
LOCAL_FRAGMENT = "ip.local.fragment"
LOCAL_UNHANDLED = "ip.local.unhandled_proto"
ICMP_IN_TOO_SHORT = "icmp.in.too_short"
ICMP_IN_BAD_CHECKSUM = "icmp.in.bad_checksum"
FWD_MULTICAST = "ip.fwd.multicast"
FWD_LINK_BROADCAST = "ip.fwd.link_broadcast"
FWD_NO_ROUTE = "ip.fwd.no_route"
FWD_BAD_NEXTHOP = "ip.fwd.bad_nexthop"
FWD_FRAG_NEEDED = "ip.fwd.frag_needed"
FWD_FORWARDED = "ip.fwd.forwarded"
FWD_FRAGMENTED = "ip.fwd.fragmented"
FRAG_CREATED = "ip.frag.created"  # informational: fragments built (forwarded or originated)

OUT_NO_ROUTE = "ip.out.no_route"
OUT_MALFORMED = "ip.out.malformed"
OUT_TOO_BIG = "ip.out.too_big"  # the host stack's name for the same event
OUT_SENT = "ip.out.sent"
OUT_ARP_HELD = "ip.out.arp_held"
OUT_ARP_OVERFLOW = "ip.out.arp_overflow"
ICMP_OUT_NO_ROUTE = "icmp.out.no_route"
PFIL_REPLIES = "pfil.replies"

_PFIL_NAMES = {Direction.IN: "in", Direction.FORWARD: "forward", Direction.OUT: "out"}
#: The drop counter of each pfil head (the vector path counts its drops with these too).
PFIL_DROP = {d: f"pfil.{n}.drop" for d, n in _PFIL_NAMES.items()}
_PFIL_CONSUMED = {d: f"pfil.{n}.consumed" for d, n in _PFIL_NAMES.items()}

#: Exactly one of these counts each received IPv4 packet (sum == ``ip.in.received``).
IP_OUTCOMES: tuple[str, ...] = (
    *INPUT_DROPS,
    IN_BAD_OPTIONS,
    *(PFIL_DROP[d] for d in Direction),
    *(_PFIL_CONSUMED[d] for d in Direction),
    LOCAL_ECHO_REPLY,
    LOCAL_BROADCAST_ECHO,
    LOCAL_FRAGMENT,
    LOCAL_UNHANDLED,
    ICMP_IN_TOO_SHORT,
    ICMP_IN_BAD_CHECKSUM,
    FWD_MULTICAST,
    FWD_LINK_BROADCAST,
    IN_TTL_EXCEEDED,
    FWD_NO_ROUTE,
    FWD_BAD_NEXTHOP,
    FWD_FRAG_NEEDED,
    FWD_FORWARDED,
    FWD_FRAGMENTED,
    HOLD_QUEUED,
    HOLD_OVERFLOW,
)

#: Exactly one of these counts each frame given to :meth:`Router.input` (sum ==
#: ``eth.in.frames``).
FRAME_OUTCOMES: tuple[str, ...] = (
    ETH_TOO_SHORT,
    ETH_UNKNOWN_TYPE,
    *ARP_INPUT_OUTCOMES,
    IN_RECEIVED,
    INTERNAL_ERROR,
)

_ETHERTYPE_IPV4 = b"\x08\x00"
_TTL_PROTO_SUM = struct.Struct(">BBH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_FRAG_MASK = 0x1FFF  # offset bits
_FRAG_ANY = 0x3FFF  # MF or offset: a fragment


class Router:
    """The scalar forwarding path (see the module docstring and docs/ROUTER.md).

    Parameters
    ----------
    interfaces:
        The router's ports; ``Interface.index`` is the ifindex used everywhere.
    table:
        Routes whose values are :class:`~netfast.ip.iface.NextHop`.
    pfil:
        The pfil heads (``run`` / ``has_hooks``), or None for no filtering.
    icmp_rate, icmp_burst:
        The ICMP error token bucket (errors per second, burst); ``icmp_rate <= 0``: no limit.
    arp_timeout, arp_hold, arp_retries, arp_retry_interval:
        ARP entry lifetime, hold-queue bound per next hop, requests before giving up, and
        seconds between requests.
    strict:
        Re-raise internal errors instead of counting them (``router.internal_error``); for tests.
    """

    def __init__(
        self,
        interfaces: Sequence[Interface],
        table: RoutingTable,
        pfil: PfilRunner | None = None,
        *,
        icmp_rate: float = 100.0,
        icmp_burst: int = 50,
        arp_timeout: float = 1200.0,
        arp_hold: int = 16,
        arp_retries: int = 5,
        arp_retry_interval: float = 1.0,
        strict: bool = False,
    ) -> None:
        self.interfaces: dict[int, Interface] = {}
        for iface in interfaces:
            if iface.index in self.interfaces:
                raise ValueError(f"two interfaces with index {iface.index}")
            self.interfaces[iface.index] = iface
        self.table = table
        self.pfil = pfil
        self.strict = strict
        self.counters: Counter[str] = Counter()
        self.local = LocalAddrs(interfaces)
        self.arp = ArpCache(
            interfaces,
            self.counters,
            timeout=arp_timeout,
            hold=arp_hold,
            retries=arp_retries,
            retry_interval=arp_retry_interval,
        )
        self.icmp = IcmpErrors(self.local, self.counters, rate=icmp_rate, burst=icmp_burst)
        # Per egress interface: the frame header after the destination MAC, and the MTU.
        self._eth_tail = {i: f.mac + _ETHERTYPE_IPV4 for i, f in self.interfaces.items()}
        self._mtu = {i: f.mtu for i, f in self.interfaces.items()}
        self._unicast = self.local.unicast
        self._broadcast = self.local.broadcast
        #: RFC 1812 4.3.2.4's fallback source (the "router-id"): the first configured address.
        self.router_id = next((f.primary for f in interfaces if f.primary is not None), 0)

    # --- entry points --------------------------------------------------------------------------

    def input(self, ifindex: int, frame: bytes, now: float) -> list[tuple[int, bytes]]:
        """Process one received Ethernet frame; return the frames to send as
        ``(egress ifindex, frame)``.  Never raises on any frame content (an unknown ``ifindex``
        is API misuse and raises ``ValueError``)."""
        if ifindex not in self._mtu:
            raise ValueError(f"no interface with index {ifindex}")
        self.counters[ETH_FRAMES] += 1
        try:
            return self._ether_input(ifindex, bytes(frame), now)
        except Exception:
            if self.strict:
                raise
            self.counters[INTERNAL_ERROR] += 1
            return []

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        """Run the timers at ``now``: ARP retransmissions, packets released by entries that
        became resolved, host unreachable for packets whose resolution failed, expiry."""
        frames, given_up, released = self.arp.poll(now)
        for ifindex, mac, packet in released:
            frames.extend(self._frame(ifindex, mac, packet))
        for _ifindex, packet in given_up:
            # Not about our own packets (an error about an error or echo reply we sent).
            if _U32.unpack_from(packet, 12)[0] not in self._unicast:
                frames.extend(
                    self._icmp_error(
                        packet,
                        Icmpv4Type.DEST_UNREACHABLE,
                        DestUnreachableCode.HOST_UNREACHABLE,
                        now,
                    )
                )
        return frames

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has work (None: nothing pending)."""
        return self.arp.poll_at()

    # --- layer 2 -------------------------------------------------------------------------------

    def _ether_input(self, ifindex: int, frame: bytes, now: float) -> Frames:
        if len(frame) < 14:
            self.counters[ETH_TOO_SHORT] += 1
            return []
        ethertype = frame[12:14]
        if ethertype == _ETHERTYPE_IPV4:
            return self._ip_input(ifindex, frame, now)
        if ethertype == b"\x08\x06":
            result = self.arp.input(ifindex, frame[14:], now)
            out = result.frames
            for egress, mac, packet in result.released:
                out.extend(self._frame(egress, mac, packet))
            return out
        # VLAN tags, IPv6, LLC lengths, ...: not this router's.
        self.counters[ETH_UNKNOWN_TYPE] += 1
        return []

    # --- IPv4 input ----------------------------------------------------------------------------

    def _ip_input(self, ifindex: int, frame: bytes, now: float) -> Frames:
        counters = self.counters
        counters[IN_RECEIVED] += 1
        header = ip_input_check(frame, 14)
        if type(header) is str:
            counters[header] += 1
            return []
        assert isinstance(header, Ipv4Header)
        ver_ihl, _tos, total, _ident, frag, ttl, proto, csum, _src, dst = header
        end = 14 + total
        if ver_ihl != 0x45:
            # The slow path proper: options are walked (to refuse malformed ones) and kept.
            counters[IN_OPTIONS] += 1
            if not options_ok(frame[34 : 14 + ((ver_ihl & 0x0F) << 2)]):
                counters[IN_BAD_OPTIONS] += 1
                return []

        out: Frames = []
        pfil = self.pfil
        pkt: PfilPacket | None = None
        if pfil is not None and pfil.has_hooks(Direction.IN):
            pkt = self._pfil_packet(ifindex, Direction.IN, header, frame[14:end])
            if not self._run_pfil(Direction.IN, pkt, now, out):
                return out

        # Local or not: one hash probe each.
        if dst in self._unicast:
            out.extend(self._local_input(header, frame[14:end], False, now))
            return out
        if dst in self._broadcast:
            out.extend(self._local_input(header, frame[14:end], True, now))
            return out
        if dst >> 28 == 0xE:
            counters[FWD_MULTICAST] += 1
            return out
        link_broadcast = bool(frame[0] & 1)
        if link_broadcast:
            counters[FWD_LINK_BROADCAST] += 1
            return out

        if ttl <= 1:
            counters[IN_TTL_EXCEEDED] += 1
            out.extend(
                self._icmp_error(
                    frame[14:end], Icmpv4Type.TIME_EXCEEDED, TimeExceededCode.TTL_EXCEEDED, now
                )
            )
            return out

        rid = self.table.lookup(dst)
        if rid < 0:
            counters[FWD_NO_ROUTE] += 1
            out.extend(
                self._icmp_error(
                    frame[14:end],
                    Icmpv4Type.DEST_UNREACHABLE,
                    DestUnreachableCode.NET_UNREACHABLE,
                    now,
                )
            )
            return out
        rib = self.table.rib
        nexthop = rib.values[int(rib.value_id[rid])]
        mtu = self._mtu.get(nexthop.ifindex) if isinstance(nexthop, NextHop) else None
        if mtu is None:
            counters[FWD_BAD_NEXTHOP] += 1
            return out
        assert isinstance(nexthop, NextHop)
        egress = nexthop.ifindex

        if pfil is not None:
            has_forward = pfil.has_hooks(Direction.FORWARD)
            has_out = pfil.has_hooks(Direction.OUT)
            if has_forward or has_out:
                if pkt is None:
                    pkt = self._pfil_packet(ifindex, Direction.FORWARD, header, frame[14:end])
                if has_forward:
                    pkt.direction = Direction.FORWARD
                    pkt.ifindex = ifindex
                    if not self._run_pfil(Direction.FORWARD, pkt, now, out):
                        return out
                if has_out:
                    pkt.direction = Direction.OUT
                    pkt.ifindex = egress
                    if not self._run_pfil(Direction.OUT, pkt, now, out):
                        return out

        if total > mtu and frag & FLAG_DF:
            counters[FWD_FRAG_NEEDED] += 1
            out.extend(
                self._icmp_error(
                    frame[14:end],
                    Icmpv4Type.DEST_UNREACHABLE,
                    DestUnreachableCode.FRAG_NEEDED,
                    now,
                    next_hop_mtu=mtu,
                )
            )
            return out

        # TTL - 1 and the RFC 1624 update of the header checksum (TTL shares a word with the
        # protocol); the rest of the packet is copied once, into the outgoing frame.
        ttl_word = _TTL_PROTO_SUM.pack(
            ttl - 1, proto, checksum.update_ttl(csum, ttl, proto, ttl - 1)
        )
        gateway = nexthop.gateway
        hop = dst if gateway is None else gateway
        entry = self.arp.tables[egress].get(hop)
        mac = entry.mac if entry is not None and entry.expires > now else None
        if mac is not None and total <= mtu:
            counters[FWD_FORWARDED] += 1
            out.append(
                (
                    egress,
                    b"".join((mac, self._eth_tail[egress], frame[14:22], ttl_word, frame[26:end])),
                )
            )
            return out
        packet = b"".join((frame[14:22], ttl_word, frame[26:end]))
        if mac is None:
            outcome, requests = self.arp.hold(egress, hop, packet, now)
            counters[outcome] += 1
            out.extend(requests)
            return out
        counters[FWD_FRAGMENTED] += 1
        out.extend(self._frame(egress, mac, packet))
        return out

    # --- local delivery ------------------------------------------------------------------------

    def _local_input(
        self, header: Ipv4Header, packet: bytes, broadcast: bool, now: float
    ) -> Frames:
        """A packet for the router itself: answer echo requests (RFC 792, RFC 1122 3.2.2.6)."""
        counters = self.counters
        if header.frag & _FRAG_ANY:
            # Reassembly is the host stack's (netfast.ip.reass); the router terminates nothing.
            counters[LOCAL_FRAGMENT] += 1
            return []
        if header.proto != IpProtocol.ICMP:
            counters[LOCAL_UNHANDLED] += 1
            return []
        message = packet[header.header_len :]
        if len(message) < 8:
            counters[ICMP_IN_TOO_SHORT] += 1
            return []
        if message[0] != Icmpv4Type.ECHO_REQUEST:
            counters[LOCAL_UNHANDLED] += 1
            return []
        if broadcast:
            counters[LOCAL_BROADCAST_ECHO] += 1
            return []
        if not checksum.verify(message):
            counters[ICMP_IN_BAD_CHECKSUM] += 1
            return []
        counters[LOCAL_ECHO_REPLY] += 1
        reply = echo_reply_message(message)
        ip = Ipv4Repr(
            src=header.dst,
            dst=header.src,
            protocol=IpProtocol.ICMP,
            payload_len=len(reply),
            ttl=DEFAULT_TTL,
            dscp=header.tos >> 2,
            identification=self.icmp.next_ident(),
        )
        return self._originate(ip.to_bytes(reply), now)

    # --- pfil ----------------------------------------------------------------------------------

    @staticmethod
    def _pfil_packet(
        ifindex: int, direction: Direction, header: Ipv4Header, packet: bytes
    ) -> PfilPacket:
        """What hooks see: the parsed fields, transport ports/flags/types of a first fragment."""
        frag = header.frag
        pkt = PfilPacket(
            ifindex,
            direction,
            header.src,
            header.dst,
            header.proto,
            header.ttl,
            header.total_length,
            fragment=bool(frag & _FRAG_ANY),
            data=packet,
        )
        if frag & _FRAG_MASK:
            return pkt
        pkt.sport, pkt.dport, pkt.tcp_flags, pkt.icmp_type, pkt.icmp_code = l4_fields(
            packet, header.header_len, header.proto
        )
        return pkt

    def _run_pfil(self, direction: Direction, pkt: PfilPacket, now: float, out: Frames) -> bool:
        """Run one head; send any replies a hook asked for; True when the packet goes on."""
        assert self.pfil is not None
        pkt.replies = None
        verdict = self.pfil.run(direction, pkt)
        replies = pkt.replies
        if replies:
            pkt.replies = None
            for reply in replies:
                self.counters[PFIL_REPLIES] += 1
                out.extend(self._originate(bytes(reply), now))
        if verdict == Verdict.PASS:
            return True
        if verdict == Verdict.CONSUMED:
            self.counters[_PFIL_CONSUMED[direction]] += 1
        else:
            self.counters[PFIL_DROP[direction]] += 1
        return False

    # --- output of router-originated packets ---------------------------------------------------

    def _route(self, dst: int) -> NextHop | None:
        rid = self.table.lookup(dst)
        if rid < 0:
            return None
        rib = self.table.rib
        nexthop = rib.values[int(rib.value_id[rid])]
        if not isinstance(nexthop, NextHop) or nexthop.ifindex not in self._mtu:
            return None
        return nexthop

    def _originate(self, packet: bytes, now: float) -> Frames:
        """Route, resolve and frame a packet the router sends itself (no TTL change, no pfil)."""
        if (
            len(packet) < 20
            or (packet[0] & 0x0F) < 5
            or _U16.unpack_from(packet, 2)[0] != len(packet)
        ):
            self.counters[OUT_MALFORMED] += 1
            return []
        dst = _U32.unpack_from(packet, 16)[0]
        nexthop = self._route(dst)
        if nexthop is None:
            self.counters[OUT_NO_ROUTE] += 1
            return []
        egress = nexthop.ifindex
        hop = dst if nexthop.gateway is None else nexthop.gateway
        mac = self.arp.lookup(egress, hop, now)
        if mac is None:
            outcome, requests = self.arp.hold(egress, hop, packet, now)
            self.counters[OUT_ARP_HELD if outcome == HOLD_QUEUED else OUT_ARP_OVERFLOW] += 1
            return requests
        self.counters[OUT_SENT] += 1
        return self._frame(egress, mac, packet)

    def _frame(self, egress: int, mac: bytes, packet: bytes) -> Frames:
        """Frame a routed IP packet for ``egress``, fragmenting it to the MTU (RFC 791 3.2)."""
        head = mac + self._eth_tail[egress]
        mtu = self._mtu[egress]
        if len(packet) <= mtu:
            return [(egress, head + packet)]
        if _U16.unpack_from(packet, 6)[0] & FLAG_DF:
            # Only router-originated packets get here (forwarded ones were checked before).
            self.counters[OUT_TOO_BIG] += 1
            return []
        fragments = ip_fragment(packet, mtu)
        self.counters[FRAG_CREATED] += len(fragments)
        return [(egress, head + f) for f in fragments]

    def _icmp_error(
        self, original: bytes, icmp_type: int, code: int, now: float, *, next_hop_mtu: int = 0
    ) -> Frames:
        """Send an ICMP error about ``original`` (subject to RFC 1812 4.3.2.7 and the rate
        limit), from the address of the interface it leaves by (RFC 1812 4.3.2.4)."""
        if not self.icmp.allowed(original, now):
            return []
        back = self._route(_U32.unpack_from(original, 12)[0])
        if back is None:
            self.counters[ICMP_OUT_NO_ROUTE] += 1
            return []
        src = self.interfaces[back.ifindex].primary
        packet = self.icmp.build(
            original,
            icmp_type,
            code,
            self.router_id if src is None else src,
            next_hop_mtu=next_hop_mtu,
        )
        return self._originate(packet, now)
