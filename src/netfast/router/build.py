"""A :class:`~netfast.router.config.RouterConfig` made real: files checked and loaded, links
opened, and the router composed from its parts.

:func:`build_router` checks the route table and rules files first (:func:`check_files`, so a
missing rules file is not found after a long table load), builds the routing table
(:func:`build_table`), parses the firewall (:func:`load_ruleset`), and composes the scalar
:class:`netfast.ip.router.Router`, its pfil heads with the ruleset hooked in, the static ARP
entries and the :class:`netfast.ip.vector.VectorForwarder` over the same state.  The result is
one :class:`BuiltRouter`, which is what drivers take: it opens its links
(:meth:`BuiltRouter.open_links`, AF_PACKET rings or sockets, TAP, pcap), runs over a capture or live
(:meth:`BuiltRouter.run_capture`, :meth:`BuiltRouter.run_live`) and closes what it opened (a
context manager).

Promises: every failure to read a named file is a :class:`ConfigError` naming the key and the
path (never a bare ``OSError``); a failure opening links closes the ones already opened; the
route statistics add up (``table`` + ``table.unreachable_next_hop`` is the route file's live
routes).
"""

from __future__ import annotations

import ipaddress
import os
import threading
import zlib
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from netfast.ip.iface import NextHop
from netfast.route.rib import Rib
from netfast.route.table import RoutingTable
from netfast.router.config import ConfigError, RouterConfig, _connected_ifindex, _os_problem, _p
from netfast.router.engine import Engine

if TYPE_CHECKING:
    from netfast.ip.router import Router
    from netfast.ip.vector import VectorForwarder
    from netfast.link.base import Link
    from netfast.pfil.heads import HookId, PfilHeads
    from netfast.pfil.ipfw import Ruleset
    from netfast.router.run import CaptureSummary, LiveSummary

__all__ = [
    "BuiltRouter",
    "build_router",
    "build_table",
    "check_files",
    "load_ruleset",
    "open_links",
]


def check_files(cfg: RouterConfig) -> None:
    """Check that the route table and rules files are there and are files, and that no pcap
    output is a directory, before anything is loaded.

    Raises
    ------
    ConfigError
        Naming the key (``routes.table``, ``firewall.rules``, ``interface[i].link.out``) and
        the path.
    """
    for key, path in (("routes.table", cfg.table_file), ("firewall.rules", cfg.rules_file)):
        if path is None:
            continue
        try:
            is_file, is_dir = path.is_file(), path.is_dir()
        except OSError as exc:
            raise ConfigError(cfg.path, key, f"{_p(path)}: {_os_problem(exc)}") from None
        if is_dir:
            raise ConfigError(cfg.path, key, f"{_p(path)}: is a directory, not a file")
        if not is_file:
            problem = "no such file" if not path.exists() else "not a regular file"
            raise ConfigError(cfg.path, key, f"{_p(path)}: {problem}")
    for key, path in cfg.pcap_outputs():
        if path.is_dir():
            raise ConfigError(cfg.path, key, f"{_p(path)}: is a directory, not a file")


def build_table(cfg: RouterConfig) -> tuple[RoutingTable, Counter[str]]:
    """The routing table -- the mapped route file, connected subnets and static routes, with
    :class:`~netfast.ip.iface.NextHop` values -- and what went in: connected, static and table
    routes installed, and table routes skipped by reason.

    Raises
    ------
    netfast.route.loaders.RouteFileError
        The route file is unreadable or malformed.
    ConfigError
        The route file cannot be read, or ``table_map = "nexthop"`` and a value is not an
        address.
    """
    stats: Counter[str] = Counter()
    rib = Rib()
    if cfg.table_file is not None:
        _add_table(cfg, rib, stats)
    for ic in cfg.interfaces:
        for a in ic.interface.addrs:
            rib.add(a.network, a.plen, NextHop(ic.interface.index, None))
            stats["connected"] += 1
    for r in cfg.static_routes:
        rib.add(r.net, r.plen, r.next_hop)
        stats["static"] += 1
    return RoutingTable(rib, cfg.algorithm), stats


