"""The built-in router demo: ``netfast forward`` with no arguments (and ``make run``).

The router is ``netfast/data/router-default.toml``: three ports, the bundled 2026 Internet table
spread over two upstreams by origin AS, and the sample firewall (``sample-rules.fw``: a small
site's border router for the inside network 145.254.160.0/24 on eth0).  It is fed a generated,
seeded trace of what such a site sends its router:

- web flows (a SYN to port 80/443 and the flow's further segments; the firewall keeps state),
  DNS queries and pings to destinations drawn inside announced prefixes;
- traffic the firewall refuses: connections to other ports, spoofed (bogon) sources;
- packets the router must answer: TTL 1 (time exceeded), unannounced destinations (net
  unreachable), full-size DF packets towards the 1400-byte-MTU upstream (fragmentation needed),
  pings to the router itself (echo reply);
- packets with IP options (forwarded by the slow path), and malformed ones: bad header
  checksum, bad version, header length below 5, total length beyond the frame, runts.

The trace runs twice: through the vector path with punts to the scalar path (what the router
does), then through the scalar path alone on a second router sharing the table; the summary
compares the two paths' counters and reports each one's packet rate.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.ip.iface import NextHop
from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import load_config
from netfast.router.engine import Engine, ForwardStats
from netfast.wire.batch import FrameBatch, ipv4_header_sums, l4_checksum_sums

__all__ = ["DemoResult", "Trace", "default_config_path", "generate_trace", "run_demo"]

DEFAULT_CONFIG = "router-default.toml"
INSIDE_NET = 0x91FEA000  # 145.254.160.0/24, the sample ruleset's inside network
CLIENTS = 32  # inside hosts 145.254.160.10 .. .41
_CLIENT_BASE = INSIDE_NET + 10
_BOGON_NETS = (0x0A000000, 0xC0A80000, 0xAC100000)  # 10/8, 192.168/16, 172.16/12

# Share of each kind in the trace (web flows come in bursts of several packets).  The shares are
# a border router's: ordinary traffic, with a few percent the firewall refuses and well under a
# percent of each exception -- every kind present with a few hundred packets, so the tables show
# each case, without a mix in which exceptions would be a quarter of the traffic.
MIX: dict[str, float] = {
    "web": 0.705,
    "dns": 0.09,
    "ping": 0.07,
    "denied_port": 0.05,
    "bogon_source": 0.01,
    "ttl_expired": 0.005,
    "no_route": 0.005,
    "too_big_df": 0.005,
    "local_ping": 0.005,
    "ip_options": 0.005,
    "malformed": 0.05,
}
_MALFORMATIONS = ("bad_checksum", "bad_version", "bad_hlen", "bad_length", "runt")


def default_config_path() -> Path:
    """The bundled router description the demo runs."""
    return Path(str(resources.files("netfast.data") / DEFAULT_CONFIG))


@dataclass
class Trace:
    """Generated frames (all received on one port) and what each kind contributed."""

    frames: list[bytes]
    kinds: Counter[str]
    seed: int


def _hosts_in(
    rng: np.random.Generator, nets: npt.NDArray[np.uint32], plens: npt.NDArray[np.uint8], n: int
) -> npt.NDArray[np.uint32]:
    """``n`` addresses, each inside a prefix drawn uniformly from ``nets``/``plens``."""
    pick = rng.integers(0, len(nets), n)
    host_bits = (np.uint64(1) << (32 - plens[pick].astype(np.uint64))) - np.uint64(1)
    host = rng.integers(0, 1 << 32, n, dtype=np.uint64) & host_bits
    return (nets[pick].astype(np.uint64) | host).astype(np.uint32)


def generate_trace(built: BuiltRouter, n: int = 50_000, seed: int = 1) -> Trace:
    """About ``n`` frames arriving on eth0 of the demo router (see the module docstring)."""
    rng = np.random.default_rng(seed)
    router_if = built.config.interfaces[0].interface
    router_mac = router_if.mac
    router_ip = router_if.addrs[0].addr
    rib = built.table.rib
    nets, plens, rids = rib.live_arrays()
    # Destinations: announced prefixes reached through an upstream (not the connected nets).
    hops = [rib.values[int(v)] for v in rib.value_id[rids]]
    up = np.fromiter(
        (isinstance(h, NextHop) and h.gateway is not None for h in hops), np.bool_, len(rids)
    )
    ifaces = built.config.interfaces
    via_small_mtu = np.fromiter(
        (ifaces[h.ifindex if isinstance(h, NextHop) else 0].interface.mtu < 1500 for h in hops),
        np.bool_,
        len(rids),
    )
    up_nets, up_plens = nets[up], plens[up]

    counts = {k: round(share * n) for k, share in MIX.items()}
    cols: dict[str, list[npt.NDArray[Any]]] = {
        k: [] for k in ("src", "dst", "proto", "sport", "dport", "flags", "ttl", "size", "df")
    }
    kinds: list[npt.NDArray[np.str_]] = []
    times: list[npt.NDArray[np.float64]] = []

    def add(
        kind: str,
        m: int,
        *,
        dst: npt.NDArray[np.uint32],
        proto: int,
        dport: npt.NDArray[Any] | int,
        src: npt.NDArray[np.uint32] | None = None,
        sport: npt.NDArray[Any] | None = None,
        flags: npt.NDArray[Any] | int = 0,
        ttl: npt.NDArray[Any] | int | None = None,
        size: npt.NDArray[Any] | int | None = None,
        df: npt.NDArray[Any] | bool = True,
        t: npt.NDArray[np.float64] | None = None,
    ) -> None:
        if m == 0:
            return
        cols["src"].append(
            src
            if src is not None
            else (_CLIENT_BASE + rng.integers(0, CLIENTS, m)).astype(np.uint32)
        )
        cols["dst"].append(dst)
        cols["proto"].append(np.full(m, proto))
        cols["sport"].append(sport if sport is not None else rng.integers(1024, 65536, m))
        cols["dport"].append(np.broadcast_to(dport, (m,)))
        cols["flags"].append(np.broadcast_to(flags, (m,)))
        cols["ttl"].append(
            np.broadcast_to(ttl, (m,)) if ttl is not None else rng.choice([64, 128, 255], m)
        )
        cols["size"].append(
            np.broadcast_to(size, (m,))
            if size is not None
            else rng.choice([60, 60, 60, 90, 590, 1514], m)
        )
        cols["df"].append(np.broadcast_to(df, (m,)))
        kinds.append(np.full(m, kind))
        times.append(t if t is not None else rng.random(m))

    # Web flows: a SYN, then the flow's segments, all from one 5-tuple, in time order.
    m = counts["web"]
    lengths = rng.integers(1, 9, max(1, m // 4))
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), m)) + 1]
    flows = len(lengths)
    flow_of = np.repeat(np.arange(flows), lengths)[:m]
    first = np.r_[True, flow_of[1:] != flow_of[:-1]]
    f_src = (_CLIENT_BASE + rng.integers(0, CLIENTS, flows)).astype(np.uint32)
    f_dst = _hosts_in(rng, up_nets, up_plens, flows)
    f_sport = rng.integers(1024, 65536, flows)
    f_dport = rng.choice([80, 443], flows)
    start = rng.random(flows) * 0.9
    add(
        "web",
        m,
        src=f_src[flow_of],
        dst=f_dst[flow_of],
        proto=6,
        sport=f_sport[flow_of],
        dport=f_dport[flow_of],
        flags=np.where(first, 0x02, 0x18),
        size=np.where(first, 66, rng.choice([60, 600, 1400], m)),
        t=start[flow_of] + 1e-5 * (np.arange(m) - np.flatnonzero(first)[flow_of]),
    )
    # DNS: the firewall lets at most 256 states of its DNS rule live; stay below.
    m = counts["dns"]
    resolvers = _hosts_in(rng, up_nets, up_plens, 4)
    queries = rng.integers(0, 200, m)
    add(
        "dns",
        m,
        dst=resolvers[queries % 4],
        proto=17,
        sport=1024 + queries,
        src=(_CLIENT_BASE + queries % CLIENTS).astype(np.uint32),
        dport=53,
        size=rng.integers(70, 120, m),
        df=False,
    )
    m = counts["ping"]
    add("ping", m, dst=_hosts_in(rng, up_nets, up_plens, m), proto=1, dport=0, size=98)
    m = counts["denied_port"]
    add(
        "denied_port",
        m,
        dst=_hosts_in(rng, up_nets, up_plens, m),
        proto=6,
        dport=rng.choice([22, 23, 25, 445, 3389, 8080], m),
        flags=0x02,
        size=66,
    )
    m = counts["bogon_source"]
    bogon = np.array(_BOGON_NETS, np.uint32)[rng.integers(0, 3, m)] | rng.integers(
        1, 1 << 16, m
    ).astype(np.uint32)
    add("bogon_source", m, src=bogon, dst=_hosts_in(rng, up_nets, up_plens, m), proto=1, dport=0)
    m = counts["ttl_expired"]
    add("ttl_expired", m, dst=_hosts_in(rng, up_nets, up_plens, m), proto=1, dport=0, ttl=1)
    m = counts["no_route"]
    add("no_route", m, dst=_unrouted(built, rng, m), proto=1, dport=0, size=98)
    m = counts["too_big_df"]
    small = via_small_mtu & up
    add(
        "too_big_df",
        m,
        dst=_hosts_in(rng, nets[small], plens[small], m),
        proto=1,
        dport=0,
        size=1514,
        df=True,
    )
    m = counts["local_ping"]
    add("local_ping", m, dst=np.full(m, router_ip, np.uint32), proto=1, dport=0, size=98)
    m = counts["ip_options"]
    add("ip_options", m, dst=_hosts_in(rng, up_nets, up_plens, m), proto=1, dport=0, size=98)
    m = counts["malformed"]
    add("malformed", m, dst=_hosts_in(rng, up_nets, up_plens, m), proto=1, dport=0, size=98)

    all_kinds = np.concatenate(kinds)
    order = np.argsort(np.concatenate(times), kind="stable")
    spec = {k: np.concatenate(v)[order] for k, v in cols.items()}
    all_kinds = all_kinds[order]
    frames = _render(spec, all_kinds, router_mac, rng)
    return Trace(frames, Counter(all_kinds.tolist()), seed)


def _unrouted(built: BuiltRouter, rng: np.random.Generator, m: int) -> npt.NDArray[np.uint32]:
    """``m`` unicast addresses the table has no route for (drawn, then filtered)."""
    found: list[npt.NDArray[np.uint32]] = []
    have = 0
    for _ in range(64):
        if have >= m:
            break
        cand = rng.integers(0x01000000, 0xE0000000, 4 * m + 64, dtype=np.uint64).astype(np.uint32)
        cand = cand[built.table.lookup_batch(cand) < 0]
        found.append(cand)
        have += len(cand)
    out = np.concatenate(found) if found else np.zeros(0, np.uint32)
    if len(out) < m:
        raise RuntimeError("the table covers almost everything: no unrouted destinations found")
    return out[:m]


def _render(
    spec: dict[str, npt.NDArray[Any]],
    kinds: npt.NDArray[np.str_],
    router_mac: bytes,
    rng: np.random.Generator,
) -> list[bytes]:
    """Frames from per-packet fields, built column-wise in a batch, checksums vectorized."""
    n = len(kinds)
    batch = FrameBatch.empty(n, 1536)
    h = batch.headers
    size = spec["size"].astype(np.int64)
    proto = spec["proto"].astype(np.int64)
    sender = np.frombuffer(bytes.fromhex("000001000000"), np.uint8)
    h["eth_dst"] = np.frombuffer(router_mac, np.uint8)
    h["eth_src"] = sender
    h["ethertype"] = 0x0800
    h["ver_ihl"] = 0x45
    h["total_length"] = size - 14
    h["ident"] = rng.integers(0, 1 << 16, n)
    h["frag"] = np.where(spec["df"], 0x4000, 0)
    h["ttl"] = spec["ttl"]
    h["proto"] = proto
    h["src"] = spec["src"]
    h["dst"] = spec["dst"]
    tcp, udp, icmp = proto == 6, proto == 17, proto == 1
    h["sport"] = np.where(icmp, 0, spec["sport"])
    h["dport"] = np.where(icmp, 0, spec["dport"])
    # ICMP echo request: type 8 code 0 over the port bytes, then identifier and sequence.
    icmp_rows = np.flatnonzero(icmp)
    batch.data[icmp_rows, 34] = 8
    batch.data[icmp_rows, 35] = 0
    h["icmp_ident"] = np.where(icmp, 0x4E46, h["icmp_ident"])
    h["icmp_seq"] = np.where(icmp, np.arange(n) & 0xFFFF, h["icmp_seq"])
    h["tcp_seq"] = np.where(tcp, rng.integers(0, 1 << 32, n, dtype=np.uint64), h["tcp_seq"])
    h["tcp_off"] = np.where(tcp, 0x50, h["tcp_off"])
    h["tcp_flags"] = np.where(tcp, spec["flags"], h["tcp_flags"])
    h["tcp_window"] = np.where(tcp, 65535, h["tcp_window"])
    h["udp_length"] = np.where(udp, size - 34, h["udp_length"])
    batch.length[:] = size
    # Checksum fields are zero here, so each sum's complement is the checksum.
    l4 = (~l4_checksum_sums(batch)).astype(np.uint16)
    h["tcp_checksum"] = np.where(tcp, l4, h["tcp_checksum"])
    h["udp_checksum"] = np.where(udp, np.where(l4 == 0, 0xFFFF, l4), h["udp_checksum"])
    h["icmp_checksum"] = np.where(icmp, l4, h["icmp_checksum"])
    h["ip_checksum"] = (~ipv4_header_sums(batch)).astype(np.uint16)

    frames = [batch.frame(i) for i in range(n)]
    for i in np.flatnonzero(kinds == "ip_options").tolist():
        frames[i] = _with_options(frames[i])
    bad = np.flatnonzero(kinds == "malformed")
    how = rng.integers(0, len(_MALFORMATIONS), len(bad))
    for i, k in zip(bad.tolist(), how.tolist(), strict=True):
        frames[i] = _malform(frames[i], _MALFORMATIONS[k])
    return frames


def _ip_checksum(header: bytes | bytearray) -> int:
    from netfast.wire.checksum import internet_checksum

    return internet_checksum(bytes(header[:10]) + b"\0\0" + bytes(header[12:]))


def _with_options(frame: bytes) -> bytes:
    """The same packet with a 4-byte IP option field (NOP, NOP, NOP, EOL): IHL 6."""
    eth, ip, rest = frame[:14], bytearray(frame[14:34]), frame[34:]
    ip[0] = 0x46
    ip[2:4] = (int.from_bytes(ip[2:4], "big") + 4).to_bytes(2, "big")
    header = ip + b"\x01\x01\x01\x00"
    header[10:12] = _ip_checksum(header).to_bytes(2, "big")
    return eth + bytes(header) + rest


def _malform(frame: bytes, how: str) -> bytes:
    f = bytearray(frame)
    if how == "bad_checksum":
        f[24] ^= 0x5A
        return bytes(f)
    if how == "runt":
        return bytes(f[:30])
    if how == "bad_version":
        f[14] = 0x65
    elif how == "bad_hlen":
        f[14] = 0x43
    elif how == "bad_length":
        f[16:18] = (len(f) - 14 + 200).to_bytes(2, "big")
    f[24:26] = _ip_checksum(f[14:34]).to_bytes(2, "big")
    return bytes(f)


# -- running -------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """Both runs of the demo trace: the router's (vector + scalar) and the scalar path alone."""

    built: BuiltRouter
    trace: Trace
    stats: ForwardStats
    counters: Counter[str]
    scalar_stats: ForwardStats
    scalar_counters: Counter[str]
    setup_seconds: float
    warmup_seconds: float
    names: dict[int, str]


