"""A small router for the scalar-path tests: three interfaces in 198.18.0.0/15, a few routes,
static neighbours, frames built with netfast.wire, and a fake pfil.

Topology::

    if0 198.18.0.1/24  (hosts 198.18.0.10, .11 have static ARP entries)
    if1 198.18.1.1/24  gateway 198.18.1.254 -> 198.18.64.0/18
    if2 198.19.0.1/24  MTU 1280, gateway 198.19.0.254 -> 198.19.128.0/17

No default route: 198.19.64.0/18 (and everything else) has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.ip.router import FRAME_OUTCOMES, IP_OUTCOMES, Router
from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.route.rib import Rib, parse_prefix
from netfast.route.table import RoutingTable
from netfast.wire.ethernet import EthernetRepr, EtherType
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str
from netfast.wire.udp import UdpRepr

MAC = [bytes.fromhex(f"02000000000{i}") for i in range(3)]
ADDR = [ip_from_str(a) for a in ("198.18.0.1", "198.18.1.1", "198.19.0.1")]
HOST_A = ip_from_str("198.18.0.10")
HOST_B = ip_from_str("198.18.0.11")
HOST_A_MAC = bytes.fromhex("0a0000000010")
HOST_B_MAC = bytes.fromhex("0a0000000011")
GW1 = ip_from_str("198.18.1.254")
GW1_MAC = bytes.fromhex("0a00000001fe")
GW2 = ip_from_str("198.19.0.254")
GW2_MAC = bytes.fromhex("0a00000002fe")
BEHIND_GW1 = ip_from_str("198.18.64.7")
BEHIND_GW2 = ip_from_str("198.19.200.9")
NO_ROUTE = ip_from_str("198.19.64.1")
UNRESOLVED = ip_from_str("198.18.1.77")  # on if1's subnet, no ARP entry
IF2_MTU = 1280


def interfaces() -> list[Interface]:
    return [
        Interface(0, "if0", MAC[0], (IfAddr(ADDR[0], 24),)),
        Interface(1, "if1", MAC[1], (IfAddr(ADDR[1], 24),)),
        Interface(2, "if2", MAC[2], (IfAddr(ADDR[2], 24),), mtu=IF2_MTU),
    ]


def table() -> RoutingTable:
    t = RoutingTable(Rib(), "dxr")
    for prefix, hop in (
        ("198.18.0.0/24", NextHop(0)),
        ("198.18.1.0/24", NextHop(1)),
        ("198.19.0.0/24", NextHop(2)),
        ("198.18.64.0/18", NextHop(1, GW1)),
        ("198.19.128.0/17", NextHop(2, GW2)),
    ):
        t.add(*parse_prefix(prefix), hop)
    return t


@dataclass
class FakePfil:
    """The two methods the router uses of PfilHeads, with hooks per direction."""

    hooks: dict[Direction, list[Callable[[PfilPacket], Verdict]]] = field(default_factory=dict)
    seen: list[tuple[Direction, int]] = field(default_factory=list)

    def add(self, direction: Direction, hook: Callable[[PfilPacket], Verdict]) -> None:
        self.hooks.setdefault(direction, []).append(hook)

    def has_hooks(self, direction: Direction) -> bool:
        return bool(self.hooks.get(direction))

    def run(self, direction: Direction, pkt: PfilPacket) -> Verdict:
        self.seen.append((direction, pkt.ifindex))
        for hook in self.hooks.get(direction, []):
            verdict = hook(pkt)
            if verdict != Verdict.PASS:
                return verdict
        return Verdict.PASS


def make_router(pfil: FakePfil | None = None, **options: object) -> Router:
    router = Router(interfaces(), table(), pfil, strict=True, **options)  # type: ignore[arg-type]
    router.arp.add_static(0, HOST_A, HOST_A_MAC)
    router.arp.add_static(0, HOST_B, HOST_B_MAC)
    router.arp.add_static(1, GW1, GW1_MAC)
    router.arp.add_static(2, GW2, GW2_MAC)
    return router


def udp_packet(
    src: int = HOST_A,
    dst: int = BEHIND_GW1,
    *,
    payload: bytes = b"hello router",
    ttl: int = 64,
    dont_frag: bool = False,
    options: bytes = b"",
    ident: int = 0x1234,
) -> bytes:
    """A whole IPv4/UDP packet built with netfast.wire."""
    udp = UdpRepr(40000, 53, len(payload)).to_bytes(src, dst, payload)
    ip = Ipv4Repr(
        src=src,
        dst=dst,
        protocol=IpProtocol.UDP,
        payload_len=len(udp),
        ttl=ttl,
        dont_frag=dont_frag,
        options=options,
        identification=ident,
    )
    return ip.to_bytes(udp)


def frame(packet: bytes, *, dst_mac: bytes = MAC[0], src_mac: bytes = HOST_A_MAC) -> bytes:
    """An Ethernet frame carrying an IPv4 packet to the router's if0."""
    return EthernetRepr(dst_mac, src_mac, EtherType.IPV4).to_bytes(packet)


def assert_accounted(router: Router) -> None:
    """Every frame and every IPv4 packet ended in exactly one outcome counter."""
    c = router.counters
    assert c["router.internal_error"] == 0
    assert sum(c[name] for name in FRAME_OUTCOMES) == c["eth.in.frames"], dict(c)
    assert sum(c[name] for name in IP_OUTCOMES) == c["ip.in.received"], dict(c)
