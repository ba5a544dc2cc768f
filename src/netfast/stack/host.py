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

Composition: the layers are their own modules, and the stack wires them to its interfaces.

1. Ethernet demux (here): frames to our MAC or broadcast only (a host is not promiscuous); ARP
   to :class:`~netfast.ip.arp.ArpCache`, IPv4 to :class:`~netfast.ip.host_input.HostInput`
   (checks, local-or-not, reassembly, ICMP, demultiplexing), other types counted.
2. Output: :class:`~netfast.ip.host_output.HostOutput` (route, header, ARP, fragmentation,
   TSO/GSO, ICMP errors) is the :class:`~netfast.ip.api.IpOutput` the transports are given --
   :class:`~netfast.udp.UdpLayer` always, :class:`~netfast.tcp.layer.TcpLayer` unless built
   with ``tcp=False``; transports never see the stack.  Callers outside send through
   ``stack.output``; the stack's address queries (``source_for``, ``mtu_for`` ...) are the
   output's.
3. A received batch (:meth:`Stack.input_batch`) goes through the compiled receive offload
   (:func:`netfast.link.offload.gro_scan`) when :attr:`HostConfig.rx_coalesce` is on.

Accounting
----------
``eth.in.frames`` counts frames given to :meth:`Stack.input`; exactly one of
:data:`FRAME_OUTCOMES` counts each, one of which is ``ip.in.received``; exactly one of
:data:`netfast.ip.host_input.IP_OUTCOMES` counts each received IPv4 packet.  A fragment
that completes a datagram is counted by the datagram's delivery outcome; the others by a
reassembly outcome.  Hence
``eth.in.frames == sum(FRAME_OUTCOMES)`` and ``ip.in.received == sum(IP_OUTCOMES)``.
``ip.out.*``, ``icmp.out.*``, ``arp.*`` and ``udp.out.*`` are informational.  An exception
inside the stack (a bug, or a transport raising) is caught by :meth:`Stack.input` and counted
``host.internal_error``; the identities then hold no longer, which is why tests assert it is 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netfast.ip.api import TransportProtocol
from netfast.ip.arp import ARP_INPUT_OUTCOMES, ArpCache
from netfast.ip.host_input import IN_RECEIVED, IN_TRANSPORT, HostInput
from netfast.ip.host_output import OUT_ARP_FAILED, HostOutput
from netfast.ip.icmp import IcmpErrors
from netfast.ip.iface import Interface
from netfast.ip.local import LocalAddrs
from netfast.ip.reass import Reassembler
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
)
from netfast.tcp.config import TcpConfig
from netfast.tcp.layer import TcpLayer
from netfast.tcp.socket import TcpSocket
from netfast.udp import UdpLayer, UdpSocket
from netfast.wire.ethernet import BROADCAST
from netfast.wire.icmpv4 import Icmpv4Type, TimeExceededCode
from netfast.wire.ipv4 import IpProtocol
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


# --- counter names ------------------------------------------------------------------------------

ETH_FRAMES = "eth.in.frames"
ETH_TOO_SHORT = "eth.in.too_short"
ETH_NOT_FOR_US = "eth.in.not_for_us"
ETH_UNKNOWN_TYPE = "eth.in.unknown_type"
INTERNAL_ERROR = "host.internal_error"
REASS_TIME_EXCEEDED = "ip.reass.time_exceeded_sent"

#: Exactly one of these counts each frame given to :meth:`Stack.input`.
FRAME_OUTCOMES: tuple[str, ...] = (
    ETH_TOO_SHORT,
    ETH_NOT_FOR_US,
    ETH_UNKNOWN_TYPE,
    *ARP_INPUT_OUTCOMES,
    IN_RECEIVED,
    INTERNAL_ERROR,
)

