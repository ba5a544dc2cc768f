"""The host stack: one sans-IO object that is an IPv4 end system on Ethernet interfaces
(RFC 1122), with ARP, ICMP, IP reassembly, UDP sockets and pluggable transports (TCP).

Theory of operation
-------------------
:class:`Stack` is driven like the router (:mod:`netfast.ip.router`) and like smoltcp's
interface: :meth:`Stack.input` takes one received frame with its ifindex and the time,
:meth:`Stack.poll` runs every timer (ARP, reassembly, the transports') and returns the frames to
send, :meth:`Stack.poll_at` says when to call it next.  Nothing reads a clock or draws
randomness; the RNG is a constructor argument (IP identification start, ephemeral ports).
Frames caused by input, by sockets and by transports are queued and handed out by ``poll``.

Input, cheapest step first (the paper's integrity checks and local-or-not hash, a host's half):

1. Ethernet demux: frames to our MAC or broadcast only (a host is not promiscuous); ARP to
   :class:`~netfast.ip.arp.ArpCache`, IPv4 on, other types counted.
2. :func:`~netfast.ip.input.ip_input_check`; options are walked (malformed: dropped) and kept.
3. Local or not (one hash probe): a packet for neither one of our addresses nor a broadcast is
   dropped -- a host does not forward (RFC 1122 3.3.1.6).
4. Fragments go to :class:`~netfast.ip.reass.Reassembler` (RFC 791, RFC 815).
5. By protocol: ICMP (echo answered, RFC 792 and RFC 1122 3.2.2.6; errors handed to the
   quoted protocol's ``ctlinput``, RFC 1122 3.2.2.1), UDP (:mod:`netfast.udp`; no
   socket: port unreachable), registered transports (unicast only), anything else: protocol
   unreachable.  ICMP errors are rate limited by a token bucket (FreeBSD's ``icmplim``) and
   never sent about broadcasts, errors or non-first fragments (RFC 1122 3.2.2).

Output (:meth:`Stack.ip_output`): the route is the connected subnet of an interface, else the
default gateway; the next hop is resolved by ARP (a miss holds the packet and asks); a packet
larger than the MTU is fragmented unless DF is set (RFC 791 3.2).

Accounting
----------
``eth.in.frames`` counts frames given to :meth:`Stack.input`; exactly one of
:data:`FRAME_OUTCOMES` counts each, one of which is ``ip.in.received``; exactly one of
:data:`IP_OUTCOMES` counts each received IPv4 packet.  A fragment that completes a datagram is
counted by the datagram's delivery outcome; the others by a reassembly outcome.  Hence
``eth.in.frames == sum(FRAME_OUTCOMES)`` and ``ip.in.received == sum(IP_OUTCOMES)``.
``ip.out.*``, ``icmp.out.*``, ``arp.*`` and ``udp.out.*`` are informational.  An exception
inside the stack (a bug, or a transport raising) is caught by :meth:`Stack.input` and counted
``host.internal_error``; the identities then hold no longer, which is why tests assert it is 0.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netfast.ip.api import TransportProtocol
from netfast.ip.arp import ARP_INPUT_OUTCOMES, HOLD_QUEUED, ArpCache
from netfast.ip.facts import LIMITED_BROADCAST
from netfast.ip.frag import ip_fragment
from netfast.ip.icmp import IcmpErrors, echo_reply_message
from netfast.ip.iface import Interface
from netfast.ip.input import INPUT_DROPS, Ipv4Header, ip_input_check, options_ok
from netfast.ip.local import LocalAddrs
from netfast.ip.reass import REASS_OUTCOMES, Reassembler
from netfast.link.base import GsoFrame
from netfast.link.offload import (
    RUN_ACK,
    RUN_DPORT,
    RUN_DST,
    RUN_FAST,
    RUN_FIRST,
    RUN_FLAGS,
    RUN_PAY_START,
    RUN_PAY_STOP,
    RUN_SEQ,
    RUN_SPORT,
    RUN_SRC,
    RUN_STOP,
    RUN_TS,
    RUN_TSECR,
    RUN_TSVAL,
    RUN_WINDOW,
    gro_scan,
    gso_segment,
)
from netfast.route.rib import prefix_mask
from netfast.tcp.config import TcpConfig
from netfast.tcp.layer import TcpLayer
from netfast.tcp.socket import TcpSocket
from netfast.udp.layer import UDP_OUTCOMES, UdpLayer, UdpSocket
from netfast.wire import checksum
from netfast.wire.ethernet import BROADCAST
from netfast.wire.icmpv4 import DestUnreachableCode, Icmpv4Type, TimeExceededCode
from netfast.wire.ipv4 import FIXED_HEADER, FLAG_DF, IpProtocol
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import EMPTY_OPTIONS, NOP, TcpOptions, TimestampsOption


@dataclass(slots=True)
class HostConfig:
    """Knobs of a host stack (defaults after FreeBSD's).

    Attributes
    ----------
    ttl:
        TTL of packets we originate (``net.inet.ip.ttl``).
    arp_timeout, arp_hold, arp_retries, arp_retry_interval:
        ARP entry lifetime, packets held per unresolved neighbour, requests before giving up,
        seconds between requests.
    icmp_rate, icmp_burst:
        ICMP error token bucket (``net.inet.icmp.icmplim`` = 200/s); ``icmp_rate <= 0``: no limit.
    reass_timeout, reass_max_datagrams, reass_max_fragments:
        Reassembly timer (``ipfragttl``, 30 s) and bounds.
    udp_rcvbuf:
        Receive-buffer bytes of each new UDP socket.
    rx_coalesce:
        Merge the TCP segments of a received batch (:meth:`Stack.input_batch`): a compiled pass
        over the batch (:func:`netfast.link.offload.gro_scan`) checks the frames of established
        data transfer and merges their runs before the TCP sees them, Linux's GRO in software;
        off, a batch is handled frame by frame (``netfast bench tcp`` measures both).
    gso:
        Let the TCP hand down segments of up to 64 KiB on every interface and cut those the
        link cannot segment itself in a compiled pass right before the link
        (:func:`netfast.link.offload.gso_segment`, Linux's GSO).  Off, the TCP builds every
        wire-sized segment itself unless the link has TSO (:meth:`Stack.enable_tso`).
    """

    ttl: int = 64
    arp_timeout: float = 1200.0
    arp_hold: int = 16
    arp_retries: int = 5
    arp_retry_interval: float = 1.0
    icmp_rate: float = 200.0
    icmp_burst: int = 200
    reass_timeout: float = 30.0
    reass_max_datagrams: int = 64
    reass_max_fragments: int = 128
    udp_rcvbuf: int = 256 * 1024
    rx_coalesce: bool = True
    gso: bool = True


def _with_tcp_checksum(packet: bytes) -> bytes:
    """An IPv4/TCP packet with its TCP checksum computed (the field's old value ignored)."""
    buf = bytearray(packet)
    ihl = (buf[0] & 0x0F) * 4
    src, dst = _U32.unpack_from(buf, 12)[0], _U32.unpack_from(buf, 16)[0]
    buf[ihl + 16 : ihl + 18] = b"\0\0"
    value = checksum.l4_checksum(src, dst, IpProtocol.TCP, memoryview(buf)[ihl:])
    _U16.pack_into(buf, ihl + 16, value)
    return bytes(buf)


# --- counter names ------------------------------------------------------------------------------

ETH_FRAMES = "eth.in.frames"
ETH_TOO_SHORT = "eth.in.too_short"
ETH_NOT_FOR_US = "eth.in.not_for_us"
ETH_UNKNOWN_TYPE = "eth.in.unknown_type"
IN_RECEIVED = "ip.in.received"
INTERNAL_ERROR = "host.internal_error"

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

OUT_SENT = "ip.out.sent"
OUT_NO_ROUTE = "ip.out.no_route"
OUT_TOO_BIG = "ip.out.too_big"
OUT_ARP_HELD = "ip.out.arp_held"
OUT_ARP_OVERFLOW = "ip.out.arp_overflow"
OUT_ARP_FAILED = "ip.out.arp_failed"
OUT_FRAGMENTS = "ip.out.fragments"
REASS_TIME_EXCEEDED = "ip.reass.time_exceeded_sent"

#: Exactly one of these counts each received IPv4 packet (sum == ``ip.in.received``).
IP_OUTCOMES: tuple[str, ...] = (
    *INPUT_DROPS,
    IN_BAD_OPTIONS,
    IN_NOT_FOR_US,
    *REASS_OUTCOMES,
    ICMP_TOO_SHORT,
    ICMP_BAD_CHECKSUM,
    ICMP_ECHO,
    ICMP_BROADCAST_ECHO,
    ICMP_ERROR_DELIVERED,
    ICMP_ERROR_UNHANDLED,
    ICMP_ERROR_BAD,
    ICMP_OTHER,
    *UDP_OUTCOMES,
    IN_BROADCAST_TRANSPORT,
    IN_TRANSPORT,
    IN_UNKNOWN_PROTO,
)

#: Exactly one of these counts each frame given to :meth:`Stack.input`.
FRAME_OUTCOMES: tuple[str, ...] = (
    ETH_TOO_SHORT,
    ETH_NOT_FOR_US,
    ETH_UNKNOWN_TYPE,
    *ARP_INPUT_OUTCOMES,
    IN_RECEIVED,
    INTERNAL_ERROR,
)

_ETH_IPV4 = b"\x08\x00"
_ETH_ARP = b"\x08\x06"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_FRAG_ANY = 0x3FFF
#: ICMP errors handed to transports (RFC 1122 3.2.2.1); source quench is obsolete (RFC 6633).
_ERROR_TYPES = frozenset(
    (Icmpv4Type.DEST_UNREACHABLE, Icmpv4Type.TIME_EXCEEDED, Icmpv4Type.PARAMETER_PROBLEM)
)


@dataclass(frozen=True, slots=True)
class _Connected:
    network: int
    mask: int
    plen: int
    broadcast: int
    addr: int
    ifindex: int


class Stack:
    """An IPv4 host on Ethernet interfaces (see the module docstring).

    Parameters
    ----------
    interfaces:
        The host's interfaces; ``Interface.index`` is the ifindex of :meth:`input` and of the
        frames :meth:`poll` returns.
    gateway:
        The default router (on one of the connected subnets), or None.
    config:
        Timers and bounds (:class:`HostConfig`).
    rng:
        Randomness for IP identification and ephemeral ports.
    strict:
        Re-raise internal errors instead of counting them (``host.internal_error``); tests.
    """

    def __init__(
        self,
        interfaces: Sequence[Interface],
        *,
        gateway: int | None = None,
        config: HostConfig | None = None,
        rng: random.Random,
        strict: bool = False,
        tcp: bool = True,
        tcp_config: TcpConfig | None = None,
    ) -> None:
        if not interfaces:
            raise ValueError("a host needs at least one interface")
        self.config = cfg = config if config is not None else HostConfig()
        self.interfaces: dict[int, Interface] = {}
        for iface in interfaces:
            if iface.index in self.interfaces:
                raise ValueError(f"two interfaces with index {iface.index}")
            self.interfaces[iface.index] = iface
        self.counters: Counter[str] = Counter()
        self.strict = strict
        self.rng = rng
        #: The latest time given to :meth:`input` or :meth:`poll` (sockets send at this time).
        self.now = 0.0
        self.local = LocalAddrs(interfaces)
        self.arp = ArpCache(
            interfaces,
            self.counters,
            timeout=cfg.arp_timeout,
            hold=cfg.arp_hold,
            retries=cfg.arp_retries,
            retry_interval=cfg.arp_retry_interval,
        )
        self.icmp = IcmpErrors(self.local, self.counters, rate=cfg.icmp_rate, burst=cfg.icmp_burst)
        self.reass = Reassembler(
            self.counters,
            timeout=cfg.reass_timeout,
            max_datagrams=cfg.reass_max_datagrams,
            max_fragments=cfg.reass_max_fragments,
        )
        self.udp = UdpLayer(self, self.counters, rng)
        self.transports: dict[int, TransportProtocol] = {}
        # Longest prefix first: the first match is the most specific connected route.
        self._connected = sorted(
            (
                _Connected(a.network, prefix_mask(a.plen), a.plen, a.broadcast, a.addr, i.index)
                for i in interfaces
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
        self._eth_tail = {i: f.mac + _ETH_IPV4 for i, f in self.interfaces.items()}
        self._macs = {i: f.mac for i, f in self.interfaces.items()}
        self._unicast = self.local.unicast
        self._broadcast = self.local.broadcast
        self._ident = rng.randrange(0x10000)
        self._out: list[tuple[int, bytes]] = []
        #: Interfaces whose links segment large TCP frames themselves (:meth:`enable_tso`).
        self.tso: set[int] = set()
        #: The TCP (protocol 6); None when built with ``tcp=False`` (then one with settings of
        #: one's own may be given with :meth:`attach_tcp`).
        self.tcp: TcpLayer | None = None
        if tcp:
            self.attach_tcp(TcpLayer(self, random.Random(rng.getrandbits(64)), tcp_config))

    # --- configuration ----------------------------------------------------------------------------

    def register_protocol(self, proto: int, handler: TransportProtocol) -> None:
        """Deliver IP protocol ``proto`` (e.g. 6 for TCP) to ``handler``."""
        if not 0 <= proto <= 255 or proto in (IpProtocol.ICMP, IpProtocol.UDP):
            raise ValueError(f"protocol {proto} cannot be registered")
        if proto in self.transports:
            raise ValueError(f"protocol {proto} is already registered")
        self.transports[proto] = handler

    def attach_tcp(self, layer: TcpLayer) -> TcpLayer:
        """Make ``layer`` (built on this stack) the stack's TCP: protocol 6 and :attr:`tcp`."""
        self.register_protocol(IpProtocol.TCP, layer)
        self.tcp = layer
        return layer

    def udp_socket(self) -> UdpSocket:
        """A new, unbound UDP socket."""
        return UdpSocket(self.udp, self.config.udp_rcvbuf)

    def tcp_socket(self) -> TcpSocket:
        """A new, unbound TCP socket (BSD calls, non-blocking)."""
        if self.tcp is None:
            raise OSError("this stack has no TCP")
        return self.tcp.socket()

    # --- addresses and routes ---------------------------------------------------------------------

    def is_local(self, addr: int) -> bool:
        """True for one of our unicast addresses."""
        return addr in self._unicast

    def _connected_route(self, dst: int) -> _Connected | None:
        for c in self._connected:
            if dst & c.mask == c.network:
                return c
        return None

    def _route(self, dst: int) -> tuple[_Connected, int] | None:
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
        route = self._route(dst)
        return None if route is None else route[0].addr

    def mtu_for(self, dst: int) -> int:
        """The MTU of the interface ``dst`` is reached by (the smallest MTU when unroutable)."""
        route = self._route(dst)
        if route is None:
            return min(f.mtu for f in self.interfaces.values())
        return self.interfaces[route[0].ifindex].mtu

    # --- entry points -----------------------------------------------------------------------------

    def input(self, ifindex: int, frame: bytes, now: float) -> None:
        """Process one received Ethernet frame.  Never raises on any frame content (an unknown
        ``ifindex`` is API misuse: ``ValueError``)."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface with index {ifindex}")
        self.now = now
        self.counters[ETH_FRAMES] += 1
        try:
            self._ether_input(ifindex, bytes(frame), now)
        except Exception:
            if self.strict:
                raise
            self.counters[INTERNAL_ERROR] += 1

    def input_batch(self, ifindex: int, frames: Sequence[bytes], now: float) -> None:
        """Process frames received together.  The same as :meth:`input` on each, except that
        the TCP holds the segments of a connection until the batch ends and then handles them
        in one pass, consecutive in-order data segments merged into one (receive offload in
        software, like Linux's GRO): the per-segment work of the state machine, the receive
        buffer and the ACK decision is paid once per run of segments."""
        tcp = self.tcp
        if tcp is None or len(frames) < 2 or not self.config.rx_coalesce:
            for frame in frames:
                self.input(ifindex, frame, now)
            return
        tcp.begin_batch()
        try:
            self._gro_input(ifindex, tcp, frames, now)
        finally:
            try:
                tcp.end_batch(now)
            except Exception:
                if self.strict:
                    raise
                self.counters[INTERNAL_ERROR] += 1

    def _gro_input(self, ifindex: int, tcp: TcpLayer, frames: Sequence[bytes], now: float) -> None:
        """The batch through the compiled receive offload: slow frames one by one, runs of
        established data transfer as one segment each (see :attr:`HostConfig.rx_coalesce`)."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface with index {ifindex}")
        batch = [bytes(f) for f in frames]
        addrs = np.fromiter(self._unicast, np.int64, len(self._unicast))
        counters = self.counters
        try:
            runs, payloads = gro_scan(batch, self._macs[ifindex], addrs)
        except Exception:
            if self.strict:
                raise
            counters[INTERNAL_ERROR] += 1
            for frame in batch:  # the ordinary path still takes every frame
                self.input(ifindex, frame, now)
            return
        self.now = now
        for run in runs:
            first, stop = run[RUN_FIRST], run[RUN_STOP]
            if run[RUN_FAST]:
                # The only option layout the offload merges: NOP, NOP, timestamps.
                options = (
                    TcpOptions((NOP, NOP, TimestampsOption(run[RUN_TSVAL], run[RUN_TSECR])))
                    if run[RUN_TS]
                    else EMPTY_OPTIONS
                )
                seg = TcpRepr(
                    run[RUN_SPORT],
                    run[RUN_DPORT],
                    run[RUN_SEQ],
                    run[RUN_ACK],
                    TcpFlags(run[RUN_FLAGS]),
                    run[RUN_WINDOW],
                    0,
                    options,
                    payloads[run[RUN_PAY_START] : run[RUN_PAY_STOP]],
                )
                n = stop - first
                try:
                    taken = tcp.deliver(run[RUN_SRC], run[RUN_DST], seg, n, now)
                except Exception:
                    if self.strict:
                        raise
                    counters[INTERNAL_ERROR] += 1
                    taken = True
                if taken:
                    counters[ETH_FRAMES] += n
                    counters[IN_RECEIVED] += n
                    counters[IN_TRANSPORT] += n
                    continue
            for i in range(first, stop):
                self.input(ifindex, batch[i], now)

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        """Run the timers at ``now`` (transports, ARP, reassembly) and return every frame queued
        since the last call as ``(ifindex, frame)``."""
        self.now = now
        for transport in tuple(self.transports.values()):
            transport.poll(now)
        frames, given_up, released = self.arp.poll(now)
        self._out.extend(frames)
        for ifindex, mac, packet in released:
            self._frame(ifindex, mac, packet)
        self.counters[OUT_ARP_FAILED] += len(given_up)
        for first in self.reass.poll(now):
            # RFC 792 / RFC 1122 3.3.2: time exceeded, reassembly, when fragment 0 came.
            if self._icmp_error(
                first, Icmpv4Type.TIME_EXCEEDED, TimeExceededCode.FRAG_REASSEMBLY_EXCEEDED, now
            ):
                self.counters[REASS_TIME_EXCEEDED] += 1
        out, self._out = self._out, []
        return out

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has work: the earliest ARP, reassembly or transport timer;
        ``0.0`` when frames are already queued; None when nothing is pending."""
        if self._out:
            return 0.0
        times = [t for t in (self.arp.poll_at(), self.reass.poll_at()) if t is not None]
        for transport in self.transports.values():
            t = transport.poll_at()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    # --- output -----------------------------------------------------------------------------------

    def _next_ident(self) -> int:
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
            :class:`~netfast.link.base.GsoFrame`, or cut here (:attr:`HostConfig.gso`).  The
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
        route = self._route(dst)
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
                self._next_ident(),
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
        return self._send(bytes(header), route, now, gso_mss)

    def enable_tso(self, ifindex: int) -> None:
        """The link of ``ifindex`` cuts large TCP segments itself (TSO): the TCP may hand it
        segments of up to 64 KiB."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface {ifindex}")
        self.tso.add(ifindex)

    def tso_for(self, dst: int) -> bool:
        """True when the TCP may hand down segments larger than the MTU toward ``dst``: the
        route leaves through an interface with TSO, or software GSO is on
        (:attr:`HostConfig.gso`)."""
        route = self._route(dst)
        return route is not None and (self.config.gso or route[0].ifindex in self.tso)

    def _send(
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
                self.counters["ip.out.gso_unresolved"] += 1
                return "ip.out.gso_unresolved"
            self.counters[OUT_SENT] += 1
            frame = mac + self._eth_tail[egress] + packet
            if egress in self.tso:
                self.counters["ip.out.gso"] += 1
                self._out.append((egress, GsoFrame(frame, gso_mss)))
                return None
            segments = gso_segment(frame, gso_mss)
            self.counters["ip.out.gso_software"] += 1
            self.counters["ip.out.gso_segments"] += len(segments)
            # The segments took consecutive identifications from the super-frame's.
            self._ident = (self._ident + len(segments) - 1) & 0xFFFF
            self._out.extend([(egress, f) for f in segments])
            return None
        if gso_mss:
            packet = _with_tcp_checksum(packet)
        if len(packet) > self.interfaces[egress].mtu and _U16.unpack_from(packet, 6)[0] & FLAG_DF:
            self.counters[OUT_TOO_BIG] += 1
            return OUT_TOO_BIG
        if hop == LIMITED_BROADCAST or (hop == conn.broadcast and conn.plen < 31):
            self._frame(egress, BROADCAST, packet)
            return None
        mac = self.arp.lookup(egress, hop, now)
        if mac is None:
            outcome, requests = self.arp.hold(egress, hop, packet, now)
            self._out.extend(requests)
            if outcome != HOLD_QUEUED:
                self.counters[OUT_ARP_OVERFLOW] += 1
                return OUT_ARP_OVERFLOW
            self.counters[OUT_ARP_HELD] += 1
            return None
        self._frame(egress, mac, packet)
        return None

    def _originate(self, packet: bytes, now: float) -> bool:
        """Route and send a packet built whole here (echo replies, ICMP errors)."""
        route = self._route(_U32.unpack_from(packet, 16)[0])
        if route is None:
            self.counters[OUT_NO_ROUTE] += 1
            return False
        return self._send(packet, route, now) is None

    def _frame(self, egress: int, mac: bytes, packet: bytes) -> None:
        """Frame an IP packet for ``egress``, fragmenting it to the MTU (RFC 791 3.2)."""
        head = mac + self._eth_tail[egress]
        mtu = self.interfaces[egress].mtu
        if len(packet) <= mtu:
            self.counters[OUT_SENT] += 1
            self._out.append((egress, head + packet))
            return
        if _U16.unpack_from(packet, 6)[0] & FLAG_DF:
            # Held packets whose route changed MTU; checked before for fresh ones.
            self.counters[OUT_TOO_BIG] += 1
            return
        fragments = ip_fragment(packet, mtu)
        self.counters[OUT_SENT] += 1
        self.counters[OUT_FRAGMENTS] += len(fragments)
        self._out.extend((egress, head + f) for f in fragments)

    def _icmp_error(
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
        return self._originate(self.icmp.build(original, icmp_type, code, src), now)

    # --- layer 2 ----------------------------------------------------------------------------------

    def _ether_input(self, ifindex: int, frame: bytes, now: float) -> None:
        if len(frame) < 14:
            self.counters[ETH_TOO_SHORT] += 1
            return
        dst_mac = frame[:6]
        link_broadcast = dst_mac == BROADCAST
        if not link_broadcast and dst_mac != self._macs[ifindex]:
            self.counters[ETH_NOT_FOR_US] += 1
            return
        ethertype = frame[12:14]
        if ethertype == _ETH_IPV4:
            self._ip_input(ifindex, frame, link_broadcast, now)
            return
        if ethertype == _ETH_ARP:
            result = self.arp.input(ifindex, frame[14:], now)
            self._out.extend(result.frames)
            for egress, mac, packet in result.released:
                self._frame(egress, mac, packet)
            return
        self.counters[ETH_UNKNOWN_TYPE] += 1

    # --- IPv4 input -------------------------------------------------------------------------------

    def _ip_input(self, ifindex: int, frame: bytes, link_broadcast: bool, now: float) -> None:
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
        self._local_input(ifindex, header, packet, broadcast or link_broadcast, now)

    def _local_input(
        self, ifindex: int, header: Ipv4Header, packet: bytes, broadcast: bool, now: float
    ) -> None:
        proto = header.proto
        l4 = memoryview(packet)[header.header_len :]
        counters = self.counters
        if proto == IpProtocol.ICMP:
            counters[self._icmp_input(header, packet, l4, broadcast, now)] += 1
            return
        if proto == IpProtocol.UDP:
            if self.udp.input(header.src, header.dst, l4) == "udp.in.no_port":
                self._icmp_error(
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
        self._icmp_error(
            packet,
            Icmpv4Type.DEST_UNREACHABLE,
            DestUnreachableCode.PROTOCOL_UNREACHABLE,
            now,
            link_broadcast=broadcast,
        )

    def _icmp_input(
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
            self._echo_reply(header, message, now)
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

    def _echo_reply(self, header: Ipv4Header, message: memoryview, now: float) -> None:
        self.ip_output(
            header.dst,
            header.src,
            IpProtocol.ICMP,
            echo_reply_message(message),
            now,
            df=False,
            tos=header.tos & 0xFC,  # the request's DSCP, no ECN
        )
