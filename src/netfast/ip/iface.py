"""Interfaces, their addresses, and next hops: the router's small vocabulary (docs/ROUTER.md)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netfast.route.rib import prefix_mask


@dataclass(frozen=True, slots=True)
class IfAddr:
    """An address configured on an interface, with its prefix length (``198.18.0.1/24``)."""

    addr: int
    plen: int

    def __post_init__(self) -> None:
        if not 0 <= self.addr <= 0xFFFFFFFF or not 0 <= self.plen <= 32:
            raise ValueError(f"bad interface address {self.addr:#x}/{self.plen}")

    @property
    def network(self) -> int:
        return self.addr & prefix_mask(self.plen)

    @property
    def broadcast(self) -> int:
        """The directed broadcast address (none for /31 and /32: returns the address itself)."""
        if self.plen >= 31:
            return self.addr
        return self.network | (~prefix_mask(self.plen) & 0xFFFFFFFF)


def parse_if_addr(text: str) -> IfAddr:
    """``198.18.0.1/24`` as an :class:`IfAddr`; ``ValueError`` saying what is wrong (not IPv4,
    no prefix length, a /0) for anything else.  Config files and the command line share it."""
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        msg = f"{text!r} is not an address with a prefix length (198.18.0.1/24)"
        raise ValueError(msg) from None
    if iface.version != 4:
        raise ValueError(f"{text!r} is not IPv4")
    if "/" not in text:
        raise ValueError(f"{text!r} needs a prefix length (198.18.0.1/24)")
    if iface.network.prefixlen == 0:
        raise ValueError(f"{text!r}: the prefix length must be 1..32")
    return IfAddr(int(iface.ip), iface.network.prefixlen)


@dataclass(frozen=True, slots=True)
class Interface:
    """One router port.  ``index`` is the small integer every path uses (0, 1, 2, ...)."""

    index: int
    name: str
    mac: bytes
    addrs: tuple[IfAddr, ...] = ()
    mtu: int = 1500

    def __post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ValueError(f"interface {self.name}: MAC must be 6 bytes")
        if not 68 <= self.mtu <= 65535:
            raise ValueError(f"interface {self.name}: MTU {self.mtu} is outside 68..65535")

    @property
    def primary(self) -> int | None:
        """The first configured address (the source of ICMP errors sent from here)."""
        return self.addrs[0].addr if self.addrs else None


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a route sends packets: out of ``ifindex``, to ``gateway`` -- or, when ``gateway`` is
    None (a connected route), to the packet's own destination.  The value type of the router's
    RIB; interned by the RIB, so a route id maps to a next hop through ``rib.value_id``."""

    ifindex: int
    gateway: int | None = None
