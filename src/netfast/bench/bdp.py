"""The paper's Figure 16 recomputed, the reassembly memory it implies, and what netfast holds.

The paper's "TCP Reassembly" section (Oppermann, "Optimizing the FreeBSD IP and TCP Stack",
Transport Layer) argues from Figure 16, "Bandwidth * delay product in kbytes at various RTT and
speeds, 300ms is Europe - Japan": a receiver may have to hold up to a socket buffer's worth of
data in its reassembly queue, the 4.4BSD queue keeps every mbuf (and its 2 KB cluster) it got data
in, and an attacker who sends many small segments and forgets the first one ties all of that up.
The figure itself is an image the text does not carry, so it is recomputed here from its caption:
``BDP = speed * RTT / 8``, in kB where **1 kB = 1000 bytes** (decimal, like the link speeds; the
caption does not say which it used; 1 Gb/s x 100 ms is 12,500 kB, which is 12,207 KiB).

Three parts, one function each:

:func:`figure16`
    Every cell (speed x RTT) with the memory a receiver needs when the first segment of a full
    window is lost and the rest (window minus one segment) waits for its retransmission:

    - 4.4BSD: one mbuf and one cluster (:data:`MBUF_PER_SEGMENT` bytes) per waiting segment;
    - 4.4BSD under the paper's attack: 1-byte segments filling the window, each in its own
      mbuf and cluster (the window check in front of the queue is the only limit);
    - netfast: the waiting payload in one coalesced block, plus CPython's cost per chunk and per
      block (:func:`netfast_model_bytes`), and under any arrivals at all at most
      :func:`netfast_bound_bytes` for a queue whose ``max_bytes`` is the window.

    A window larger than TCP's largest (65,535 x 2**14 bytes, RFC 7323) cannot be offered by one
    connection; such cells are computed for the window TCP can offer and flagged.
:func:`measure_window`
    A real window through a real queue: the first segment withheld, the rest arriving in order,
    in the ``reordered`` order of :func:`netfast.bench.tcp_reass.make_pattern` (5% of the
    segments swapped with one 1 to 4 places later), or wholly shuffled; then the missing
    segment, and the sender resending whatever the queue did not keep (a sender that knows every
    block, so exactly the bytes the queue's bounds refused).  Python memory is measured with
    :mod:`tracemalloc` while the window waits.  Payloads are handed over as memoryviews, as the
    stack hands a view into the received frame, so each design pays for its own copy.
    ``model_bytes`` leaves out the slack of chunks grown in place, so it runs a few percent below
    the traced figure where segments arrive out of order.  The linked list walks from its head
    for every segment (O(n) per segment), so it is run on smaller windows only.
:func:`measure_attack`
    The attack on one connection whose socket buffer (``max_bytes``) is ``socket_buffer``: 1-byte
    segments, ``contiguous`` (offsets 1, 2, 3, ...) or ``gapped`` (the ``adversarial`` pattern of
    :mod:`netfast.bench.tcp_reass` without its first byte: every other byte, then the gaps in
    ascending order).  The window check is opened wide (``rcv_wnd`` 2**31 - 1) so that only the
    queue's own bounds, ``max_bytes`` and ``max_holes``, hold it.  Memory is sampled at quarters of
    the run to show growth.

No timing is reported: tracemalloc slows every allocation, and speed is
:mod:`netfast.bench.tcp_reass`'s subject.

JSON (``netfast bench bdp --json FILE``)
----------------------------------------
Top level: ``benchmark`` ("bdp"), ``date``, ``python``, ``machine``, ``quick`` (bool), ``seed``,
``kB`` (1000: bytes per kB), ``constants``, ``caps``, ``figure16``, ``measured``, ``attack``,
``verdict`` (str).

``constants``: ``mss``, ``msize``, ``mclbytes``, ``mbuf_per_segment``, ``max_window``,
``max_holes``, ``chunk_merge``, ``chunk_overhead``, ``block_overhead``, ``queue_overhead``,
``node_overhead``, ``bytearray_slack`` (CPython sizes in bytes, from :func:`sys.getsizeof`).

``caps``: ``netfast_window``, ``linked_list_window`` (largest window measured per design),
``attack_socket_buffer``, ``attack_segments``, ``attack_segments_linked_list``.

``figure16``: one object per cell: ``speed`` (label), ``bits_per_second``, ``rtt_ms``,
``bdp_bytes``, ``bdp_kB``, ``window_bytes`` (the BDP, or TCP's largest window),
``window_limited`` (bool), ``segments`` (MSS segments in the window), ``waiting_bytes``,
``bsd_bytes``, ``bsd_attack_bytes``, ``netfast_bytes``, ``netfast_bound_bytes``, ``measured``
(bool: the window is among ``measured``).

``measured``: one object per (window, order, design): ``impl`` ("netfast" or "linked_list"),
``order`` ("in_order", "reordered", "shuffled"), ``window_bytes``, ``cells`` (list of
``[speed, rtt_ms]`` with that window), ``segments``, ``lost_bytes``, ``bytes_held``, ``blocks``
(netfast blocks = holes; linked-list nodes), ``chunks`` (netfast chunks; linked-list payloads),
``traced_bytes`` (tracemalloc), ``model_bytes`` (the same figure from the counts and CPython's
object sizes), ``mbuf_bytes`` (4.4BSD's cost for the segments held; linked list only, else null),
``counters`` (the queue's ``tcp.reass.*`` counters; ``{}`` for the linked list),
``retransmitted_bytes``, ``delivered_bytes``, ``delivered_ok`` (bool: SHA-256 equal to what was
sent).

``attack``: one object per (shape, design): ``impl``, ``shape`` ("contiguous", "gapped"),
``socket_buffer``, ``max_holes`` (null for the linked list), ``segments_sent``,
``payload_sent``, ``bytes_held``, ``blocks``, ``chunks``, ``traced_bytes``,
``traced_per_segment``, ``mbuf_bytes`` (4.4BSD: every segment held in an mbuf and cluster),
``counters``, ``growth`` (list of ``[segments_sent, bytes_held, traced_bytes]`` at each quarter).
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import sys
import tracemalloc
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from netfast.bench.tcp_reass import (
    MASK,
    MSS,
    LinkedListReass,
    Reassembler,
    _Node,  # its real size, for the memory model
    make_pattern,
)
from netfast.tcp.config import TcpConfig
from netfast.tcp.reass import (
    CHUNK_MERGE,
    ReassemblyQueue,
    _Block,  # its real size, for the memory model
)
from netfast.wire.tcp_options import MAX_WSCALE

__all__ = [
    "FULL",
    "MAX_WINDOW",
    "MBUF_PER_SEGMENT",
    "MSS",
    "ORDERS",
    "QUICK",
    "RTTS_MS",
    "SHAPES",
    "SPEEDS",
    "Caps",
    "figure16",
    "measure_attack",
    "measure_window",
    "netfast_bound_bytes",
    "netfast_model_bytes",
    "run_bdp_bench",
    "verdict",
]

#: The speeds of Figure 16, bits per second (exact integers, so every BDP is a whole byte count).
SPEEDS: tuple[tuple[str, int], ...] = (
    ("10 Mb/s", 10_000_000),
    ("100 Mb/s", 100_000_000),
    ("1 Gb/s", 1_000_000_000),
    ("10 Gb/s", 10_000_000_000),
    ("40 Gb/s", 40_000_000_000),
    ("100 Gb/s", 100_000_000_000),
    ("400 Gb/s", 400_000_000_000),
)
#: The round-trip times of Figure 16, milliseconds; 300 ms is the caption's Europe - Japan.
RTTS_MS: tuple[int, ...] = (1, 10, 50, 100, 200, 300)
#: Bytes per kB in every figure here.
KB = 1000

#: FreeBSD's MSIZE (4.4BSD's was 128): one mbuf, its header and small internal buffer, allocated
#: for every received packet.
MSIZE = 256
#: FreeBSD's MCLBYTES: the cluster a driver receives every frame into, whatever its payload, so a
#: 1-byte segment ties up as much as a full one.
MCLBYTES = 2048
#: What 4.4BSD's queue holds per queued segment: the mbuf and its cluster (the reassembly header
#: is overlaid on the packet's own headers, so it costs nothing extra).
MBUF_PER_SEGMENT = MSIZE + MCLBYTES
#: TCP's largest window: a 16-bit field scaled by at most 2**14 (RFC 7323 section 2.3).
MAX_WINDOW = 0xFFFF << MAX_WSCALE

_PTR = struct.calcsize("P")
#: CPython's cost of one netfast chunk beyond its payload: the bytearray object, the NUL it keeps
#: after its bytes, and its pointer in the block's deque (64 pointers plus two links per block).
CHUNK_OVERHEAD = sys.getsizeof(bytearray()) + 1 + _PTR * 66 / 64
#: CPython's cost of one netfast block beyond its chunks: the slotted block and its empty deque.
BLOCK_OVERHEAD = sys.getsizeof(_Block(0, 0, b"", 0)) + sys.getsizeof(deque())
#: A bytearray grown a few bytes at a time is over-allocated by up to an eighth (CPython's
#: ``bytearray_resize``); chunks built from small segments carry that slack.
BYTEARRAY_SLACK = 1 / 8
#: CPython's cost of an empty netfast queue: the object and its counter dict holding all nine of
#: the queue's counters (:mod:`netfast.tcp.reass`).
QUEUE_OVERHEAD = sys.getsizeof(ReassemblyQueue(max_bytes=0)) + sys.getsizeof(
    Counter({str(k): 1 for k in range(9)})
)
#: CPython's cost of one linked-list node beyond its payload: the node and the bytes object.
NODE_OVERHEAD = sys.getsizeof(_Node(0, b"", None)) + sys.getsizeof(b"")
#: CPython's cost of an empty linked list: the object and its attribute dict.
LIST_OVERHEAD = sys.getsizeof(LinkedListReass()) + sys.getsizeof(LinkedListReass().__dict__)


def _block_list_bytes(blocks: int) -> int:
    """The netfast queue's list of ``blocks`` block pointers (CPython over-allocates a growing
    list by an eighth plus a few slots)."""
    return sys.getsizeof([]) + _PTR * (blocks + (blocks >> 3) + 6)


ORDERS = ("in_order", "reordered", "shuffled")
SHAPES = ("contiguous", "gapped")
#: The receive window the attack is offered: wide open, so only the queue's bounds hold it.
_WIDE = (1 << 31) - 1


class Caps(NamedTuple):
    """How much is measured: the largest window per design and the size of the attack."""

    netfast_window: int
    linked_list_window: int
    attack_socket_buffer: int
    attack_segments: int
    attack_segments_linked_list: int


#: ``--quick``: a few seconds.
QUICK = Caps(4 << 20, 2 << 20, 12_500, 15_625, 400)
#: The full run: every window up to 64 MiB (the linked list, O(n^2), up to 4 MiB).
FULL = Caps(64 << 20, 4 << 20, 125_000, 156_250, 2_000)


# -- first principles ---------------------------------------------------------------------------


def netfast_model_bytes(payload: int, segment: int = MSS, blocks: int = 1) -> float:
    """Python memory of netfast's queue holding ``payload`` bytes that came as ``segment``-byte
    segments, coalesced into ``blocks`` blocks.

    A segment joins the chunk before it while the two fit :data:`CHUNK_MERGE` (2048) bytes, so
    full 1460-byte segments stay one chunk each and 1-byte segments fill 2048-byte chunks.
    """
    if payload <= 0:
        return float(QUEUE_OVERHEAD + _block_list_bytes(0))
    per_chunk = max(1, CHUNK_MERGE // segment)
    chunks = max(blocks, math.ceil(math.ceil(payload / segment) / per_chunk))
    return _netfast_bytes(payload, blocks, chunks)


def _netfast_bytes(payload: float, blocks: int, chunks: int) -> float:
    return (
        payload
        + chunks * CHUNK_OVERHEAD
        + blocks * BLOCK_OVERHEAD
        + QUEUE_OVERHEAD
        + _block_list_bytes(blocks)
    )


def netfast_bound_bytes(max_bytes: int, max_holes: int) -> float:
    """The most Python memory a netfast queue can use, whatever it is sent.

    At most ``max_bytes`` payload bytes (plus bytearray slack), in at most ``max_holes`` blocks,
    and two neighbouring chunks always hold more than :data:`CHUNK_MERGE` bytes, so a block of
    ``b`` bytes has at most ``2 * b / CHUNK_MERGE + 1`` chunks (:mod:`netfast.tcp.reass`).
    """
    chunks = 2 * max_bytes // CHUNK_MERGE + max_holes
    return _netfast_bytes(max_bytes * (1 + BYTEARRAY_SLACK), max_holes, chunks)


def bsd_bytes(window: int, mss: int = MSS, per_segment: int = MBUF_PER_SEGMENT) -> int:
    """4.4BSD's memory for a ``window`` whose first segment is lost: an mbuf and a cluster for
    every segment behind it."""
    return max(0, math.ceil(window / mss) - 1) * per_segment


def figure16(max_holes: int | None = None) -> list[dict[str, Any]]:
    """Every cell of Figure 16 with the reassembly memory it implies (fields in the module
    docstring; ``measured`` is False here)."""
    holes = TcpConfig().max_holes if max_holes is None else max_holes
    cells = []
    for label, bps in SPEEDS:
        for rtt in RTTS_MS:
            bdp = bps * rtt // (8 * 1000)
            window = min(bdp, MAX_WINDOW)
            segments = math.ceil(window / MSS)
            waiting = max(0, window - MSS)
            cells.append(
                {
                    "speed": label,
                    "bits_per_second": bps,
                    "rtt_ms": rtt,
                    "bdp_bytes": bdp,
                    "bdp_kB": bdp / KB,
                    "window_bytes": window,
                    "window_limited": bdp > MAX_WINDOW,
                    "segments": segments,
                    "waiting_bytes": waiting,
                    "bsd_bytes": bsd_bytes(window),
                    "bsd_attack_bytes": max(0, window - 1) * MBUF_PER_SEGMENT,
                    "netfast_bytes": netfast_model_bytes(waiting),
                    "netfast_bound_bytes": netfast_bound_bytes(window, holes),
                    "measured": False,
                }
            )
    return cells


# -- measurement --------------------------------------------------------------------------------


def _state(r: Reassembler) -> tuple[int, int, int, float]:
    """Bytes held, blocks (nodes), chunks (payloads) and the modelled Python memory."""
    if isinstance(r, ReassemblyQueue):
        blocks, chunks = len(r), r.chunk_count
        return r.bytes_held, blocks, chunks, _netfast_bytes(r.bytes_held, blocks, chunks)
    if isinstance(r, LinkedListReass):
        return r.held, r.nodes, r.nodes, r.held + r.nodes * NODE_OVERHEAD + LIST_OVERHEAD
    raise TypeError(type(r).__name__)


def _feed(
    make: Callable[[], Reassembler],
    arrivals: Sequence[tuple[int, bytes]],
    rcv_nxt: int,
    rcv_wnd: int,
    samples: int = 1,
) -> tuple[Reassembler, int, list[list[int]]]:
    """Feed ``arrivals`` (none of which may be deliverable) to a new queue under tracemalloc.

    Returns the queue, the Python memory it holds at the end, and ``[segments, bytes held,
    traced bytes]`` after each of ``samples`` equal parts of the arrivals.
    """
    marks = {len(arrivals) * (k + 1) // samples: k for k in range(samples)}
    # Samples go into storage allocated before tracing starts, so they are not counted.
    record = array("q", bytes(8 * 3 * samples))
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        r = make()
        for i, (seq, data) in enumerate(arrivals, 1):
            if r.add(rcv_nxt, rcv_wnd, seq, memoryview(data)):
                raise AssertionError("the first segment is missing: nothing may be delivered")
            k = marks.get(i)
            if k is not None:
                record[3 * k : 3 * k + 3] = array(
                    "q", (i, _state(r)[0], tracemalloc.get_traced_memory()[0] - base)
                )
        traced = tracemalloc.get_traced_memory()[0] - base
    finally:
        if not tracing:
            tracemalloc.stop()
    growth = [list(record[3 * k : 3 * k + 3]) for k in range(samples)]
    return r, traced, growth


def _first_queued(r: Reassembler) -> int | None:
    if isinstance(r, ReassemblyQueue):
        blocks = r.blocks()
        return blocks[0][0] if blocks else None
    if isinstance(r, LinkedListReass):
        return None if r.head is None else r.head.seq
    raise TypeError(type(r).__name__)


def _recover(r: Reassembler, isn: int, window: int, lost: bytes, stream: bytes) -> tuple[int, int]:
    """The missing segment arrives, then the sender resends every byte the queue does not hold.

    Returns ``(retransmitted bytes, delivered bytes)``; the delivered bytes are compared with
    ``stream`` by SHA-256 and a mismatch is reported as ``delivered = -1``.
    """
    out = [r.add(isn, window, isn, memoryview(lost))]
    got = len(out[0])
    resent = 0
    while got < window:
        rcv_nxt = (isn + got) & MASK
        nxt = _first_queued(r)
        gap = window - got if nxt is None else (nxt - rcv_nxt) & MASK
        piece = stream[got : got + min(MSS, gap)]
        resent += len(piece)
        out.append(r.add(rcv_nxt, window, rcv_nxt, memoryview(piece)))
        got += len(out[-1])
    digest = hashlib.sha256()
    for part in out:
        digest.update(part)
    ok = digest.digest() == hashlib.sha256(stream).digest()
    return resent, got if ok else -1


def _window_arrivals(
    window: int, order: str, seed: int, isn: int
) -> tuple[bytes, list[tuple[int, bytes]], bytes]:
    """The lost first segment, the other arrivals in ``order``, and the whole stream."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")
    n = max(1, math.ceil(window / MSS))
    segs = make_pattern("reordered" if order == "reordered" else "in_order", n, seed, isn)
    last = (isn + (n - 1) * MSS) & MASK
    tail = window - (n - 1) * MSS
    segs = [(s, d[:tail] if s == last else d) for s, d in segs]
    by_offset = sorted(segs, key=lambda sd: (sd[0] - isn) & MASK)
    stream = b"".join(d for _, d in by_offset)
    arrivals = [sd for sd in segs if sd[0] != isn]
    if order == "shuffled":
        random.Random(seed).shuffle(arrivals)
    return by_offset[0][1], arrivals, stream