_ETH_ARP = b"\x08\x06"
_ETH_IPV4 = b"\x08\x00"


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
        self._macs = {i: f.mac for i, f in self.interfaces.items()}
        self._unicast = self.local.unicast
        self.gateway = gateway
        #: IPv4 output: the :class:`~netfast.ip.api.IpOutput` the transports are given.
        self.output = HostOutput(
            self.interfaces,
            gateway=gateway,
            config=cfg,
            arp=self.arp,
            icmp=self.icmp,
            unicast=self._unicast,
            counters=self.counters,
            rng=rng,
        )
        #: Interfaces whose links segment large TCP frames themselves (:meth:`enable_tso`).
        self.tso = self.output.tso
        self.udp = UdpLayer(self.output, self.counters, rng)
        self.transports: dict[int, TransportProtocol] = {}
        self._ip = HostInput(
            unicast=self._unicast,
            broadcast=self.local.broadcast,
            reass=self.reass,
            output=self.output,
            udp=self.udp,
            transports=self.transports,
            counters=self.counters,
        )
        #: The TCP (protocol 6); None when built with ``tcp=False`` (then one with settings of
        #: one's own may be given with :meth:`attach_tcp`).
        self.tcp: TcpLayer | None = None
        if tcp:
            self.attach_tcp(TcpLayer(self.output, random.Random(rng.getrandbits(64)), tcp_config))

    @property
    def now(self) -> float:
        """The latest time given to :meth:`input` or :meth:`poll` (sockets send at this time;
        kept by :attr:`output`, the :class:`~netfast.ip.api.IpOutput` the sockets see)."""
        return self.output.now

    @now.setter
    def now(self, value: float) -> None:
        self.output.now = value

    # --- configuration ----------------------------------------------------------------------------

    def register_protocol(self, proto: int, handler: TransportProtocol) -> None:
        """Deliver IP protocol ``proto`` (e.g. 6 for TCP) to ``handler``."""
        if not 0 <= proto <= 255 or proto in (IpProtocol.ICMP, IpProtocol.UDP):
            raise ValueError(f"protocol {proto} cannot be registered")
        if proto in self.transports:
            raise ValueError(f"protocol {proto} is already registered")
        self.transports[proto] = handler

    def attach_tcp(self, layer: TcpLayer) -> TcpLayer:
        """Make ``layer`` the stack's TCP: protocol 6 and :attr:`tcp`.  Build it on
        :attr:`output` (the stack itself also provides :class:`~netfast.ip.api.IpOutput`, one
        call deeper)."""
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

    # --- addresses, routes, output (the IpOutput the transports are given) ----------------------

    def is_local(self, addr: int) -> bool:
        """True for one of our unicast addresses."""
        return addr in self._unicast

    def source_for(self, dst: int) -> int | None:
        """The local address used to reach ``dst`` (None: no route)."""
        return self.output.source_for(dst)

    def mtu_for(self, dst: int) -> int:
        """The MTU of the interface ``dst`` is reached by (the smallest MTU when unroutable)."""
        return self.output.mtu_for(dst)

    def tso_for(self, dst: int) -> bool:
        """See :meth:`netfast.ip.host_output.HostOutput.tso_for`."""
        return self.output.tso_for(dst)

    def enable_tso(self, ifindex: int) -> None:
        """The link of ``ifindex`` cuts large TCP segments itself (TSO): the TCP may hand it
        segments of up to 64 KiB."""
        self.output.enable_tso(ifindex)

    # --- entry points -----------------------------------------------------------------------------

    def input(self, ifindex: int, frame: bytes, now: float) -> None:
        """Process one received Ethernet frame.  Never raises on any frame content (an unknown
        ``ifindex`` is API misuse: ``ValueError``)."""
        if ifindex not in self.interfaces:
            raise ValueError(f"no interface with index {ifindex}")
        self.output.now = now
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
        self.output.now = now
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
        self.output.now = now
        for transport in tuple(self.transports.values()):
            transport.poll(now)
        frames, given_up, released = self.arp.poll(now)
        self.output.out.extend(frames)
        for ifindex, mac, packet in released:
            self.output.frame(ifindex, mac, packet)
        self.counters[OUT_ARP_FAILED] += len(given_up)
        for first in self.reass.poll(now):
            # RFC 792 / RFC 1122 3.3.2: time exceeded, reassembly, when fragment 0 came.
            if self.output.icmp_error(
                first, Icmpv4Type.TIME_EXCEEDED, TimeExceededCode.FRAG_REASSEMBLY_EXCEEDED, now
            ):
                self.counters[REASS_TIME_EXCEEDED] += 1
        output = self.output
        out, output.out = output.out, []
        return out

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has work: the earliest ARP, reassembly or transport timer;
        ``0.0`` when frames are already queued; None when nothing is pending."""
        if self.output.out:
            return 0.0
        times = [t for t in (self.arp.poll_at(), self.reass.poll_at()) if t is not None]
        for transport in self.transports.values():
            t = transport.poll_at()
            if t is not None:
                times.append(t)
        return min(times) if times else None

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
            self._ip.ip_input(ifindex, frame, link_broadcast, now)
            return
        if ethertype == _ETH_ARP:
            result = self.arp.input(ifindex, frame[14:], now)
            self.output.out.extend(result.frames)
            for egress, mac, packet in result.released:
                self.output.frame(egress, mac, packet)
            return
        self.counters[ETH_UNKNOWN_TYPE] += 1
