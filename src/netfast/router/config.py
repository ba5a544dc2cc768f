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

This module is pure: it turns text into frozen values (:class:`RouterConfig`) and touches no file
but the config itself (:func:`load_config`).  Whether the files it names exist, loading the
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

import ipaddress
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast

from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.route.rib import format_prefix, prefix_mask
from netfast.route.table import DEFAULT_ALGORITHM, algorithms
from netfast.textnum import ascii_int, has_leading_zero, parse_quad, shown
from netfast.wire.ethernet import mac_from_str, mac_to_str
from netfast.wire.ipv4 import ip_to_str

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
    "afpacket": frozenset({"device", "promiscuous"}),
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
_FIREWALL_KEYS = frozenset({"rules", "heads"})


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
    """How an interface reaches the world: ``type`` and that type's options."""

    type: str
    device: str | None = None
    promiscuous: bool = True
    pcap_in: Path | None = None
    pcap_out: Path | None = None


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
    rules_file, firewall_heads
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
    return _Parser(filename, base_dir or Path(".")).parse(doc)


def _os_problem(exc: OSError) -> str:
    """An OSError as a short phrase (no errno number, no repeated path)."""
    if isinstance(exc, FileNotFoundError):
        return "cannot read: no such file"
    if isinstance(exc, IsADirectoryError):
        return "cannot read: is a directory, not a file"
    return f"cannot read: {exc.strerror or exc}"


def _num(value: float) -> str:
    """A number for a message; an integer too long to print whole is described instead."""
    if isinstance(value, int):
        return str(value) if -(10**18) < value < 10**18 else f"a {value.bit_length()}-bit integer"
    return f"{value:g}"


def _p(path: Path) -> str:
    """A path for a message, bounded (a config may name a path of any length)."""
    return shown(str(path), 200)


def _q(text: str) -> str:
    """A user's string quoted for a message: escaped like repr, cut to a bounded length."""
    return repr(text) if len(text) <= 60 else repr(text[:60]) + f"... ({len(text):,} characters)"


def _ifname_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Linux interface name (``dev_valid_name``), or None."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= IFNAME_MAX:
        return f"must be 1..{IFNAME_MAX} bytes, is {size}"
    if name in (".", ".."):
        return "'.' and '..' are not interface names"
    for c in name:
        if c in "/:" or c.isspace() or not c.isprintable():
            return f"may not contain {c!r} ('/', ':', whitespace and control characters)"
    return None


def _mac_problem(mac: bytes) -> str | None:
    if mac[0] & 1:
        return "is a multicast (group) address, not one a port or a neighbour can have"
    if mac == bytes(6):
        return "is all zeros, not a station's address"
    return None


def _connected_ifindex(interfaces: Sequence[Interface], addr: int) -> int | None:
    """The interface whose connected subnet holds ``addr`` (the longest one), or None."""
    best: tuple[int, int] | None = None
    for iface in interfaces:
        for a in iface.addrs:
            if addr & prefix_mask(a.plen) == a.network and (best is None or a.plen > best[0]):
                best = (a.plen, iface.index)
    return None if best is None else best[1]