def _isn(seed: int) -> int:
    # The windows cross the sequence wrap point, as in tcp_reass.
    return (0xFFFF_FFFF - 1000 - seed) & MASK


def _make(impl: str, max_bytes: int, max_holes: int) -> Callable[[], Reassembler]:
    if impl == "netfast":
        return lambda: ReassemblyQueue(max_bytes=max_bytes, max_holes=max_holes)
    if impl == "linked_list":
        return LinkedListReass
    raise ValueError(f"unknown implementation {impl!r}; expected netfast or linked_list")


def _counters(r: Reassembler) -> dict[str, int]:
    return dict(sorted(r.counters.items())) if isinstance(r, ReassemblyQueue) else {}


def measure_window(
    impl: str, window: int, order: str = "in_order", seed: int = 1, max_holes: int | None = None
) -> dict[str, Any]:
    """Run one window through one design with its first segment lost (row fields in the module
    docstring; ``cells`` is left empty).  netfast's queue gets ``max_bytes = window``."""
    if not 0 < window <= MAX_WINDOW:
        raise ValueError(f"window = {window}: must be in 1 .. {MAX_WINDOW}")
    holes = TcpConfig().max_holes if max_holes is None else max_holes
    isn = _isn(seed)
    lost, arrivals, stream = _window_arrivals(window, order, seed, isn)
    r, traced, _ = _feed(_make(impl, window, holes), arrivals, isn, window)
    held, blocks, chunks, model = _state(r)
    counters = _counters(r)
    resent, delivered = _recover(r, isn, window, lost, stream)
    return {
        "impl": impl,
        "order": order,
        "window_bytes": window,
        "cells": [],
        "segments": len(arrivals) + 1,
        "lost_bytes": len(lost),
        "bytes_held": held,
        "blocks": blocks,
        "chunks": chunks,
        "traced_bytes": traced,
        "model_bytes": model,
        "mbuf_bytes": blocks * MBUF_PER_SEGMENT if impl == "linked_list" else None,
        "counters": counters,
        "retransmitted_bytes": resent,
        "delivered_bytes": max(delivered, 0),
        "delivered_ok": delivered == window,
    }


