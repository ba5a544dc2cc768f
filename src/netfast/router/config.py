"""A router described by a TOML file: interfaces, links, routes, neighbours and the firewall.

The file (read with :mod:`tomllib`) is validated in full before anything is opened or loaded;
every problem raises :class:`ConfigError`, whose message names the file, the key path
(``interface[1].mtu``, ``routes."10.0.0.0/8"``) and the problem.  Unknown keys are errors, so a
misspelt option never goes unnoticed.  Relative file names are relative to the config file.

Validation accepts only what the router can run with: ``[router]`` numbers are finite and
within the bounds the ARP cache and ICMP token bucket need (``arp_timeout`` and
``arp_retry_interval`` above 0, ``arp_retries`` at least 1, ``icmp_burst`` at least 1 unless
``icmp_rate = 0``); numbers in strings (addresses, prefixes) are ASCII digits
(:mod:`netfast.textnum`), octets without leading zeros; interface and device names are valid
Linux names (1..15 bytes, no ``/``, ``:``, whitespace or control characters); an interface
address is neither its subnet's network or broadcast address nor multicast, loopback or 0/8;
two ports never share (or nest) a subnet; MACs are unicast and not all zeros.

This module is pure: it turns text into frozen values (:class:`RouterConfig`; the key-by-key
checks are :mod:`netfast.router.validate`'s) and touches no file but the config itself
(:func:`load_config`).  Whether the files it names exist, loading the
route table and rules, opening links and assembling the router are :mod:`netfast.router.build`'s
(its ``check_files`` runs before anything is loaded).

Schema
------
::

    [router]                        # optional: the Router's limits
    icmp_rate = 100.0               # ICMP errors per second (token bucket) ...
    icmp_burst = 50                 # ... and its depth
    arp_timeout = 1200.0            # seconds an ARP entry lives
    arp_hold = 16                   # packets held per unresolved next hop
    arp_retries = 5                 # ARP requests before giving up ...
    arp_retry_interval = 1.0        # ... one per this many seconds

    [[interface]]                   # one per port, in ifindex order (0, 1, 2, ...)
    name = "eth0"
    mac = "02:00:00:00:00:01"
    addresses = ["198.18.0.1/24"]   # each adds a connected route
    mtu = 1500                      # default 1500
    link = { type = "afpacket", device = "veth0", promiscuous = true }
    #      { type = "afpacket", device = "veth0", ring = false }   (one system call per frame)
    #      { type = "afpacket", device = "veth0", ring = { block_size = 65536, block_count = 64,
    #               retire_ms = 2, tx_frame_size = 2048, tx_frames = 512, qdisc_bypass = true } }
    #      { type = "tap", device = "nftap0" }
    #      { type = "pcap", in = "rx.pcap", out = "tx.pcap" }   (both optional)

    [routes]
    algorithm = "dxr"               # FIB algorithm (netfast.route.table.algorithms())
    "0.0.0.0/0" = "via 198.18.1.2 dev eth1"   # static routes: "via GW [dev NAME]" | "dev NAME"
    "198.18.9.0/24" = "dev eth2"
    table = "ipv4-dfz-20260619.txt.gz"        # a route file (text, pfx2as, bgpdump -m, MRT)
    table_map = "hash"              # how its values become next hops: "hash" or "nexthop"
    hash_over = ["via 198.18.1.2 dev eth1", "via 198.18.2.2 dev eth2"]

    [neighbors]                     # static ARP entries; the interface is the connected one
    "198.18.1.2" = "02:00:00:00:01:02"

    [firewall]
    rules = "sample-rules.fw"       # ipfw-style rules (netfast.pfil.ipfw)
    heads = ["in"]                  # pfil heads the rules hook: "in", "forward", "out"
    max_states = 65536              # dynamic (keep-state) states held at most

Packet rings
------------
An ``afpacket`` link uses PACKET_MMAP rings (:class:`netfast.link.ring.RingLink`) unless
``ring = false``: ``ring = true`` or no ``ring`` key means the default geometry
(:class:`netfast.link.ring.RingConfig`: a 4 MiB RX ring of 64 blocks, 512 TX slots), and a
table sets any of its fields (the others keep their defaults).  The geometry is checked against
the interface's MTU here (page-multiple blocks big enough for the largest frame, TX slots that
hold one); a kernel that refuses rings anyway gets a plain socket at run time
(:func:`netfast.link.ring.open_packet_link`, counted as ``link.ring_fallback``).

Route tables
------------
A BGP table's values are not next hops of this router, so ``table_map`` says how they become
one:

``"hash"``
    The value (an origin AS for the bundled table) is hashed -- CRC-32 of its text, modulo the
    length of ``hash_over`` -- onto one of the ``hash_over`` next hops.  Every prefix of one
    origin leaves by the same port, and the spread is stable across runs and machines.
``"nexthop"``
    The value is a next-hop address (``netfast route`` ``--value nexthop`` tables, or bgpdump
    files loaded with next hops): it is matched to the interface whose connected subnet holds
    it.  Routes whose next hop is in no connected subnet cannot be used; they are skipped and
    counted in the build's route statistics (``table.unreachable_next_hop``,
:attr:`netfast.router.build.BuiltRouter.route_stats`).

Precedence, for a prefix given more than once: table < connected < static.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from netfast.ip.iface import Interface, NextHop
from netfast.link.ring_config import RingConfig
from netfast.route.rib import prefix_mask
from netfast.route.table import DEFAULT_ALGORITHM
from netfast.textnum import shown

__all__ = [
    "LINK_TYPES",
    "ConfigError",
    "InterfaceConfig",
    "LinkConfig",
    "RouterConfig",
    "RouterOptions",
    "load_config",
    "parse_config",
]

#: The link types an interface may name, with the keys each accepts (besides ``type``).
LINK_TYPES: dict[str, frozenset[str]] = {
    "afpacket": frozenset({"device", "promiscuous", "ring"}),
    "tap": frozenset({"device"}),
    "pcap": frozenset({"in", "out"}),
}
TABLE_MAPS = ("hash", "nexthop")
HEADS = ("in", "forward", "out")

_TOP_KEYS = frozenset({"router", "interface", "routes", "neighbors", "firewall"})
#: ``[router]`` keys: type, lowest value, whether the lowest is allowed, highest value.  The
#: bounds are those :class:`netfast.ip.router.Router` (its ARP cache and ICMP token bucket) can
#: run with; ``icmp_burst`` may be 0 only with ``icmp_rate = 0`` (no limit), checked apart.
_ROUTER_KEYS: dict[str, tuple[type, float, bool, float]] = {
    "icmp_rate": (float, 0.0, True, 1e9),
    "icmp_burst": (int, 0, True, 1 << 20),
    "arp_timeout": (float, 0.0, False, 1e9),
    "arp_hold": (int, 0, True, 1 << 20),
    "arp_retries": (int, 1, True, 1 << 20),
    "arp_retry_interval": (float, 0.0, False, 1e9),
}
#: Linux's IFNAMSIZ less the NUL: the longest interface name in bytes.
IFNAME_MAX = 15
_IFACE_KEYS = frozenset({"name", "mac", "addresses", "mtu", "link"})
_ROUTE_OPTIONS = frozenset({"algorithm", "table", "table_map", "hash_over"})
_FIREWALL_KEYS = frozenset({"rules", "heads", "max_states"})
#: Dynamic states the firewall holds by default: room for the flows of a busy site's minute
#: (the table is an array hash table, 40 bytes a slot at most half full: 5 MiB at this size).
DEFAULT_MAX_STATES = 65536
MAX_STATES_LIMIT = 1 << 24
#: ``ring`` table keys: RingConfig's fields, the integers with their bounds (finer checks --
#: page multiples, room for the MTU -- are RingConfig.problems').
_RING_INTS: dict[str, tuple[int, int]] = {
    "block_size": (1, 1 << 30),
    "block_count": (1, 1 << 18),
    "retire_ms": (1, 10_000),
    "tx_frame_size": (1, 1 << 17),
    "tx_frames": (1, 1 << 20),
}
_RING_KEYS = frozenset(_RING_INTS) | {"qdisc_bypass"}


class ConfigError(ValueError):
    """A router description that cannot be used: ``"<file>: <key path>: <problem>"``."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        where = f"{key}: " if key else ""
        super().__init__(f"{file}: {where}{problem}")
        self.file = file
        self.key = key
        self.problem = problem


