"""The three namespaces of ``netfast bench live`` and the kernel's counters in them.

::

    ns A (generator)          ns M (the middle)                 ns B (sink)
    a0 198.18.0.2/24 --veth-- am 02:00:00:00:fa:01
                              bm 02:00:00:00:fa:02 --veth-- b0 198.18.1.2/24

:class:`Topology` creates the namespaces under names unique to the process
(``nfl<pid>x<n><role>``) and deletes them in :meth:`Topology.close` (also on a failed build),
which takes the veths along; the veths are created directly inside them, so nothing appears in
the root namespace.  Only addresses in 198.18.0.0/15 (RFC 2544's range for benchmarking) are
used.  The middle ends carry fixed MAC addresses that are also netfast's interface MACs, and A
and B hold permanent neighbour entries for them (and M for A and B in kernel mode), so the two
modes look the same from A and B and no ARP happens during a measurement.  IPv6 is off in
every namespace and offloads are off on every veth end (ethtool); B never answers (its ICMP
rate limit is zero), so the only traffic is the generator's.

The counters (:meth:`Topology.counters`) are the kernel's own: every veth end's packets and
drops (``ip -s link``) and the IP MIB of M (``/proc/net/snmp``, per namespace).  Every command
is bounded by :data:`netfast.bench.netns.COMMAND_TIMEOUT`; :meth:`Topology.settle` by
:data:`SETTLE_LIMIT`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from netfast.bench.netns import run as _run

__all__ = [
    "FRAME_LEN",
    "MODES",
    "UDP_PAYLOAD",
    "Counters",
    "EndCounters",
    "Topology",
    "a0_qdisc",
    "enter_netns",
]

#: Frame length on the veth (no FCS): Ethernet 14 + IPv4 20 + UDP 8 + payload.
FRAME_LEN = 60
UDP_PAYLOAD = FRAME_LEN - 14 - 20 - 8
MODES = ("kernel", "netfast")

HOST_A, HOST_B = "198.18.0.2", "198.18.1.2"
ROUTER_A, ROUTER_B = "198.18.0.1", "198.18.1.1"
MAC_A, MAC_B = "02:00:00:00:fb:01", "02:00:00:00:fb:02"
MAC_ROUTER_A, MAC_ROUTER_B = "02:00:00:00:fa:01", "02:00:00:00:fa:02"
DST_PORT = 9  # discard
# Interface names live inside the run's own namespaces, so they need not be unique.
IF_A, IF_MA, IF_MB, IF_B = "a0", "am", "bm", "b0"

#: How long the counters must stand still to call the network idle, and the most to wait.
SETTLE_SECONDS = 0.25
SETTLE_LIMIT = 5.0

#: The IP MIB counters (RFC 4293 ipSystemStats, Linux's names) that count a datagram the
#: kernel discarded.
IP_DISCARDS = (
    "InHdrErrors",
    "InAddrErrors",
    "InUnknownProtos",
    "InDiscards",
    "OutDiscards",
    "OutNoRoutes",
)

_CLONE_NEWNET = 0x40000000
_names = itertools.count()


@dataclass(frozen=True, slots=True)
class EndCounters:
    """One veth end's counters (``ip -s link``), or the difference of two readings."""

    rx_packets: int = 0
    rx_dropped: int = 0
    tx_packets: int = 0
    tx_dropped: int = 0

    def __sub__(self, other: EndCounters) -> EndCounters:
        return EndCounters(
            self.rx_packets - other.rx_packets,
            self.rx_dropped - other.rx_dropped,
            self.tx_packets - other.tx_packets,
            self.tx_dropped - other.tx_dropped,
        )


@dataclass(frozen=True, slots=True)
class Counters:
    """The kernel's counters of one moment (or the difference of two): every veth end, by
    interface name (the four names are distinct), M's IP MIB (``Ip:`` line of
    ``/proc/net/snmp``) and the drops of ``a0``'s qdisc in A (the generator's pacing queue,
    when it has one; ``tc -s qdisc``)."""

    ends: dict[str, EndCounters]
    ip_mib: dict[str, int]
    a_qdisc_drops: int = 0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            {k: v - other.ends.get(k, EndCounters()) for k, v in self.ends.items()},
            {k: v - other.ip_mib.get(k, 0) for k, v in self.ip_mib.items()},
            self.a_qdisc_drops - other.a_qdisc_drops,
        )

    def end(self, ifname: str) -> EndCounters:
        return self.ends.get(ifname, EndCounters())


def _sysctl(ns: str, key: str, value: str | int) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    _run("sh", "-c", f"echo {value} > {path}", ns=ns)


def enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def parse_snmp_ip(text: str) -> dict[str, int]:
    """The ``Ip:`` counters of a ``/proc/net/snmp`` text (a header line, then a value line)."""
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Ip:")]
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        raise RuntimeError("/proc/net/snmp has no Ip: header and value lines")
    return {name: int(value) for name, value in zip(rows[0], rows[1], strict=True)}


def a0_qdisc(ns: str) -> tuple[int, int]:
    """(frames dropped so far, frames queued now) by the qdiscs of ``a0`` in namespace ``ns``
    (0 and 0 for the veth's default, noqueue)."""
    qdiscs = json.loads(_run("tc", "-s", "-j", "qdisc", "show", "dev", IF_A, ns=ns))
    drops = sum(int(q.get("drops", 0)) for q in qdiscs)
    return drops, sum(int(q.get("qlen", 0)) for q in qdiscs)