def _add_table(cfg: RouterConfig, rib: Rib, stats: Counter[str]) -> None:
    from netfast.route.loaders import load_table

    assert cfg.table_file is not None
    try:
        loaded = load_table(
            cfg.table_file, value="nexthop" if cfg.table_map == "nexthop" else "origin"
        ).rib
    except OSError as exc:
        # build_router ran check_files first; here build_table alone, or a file gone since.
        raise ConfigError(
            cfg.path, "routes.table", f"{_p(cfg.table_file)}: {_os_problem(exc)}"
        ) from None
    nets, plens, rids = loaded.live_arrays()
    # Map each distinct value once; the routes follow through their value ids.
    choices: list[Hashable] = []
    code_of: dict[Hashable, int] = {}
    per_value = np.full(len(loaded.values), -1, np.int64)
    for vid, v in enumerate(loaded.values):
        nh = _map_value(cfg, str(v))
        if nh is None:
            continue
        if nh not in code_of:
            code_of[nh] = len(choices)
            choices.append(nh)
        per_value[vid] = code_of[nh]
    codes = per_value[loaded.value_id[rids]]
    usable = codes >= 0
    stats["table.unreachable_next_hop"] += int(np.count_nonzero(~usable))
    if usable.any():
        rib.add_many(nets[usable], plens[usable], choices, codes[usable])
    stats["table"] += int(np.count_nonzero(usable))