class RouterOptions(TypedDict, total=False):
    """The ``[router]`` section: keyword arguments of :class:`netfast.ip.router.Router`."""

    icmp_rate: float
    icmp_burst: int
    arp_timeout: float
    arp_hold: int
    arp_retries: int
    arp_retry_interval: float


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How an interface reaches the world: ``type`` and that type's options.

    ``ring`` is the packet-ring geometry of an ``afpacket`` link, None for a plain socket (the
    parser gives every ``afpacket`` link the default geometry unless ``ring = false``)."""

    type: str
    device: str | None = None
    promiscuous: bool = True
    pcap_in: Path | None = None
    pcap_out: Path | None = None
    ring: RingConfig | None = None


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    interface: Interface
    link: LinkConfig | None


@dataclass(frozen=True, slots=True)
class StaticRoute:
    net: int
    plen: int
    next_hop: NextHop


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """A validated router description, as plain values: nothing is opened, loaded or even
    looked up on disk (:mod:`netfast.router.build` does that).

    Attributes
    ----------
    path
        The file it came from (``"<string>"`` for :func:`parse_config` without a name).
    interfaces
        Interfaces and their link descriptions, in ifindex order.
    router_options
        Keyword arguments for :class:`netfast.ip.router.Router` (``icmp_rate`` ...).
    static_routes, table_file, table_map, hash_over, algorithm
        The ``[routes]`` section.
    neighbors
        Static ARP entries ``(ifindex, address, mac)``.
    rules_file, firewall_heads, firewall_max_states
        The ``[firewall]`` section (``rules_file`` None: no firewall).
    """

    path: str
    interfaces: tuple[InterfaceConfig, ...]
    router_options: RouterOptions = field(default_factory=lambda: RouterOptions())
    static_routes: tuple[StaticRoute, ...] = ()
    table_file: Path | None = None
    table_map: str = "hash"
    hash_over: tuple[NextHop, ...] = ()
    algorithm: str = DEFAULT_ALGORITHM
    neighbors: tuple[tuple[int, int, bytes], ...] = ()
    rules_file: Path | None = None
    firewall_heads: tuple[str, ...] = ("in",)
    firewall_max_states: int = DEFAULT_MAX_STATES

    @property
    def ifaces(self) -> list[Interface]:
        return [ic.interface for ic in self.interfaces]

    def ifindex(self, name: str) -> int:
        """The index of the interface called ``name`` (``KeyError`` if none)."""
        for ic in self.interfaces:
            if ic.interface.name == name:
                return ic.interface.index
        raise KeyError(name)

    def pcap_outputs(self) -> list[tuple[str, Path]]:
        """The ``pcap`` links' output files, with the key that names each."""
        return [
            (f"interface[{ic.interface.index}].link.out", ic.link.pcap_out)
            for ic in self.interfaces
            if ic.link is not None and ic.link.pcap_out is not None
        ]


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a router description (see the module docstring).

    Raises
    ------
    ConfigError
        The file cannot be read, is not TOML, or describes an impossible router.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), "", _os_problem(exc)) from None
    try:
        # Decoded as is (no newline translation), so TOML's line numbers are the file's.
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            str(p),
            "",
            f"not UTF-8 text (TOML must be): byte 0x{data[exc.start]:02x} on line {line}",
        ) from None
    return parse_config(text, str(p), base_dir=p.parent)