class Topology:
    """Namespaces A, M and B joined by veths (see the module docstring); :meth:`close` deletes
    them, ignoring what is already gone."""

    def __init__(self) -> None:
        tag = f"nfl{os.getpid()}x{next(_names)}"
        self.ns_a, self.ns_m, self.ns_b = f"{tag}a", f"{tag}m", f"{tag}b"
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.ns_a, self.ns_m, self.ns_b):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            _run("ip", "link", "set", "lo", "up", ns=ns)
            for scope in ("all", "default"):  # no ND, MLD or router solicitations
                _sysctl(ns, f"net.ipv6.conf.{scope}.disable_ipv6", 1)
            _sysctl(ns, "net.ipv4.ip_forward", 0)
        pairs = (
            (self.ns_a, IF_A, MAC_A, self.ns_m, IF_MA, MAC_ROUTER_A),
            (self.ns_b, IF_B, MAC_B, self.ns_m, IF_MB, MAC_ROUTER_B),
        )
        for ns1, if1, mac1, ns2, if2, mac2 in pairs:
            _run("ip", "link", "add", "name", if1, "netns", ns1, "address", mac1, "type", "veth",
                 "peer", "name", if2, "netns", ns2, "address", mac2)  # fmt: skip
        for ns, ifname in self.ends():
            _run("ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                 "gro", "off", ns=ns, check=False)  # fmt: skip
            _run("ip", "link", "set", ifname, "up", ns=ns)
        for ns, ifname, addr, gw, mac in (
            (self.ns_a, IF_A, HOST_A, ROUTER_A, MAC_ROUTER_A),
            (self.ns_b, IF_B, HOST_B, ROUTER_B, MAC_ROUTER_B),
        ):
            _run("ip", "addr", "add", f"{addr}/24", "dev", ifname, ns=ns)
            _run("ip", "route", "add", "default", "via", gw, ns=ns)
            _run("ip", "neigh", "replace", gw, "lladdr", mac, "dev", ifname, "nud", "permanent",
                 ns=ns)  # fmt: skip
        # B, the sink, must stay silent: no ICMP port unreachable back through the router.
        _sysctl(self.ns_b, "net.ipv4.icmp_msgs_per_sec", 0)
        _sysctl(self.ns_b, "net.ipv4.icmp_msgs_burst", 0)
        _sysctl(self.ns_b, "net.ipv4.icmp_ratelimit", 1_000_000)

    def ends(self) -> list[tuple[str, str]]:
        """Every veth end as (namespace, interface)."""
        return [(self.ns_a, IF_A), (self.ns_m, IF_MA), (self.ns_m, IF_MB), (self.ns_b, IF_B)]

    def set_mode(self, mode: str) -> None:
        """Make M the kernel router (``kernel``) or a silent box for netfast (``netfast``)."""
        m = self.ns_m
        for ifname in (IF_MA, IF_MB):
            _run("ip", "addr", "flush", "dev", ifname, ns=m)
        if mode == "kernel":
            for ifname, addr, host, mac in (
                (IF_MA, ROUTER_A, HOST_A, MAC_A),
                (IF_MB, ROUTER_B, HOST_B, MAC_B),
            ):
                _run("ip", "addr", "add", f"{addr}/24", "dev", ifname, ns=m)
                _run("ip", "neigh", "replace", host, "lladdr", mac, "dev", ifname, "nud",
                     "permanent", ns=m)  # fmt: skip
            _sysctl(m, "net.ipv4.ip_forward", 1)
        elif mode == "netfast":
            _sysctl(m, "net.ipv4.ip_forward", 0)
        else:
            raise ValueError(f"mode = {mode!r}: expected one of {MODES}")

    def end_counters(self) -> dict[str, EndCounters]:
        """Every veth end's counters now, by interface name."""
        out: dict[str, EndCounters] = {}
        for ns, ifname in self.ends():
            (link,) = json.loads(_run("ip", "-n", ns, "-j", "-s", "link", "show", "dev", ifname))
            stats = link.get("stats64", {})
            rx, tx = stats.get("rx", {}), stats.get("tx", {})
            out[ifname] = EndCounters(
                int(rx.get("packets", 0)),
                int(rx.get("dropped", 0)),
                int(tx.get("packets", 0)),
                int(tx.get("dropped", 0)),
            )
        return out

    def qdisc_drops(self) -> int:
        """Frames the qdiscs of A's ``a0`` dropped so far (0 for the veth's default, noqueue)."""
        return a0_qdisc(self.ns_a)[0]

    def counters(self) -> Counters:
        """The veth ends' counters, M's IP MIB and A's qdisc drops now."""
        mib = parse_snmp_ip(_run("cat", "/proc/net/snmp", ns=self.ns_m))
        return Counters(self.end_counters(), mib, self.qdisc_drops())

    def delivered_count(self) -> int:
        """Frames B's ``b0`` received so far."""
        (link,) = json.loads(_run("ip", "-n", self.ns_b, "-j", "-s", "link", "show", "dev", IF_B))
        return int(link.get("stats64", {}).get("rx", {}).get("packets", 0))

    def settle(self, extra: Callable[[], int] | None = None) -> None:
        """Wait (at most :data:`SETTLE_LIMIT` s) until B's rx counter -- and ``extra``, when
        given -- stop moving for :data:`SETTLE_SECONDS`."""

        def probe() -> tuple[int, int]:
            return self.delivered_count(), extra() if extra is not None else 0

        end = time.monotonic() + SETTLE_LIMIT
        last = probe()
        while time.monotonic() < end:
            time.sleep(SETTLE_SECONDS)
            now = probe()
            if now == last:
                return
            last = now

    def close(self) -> None:
        while self._made:
            ns = self._made.pop()
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _run("ip", "netns", "delete", ns)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