def _client_neighbors(built: BuiltRouter) -> None:
    """The demo's inside hosts answer ARP in real life; here they are static entries."""
    for i in range(CLIENTS):
        built.router.arp.add_static(0, _CLIENT_BASE + i, bytes.fromhex("000001000000"))


def run_demo(
    packets: int = 50_000, seed: int = 1, batch_size: int = 2048, config: Path | None = None
) -> DemoResult:
    """Build the default router, generate the trace and forward it both ways."""
    t0 = time.perf_counter()
    cfg = load_config(config or default_config_path())
    built = build_router(cfg)
    _client_neighbors(built)
    trace = generate_trace(built, packets, seed)
    setup = time.perf_counter() - t0

    # Warm-up on a throwaway router sharing the table: the compiled kernels are loaded (or
    # compiled, on a first run) before anything is timed, and the routers measured start clean.
    t0 = time.perf_counter()
    for vector in (True, False):
        spare = build_router(cfg, vector=vector, table=built.table)
        _client_neighbors(spare)
        _feed(spare.new_engine(), trace.frames[: 2 * batch_size], batch_size)
    warmup = time.perf_counter() - t0

    engine = built.new_engine()
    _feed(engine, trace.frames, batch_size)

    # The scalar path alone, on a second router over the same table and a fresh ruleset.
    scalar = build_router(cfg, vector=False, table=built.table)
    _client_neighbors(scalar)
    scalar_engine = scalar.new_engine()
    _feed(scalar_engine, trace.frames, batch_size)
    return DemoResult(
        built,
        trace,
        engine.stats,
        engine.counters,
        scalar_engine.stats,
        scalar_engine.counters,
        setup,
        warmup,
        built.names,
    )


def _feed(engine: Engine, frames: list[bytes], batch_size: int) -> None:
    # Ten seconds of traffic: the batch's time advances with its position in the trace.
    span = max(1, len(frames))
    for start in range(0, len(frames), batch_size):
        now = 1.0 + 10.0 * start / span
        engine.process(0, frames[start : start + batch_size], now)
        engine.poll(now)
