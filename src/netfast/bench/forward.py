"""The forwarding benchmark (``netfast bench forward``): the router's vector path from memory on
one core, next to the scalar path and a calibration pass, in the same run.

What is measured
----------------
- The setup: the bundled 2026 IPv4 table (about 1.17M prefixes) with every route's value (an
  origin ASN) mapped to one of three egress interfaces' gateways by a CRC of the ASN; an ingress
  interface; static ARP entries for the gateways; a firewall of 0, 10 or 100 rules hooked on the
  IN head (rules that the traffic walks through without matching, then ``allow``: the cost of a
  ruleset is the rules a packet passes).
- The traffic: 64-byte frames (60 bytes without the FCS: Ethernet, IPv4, UDP, 18 bytes of data)
  from a host on the ingress network to destinations drawn uniformly inside announced prefixes
  (destinations that would be local or martian are redrawn), valid checksums, TTL 64.
- Vector: ``VectorForwarder.forward`` over one prepared batch, repeated; Mpps is frames forwarded
  per second (every frame of the batch is forwarded; the run checks it), next to 14.88 Mpps, the
  64-byte line rate of 10 Gigabit Ethernet.
- Scalar: ``Router.input`` on the same frames one at a time, packets/s next to the 100k target.
- Calibration: a trivial numpy pass over the same batch (each frame's destination address read
  into a dense column), which bounds what any batch stage can do on this machine today: the
  vector path's cost is reported as a multiple of it.

Every figure is the best of ``rounds`` timed runs (the machines are shared and noisy); batch
sizes and rule counts interleave within a round.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.ip.facts import martian_dst_mask
from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.ip.router import Router
from netfast.ip.vector import VectorForwarder
from netfast.pfil import Direction
from netfast.pfil.heads import PfilHeads
from netfast.pfil.ipfw import parse_rules
from netfast.route.rib import Rib
from netfast.route.table import RoutingTable
from netfast.wire.batch import DEFAULT_SLOT, FrameBatch
from netfast.wire.checksum import batch_ipv4_header_checksum

#: 10 Gigabit Ethernet at 64-byte frames (netfast bench ethernet, the paper's Figure 1).
LINE_RATE_10G_64B = 14.88e6
#: The scalar path's target.
SCALAR_TARGET_PPS = 100e3

RULE_COUNTS = (0, 10, 100)
BATCH_SIZES = (4096, 16384, 65536)
EGRESS = 3
FRAME_LEN = 60  # 64 bytes on the wire with the FCS

_INGRESS_MAC = bytes.fromhex("020000000000")
_PEER_MAC = bytes.fromhex("0a0000000001")
_HOST = 0xC6120A0A  # 198.18.10.10, the sender on the ingress network (198.18.0.0/20)


@dataclass(frozen=True, slots=True)
class Row:
    """One measurement: ``kind`` is ``vector``, ``scalar`` or ``calibration``."""

    kind: str
    rules: int
    batch: int
    pps: float
    target_pps: float
    punted: int = 0

    @property
    def ratio(self) -> float:
        return self.pps / self.target_pps if self.target_pps else 0.0


@dataclass(slots=True)
class Setup:
    """The router under test (one per rule count shares the table) and its traffic."""

    table: RoutingTable
    interfaces: list[Interface]
    gateways: list[tuple[int, int, bytes]]  # (ifindex, address, MAC)
    destinations: npt.NDArray[np.uint32]


def interfaces() -> list[Interface]:
    ifs = [Interface(0, "in0", _INGRESS_MAC, (IfAddr(0xC6120001, 20),))]
    for i in range(1, EGRESS + 1):
        mac = bytes.fromhex(f"0200000000{i:02x}")
        ifs.append(Interface(i, f"out{i}", mac, (IfAddr(0xC6130001 + (i << 8), 24),)))
    return ifs


def build_table(rib: Rib) -> tuple[RoutingTable, list[tuple[int, int, bytes]]]:
    """The loaded table with each value (origin ASN) mapped to one of the egress gateways."""
    gateways = [
        (i, 0xC61300FE + (i << 8), bytes.fromhex(f"0a00000001{i:02x}"))
        for i in range(1, EGRESS + 1)
    ]
    hops = [NextHop(ifindex, addr) for ifindex, addr, _ in gateways]
    nets, plens, rids = rib.live_arrays()
    code_of_value = np.fromiter(
        (zlib.crc32(str(v).encode()) % EGRESS for v in rib.values), np.int64, len(rib.values)
    )
    mapped = Rib(capacity=len(nets))
    mapped.add_many(nets, plens, hops, code_of_value[rib.value_id[rids]])
    return RoutingTable(mapped, "dxr"), gateways


def destinations(rib: Rib, n: int, seed: int = 1) -> npt.NDArray[np.uint32]:
    """``n`` addresses drawn uniformly over announced prefixes, then uniformly inside each;
    local, martian and multicast ones are redrawn."""
    rng = np.random.default_rng(seed)
    nets, plens, _ = rib.live_arrays()
    ok = ~martian_dst_mask(nets) & (nets >> 28 != 0xE) & (nets >> 17 != 0x6309)
    nets, plens = nets[ok], plens[ok]
    pick = rng.integers(0, len(nets), n)
    host_bits = (np.uint64(1) << (np.uint64(32) - plens[pick].astype(np.uint64))) - np.uint64(1)
    offset = rng.integers(0, 2**32, n, dtype=np.uint64) & host_bits
    return (nets[pick].astype(np.uint64) | offset).astype(np.uint32)


def make_setup(rib: Rib, n_destinations: int = 65536) -> Setup:
    table, gateways = build_table(rib)
    return Setup(table, interfaces(), gateways, destinations(table.rib, n_destinations))


def ruleset_text(n_rules: int) -> str:
    """``n_rules`` rules the benchmark traffic (UDP from 198.18.10.10 port 40000 to port 9) does
    not match -- TCP rules, other sources, other ports -- then ``allow``."""
    lines = []
    for i in range(max(0, n_rules - 1)):
        kind = i % 4
        if kind == 0:
            lines.append(f"deny tcp from any to any {1000 + i}")
        elif kind == 1:
            lines.append(f"deny udp from 10.{i % 256}.0.0/16 to any")
        elif kind == 2:
            lines.append(f"deny udp from any to any {2000 + i}")
        else:
            lines.append(f"deny icmp from 172.{16 + i % 16}.0.0/16 to any")
    if n_rules:
        lines.append("allow ip from any to any")
    return "\n".join(lines) + "\n"


def make_router(setup: Setup, n_rules: int, matcher: str = "auto") -> Router:
    heads = None
    if n_rules:
        heads = PfilHeads()
        heads.add_hook(Direction.IN, parse_rules(ruleset_text(n_rules), matcher=matcher))
    router = Router(setup.interfaces, setup.table, heads)
    for ifindex, addr, mac in setup.gateways:
        router.arp.add_static(ifindex, addr, mac)
    return router


def make_batch(dsts: npt.NDArray[np.uint32], slot: int = DEFAULT_SLOT) -> FrameBatch:
    """64-byte UDP frames to ``dsts``, built column-wise (checksums vectorized)."""
    n = len(dsts)
    batch = FrameBatch.empty(n, slot)
    d = batch.data
    d[:, 0:6] = np.frombuffer(_INGRESS_MAC, np.uint8)
    d[:, 6:12] = np.frombuffer(_PEER_MAC, np.uint8)
    h = batch.headers
    h["ethertype"] = 0x0800
    h["ver_ihl"] = 0x45
    h["total_length"] = FRAME_LEN - 14
    h["ident"] = np.arange(n) & 0xFFFF
    h["ttl"] = 64
    h["proto"] = 17
    h["src"] = _HOST
    h["dst"] = dsts
    h["sport"] = 40000
    h["dport"] = 9
    h["udp_length"] = FRAME_LEN - 34
    h["ip_checksum"] = batch_ipv4_header_checksum(d[:, 14:34])
    batch.length[:] = FRAME_LEN
    return batch


def _best_rate(run: Callable[[], int], seconds: float, rounds: int) -> float:
    """Items per second of ``run`` (which returns items done): best of ``rounds`` runs of about
    ``seconds`` each, after a warm-up call."""
    run()
    best = 0.0
    for _ in range(rounds):
        done = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            done += run()
            t = time.perf_counter()
            if t >= deadline:
                break
        best = max(best, done / (t - t0))
    return best


def measure(
    rib: Rib,
    *,
    rule_counts: Sequence[int] = RULE_COUNTS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    scalar_frames: int = 20000,
    seconds: float = 0.5,
    rounds: int = 3,
    matcher: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Every vector, scalar and calibration figure (see the module docstring); ``matcher`` is
    the firewall's batch matcher (:class:`~netfast.pfil.ipfw.Ruleset`)."""
    say = progress or (lambda _msg: None)
    say("building the table")
    setup = make_setup(rib, max(max(batch_sizes), scalar_frames))
    routers = {n: make_router(setup, n, matcher) for n in rule_counts}
    forwarders = {n: VectorForwarder(r) for n, r in routers.items()}
    batches = {b: make_batch(setup.destinations[:b]) for b in batch_sizes}
    frames = list(make_batch(setup.destinations[:scalar_frames], 64).frames())

    best: dict[tuple[str, int, int], float] = {}
    punted: dict[tuple[int, int], int] = {}

    def vector(n_rules: int, size: int) -> Callable[[], int]:
        fwd, batch = forwarders[n_rules], batches[size]

        def run() -> int:
            res = fwd.forward(batch, 0, 0.0)
            punted[(n_rules, size)] = len(res.punt)
            return res.forwarded

        return run

    def scalar(n_rules: int) -> Callable[[], int]:
        router_input = routers[n_rules].input

        def run() -> int:
            for f in frames:
                router_input(0, f, 0.0)
            return len(frames)

        return run

    def calibration(size: int) -> Callable[[], int]:
        batch = batches[size]

        def run() -> int:
            return len(np.ascontiguousarray(batch.headers["dst"]))

        return run

    for r in range(rounds):
        for size in batch_sizes:
            say(f"round {r + 1}/{rounds}: calibration, batch {size}")
            key = ("calibration", 0, size)
            best[key] = max(best.get(key, 0.0), _best_rate(calibration(size), seconds, 1))
            for n_rules in rule_counts:
                say(f"round {r + 1}/{rounds}: vector, {n_rules} rules, batch {size}")
                key = ("vector", n_rules, size)
                best[key] = max(best.get(key, 0.0), _best_rate(vector(n_rules, size), seconds, 1))
        for n_rules in rule_counts:
            say(f"round {r + 1}/{rounds}: scalar, {n_rules} rules")
            key = ("scalar", n_rules, 1)
            best[key] = max(best.get(key, 0.0), _best_rate(scalar(n_rules), seconds, 1))

    rows = []
    for (kind, n_rules, size), pps in best.items():
        target = SCALAR_TARGET_PPS if kind == "scalar" else LINE_RATE_10G_64B
        if kind == "calibration":
            target = 0.0
        rows.append(Row(kind, n_rules, size, pps, target, punted.get((n_rules, size), 0)))
    order = {"vector": 0, "scalar": 1, "calibration": 2}
    rows.sort(key=lambda row: (order[row.kind], row.rules, row.batch))
    return rows


def to_json(rows: Sequence[Row], **meta: Any) -> dict[str, Any]:
    calib = {r.batch: r.pps for r in rows if r.kind == "calibration"}
    return {
        "meta": {
            **meta,
            "line_rate_10g_64b_pps": LINE_RATE_10G_64B,
            "scalar_target_pps": SCALAR_TARGET_PPS,
            "frame_len": FRAME_LEN,
        },
        "rows": [
            {
                **asdict(r),
                "ratio_to_target": r.ratio if r.target_pps else None,
                "calibration_cost_ratio": (
                    calib[r.batch] / r.pps if r.kind == "vector" and r.batch in calib else None
                ),
            }
            for r in rows
        ],
    }
