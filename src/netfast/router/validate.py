"""Validation of a router description: the TOML document walked key by key into the frozen
values of :mod:`netfast.router.config`.

Promises: every problem raises :class:`~netfast.router.config.ConfigError` naming the key path
and the problem (user text in messages is escaped and bounded); unknown keys are errors; nothing
here touches a file or the OS -- the checks are on the text alone (the rules are listed in the
:mod:`netfast.router.config` docstring; RFC 3021 for /31 subnets; Linux's ``dev_valid_name``
for interface names).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.link.ring_config import RingConfig
from netfast.route.rib import format_prefix, prefix_mask
from netfast.route.table import algorithms
from netfast.router.config import (
    _FIREWALL_KEYS,
    _IFACE_KEYS,
    _RING_INTS,
    _RING_KEYS,
    _ROUTE_OPTIONS,
    _ROUTER_KEYS,
    _TOP_KEYS,
    DEFAULT_MAX_STATES,
    HEADS,
    IFNAME_MAX,
    LINK_TYPES,
    MAX_STATES_LIMIT,
    TABLE_MAPS,
    ConfigError,
    InterfaceConfig,
    LinkConfig,
    RouterConfig,
    RouterOptions,
    StaticRoute,
    _connected_ifindex,
)
from netfast.textnum import ascii_int, has_leading_zero, parse_quad, shown
from netfast.wire.ethernet import mac_from_str, mac_to_str
from netfast.wire.ipv4 import ip_to_str

__all__ = ["Parser"]


def _num(value: float) -> str:
    """A number for a message; an integer too long to print whole is described instead."""
    if isinstance(value, int):
        return str(value) if -(10**18) < value < 10**18 else f"a {value.bit_length()}-bit integer"
    return f"{value:g}"


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


class Parser:
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
        link = self.link(t["link"], f"{key}.link", mtu) if "link" in t else None
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

    def link(self, raw: object, key: str, mtu: int) -> LinkConfig:
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
        ring = self.ring(t.get("ring", True), f"{key}.ring", mtu) if kind == "afpacket" else None
        return LinkConfig(kind, device=device, promiscuous=promiscuous, ring=ring)

    def ring(self, raw: object, key: str, mtu: int) -> RingConfig | None:
        """``ring = true | false | { geometry }`` of an afpacket link, checked for ``mtu``."""
        if isinstance(raw, bool):
            return RingConfig() if raw else None
        if not isinstance(raw, dict):
            raise self.error(key, f"must be true, false or a table, got {_kind(raw)}")
        self.unknown(raw, _RING_KEYS, key)
        values: dict[str, Any] = {}
        for name, (lo, hi) in _RING_INTS.items():
            if name in raw:
                values[name] = self.integer(raw[name], f"{key}.{name}", lo, hi)
        if "qdisc_bypass" in raw:
            bypass = raw["qdisc_bypass"]
            if not isinstance(bypass, bool):
                raise self.error(
                    f"{key}.qdisc_bypass", f"must be true or false, got {_kind(bypass)}"
                )
            values["qdisc_bypass"] = bypass
        cfg = RingConfig(**values)
        for name, problem in cfg.problems(mtu):
            raise self.error(f"{key}.{name}", problem)
        return cfg

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
        max_states = self.integer(
            t.get("max_states", DEFAULT_MAX_STATES), "firewall.max_states", 0, MAX_STATES_LIMIT
        )
        return {
            "rules_file": rules_file,
            "firewall_heads": tuple(dict.fromkeys(heads)),
            "firewall_max_states": max_states,
        }


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