def parse_config(
    text: str, filename: str = "<string>", base_dir: Path | None = None
) -> RouterConfig:
    """Validate a router description given as text; relative paths resolve from ``base_dir``
    (default: the current directory)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(filename, "", f"not valid TOML: {exc}") from None
    except ValueError:
        # Python refuses to turn a decimal of more than sys.get_int_max_str_digits() digits into
        # an int; tomllib lets that ValueError through.
        raise ConfigError(
            filename, "", "not usable TOML: an integer with thousands of digits"
        ) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion.
        raise ConfigError(
            filename, "", "not usable TOML: arrays or inline tables nested too deeply"
        ) from None
    from netfast.router.validate import Parser  # it builds this module's values

    return Parser(filename, base_dir or Path(".")).parse(doc)


def _os_problem(exc: OSError) -> str:
    """An OSError as a short phrase (no errno number, no repeated path)."""
    if isinstance(exc, FileNotFoundError):
        return "cannot read: no such file"
    if isinstance(exc, IsADirectoryError):
        return "cannot read: is a directory, not a file"
    return f"cannot read: {exc.strerror or exc}"


def _p(path: Path) -> str:
    """A path for a message, bounded (a config may name a path of any length)."""
    return shown(str(path), 200)


def _connected_ifindex(interfaces: Sequence[Interface], addr: int) -> int | None:
    """The interface whose connected subnet holds ``addr`` (the longest one), or None."""
    best: tuple[int, int] | None = None
    for iface in interfaces:
        for a in iface.addrs:
            if addr & prefix_mask(a.plen) == a.network and (best is None or a.plen > best[0]):
                best = (a.plen, iface.index)
    return None if best is None else best[1]
