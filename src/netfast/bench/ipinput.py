"""The IPv4 input benchmark (``netfast bench ipinput``): the paper's "Integrity Checks" and
"Local or non-Local" sections measured on netfast's own input path.

What is measured
----------------
*Integrity checks* (RFC 1812 5.2.2 and the martian filter of 5.3.7, :mod:`netfast.ip.input`).
The valid traffic is every IPv4 packet of the real captures in the shared data folder that passes
the checks (those with TTL <= 1 are left out: a router drops them, they are one of the hostile
kinds below), each frame addressed to the router's ingress MAC; when the folder is absent the
packets are generated and the JSON says so.  The router under test has an ingress and an egress
interface, a default route through a gateway on the egress and a static ARP entry for it, so a
valid packet goes the whole way through the forwarding path.

- scalar: :func:`~netfast.ip.input.ip_input_check` alone on each packet (what the input path
  calls), next to the bare unpack of the fixed header it does anyway; then
  :meth:`Router.input <netfast.ip.router.Router.input>` on each packet, with the checks and with
  them skipped.  Skipping them copies no code: for that measurement only, the router module's
  name for the check is rebound to the bare unpack (:func:`checks_skipped`), so the path runs
  unchanged around it.  The checks' cost inside the path is the difference of the two, taken
  pass by pass (:func:`paired_difference`: a checked and an unchecked pass over the traffic back
  to back, many times, the median difference kept), because the difference of two separately
  best-of figures of about 4 us each moved by a few hundred ns from run to run on a shared
  machine; its share of the per-packet cost is reported.
- vector: the batch check kernel (:func:`~netfast.ip.vector_kernels.classify_kernel`: shape,
  integrity, martian and local tests in one compiled walk) on a batch of :data:`BATCH` frames,
  against the whole vector input step on the same batch (``VectorForwarder.forward`` plus the
  punted rows through ``Router.input``).  The checks cannot be skipped inside the kernel without
  copying it, so the kernel's share of the step is what is reported.
- hostile: packets of the valid traffic each broken in exactly one way (:data:`HOSTILE_KINDS`:
  one or two per counter of :data:`netfast.ip.input.INPUT_DROPS`, malformed options and TTL
  expiry), the checksum recomputed unless it is the thing broken.  Every one is run through
  ``Router.input`` and through the vector step, and must be counted under its own counter and
  nothing else (``all_counted``); the cost per packet of each kind and of the mix is set against
  a valid packet's.  Every packet is given the same time, so TTL-expired ones are answered with
  time exceeded only until the ICMP rate limiter's burst is spent, then (as in a flood) dropped
  with the error suppressed; the timed rounds see the latter.  The share of the real captures'
  IPv4 frames the checks reject is reported too: the paper's point is that it is small, broken
  packets dying at the first hop.

*Local or non-local* (:mod:`netfast.ip.local`).  For 1, 4, 16, 64, 256 and 1024 configured
addresses (:data:`ADDRS_PER_INTERFACE` per interface, interface ``k`` holding 198.18.k.1-4/24):
lookups per second of :meth:`LocalAddrs.is_local <netfast.ip.local.LocalAddrs.is_local>` (one
hash probe) against :func:`loop_is_local`, a walk over every interface and every address on it
(the design FreeBSD 4 replaced), on destinations of which :data:`LOCAL_SHARE` are configured
addresses and the rest the real traffic's destinations; and addresses per second of the batch
test :meth:`LocalAddrs.local_mask <netfast.ip.local.LocalAddrs.local_mask>` against
:func:`loop_local_mask`, the same walk with one whole-batch comparison per address.  Both pairs
must give identical answers (``agree``).  (The vector forwarding path does its own local test
by binary search inside the classify kernel; ``local_mask`` is the batch form ``LocalAddrs``
offers.)  The crossover is the smallest count from which the hash wins at that count and every
larger one.

Every figure is the best of ``rounds`` runs of ``seconds / rounds`` each; the rounds interleave
every measurement (the machines are shared and noisy), after one warm-up call of each.

JSON schema (``--json FILE``)
-----------------------------
Top level: ``benchmark`` ("ipinput"), ``date``, ``python``, ``machine``,
``seconds_per_measurement``, ``rounds``, ``traffic``, ``integrity``, ``local``.

``traffic``: ``source`` ("capture" or "generated"), ``captures`` (file names), ``frames_read``,
``ipv4_frames``, ``rejected`` (counter -> capture frames the checks dropped), ``rejected_share``
(of ``ipv4_frames``), ``ttl_expiring`` (passed the checks, TTL <= 1, left out),
``valid_packets``, ``note``.

``integrity``:

- ``scalar``: ``packets``, ``check_ns``, ``parse_ns``, ``input_ns``, ``input_nocheck_ns``,
  ``checks_ns`` (median paired difference of the two), ``checks_share`` (``checks_ns / input_ns``),
  ``check_call_share`` (``check_ns / input_ns``), ``hostile_input_ns``, ``hostile_over_valid``;
- ``vector``: ``batch``, ``classify_ns``, ``step_ns``, ``classify_share``, ``punted`` (rows of
  the valid batch the step punted), ``hostile_classify_ns``, ``hostile_step_ns``,
  ``hostile_over_valid``;
- ``hostile``: one row per kind: ``kind``, ``counter``, ``what``, ``sent``, ``scalar_counted``,
  ``vector`` ("dropped": by the vector path itself, "punted": to the scalar path, "mixed"),
  ``vector_counted``, ``ok``, ``scalar_ns``, ``over_valid``;
- ``all_counted`` (every row ``ok``), ``verdict`` (one sentence).

``local``: ``addrs_per_interface``, ``local_share``, ``lookups`` (scalar destinations per pass),
``batch``, ``rows`` (one per address count: ``addrs``, ``interfaces``, ``hash_per_s``,
``loop_per_s``, ``hash_over_loop``, ``batch_hash_per_s``, ``batch_loop_per_s``,
``batch_hash_over_loop``, ``agree``), ``crossover`` (``scalar``, ``batch``: an address count, or
null when the hash never wins for good), ``verdict`` (one sentence).

All ``*_ns`` figures are nanoseconds per packet, ``*_per_s`` lookups or addresses per second.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.bench import shared_data_dir
from netfast.ip import router as router_module
from netfast.ip.facts import LIMITED_BROADCAST, martian_dst, martian_src
from netfast.ip.iface import IfAddr, Interface, NextHop
from netfast.ip.input import (
    IN_BAD_CHECKSUM,
    IN_BAD_HLEN,
    IN_BAD_LEN,
    IN_BAD_VERSION,
    IN_MARTIAN_DST,
    IN_MARTIAN_SRC,
    IN_TOO_SHORT,
    Ipv4Header,
    ip_input_check,
)
from netfast.ip.local import LocalAddrs
from netfast.ip.router import IN_BAD_OPTIONS, IN_RECEIVED, IN_TTL_EXCEEDED, IP_OUTCOMES, Router
from netfast.ip.vector import VectorForwarder
from netfast.ip.vector_kernels import classify_kernel
from netfast.link.pcap import read_capture
from netfast.route.rib import Rib
from netfast.route.table import RoutingTable
from netfast.wire.batch import DEFAULT_SLOT, FrameBatch
from netfast.wire.buffer import Buffer
from netfast.wire.capture import Linktype
from netfast.wire.checksum import internet_checksum
from netfast.wire.ipv4 import FIXED_HEADER, Ipv4Repr

#: Frames per batch on the vector path.
BATCH = 4096
#: Configured local addresses measured.
ADDR_COUNTS = (1, 4, 16, 64, 256, 1024)
ADDRS_PER_INTERFACE = 4
#: Share of the local-or-not destinations that are configured addresses.
LOCAL_SHARE = 0.5
#: Destinations per pass of the scalar local-or-not measurement.
LOOKUPS = 1024
#: Packets of each hostile kind.
HOSTILE_PER_KIND = 256
SEED = 1
#: The time every packet is given at (the router's timers never fire in a measurement).
NOW = 1000.0

_INGRESS_MAC = bytes.fromhex("020000000000")
_EGRESS_MAC = bytes.fromhex("020000000001")
_PEER_MAC = bytes.fromhex("0a0000000001")
_GATEWAY = 0xC61300FE  # 198.19.0.254
_GATEWAY_MAC = bytes.fromhex("0a0000000101")
_TEST_NET = 0x6309  # 198.18.0.0/15 >> 17: the router's own range, never traffic's


# --- traffic --------------------------------------------------------------------------------


@dataclass(slots=True)
class Traffic:
    """The valid packets (Ethernet frames to the router's ingress MAC) and where they came from."""

    source: str  # "capture" or "generated"
    frames: list[bytes]
    captures: list[str] = field(default_factory=list)
    frames_read: int = 0
    ipv4_frames: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    ttl_expiring: int = 0
    note: str = ""

    def summary(self) -> dict[str, Any]:
        """The ``traffic`` object of the JSON."""
        rejected = sum(self.rejected.values())
        return {
            "source": self.source,
            "captures": self.captures,
            "frames_read": self.frames_read,
            "ipv4_frames": self.ipv4_frames,
            "rejected": dict(self.rejected),
            "rejected_share": rejected / self.ipv4_frames if self.ipv4_frames else 0.0,
            "ttl_expiring": self.ttl_expiring,
            "valid_packets": len(self.frames),
            "note": self.note,
        }


def capture_dir() -> Path | None:
    """The shared data folder's ``pcap`` directory (:func:`netfast.bench.shared_data_dir`)."""
    data = shared_data_dir("pcap")
    return data / "pcap" if data is not None else None


def find_captures() -> list[Path]:
    """Every ``.pcap`` file of :func:`capture_dir` (empty when there is none)."""
    folder = capture_dir()
    return sorted(folder.glob("*.pcap")) if folder is not None else []


def _to_router(frame: bytes) -> bytes:
    """The frame as if this router were the capture's gateway: sent to its ingress MAC."""
    return _INGRESS_MAC + frame[6:]


def load_traffic(paths: Sequence[Path]) -> Traffic:
    """The valid IPv4 packets of the captures ``paths``; generated ones when there are none."""
    frames: list[bytes] = []
    rejected: Counter[str] = Counter()
    read = ipv4 = expiring = 0
    for path in paths:
        for record in read_capture(path, tolerate_truncation=True):
            read += 1
            frame = bytes(record.data)
            if record.linktype != Linktype.ETHERNET or frame[12:14] != b"\x08\x00":
                continue
            ipv4 += 1
            header = ip_input_check(frame, 14)
            if isinstance(header, str):
                rejected[header] += 1
            elif header.ttl <= 1:
                expiring += 1
            elif len(frame) <= DEFAULT_SLOT:
                frames.append(_to_router(frame))
    if not frames:
        why = "no capture folder found" if not paths else "no valid IPv4 packet in the captures"
        return Traffic(
            "generated", generated_frames(), note=f"{why}: generated packets (seed {SEED})"
        )
    return Traffic(
        "capture",
        frames,
        [p.name for p in paths],
        read,
        ipv4,
        dict(sorted(rejected.items())),
        expiring,
        "real captures; Ethernet destinations rewritten to the router's ingress MAC",
    )


def _public_address(rng: random.Random) -> int:
    """A unicast address outside the martian, multicast and benchmark ranges."""
    while True:
        a = rng.getrandbits(32)
        if not (martian_src(a) or martian_dst(a) or a >> 28 == 0xE or a >> 17 == _TEST_NET):
            return a


def generated_frames(n: int = 1024, seed: int = SEED) -> list[bytes]:
    """``n`` valid IPv4 frames of an Internet-like size mix (40, 52, 576 and 1500 bytes; mostly
    TCP), between public addresses; for when no capture is at hand."""
    rng = random.Random(seed)
    frames = []
    for i in range(n):
        total = rng.choices((40, 52, 576, 1500), weights=(45, 15, 10, 30))[0]
        proto = rng.choices((6, 17, 1), weights=(85, 12, 3))[0]
        ip = Ipv4Repr(
            src=_public_address(rng),
            dst=_public_address(rng),
            protocol=proto,
            payload_len=total - 20,
            ttl=rng.choice((64, 128, 255, 57, 116)),
            identification=i & 0xFFFF,
            dont_frag=proto == 6,
        )
        frames.append(_INGRESS_MAC + _PEER_MAC + b"\x08\x00" + ip.to_bytes(bytes(total - 20)))
    return frames


# --- the router under test ------------------------------------------------------------------


def make_table() -> RoutingTable:
    """The default route through 198.19.0.254 on the egress, and the two connected networks."""
    rib = Rib()
    rib.add(0, 0, NextHop(1, _GATEWAY))
    rib.add(0xC6120000, 24, NextHop(0))
    rib.add(0xC6130000, 24, NextHop(1))
    return RoutingTable(rib)


def make_router(table: RoutingTable | None = None) -> Router:
    """Ingress 198.18.0.1/24, egress 198.19.0.1/24, routes by :func:`make_table` (``table``
    when given: routers only read it, so one can serve many) and a static ARP entry for the
    gateway: every valid unicast packet is forwarded."""
    interfaces = [
        Interface(0, "in0", _INGRESS_MAC, (IfAddr(0xC6120001, 24),)),
        Interface(1, "out0", _EGRESS_MAC, (IfAddr(0xC6130001, 24),)),
    ]
    router = Router(interfaces, make_table() if table is None else table)
    router.arp.add_static(1, _GATEWAY, _GATEWAY_MAC)
    return router


def bare_header(buf: Buffer, offset: int = 0) -> Ipv4Header | str:
    """The fixed header unpacked with no check at all: what the input path reads of a packet
    anyway.  A stand-in for :func:`~netfast.ip.input.ip_input_check` on valid packets only."""
    return Ipv4Header._make(FIXED_HEADER.unpack_from(buf, offset))


@contextmanager
def checks_skipped() -> Iterator[None]:
    """Within the block, the router's input path runs with its integrity checks skipped: the
    name it calls them by is rebound to :func:`bare_header` (and restored on the way out)."""
    names = vars(router_module)
    saved = names["ip_input_check"]
    names["ip_input_check"] = bare_header
    try:
        yield
    finally:
        names["ip_input_check"] = saved


# --- hostile packets ------------------------------------------------------------------------


def _with_checksum(packet: bytearray, header_len: int = 20) -> bytes:
    packet[24:26] = b"\x00\x00"
    packet[24:26] = internet_checksum(packet[14 : 14 + header_len]).to_bytes(2, "big")
    return bytes(packet)


def _set_u16(frame: bytes, at: int, value: int) -> bytearray:
    out = bytearray(frame)
    out[at : at + 2] = value.to_bytes(2, "big")
    return out


def _too_short(frame: bytes, i: int) -> bytes:
    return frame[: 14 + 19]


def _bad_version(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[14] = (6 << 4) | (out[14] & 0x0F)
    return _with_checksum(out)


def _bad_hlen(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[14] = 0x40 | (i % 5)  # IHL 0..4
    return _with_checksum(out)


def _len_beyond_frame(frame: bytes, i: int) -> bytes:
    return _with_checksum(_set_u16(frame, 16, min(0xFFFF, len(frame) - 14 + 1 + i % 64)))


def _len_below_header(frame: bytes, i: int) -> bytes:
    return _with_checksum(_set_u16(frame, 16, i % 20))


def _bad_checksum(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[25] ^= 1 << (i % 8)  # one bit: the sum changes by a power of two, never by 0xFFFF
    return bytes(out)


_MARTIAN_SRCS = (0x00000000, 0x7F000001, 0xE0000005, 0xF0000001, 0xFFFFFFFF)
_MARTIAN_DSTS = (0x00010203, 0x7F000001, 0xF0000001, 0xFFFFFFFE)


def _martian_src(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[26:30] = _MARTIAN_SRCS[i % len(_MARTIAN_SRCS)].to_bytes(4, "big")
    return _with_checksum(out)


def _martian_dst(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[30:34] = _MARTIAN_DSTS[i % len(_MARTIAN_DSTS)].to_bytes(4, "big")
    return _with_checksum(out)


def _bad_options(frame: bytes, i: int) -> bytes:
    # 4 option bytes: a record-route option claiming 8 bytes, running past the header's end
    header = bytearray(frame[:34])
    header[14] = 0x46
    header[16:18] = (int.from_bytes(frame[16:18], "big") + 4).to_bytes(2, "big")
    out = header + bytes((7, 8, 4, 0)) + frame[34:]
    return _with_checksum(out, 24)


def _ttl_expired(frame: bytes, i: int) -> bytes:
    out = bytearray(frame)
    out[22] = i % 2  # TTL 0 or 1: the router must not forward it
    return _with_checksum(out)


@dataclass(frozen=True, slots=True)
class HostileKind:
    """One way of breaking a valid packet, and the counter the router must count it under."""

    name: str
    counter: str
    what: str
    make: Callable[[bytes, int], bytes]  # (valid frame, index) -> broken frame


HOSTILE_KINDS: tuple[HostileKind, ...] = (
    HostileKind("too_short", IN_TOO_SHORT, "cut to 19 bytes of IP header", _too_short),
    HostileKind("bad_version", IN_BAD_VERSION, "version 6 in an IPv4 frame", _bad_version),
    HostileKind("bad_hlen", IN_BAD_HLEN, "IHL 0-4 (below the 5-word minimum)", _bad_hlen),
    HostileKind("len_beyond_frame", IN_BAD_LEN, "total length beyond the frame", _len_beyond_frame),
    HostileKind("len_below_header", IN_BAD_LEN, "total length below the header", _len_below_header),
    HostileKind("bad_checksum", IN_BAD_CHECKSUM, "one checksum bit flipped", _bad_checksum),
    HostileKind("martian_src", IN_MARTIAN_SRC, "source 0/8, 127/8, 224/4, 240/4", _martian_src),
    HostileKind("martian_dst", IN_MARTIAN_DST, "destination 0/8, 127/8, 240/4", _martian_dst),
    HostileKind(
        "options_overflow", IN_BAD_OPTIONS, "an option running past the header", _bad_options
    ),
    HostileKind(
        "ttl_expired", IN_TTL_EXCEEDED, "TTL 0 or 1 to a forwarded destination", _ttl_expired
    ),
)


def hostile_frames(kind: HostileKind, valid: Sequence[bytes], n: int) -> list[bytes]:
    """``n`` frames of ``kind``, each a packet of ``valid`` (in turn) broken that one way."""
    return [kind.make(valid[i % len(valid)], i) for i in range(n)]


@dataclass(frozen=True, slots=True)
class HostileRow:
    """One hostile kind: how it was counted on both paths and what it cost (``hostile`` rows)."""

    kind: str
    counter: str
    what: str
    sent: int
    scalar_counted: int
    vector: str
    vector_counted: int
    ok: bool
    scalar_ns: float
    over_valid: float


def count_scalar(
    kind: HostileKind, frames: Sequence[bytes], table: RoutingTable | None = None
) -> tuple[int, int]:
    """Run ``frames`` through a fresh router: (counted under the kind's counter, counted under
    any other IP outcome or not received as IP at all)."""
    router = make_router(table)
    for f in frames:
        router.input(0, f, NOW)
    c = router.counters
    counted = c[kind.counter]
    others = sum(c[o] for o in IP_OUTCOMES) - counted + (len(frames) - c[IN_RECEIVED])
    return counted, others


def count_vector(
    kind: HostileKind, frames: Sequence[bytes], table: RoutingTable | None = None
) -> tuple[str, int, int]:
    """The vector step on ``frames`` (one batch, punted rows through the router): (dropped,
    punted or mixed; counted under the kind's counter; counted under any other IP outcome)."""
    router = make_router(table)
    result = VectorForwarder(router).forward(FrameBatch.from_frames(frames), 0, NOW)
    for r in result.punt.tolist():
        router.input(0, frames[r], NOW)
    dropped = result.drops[kind.counter]
    counted = dropped + router.counters[kind.counter]
    total = Counter(result.drops)
    total.update(router.counters)
    others = sum(total[o] for o in IP_OUTCOMES) - counted
    mode = "dropped" if dropped == len(frames) else "punted" if dropped == 0 else "mixed"
    return mode, counted, others


# --- local or not ---------------------------------------------------------------------------


def loop_is_local(interfaces: Sequence[Interface], addr: int) -> bool:
    """Local or not the way it was done before FreeBSD 4: compare with every address of every
    interface."""
    for iface in interfaces:
        for ia in iface.addrs:
            if ia.addr == addr:
                return True
    return False


def loop_local_mask(
    interfaces: Sequence[Interface], addrs: npt.NDArray[np.uint32]
) -> npt.NDArray[np.bool_]:
    """The same walk over a batch, one whole-batch comparison per address: the answer of
    :meth:`LocalAddrs.local_mask <netfast.ip.local.LocalAddrs.local_mask>` (unicast or a
    broadcast address)."""
    mask: npt.NDArray[np.bool_] = addrs == LIMITED_BROADCAST
    for iface in interfaces:
        for ia in iface.addrs:
            mask |= addrs == ia.addr
            if ia.plen < 31:
                mask |= addrs == ia.broadcast
    return mask


def local_interfaces(n_addrs: int) -> list[Interface]:
    """``n_addrs`` addresses, :data:`ADDRS_PER_INTERFACE` per interface: 198.18.k.1-4/24 on
    interface ``k`` (at most 256 interfaces)."""
    if not 1 <= n_addrs <= 256 * ADDRS_PER_INTERFACE:
        raise ValueError(f"1..{256 * ADDRS_PER_INTERFACE} addresses, not {n_addrs}")
    out = []
    for k in range(-(-n_addrs // ADDRS_PER_INTERFACE)):
        here = min(ADDRS_PER_INTERFACE, n_addrs - k * ADDRS_PER_INTERFACE)
        addrs = tuple(IfAddr(0xC6120000 | (k << 8) | (1 + j), 24) for j in range(here))
        out.append(Interface(k, f"if{k}", bytes((2, 0, 0, 1, k >> 8, k & 0xFF)), addrs))
    return out


def destinations(
    interfaces: Sequence[Interface], others: Sequence[int], n: int, rng: random.Random
) -> tuple[list[int], list[bool]]:
    """``n`` destinations, :data:`LOCAL_SHARE` of them configured addresses of ``interfaces``
    (uniformly), the rest drawn from ``others``; shuffled.  Returns them and whether each is
    local."""
    local = [ia.addr for iface in interfaces for ia in iface.addrs]
    n_local = round(n * LOCAL_SHARE)
    picked = [(rng.choice(local), True) for _ in range(n_local)]
    picked += [(rng.choice(others), False) for _ in range(n - n_local)]
    rng.shuffle(picked)
    return [a for a, _ in picked], [is_local for _, is_local in picked]


def non_local_pool(traffic: Traffic) -> list[int]:
    """The traffic's destinations (none of them the router's, nor a broadcast)."""
    pool = {int.from_bytes(f[30:34], "big") for f in traffic.frames}
    pool = {a for a in pool if a >> 17 != _TEST_NET and a != LIMITED_BROADCAST}
    return sorted(pool) or [_public_address(random.Random(SEED))]


@dataclass(frozen=True, slots=True)
class LocalRow:
    """One address count (``local`` rows)."""

    addrs: int
    interfaces: int
    hash_per_s: float
    loop_per_s: float
    hash_over_loop: float
    batch_hash_per_s: float
    batch_loop_per_s: float
    batch_hash_over_loop: float
    agree: bool


def crossover(rows: Sequence[LocalRow], batch: bool = False) -> int | None:
    """The smallest address count from which the hash wins at it and every larger count (None
    when it loses at the largest)."""
    found = None
    for row in sorted(rows, key=lambda r: r.addrs, reverse=True):
        ratio = row.batch_hash_over_loop if batch else row.hash_over_loop
        if ratio <= 1.0:
            break
        found = row.addrs
    return found


# --- timing ---------------------------------------------------------------------------------


def _round(run: Callable[[], int], budget: float) -> float:
    """Nanoseconds per item of ``run`` (which returns the items it did) over about ``budget``
    seconds, with the collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        done = 0
        t0 = time.perf_counter_ns()
        deadline = t0 + int(budget * 1e9)
        while True:
            done += run()
            t = time.perf_counter_ns()
            if t >= deadline:
                break
    finally:
        if enabled:
            gc.enable()
    return (t - t0) / done


def time_cases(
    cases: dict[str, Callable[[], int]],
    seconds: float,
    rounds: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Best nanoseconds per item of every case: one warm-up call each, then ``rounds`` rounds of
    ``seconds / rounds`` per case, every round running every case (in a rotated order)."""
    if rounds < 1 or seconds <= 0:
        raise ValueError("need rounds >= 1 and seconds > 0")
    for run in cases.values():
        run()
    names = list(cases)
    best = dict.fromkeys(names, float("inf"))
    for rnd in range(rounds):
        shift = (rnd * len(names)) // rounds
        for k, name in enumerate([*names[shift:], *names[:shift]]):
            if progress is not None:
                progress(f"round {rnd + 1}/{rounds}: {k + 1}/{len(names)} {name}")
            best[name] = min(best[name], _round(cases[name], seconds / rounds))
    return best


def paired_difference(
    a: Callable[[], int],
    b: Callable[[], int],
    seconds: float,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Median over pairs of (``a`` - ``b``) nanoseconds per item, each pair one call of each back
    to back (the order alternating), for about ``seconds``: both calls of a pair share whatever
    the machine was doing then."""
    if seconds <= 0:
        raise ValueError("need seconds > 0")
    if progress is not None:
        progress("paired: the input path with and without the checks")
    a()
    b()
    diffs: list[float] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter() + seconds
        while len(diffs) < 3 or time.perf_counter() < deadline:
            first, second = (a, b) if len(diffs) % 2 == 0 else (b, a)
            t0 = time.perf_counter_ns()
            n_first = first()
            t1 = time.perf_counter_ns()
            n_second = second()
            t2 = time.perf_counter_ns()
            ns_first, ns_second = (t1 - t0) / n_first, (t2 - t1) / n_second
            diffs.append(ns_first - ns_second if first is a else ns_second - ns_first)
    finally:
        if enabled:
            gc.enable()
    return float(statistics.median(diffs))


# --- the whole measurement --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalarFigures:
    """The scalar integrity figures (``integrity.scalar``), nanoseconds per packet."""

    packets: int
    check_ns: float
    parse_ns: float
    input_ns: float
    input_nocheck_ns: float
    checks_ns: float
    checks_share: float
    check_call_share: float
    hostile_input_ns: float
    hostile_over_valid: float


@dataclass(frozen=True, slots=True)
class VectorFigures:
    """The vector integrity figures (``integrity.vector``), nanoseconds per packet."""

    batch: int
    classify_ns: float
    step_ns: float
    classify_share: float
    punted: int
    hostile_classify_ns: float
    hostile_step_ns: float
    hostile_over_valid: float


@dataclass(slots=True)
class Results:
    """Everything one run measured (see the module docstring for the fields)."""

    traffic: Traffic
    scalar: ScalarFigures
    vector: VectorFigures
    hostile: list[HostileRow]
    local: list[LocalRow]
    lookups: int

    @property
    def all_counted(self) -> bool:
        return all(r.ok for r in self.hostile)


def _loop(fn: Callable[..., object], items: Sequence[Any], *args: Any) -> Callable[[], int]:
    """A case calling ``fn(item, *args)`` on every item (one Python call per packet)."""
    n = len(items)

    def run() -> int:
        for it in items:
            fn(it, *args)
        return n

    return run


def measure(
    traffic: Traffic,
    *,
    seconds: float = 1.0,
    rounds: int = 3,
    counts: Sequence[int] = ADDR_COUNTS,
    batch: int = BATCH,
    hostile_per_kind: int = HOSTILE_PER_KIND,
    lookups: int = LOOKUPS,
    progress: Callable[[str], None] | None = None,
) -> Results:
    """Both questions on ``traffic``; ``seconds`` per measurement, split over ``rounds``."""
    valid = traffic.frames
    if not valid:
        raise ValueError("no valid packets to measure with")
    cases: dict[str, Callable[[], int]] = {}

    # integrity, scalar
    table = make_table()
    router = make_router(table)
    cases["check"] = _loop(ip_input_check, valid, 14)
    cases["parse"] = _loop(bare_header, valid, 14)

    def forward_all(frames: Sequence[bytes], r: Router) -> Callable[[], int]:
        def run() -> int:
            inp = r.input
            for f in frames:
                inp(0, f, NOW)
            return len(frames)

        return run

    # the path without the checks must treat the valid traffic exactly as the checked one
    plain, skipped = make_router(table), make_router(table)
    for f in valid:
        plain.input(0, f, NOW)
    with checks_skipped():
        for f in valid:
            skipped.input(0, f, NOW)
    if plain.counters != skipped.counters:
        raise AssertionError("the path without checks counted the valid traffic differently")
    cases["input"] = forward_all(valid, router)
    run_checked = forward_all(valid, router)

    def run_unchecked() -> int:
        with checks_skipped():
            return run_checked()

    cases["input_nocheck"] = run_unchecked
    per_kind = {k.name: hostile_frames(k, valid, hostile_per_kind) for k in HOSTILE_KINDS}
    mix = [f for group in zip(*per_kind.values(), strict=True) for f in group]
    cases["hostile_input"] = forward_all(mix, make_router(table))
    for name, frames in per_kind.items():
        cases[f"kind:{name}"] = forward_all(frames, make_router(table))

    # integrity, vector
    vrouter = make_router(table)
    forwarder = VectorForwarder(vrouter)
    local = vrouter.local
    local_sorted = np.unique(np.concatenate([local.unicast_array, local.broadcast_array]))

    def vector_cases(frames: list[bytes]) -> tuple[Callable[[], int], Callable[[], int], int]:
        tiled = [frames[i % len(frames)] for i in range(batch)]
        b = FrameBatch.from_frames(tiled)
        data, length = np.ascontiguousarray(b.data), b.length
        state = np.zeros(batch, np.int8)
        counts_ = np.zeros(7, np.int64)
        cand = np.empty(batch, np.intp)
        cand_dst = np.empty(batch, np.uint32)
        cand_total = np.empty(batch, np.int64)

        def classify() -> int:
            classify_kernel(
                data, length, 0, batch, local_sorted, state, counts_, cand, cand_dst, cand_total
            )
            return batch

        def step() -> int:
            result = forwarder.forward(b, 0, NOW)
            for r in result.punt.tolist():
                vrouter.input(0, tiled[r], NOW)
            return batch

        return classify, step, len(forwarder.forward(b, 0, NOW).punt)

    cases["v:classify"], cases["v:step"], punted = vector_cases(valid)
    cases["v:hostile_classify"], cases["v:hostile_step"], _ = vector_cases(mix)

    # local or not
    rng = random.Random(SEED)
    others = non_local_pool(traffic)
    local_setups = []
    for n_addrs in counts:
        ifaces = local_interfaces(n_addrs)
        la = LocalAddrs(ifaces)
        dsts, labels = destinations(ifaces, others, lookups, rng)
        vdsts = np.array(destinations(ifaces, others, batch, rng)[0], np.uint32)
        agree = (
            [la.is_local(d) for d in dsts] == labels
            and [loop_is_local(ifaces, d) for d in dsts] == labels
            and bool(np.array_equal(la.local_mask(vdsts), loop_local_mask(ifaces, vdsts)))
        )
        local_setups.append((n_addrs, len(ifaces), agree))
        cases[f"l:{n_addrs}:hash"] = _loop(la.is_local, dsts)
        cases[f"l:{n_addrs}:loop"] = _loop(partial(loop_is_local, ifaces), dsts)
        cases[f"l:{n_addrs}:batch_hash"] = _batch_case(la.local_mask, vdsts)
        cases[f"l:{n_addrs}:batch_loop"] = _batch_case(partial(loop_local_mask, ifaces), vdsts)

    # hostile counting (before timing: a fresh router per kind and path)
    hostile_counts = {}
    for kind in HOSTILE_KINDS:
        frames = per_kind[kind.name]
        hostile_counts[kind.name] = (
            count_scalar(kind, frames, table),
            count_vector(kind, frames, table),
        )

    ns = time_cases(cases, seconds, rounds, progress)
    checks_ns = paired_difference(cases["input"], cases["input_nocheck"], seconds, progress)

    input_ns = ns["input"]
    scalar = ScalarFigures(
        len(valid),
        ns["check"],
        ns["parse"],
        input_ns,
        ns["input_nocheck"],
        checks_ns,
        checks_ns / input_ns,
        ns["check"] / input_ns,
        ns["hostile_input"],
        ns["hostile_input"] / input_ns,
    )
    vector = VectorFigures(
        batch,
        ns["v:classify"],
        ns["v:step"],
        ns["v:classify"] / ns["v:step"],
        punted,
        ns["v:hostile_classify"],
        ns["v:hostile_step"],
        ns["v:hostile_step"] / ns["v:step"],
    )
    hostile = []
    for kind in HOSTILE_KINDS:
        (s_counted, s_others), (mode, v_counted, v_others) = hostile_counts[kind.name]
        sent = len(per_kind[kind.name])
        kind_ns = ns[f"kind:{kind.name}"]
        hostile.append(
            HostileRow(
                kind.name,
                kind.counter,
                kind.what,
                sent,
                s_counted,
                mode,
                v_counted,
                s_counted == v_counted == sent and s_others == v_others == 0,
                kind_ns,
                kind_ns / input_ns,
            )
        )
    local_rows = []
    for n_addrs, n_ifaces, agree in local_setups:
        h, lp = 1e9 / ns[f"l:{n_addrs}:hash"], 1e9 / ns[f"l:{n_addrs}:loop"]
        bh, bl = 1e9 / ns[f"l:{n_addrs}:batch_hash"], 1e9 / ns[f"l:{n_addrs}:batch_loop"]
        local_rows.append(LocalRow(n_addrs, n_ifaces, h, lp, h / lp, bh, bl, bh / bl, agree))
    return Results(traffic, scalar, vector, hostile, local_rows, lookups)


def _batch_case(
    fn: Callable[[npt.NDArray[np.uint32]], object], addrs: npt.NDArray[np.uint32]
) -> Callable[[], int]:
    n = len(addrs)

    def run() -> int:
        fn(addrs)
        return n

    return run


# --- verdicts and JSON ----------------------------------------------------------------------


def integrity_verdict(res: Results) -> str:
    """One sentence on the integrity checks, from the figures."""
    s, v = res.scalar, res.vector
    t = res.traffic.summary()
    counted = "every one" if res.all_counted else "NOT every one"
    punted = [r.kind for r in res.hostile if r.vector != "dropped"]
    via = f" (which hands {' and '.join(punted)} to the scalar path)" if punted else ""
    real = (
        f"the checks rejected {t['rejected_share']:.2%} of the real captures' IPv4 frames"
        if t["source"] == "capture"
        else "the traffic was generated (no capture to count real rejections in)"
    )
    return (
        f"The header checks take {max(s.checks_ns, 0.0):.0f} of the {s.input_ns:.0f} ns the "
        f"scalar input path spends on a valid packet ({max(s.checks_share, 0.0):.0%}; "
        f"{s.check_ns:.0f} ns called alone) and the batch check kernel {v.classify_ns:.1f} of "
        f"the vector step's {v.step_ns:.1f} ns ({v.classify_share:.0%}); hostile packets, "
        f"{counted} dropped under its own counter, cost {s.hostile_over_valid:.2f}x a valid one "
        f"on the scalar path and {v.hostile_over_valid:.2f}x on the vector path{via}, and {real}."
    )


def _ratio_range(rows: Sequence[LocalRow], batch: bool) -> str:
    """The hash/loop ratio at the smallest and largest counts, and at the crossover."""

    def pick(r: LocalRow) -> float:
        return r.batch_hash_over_loop if batch else r.hash_over_loop

    c = crossover(rows, batch)
    shown = [r for r in rows if r in (rows[0], rows[-1]) or r.addrs == c]
    return ", ".join(f"{pick(r):.2f}x at {r.addrs}" for r in shown)


def local_verdict(rows: Sequence[LocalRow]) -> str:
    """One sentence on local-or-not, from the figures."""
    rows = sorted(rows, key=lambda r: r.addrs)
    parts = []
    for batch, what in ((False, "the address hash"), (True, "the batch hash test")):
        c = crossover(rows, batch)
        if c is None:
            when = "does not beat the loop for good at any count measured"
        elif c == rows[0].addrs:
            when = f"beats the loop at every count measured, from {c} address{'es' * (c > 1)}"
        else:
            when = f"beats the loop from {c} configured addresses on"
        parts.append(f"{what} {when} ({_ratio_range(rows, batch)})")
    agree = "giving" if all(r.agree for r in rows) else "NOT giving"
    return f"Scalar, {parts[0]}; over a batch, {parts[1]}; both pairs {agree} identical answers."


def to_json(res: Results, **meta: Any) -> dict[str, Any]:
    """The document ``--json`` writes (schema in the module docstring)."""
    return {
        "benchmark": "ipinput",
        **meta,
        "traffic": res.traffic.summary(),
        "integrity": {
            "scalar": asdict(res.scalar),
            "vector": asdict(res.vector),
            "hostile": [asdict(r) for r in res.hostile],
            "all_counted": res.all_counted,
            "verdict": integrity_verdict(res),
        },
        "local": {
            "addrs_per_interface": ADDRS_PER_INTERFACE,
            "local_share": LOCAL_SHARE,
            "lookups": res.lookups,
            "batch": res.vector.batch,
            "rows": [asdict(r) for r in res.local],
            "crossover": {"scalar": crossover(res.local), "batch": crossover(res.local, True)},
            "verdict": local_verdict(res.local),
        },
    }
