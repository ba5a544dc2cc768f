"""The contracts between the IP layer and what sits on it or drives it (gVisor keeps the same in
one file, ``stack/registration.go``): transports see an :class:`IpOutput`, never the host stack
itself, and plug in as a :class:`TransportProtocol`; the router's drivers (the engine, capture and
live runs in :mod:`netfast.router.run`) see a :class:`ForwardingPlane`.

:class:`netfast.stack.host.Stack` provides :class:`IpOutput`; :class:`netfast.tcp.layer.TcpLayer`
and the UDP core take one.  Both protocols are structural (``typing.Protocol``): a test double
that has these methods is an IP layer as far as a transport can tell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from netfast.ip.iface import Interface
    from netfast.ip.input import Ipv4Header
    from netfast.ip.local import LocalAddrs

__all__ = ["ForwardingPlane", "IpOutput", "TransportProtocol"]


class IpOutput(Protocol):
    """What a transport may ask of the IP layer below it."""

    #: The host's counters; a transport counts its own events here under its prefix
    #: (``tcp.``, ``udp.``).
    counters: Counter[str]
    #: The time of the IP layer's latest input or poll: what socket calls, which carry no time
    #: of their own, use as "now".
    now: float

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
        """Send one datagram carrying ``payload`` (its transport checksum filled in; with
        ``gso_mss`` a TSO super-segment the link cuts into segments of that size).  ``src`` 0
        picks :meth:`source_for`.  Returns None when sent or queued, else the counter name of
        the reason it was dropped."""
        ...

    def source_for(self, dst: int) -> int | None:
        """The local address a datagram to ``dst`` leaves from; None: no route."""
        ...

    def mtu_for(self, dst: int) -> int:
        """The MTU of the path toward ``dst`` as far as this host knows it (egress MTU, lowered
        by path-MTU discovery); raises ValueError when there is no route."""
        ...

    def is_local(self, addr: int) -> bool:
        """Whether ``addr`` is one of this host's unicast addresses (never a broadcast)."""
        ...

    def tso_for(self, dst: int) -> bool:
        """Whether the egress toward ``dst`` segments TSO super-segments (see ``gso_mss``)."""
        ...


class TransportProtocol(Protocol):
    """What a transport (TCP, UDP) plugs into the IP layer with ``register_protocol``."""

    def input(self, hdr: Ipv4Header, l4: memoryview, ifindex: int, now: float) -> None:
        """One packet for this protocol; ``l4`` is exactly the IP payload (``total_length -
        header_len`` bytes) of a packet that passed the IP checks (and reassembly)."""
        ...

    def poll(self, now: float) -> None:
        """Timers; output goes through :meth:`IpOutput.ip_output`."""
        ...

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has work; None: no timer is running."""
        ...

    def ctlinput(self, icmp_type: int, icmp_code: int, mtu: int, quoted: bytes, now: float) -> None:
        """An ICMP error quoting a packet of this protocol (``quoted``: its IP header and first
        payload bytes); ``mtu`` is the next-hop MTU of fragmentation needed, else 0."""
        ...


class ForwardingPlane(Protocol):
    """What a driver of a router needs of it: frames in, frames out, timers, counters.
    :class:`netfast.ip.router.Router` is one."""

    counters: Counter[str]

    @property
    def interfaces(self) -> Mapping[int, Interface]:
        """The router's interfaces by ifindex (names for output files, MACs, MTUs)."""
        ...

    @property
    def local(self) -> LocalAddrs:
        """The router's own addresses (to tell ICMP it originates from ICMP it forwards)."""
        ...

    def input(self, ifindex: int, frame: bytes, now: float) -> list[tuple[int, bytes]]:
        """One received frame; returns ``(egress ifindex, frame)`` pairs to send."""
        ...

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        """Timers at ``now`` (ARP retries, hold-queue expiry); frames to send."""
        ...