def _attack_arrivals(shape: str, segments: int, seed: int, isn: int) -> list[tuple[int, bytes]]:
    if shape == "gapped":
        return make_pattern("adversarial", segments + 1, seed, isn)[:-1]
    if shape == "contiguous":
        stream = random.Random(seed).randbytes(segments + 1)
        return [((isn + i) & MASK, stream[i : i + 1]) for i in range(1, segments + 1)]
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def measure_attack(
    impl: str,
    shape: str,
    socket_buffer: int,
    segments: int,
    seed: int = 1,
    max_holes: int | None = None,
) -> dict[str, Any]:
    """The 1-byte-segment attack on one connection (row fields in the module docstring)."""
    if segments < 4:
        raise ValueError(f"segments = {segments}: need at least 4")
    holes = TcpConfig().max_holes if max_holes is None else max_holes
    isn = _isn(seed)
    arrivals = _attack_arrivals(shape, segments, seed, isn)
    r, traced, growth = _feed(_make(impl, socket_buffer, holes), arrivals, isn, _WIDE, samples=4)
    held, blocks, chunks, _ = _state(r)
    return {
        "impl": impl,
        "shape": shape,
        "socket_buffer": socket_buffer,
        "max_holes": holes if impl == "netfast" else None,
        "segments_sent": len(arrivals),
        "payload_sent": sum(len(d) for _, d in arrivals),
        "bytes_held": held,
        "blocks": blocks,
        "chunks": chunks,
        "traced_bytes": traced,
        "traced_per_segment": traced / len(arrivals),
        "mbuf_bytes": blocks * MBUF_PER_SEGMENT if impl == "linked_list" else None,
        "counters": _counters(r),
        "growth": growth,
    }


# -- the whole benchmark ------------------------------------------------------------------------


def _constants(max_holes: int) -> dict[str, Any]:
    return {
        "mss": MSS,
        "msize": MSIZE,
        "mclbytes": MCLBYTES,
        "mbuf_per_segment": MBUF_PER_SEGMENT,
        "max_window": MAX_WINDOW,
        "max_holes": max_holes,
        "chunk_merge": CHUNK_MERGE,
        "chunk_overhead": CHUNK_OVERHEAD,
        "block_overhead": BLOCK_OVERHEAD,
        "queue_overhead": QUEUE_OVERHEAD,
        "node_overhead": NODE_OVERHEAD,
        "bytearray_slack": BYTEARRAY_SLACK,
    }


def run_bdp_bench(
    caps: Caps = FULL, seed: int = 1, *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Figure 16, the windows measured up to ``caps``, and the attack.

    Returns
    -------
    dict
        ``kB``, ``constants``, ``caps``, ``figure16``, ``measured``, ``attack`` and ``verdict``
        as the module docstring describes them (the CLI adds the run's metadata).
    """
    if caps.attack_segments < 4 or caps.attack_segments_linked_list < 4:
        raise ValueError("the attack needs at least 4 segments per design")
    holes = TcpConfig().max_holes
    cells = figure16(holes)
    windows: dict[int, list[list[Any]]] = {}
    for c in cells:
        if c["window_bytes"] <= caps.netfast_window:
            windows.setdefault(c["window_bytes"], []).append([c["speed"], c["rtt_ms"]])
            c["measured"] = True
    measured: list[dict[str, Any]] = []
    for window in sorted(windows):
        for order in ORDERS:
            impls = ["netfast"]
            if window <= caps.linked_list_window:
                impls.append("linked_list")
            for impl in impls:
                if progress is not None:
                    progress(f"{window:,}-byte window, {order}, {impl}")
                row = measure_window(impl, window, order, seed, holes)
                row["cells"] = windows[window]
                measured.append(row)
    attack: list[dict[str, Any]] = []
    for shape in SHAPES:
        for impl, n in (
            ("netfast", caps.attack_segments),
            ("linked_list", caps.attack_segments_linked_list),
        ):
            if progress is not None:
                progress(f"attack, {shape}, {impl}")
            attack.append(measure_attack(impl, shape, caps.attack_socket_buffer, n, seed, holes))
    return {
        "kB": KB,
        "constants": _constants(holes),
        "caps": caps._asdict(),
        "figure16": cells,
        "measured": measured,
        "attack": attack,
        "verdict": verdict(measured, attack),
    }


def _largest(rows: Sequence[dict[str, Any]], impl: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r["impl"] == impl and r["order"] == "in_order"]
    return max(mine, key=lambda r: r["window_bytes"]) if mine else None


def verdict(measured: Sequence[dict[str, Any]], attack: Sequence[dict[str, Any]]) -> str:
    """One sentence from the figures: the largest in-order window each design held, and the
    attack."""
    parts: list[str] = []
    nf = _largest(measured, "netfast")
    if nf is not None and nf["bytes_held"]:
        mbufs = (nf["segments"] - 1) * MBUF_PER_SEGMENT
        parts.append(
            f"with the first segment of a {nf['window_bytes']:,}-byte window lost, netfast holds"
            f" {nf['bytes_held']:,} bytes in {nf['blocks']} block using"
            f" {nf['traced_bytes'] / nf['bytes_held']:.3f}x that in Python memory"
            f" (4.4BSD's mbufs and clusters: {mbufs / nf['bytes_held']:.3f}x)"
        )
    ll = _largest(measured, "linked_list")
    if ll is not None and ll["bytes_held"]:
        parts.append(
            f"the linked list, run up to {ll['window_bytes']:,} bytes, holds {ll['bytes_held']:,}"
            f" in {ll['blocks']:,} nodes ({ll['traced_bytes'] / ll['bytes_held']:.3f}x)"
        )
    mixed = [r for r in measured if r["impl"] == "netfast" and r["order"] == "shuffled"]
    if mixed:
        worst = max(mixed, key=lambda r: r["window_bytes"])
        parts.append(
            f"a wholly shuffled {worst['window_bytes']:,}-byte window trips netfast's hole limit"
            f" {worst['counters'].get('tcp.reass.hole_limit', 0):,} times, so it keeps"
            f" {worst['bytes_held']:,} bytes and the sender resends"
            f" {worst['retransmitted_bytes']:,}"
        )
    by = {(a["impl"], a["shape"]): a for a in attack}
    held = [by[("netfast", s)] for s in SHAPES if ("netfast", s) in by]
    grown = [by[("linked_list", s)] for s in SHAPES if ("linked_list", s) in by]
    clause = []
    if held:
        refused = sum(
            a["counters"].get("tcp.reass.hole_limit", 0)
            + a["counters"].get("tcp.reass.byte_limit", 0)
            for a in held
        )
        kept = " and ".join(
            f"{a['bytes_held']:,} of {a['segments_sent']:,} {a['shape']}" for a in held
        )
        clause.append(
            f"under the 1-byte attack netfast held {kept} bytes (socket buffer"
            f" {held[0]['socket_buffer']:,}, max_holes {held[0]['max_holes']};"
            f" {refused:,} segments refused)"
        )
    if grown:
        slope = max(a["traced_per_segment"] for a in grown)
        clause.append(
            f"{'while ' if held else ''}the linked list kept every segment, {slope:,.0f} bytes of"
            f" Python memory each (4.4BSD: {MBUF_PER_SEGMENT:,} each)"
        )
    if clause:
        parts.append(" ".join(clause))
    if not parts:
        return "Nothing was measured."
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]