def _map_value(cfg: RouterConfig, value: str) -> NextHop | None:
    if cfg.table_map == "hash":
        return cfg.hash_over[zlib.crc32(value.encode()) % len(cfg.hash_over)]
    try:
        gw = int(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError(
            str(cfg.table_file), "", f"next hop {value!r} is not an IPv4 address"
        ) from None
    ifindex = _connected_ifindex(cfg.ifaces, gw)
    return None if ifindex is None else NextHop(ifindex, gw)


def load_ruleset(cfg: RouterConfig) -> Ruleset | None:
    """The firewall's :class:`netfast.pfil.ipfw.Ruleset`, or None without ``[firewall]``.

    Raises
    ------
    netfast.pfil.ipfw.FirewallError
        The rules do not parse, or the file is not UTF-8 (naming its line and column).
    ConfigError
        The rules file cannot be read.
    """
    if cfg.rules_file is None:
        return None
    from netfast.pfil.ipfw import parse_rules, read_rules

    try:
        text = read_rules(cfg.rules_file)
    except OSError as exc:
        raise ConfigError(
            cfg.path, "firewall.rules", f"{_p(cfg.rules_file)}: {_os_problem(exc)}"
        ) from None
    return parse_rules(
        text,
        str(cfg.rules_file),
        me=[a.addr for iface in cfg.ifaces for a in iface.addrs],
        interfaces={iface.name: iface.index for iface in cfg.ifaces},
        max_states=cfg.firewall_max_states,
    )


def open_links(cfg: RouterConfig, types: Sequence[str] = ("afpacket", "tap")) -> dict[int, Link]:
    """Open the links of the interfaces whose link type is in ``types``, by ifindex.

    A failure closes the links already opened and raises ``OSError`` naming the interface.
    """
    from netfast.link.pcap import PcapReplayLink, PcapWriterLink
    from netfast.link.ring import open_packet_link
    from netfast.link.tap import TapLink

    links: dict[int, Link] = {}
    try:
        for ic in cfg.interfaces:
            lc, iface = ic.link, ic.interface
            if lc is None or lc.type not in types:
                continue
            try:
                link: Link
                if lc.type == "afpacket":
                    assert lc.device is not None
                    link = open_packet_link(
                        lc.device, promiscuous=lc.promiscuous, mtu=iface.mtu, ring=lc.ring
                    )
                elif lc.type == "tap":
                    assert lc.device is not None
                    link = TapLink(lc.device, mtu=iface.mtu)
                elif lc.pcap_out is not None:
                    inner = PcapReplayLink(lc.pcap_in, mtu=iface.mtu) if lc.pcap_in else None
                    link = PcapWriterLink(lc.pcap_out, inner, name=iface.name, mtu=iface.mtu)
                elif lc.pcap_in is not None:
                    link = PcapReplayLink(lc.pcap_in, name=iface.name, mtu=iface.mtu)
                else:
                    continue
            except OSError as exc:
                raise OSError(f"interface {iface.name}: {lc.type} link: {exc}") from exc
            links[iface.index] = link
    except BaseException:
        for link in links.values():
            link.close()
        raise
    return links


@dataclass
class BuiltRouter:
    """A router assembled from a :class:`RouterConfig`: the scalar Router, its table, pfil heads
    with the firewall hooked in, and the vector forwarder when it is available.

    Drivers use its methods, not its parts: :meth:`new_engine`, :meth:`open_links`,
    :meth:`run_capture`, :meth:`run_live`, and ``with built:`` (or :meth:`close`) to close the
    links it opened.  :meth:`set_ruleset` swaps the firewall while traffic flows (pfil writers
    serialize; packets in flight see the old or the new hooks, never a mix).
    """

    config: RouterConfig
    router: Router
    table: RoutingTable
    pfil: PfilHeads
    route_stats: Counter[str] = field(default_factory=Counter)
    ruleset: Ruleset | None = None
    hook_ids: list[HookId] = field(default_factory=list)
    vector: VectorForwarder | None = None
    #: The links :meth:`open_links` opened, by ifindex (closed by :meth:`close`).
    links: dict[int, Link] = field(default_factory=dict)

    @property
    def names(self) -> dict[int, str]:
        """Interface names by ifindex."""
        return {ic.interface.index: ic.interface.name for ic in self.config.interfaces}

    def set_ruleset(self, ruleset: Ruleset | None) -> None:
        """Hook ``ruleset`` (a :class:`netfast.pfil.ipfw.Ruleset`, or None for no firewall) on
        the configured heads in place of the current one.  The new hooks go in before the old
        ones leave, so no packet passes unfiltered during the swap."""
        from netfast.pfil import Direction

        old = self.hook_ids
        new = []
        if ruleset is not None:
            for head in self.config.firewall_heads:
                new.append(self.pfil.add_hook(Direction[head.upper()], ruleset))
        for hook_id in old:
            self.pfil.remove_hook(hook_id)
        self.hook_ids = new
        self.ruleset = ruleset

    def set_time(self, now: float) -> None:
        """Tell the time-keeping parts (the firewall's state timeouts) what time it is."""
        ruleset = self.ruleset
        if ruleset is not None:
            ruleset.now = now

    def new_engine(self) -> Engine:
        """An :class:`~netfast.router.engine.Engine` over this router (vector path when built,
        the firewall's clock kept by :meth:`set_time`), with statistics of its own."""
        return Engine(self.router, self.vector, on_time=self.set_time)

    def open_links(self, types: Sequence[str] = ("afpacket", "tap")) -> dict[int, Link]:
        """Open the links of the interfaces whose type is in ``types`` (:func:`open_links`),
        closing any opened before; :meth:`close` closes them."""
        self.close()
        self.links = open_links(self.config, types)
        return self.links

    def run_capture(
        self,
        in_pcap: str | os.PathLike[str],
        ingress: int,
        out_dir: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        overwrite: bool = False,
        stop: threading.Event | None = None,
    ) -> CaptureSummary:
        """Forward a capture as received on ``ingress``; one capture per port in ``out_dir``
        (:func:`netfast.router.run.run_capture`, port names from the config)."""
        from netfast.router.run import run_capture

        return run_capture(
            self.router,
            in_pcap,
            ingress,
            out_dir,
            vector=self.vector,
            names=self.names,
            batch_size=batch_size,
            overwrite=overwrite,
            on_time=self.set_time,
            stop=stop,
        )

    def run_live(
        self,
        stop: threading.Event,
        *,
        duration: float | None = None,
        max_packets: int | None = None,
        batch_size: int = 256,
        engine: Engine | None = None,
    ) -> LiveSummary:
        """Forward between the opened links (:meth:`open_links`) until ``stop`` is set, the
        deadline ``duration`` seconds on passes, or ``max_packets`` frames came in
        (:func:`netfast.router.run.run_live`).  ``engine`` (default: a new one) lets another
        thread watch the counters as the loop runs."""
        from netfast.router.run import run_live

        return run_live(
            self.router,
            self.links,
            stop,
            duration=duration,
            max_packets=max_packets,
            batch_size=batch_size,
            engine=engine or self.new_engine(),
        )

    def close(self) -> None:
        """Close the links :meth:`open_links` opened (the router itself holds nothing)."""
        links, self.links = self.links, {}
        for link in links.values():
            link.close()

    def __enter__(self) -> BuiltRouter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build_router(
    cfg: RouterConfig,
    *,
    vector: bool = True,
    pfil_impl: str | None = None,
    table: RoutingTable | None = None,
) -> BuiltRouter:
    """Load the table and the rules of ``cfg`` and assemble the router.

    Parameters
    ----------
    vector
        Also build the :class:`netfast.ip.vector.VectorForwarder`.
    pfil_impl
        The pfil implementation (default: the measured winner).
    table
        Use this routing table instead of building one (routers sharing a table; the route
        statistics are then empty).

    Raises
    ------
    ConfigError, netfast.route.loaders.RouteFileError, netfast.pfil.ipfw.FirewallError
    """
    from netfast.ip.router import Router
    from netfast.ip.vector import VectorForwarder
    from netfast.pfil.heads import PfilHeads

    check_files(cfg)
    stats: Counter[str] = Counter()
    if table is None:
        table, stats = build_table(cfg)
    ruleset = load_ruleset(cfg)
    heads = PfilHeads(pfil_impl)
    router = Router(cfg.ifaces, table, heads, **cfg.router_options)
    for ifindex, addr, mac in cfg.neighbors:
        router.arp.add_static(ifindex, addr, mac)
    built = BuiltRouter(cfg, router, table, heads, stats)
    built.set_ruleset(ruleset)
    if vector:
        built.vector = VectorForwarder(router)
    return built