class _Parser:
    """Walks the TOML document; every check raises ConfigError with the key path."""

    def __init__(self, filename: str, base_dir: Path) -> None:
        self.file = filename
        self.base = base_dir

    def error(self, key: str, problem: str) -> ConfigError:
        # Key paths hold the file's own keys: bound and escape them like any user text.
        return ConfigError(self.file, shown(key, 120), problem)

    # -- typed getters -----------------------------------------------------------------------
    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_kind(value)}")
        return value

    def unknown(self, table: Mapping[str, object], allowed: frozenset[str], key: str) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.error(
                    where, f"unknown key (expected one of {', '.join(sorted(allowed))})"
                )

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_kind(value)}")
        return value

    def integer(self, value: object, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {_kind(value)}")
        if not lo <= value <= hi:
            raise self.error(key, f"{_num(value)} is outside {lo}..{hi}")
        return value

    def number(self, value: object, key: str, lo: float, lo_ok: bool, hi: float) -> float:
        """A finite number in ``lo..hi`` (``lo`` itself only when ``lo_ok``)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"{value} is not a finite number")
        if value < lo or (value == lo and not lo_ok):
            bound = f"at least {lo:g}" if lo_ok else f"above {lo:g}"
            raise self.error(key, f"{_num(value)} is too small: must be {bound}")
        if value > hi:
            raise self.error(key, f"{_num(value)} is too large: must be at most {hi:g}")
        return float(value)

    def path(self, value: object, key: str) -> Path:
        text = self.string(value, key)
        if not text or "\0" in text:
            raise self.error(key, f"{_q(text)} is not a file name")
        p = Path(text)
        return p if p.is_absolute() else self.base / p

    def address(self, value: object, key: str, what: str = "") -> int:
        text = self.string(value, key)
        return self.quad(text, key, what)

    def quad(self, text: str, key: str, what: str = "") -> int:
        """A dotted quad (ASCII digits, no leading zeros); ``what`` names it in the message."""
        addr = parse_quad(text)
        if addr is None:
            label = f"{what} {_q(text)}" if what else _q(text)
            if has_leading_zero(text):
                raise self.error(
                    key, f"{label}: an octet has a leading zero (octal to some tools, not others)"
                )
            raise self.error(key, f"{label} is not an IPv4 address")
        return addr

    def mac(self, value: object, key: str) -> bytes:
        text = self.string(value, key)
        try:
            mac = mac_from_str(text)
        except ValueError:
            raise self.error(key, f"not a MAC address: {_q(text)}") from None
        problem = _mac_problem(mac)
        if problem is not None:
            raise self.error(key, f"{mac_to_str(mac)} {problem}")
        return mac

    def ifname(self, value: object, key: str) -> str:
        name = self.string(value, key)
        problem = _ifname_problem(name)
        if problem is not None:
            raise self.error(key, f"{_q(name)}: not an interface name: {problem}")
        return name

    # -- sections ----------------------------------------------------------------------------
    def parse(self, doc: dict[str, Any]) -> RouterConfig:
        self.unknown(doc, _TOP_KEYS, "")
        raw_ifaces = doc.get("interface")
        if raw_ifaces is None:
            raise self.error("interface", "missing: a router needs at least one [[interface]]")
        if not isinstance(raw_ifaces, list) or not raw_ifaces:
            raise self.error("interface", "must be a non-empty array of tables ([[interface]])")
        interfaces = [self.interface(raw, i) for i, raw in enumerate(raw_ifaces)]
        self.check_unique(interfaces)
        ifaces = [ic.interface for ic in interfaces]
        return RouterConfig(
            self.file,
            tuple(interfaces),
            router_options=self.router(self.table(doc.get("router", {}), "router")),
            **self.routes(self.table(doc.get("routes", {}), "routes"), ifaces),
            neighbors=self.neighbors(self.table(doc.get("neighbors", {}), "neighbors"), ifaces),
            **self.firewall(self.table(doc["firewall"], "firewall") if "firewall" in doc else None),
        )

    def router(self, t: dict[str, Any]) -> RouterOptions:
        self.unknown(t, frozenset(_ROUTER_KEYS), "router")
        out: dict[str, float | int] = {}
        for k, v in t.items():
            kind, lo, lo_ok, hi = _ROUTER_KEYS[k]
            if kind is int:
                out[k] = self.integer(v, f"router.{k}", int(lo) + (not lo_ok), int(hi))
            else:
                out[k] = self.number(v, f"router.{k}", lo, lo_ok, hi)
        # The ICMP token bucket needs a token to hand out unless it is off (rate 0).
        if out.get("icmp_burst", 1) < 1 and out.get("icmp_rate", 1.0) > 0:
            raise self.error(
                "router.icmp_burst",
                f"{out['icmp_burst']} is too small: the ICMP rate limit needs a burst of at "
                "least 1 (or icmp_rate = 0 for no limit)",
            )
        return cast(RouterOptions, out)

    def interface(self, raw: object, i: int) -> InterfaceConfig:
        key = f"interface[{i}]"
        t = self.table(raw, key)
        self.unknown(t, _IFACE_KEYS, key)
        for required in ("name", "mac"):
            if required not in t:
                raise self.error(f"{key}.{required}", "missing")
        name = self.ifname(t["name"], f"{key}.name")
        mac = self.mac(t["mac"], f"{key}.mac")
        addrs_raw = t.get("addresses", [])
        if not isinstance(addrs_raw, list):
            raise self.error(f"{key}.addresses", f"must be an array, got {_kind(addrs_raw)}")
        addrs = tuple(self.if_addr(a, f"{key}.addresses[{j}]") for j, a in enumerate(addrs_raw))
        mtu = self.integer(t.get("mtu", 1500), f"{key}.mtu", 68, 65535)
        link = self.link(t["link"], f"{key}.link") if "link" in t else None
        return InterfaceConfig(Interface(i, name, mac, addrs, mtu), link)

    def if_addr(self, value: object, key: str) -> IfAddr:
        text = self.string(value, key)
        addr_text, sep, plen_text = text.partition("/")
        if parse_quad(addr_text) is None and not has_leading_zero(addr_text):
            raise self.error(
                key, f"{_q(text)} is not an address with a prefix length (198.18.0.1/24)"
            )
        if not sep:
            raise self.error(key, f"{_q(text)} needs a prefix length (198.18.0.1/24)")
        addr = self.quad(addr_text, key)
        plen = ascii_int(plen_text, 1, 32)
        if plen is None:
            raise self.error(key, f"{_q(text)}: the prefix length must be 1..32")
        a = IfAddr(addr, plen)
        if addr >> 28 == 0xE or addr == 0xFFFFFFFF or addr >> 24 in (0, 127):
            raise self.error(
                key, f"{_q(text)}: a multicast, broadcast, 0/8 or loopback address is no port's"
            )
        # RFC 3021: a /31 has no network or broadcast address; a /32 is the host alone.
        if plen <= 30 and addr in (a.network, a.broadcast):
            which = "network" if addr == a.network else "broadcast"
            raise self.error(
                key, f"{_q(text)} is the {which} address of its subnet, not a host's address"
            )
        return a

    def link(self, raw: object, key: str) -> LinkConfig:
        t = self.table(raw, key)
        if "type" not in t:
            raise self.error(f"{key}.type", f"missing (one of {', '.join(LINK_TYPES)})")
        kind = self.string(t["type"], f"{key}.type")
        if kind not in LINK_TYPES:
            raise self.error(f"{key}.type", f"{_q(kind)}: expected one of {', '.join(LINK_TYPES)}")
        self.unknown(t, LINK_TYPES[kind] | {"type"}, key)
        if kind == "pcap":
            return LinkConfig(
                kind,
                pcap_in=self.path(t["in"], f"{key}.in") if "in" in t else None,
                pcap_out=self.path(t["out"], f"{key}.out") if "out" in t else None,
            )
        if "device" not in t:
            raise self.error(f"{key}.device", "missing: the OS interface to use")
        device = self.ifname(t["device"], f"{key}.device")
        promiscuous = t.get("promiscuous", True)
        if not isinstance(promiscuous, bool):
            raise self.error(
                f"{key}.promiscuous", f"must be true or false, got {_kind(promiscuous)}"
            )
        return LinkConfig(kind, device=device, promiscuous=promiscuous)

    def check_unique(self, interfaces: list[InterfaceConfig]) -> None:
        names: dict[str, int] = {}
        addrs: dict[int, int] = {}
        subnets: list[tuple[IfAddr, int, int]] = []
        for ic in interfaces:
            i = ic.interface.index
            if ic.interface.name in names:
                raise self.error(
                    f"interface[{i}].name",
                    f"{_q(ic.interface.name)} is already interface[{names[ic.interface.name]}]",
                )
            names[ic.interface.name] = i
            for j, a in enumerate(ic.interface.addrs):
                if a.addr in addrs:
                    raise self.error(
                        f"interface[{i}].addresses[{j}]",
                        f"{ipaddress.IPv4Address(a.addr)} is already on interface[{addrs[a.addr]}]",
                    )
                addrs[a.addr] = i
                # Two ports on one subnet (or nested ones): which port reaches a host in it
                # would depend on prefix lengths, and a connected route would hide another.
                for other, oi, oj in subnets:
                    if oi != i and _overlap(a, other):
                        raise self.error(
                            f"interface[{i}].addresses[{j}]",
                            f"{format_prefix(a.network, a.plen)} overlaps "
                            f"{format_prefix(other.network, other.plen)} of "
                            f"interface[{oi}].addresses[{oj}]: two ports cannot share a subnet",
                        )
                subnets.append((a, i, j))

    def next_hop(self, value: object, key: str, ifaces: list[Interface]) -> NextHop:
        """``"via GW [dev NAME]"`` or ``"dev NAME"``."""
        text = self.string(value, key)
        words = text.split()
        opts: dict[str, str] = {}
        while words:
            if len(words) < 2 or words[0] not in ("via", "dev") or words[0] in opts:
                raise self.error(
                    key, f"{_q(text)}: expected 'via GATEWAY [dev NAME]' or 'dev NAME'"
                )
            opts[words[0]] = words[1]
            words = words[2:]
        if not opts:
            raise self.error(key, "empty next hop: expected 'via GATEWAY [dev NAME]' or 'dev NAME'")
        by_name = {i.name: i.index for i in ifaces}
        dev = opts.get("dev")
        if dev is not None and dev not in by_name:
            raise self.error(key, f"no interface called {_q(dev)} (have {', '.join(by_name)})")
        if "via" not in opts:
            assert dev is not None
            return NextHop(by_name[dev], None)
        gw = self.quad(opts["via"], key, "gateway")
        gw_text = ip_to_str(gw)
        if any(a.addr == gw for i in ifaces for a in i.addrs):
            raise self.error(key, f"gateway {gw_text} is this router's own address")
        connected = _connected_ifindex(ifaces, gw)
        if connected is None:
            raise self.error(key, f"gateway {gw_text} is in no connected subnet")
        if dev is not None and by_name[dev] != connected:
            raise self.error(key, f"gateway {gw_text} is not in a subnet of {dev}")
        return NextHop(connected, gw)

    def prefix(self, text: str, key: str) -> tuple[int, int]:
        """``A.B.C.D/len`` (ASCII digits, no leading zeros, no host bits)."""
        addr_text, _, plen_text = text.partition("/")
        net = self.quad(addr_text, key, "prefix")
        plen = ascii_int(plen_text, 0, 32)
        if plen is None:
            raise self.error(key, f"prefix length {_q(plen_text)} is not an integer 0..32")
        if net & ~prefix_mask(plen) & 0xFFFFFFFF:
            raise self.error(key, f"{_q(text)} has host bits set beyond /{plen}")
        return net, plen

    def routes(self, t: dict[str, Any], ifaces: list[Interface]) -> dict[str, Any]:
        """The ``[routes]`` section as :class:`RouterConfig` keyword arguments."""
        out: dict[str, Any] = {}
        static: list[StaticRoute] = []
        for k, v in t.items():
            if k in _ROUTE_OPTIONS:
                continue
            key = f'routes."{k}"'
            if "/" not in k:
                raise self.error(
                    f"routes.{k}",
                    'unknown key (expected a prefix such as "10.0.0.0/8" or one of '
                    f"{', '.join(sorted(_ROUTE_OPTIONS))})",
                )
            net, plen = self.prefix(k, key)
            static.append(StaticRoute(net, plen, self.next_hop(v, key, ifaces)))
        out["static_routes"] = tuple(static)
        if "algorithm" in t:
            name = self.string(t["algorithm"], "routes.algorithm")
            if name not in algorithms():
                raise self.error(
                    "routes.algorithm", f"{_q(name)}: expected one of {', '.join(algorithms())}"
                )
            out["algorithm"] = name
        if "table" in t:
            out["table_file"] = self.path(t["table"], "routes.table")
            table_map = self.string(t.get("table_map", "hash"), "routes.table_map")
            out["table_map"] = table_map
            if table_map not in TABLE_MAPS:
                raise self.error(
                    "routes.table_map",
                    f"{_q(table_map)}: expected one of {', '.join(TABLE_MAPS)}",
                )
            if table_map == "hash":
                over = t.get("hash_over")
                if not isinstance(over, list) or not over:
                    raise self.error(
                        "routes.hash_over",
                        'table_map = "hash" needs a non-empty array of next hops '
                        '("via GW dev NAME")',
                    )
                out["hash_over"] = tuple(
                    self.next_hop(v, f"routes.hash_over[{j}]", ifaces) for j, v in enumerate(over)
                )
            elif "hash_over" in t:
                raise self.error("routes.hash_over", 'only used with table_map = "hash"')
        else:
            for k in ("table_map", "hash_over"):
                if k in t:
                    raise self.error(f"routes.{k}", "only used with routes.table")
        return out

    def neighbors(
        self, t: dict[str, Any], ifaces: list[Interface]
    ) -> tuple[tuple[int, int, bytes], ...]:
        out = []
        for k, v in t.items():
            key = f'neighbors."{k}"'
            addr = self.quad(k, key)
            ifindex = _connected_ifindex(ifaces, addr)
            if ifindex is None:
                raise self.error(key, f"{k} is in no connected subnet")
            for a in ifaces[ifindex].addrs:
                if addr == a.addr:
                    raise self.error(key, f"{k} is this router's own address")
                if a.plen <= 30 and addr in (a.network, a.broadcast):
                    raise self.error(key, f"{k} is a network or broadcast address, not a host's")
            out.append((ifindex, addr, self.mac(v, key)))
        return tuple(out)

    def firewall(self, t: dict[str, Any] | None) -> dict[str, Any]:
        """The ``[firewall]`` section (None: there is none) as :class:`RouterConfig` keyword
        arguments."""
        if t is None:
            return {}
        self.unknown(t, _FIREWALL_KEYS, "firewall")
        if "rules" not in t:
            raise self.error("firewall.rules", "missing: the rules file")
        rules_file = self.path(t["rules"], "firewall.rules")
        heads = t.get("heads", ["in"])
        if not isinstance(heads, list) or not heads:
            raise self.error("firewall.heads", f"must be a non-empty array of {HEADS}")
        for j, h in enumerate(heads):
            if self.string(h, f"firewall.heads[{j}]") not in HEADS:
                raise self.error(
                    f"firewall.heads[{j}]", f"{_q(h)}: expected one of {', '.join(HEADS)}"
                )
        return {"rules_file": rules_file, "firewall_heads": tuple(dict.fromkeys(heads))}


def _overlap(a: IfAddr, b: IfAddr) -> bool:
    plen = min(a.plen, b.plen)
    return (a.network ^ b.network) & prefix_mask(plen) == 0


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return {str: "a string", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )
