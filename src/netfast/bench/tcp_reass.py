"""The TCP reassembly benchmark: netfast's coalescing queue against two classic designs.

The paper's "TCP Reassembly" section says the 4.4BSD Net/2 queue -- a linked list holding every
received segment, searched from its head -- costs too much under reordering and can be made to
hold unbounded memory by an attacker who sends many small segments and never the first one; the
new design coalesces contiguous data into blocks and bounds bytes and holes.  This module measures
that claim, all three implementations in the same run on the same arrivals:

``netfast``
    :class:`netfast.tcp.reass.ReassemblyQueue` (byte limit 1 MiB, 8 holes).
``linked_list``
    :class:`LinkedListReass`, the Net/2 ``tcp_reass``: one node per segment, walk from the head to
    the first node beginning after the new segment, trim the new segment against its predecessor,
    trim or free the successors it covers, link it in, then deliver from the head while the head
    starts at ``rcv_nxt``.  It keeps everything it is sent.
``dict``
    :class:`DictReass`, the design of PyTCP: out-of-order segments in a dict keyed by sequence
    number; an in-order arrival is delivered and then consecutive keys are popped.  It keeps
    everything it is sent.

Arrival patterns (``n_segments`` segments each):

``in_order``
    1460-byte segments in order.
``reordered``
    the same, but 5% of the segments are swapped with one 1 to 4 positions later.
``adversarial``
    the attack: the first byte is withheld, then 1-byte segments with 1-byte gaps (half of the
    segments), then the gaps are filled in ascending order, then the first byte arrives.

Figures per (implementation, pattern): ``segments_per_s`` (best of ``rounds`` timed runs, with
no instrumentation), and from one separate instrumented run ``peak_bytes_held``, ``peak_objects``
(Python objects held for queued data: blocks and chunks for netfast, nodes and payloads for the
linked list, payloads for the dict) and ``delivered_bytes``.  Under the attack netfast delivers
little: it refused most of the attacker's segments (bounded memory is the point), and a real
sender would retransmit them in order.  The machines are shared and noisy, so compare ratios.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rich.table import Table

from netfast.tcp.config import TcpConfig
from netfast.tcp.reass import ReassemblyQueue

__all__ = ["DictReass", "LinkedListReass", "make_pattern", "reass_table", "run_reass_bench"]

MASK = 0xFFFF_FFFF
_HALF = 1 << 31
MSS = 1460
IMPLS = ("netfast", "linked_list", "dict")
PATTERNS = ("in_order", "reordered", "adversarial")


class Reassembler(Protocol):
    def add(self, rcv_nxt: int, rcv_wnd: int, seq: int, data: bytes | memoryview) -> bytes: ...


# -- baselines ---------------------------------------------------------------------------------


class _Node:
    """One queued segment of the Net/2 list (an mbuf chain with its tcpiphdr)."""

    __slots__ = ("data", "next", "seq")

    def __init__(self, seq: int, data: bytes, nxt: _Node | None) -> None:
        self.seq = seq
        self.data = data
        self.next = nxt


class LinkedListReass:
    """4.4BSD Net/2 ``tcp_reass``: a singly linked list of segments in sequence order."""

    def __init__(self) -> None:
        self.head: _Node | None = None
        self.nodes = 0
        self.held = 0

    def add(self, rcv_nxt: int, rcv_wnd: int, seq: int, data: bytes | memoryview) -> bytes:
        if seq == rcv_nxt and self.head is None:
            # The TCP_REASS macro of tcp_input: in order with an empty queue skips tcp_reass.
            return bytes(data)
        data = bytes(data)
        # Find the first segment that begins after this one (SEQ_GT(q->seq, seq)).
        prev: _Node | None = None
        q = self.head
        while q is not None and not 0 < (q.seq - seq) & MASK < _HALF:
            prev = q
            q = q.next
        # The preceding segment may cover some or all of this one: trim or drop.
        if prev is not None:
            overlap = ((prev.seq + len(prev.data)) - seq) & MASK
            if overlap < _HALF and overlap > 0:
                if overlap >= len(data):
                    return self._present(rcv_nxt)
                data = data[overlap:]
                seq = (seq + overlap) & MASK
        # This segment may cover following segments: trim their heads or free them.
        end = (seq + len(data)) & MASK
        while q is not None:
            over = (end - q.seq) & MASK
            if over == 0 or over >= _HALF:
                break
            if over < len(q.data):
                self.held -= over
                q.data = q.data[over:]
                q.seq = (q.seq + over) & MASK
                break
            self.held -= len(q.data)
            self.nodes -= 1
            q = q.next
        node = _Node(seq, data, q)
        if prev is None:
            self.head = node
        else:
            prev.next = node
        self.nodes += 1
        self.held += len(data)
        return self._present(rcv_nxt)

    def _present(self, rcv_nxt: int) -> bytes:
        out: list[bytes] = []
        q = self.head
        while q is not None and q.seq == rcv_nxt:
            out.append(q.data)
            rcv_nxt = (rcv_nxt + len(q.data)) & MASK
            self.held -= len(q.data)
            self.nodes -= 1
            q = q.next
        self.head = q
        return b"".join(out)

    @property
    def objects(self) -> int:
        return 2 * self.nodes


class DictReass:
    """PyTCP's out-of-order queue: ``{seq: payload}``; pop consecutive keys after an arrival."""

    def __init__(self) -> None:
        self.queue: dict[int, bytes] = {}
        self.held = 0

    def add(self, rcv_nxt: int, rcv_wnd: int, seq: int, data: bytes | memoryview) -> bytes:
        off = (seq - rcv_nxt) & MASK
        if off >= _HALF:  # starts before rcv_nxt: keep only the new part
            old = (rcv_nxt - seq) & MASK
            if old >= len(data):
                return b""
            data = data[old:]
            off = 0
        if off != 0:
            if off < rcv_wnd:
                payload = bytes(data)
                prev = self.queue.get(seq)
                self.held += len(payload) - (len(prev) if prev is not None else 0)
                self.queue[seq] = payload
            return b""
        out = [bytes(data)]
        nxt = (rcv_nxt + len(data)) & MASK
        queue = self.queue
        while nxt in queue:
            payload = queue.pop(nxt)
            self.held -= len(payload)
            out.append(payload)
            nxt = (nxt + len(payload)) & MASK
        return b"".join(out)

    @property
    def objects(self) -> int:
        return len(self.queue)


# -- arrivals -----------------------------------------------------------------------------------


def make_pattern(pattern: str, n_segments: int, seed: int, isn: int) -> list[tuple[int, bytes]]:
    """The arrivals ``(seq, payload)`` of one pattern, in arrival order."""
    rnd = random.Random(seed)
    if pattern in ("in_order", "reordered"):
        stream = rnd.randbytes(MSS * n_segments)
        segs = [
            ((isn + k * MSS) & MASK, stream[k * MSS : (k + 1) * MSS]) for k in range(n_segments)
        ]
        if pattern == "reordered":
            for k in range(n_segments):
                if rnd.random() < 0.05:
                    j = min(n_segments - 1, k + rnd.randint(1, 4))
                    segs[k], segs[j] = segs[j], segs[k]
        return segs
    if pattern == "adversarial":
        half = max(1, n_segments // 2)
        stream = rnd.randbytes(2 * half + 1)
        holes = [((isn + 2 * k + 1) & MASK, stream[2 * k + 1 : 2 * k + 2]) for k in range(half)]
        fills = [((isn + 2 * k) & MASK, stream[2 * k : 2 * k + 1]) for k in range(1, half)]
        return holes + fills + [(isn, stream[:1])]
    raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")


# -- measurement --------------------------------------------------------------------------------


def _make(impl: str) -> Reassembler:
    if impl == "netfast":
        return ReassemblyQueue(max_bytes=1 << 20, max_holes=TcpConfig().max_holes)
    if impl == "linked_list":
        return LinkedListReass()
    if impl == "dict":
        return DictReass()
    raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS}")


def _held(r: Reassembler) -> tuple[int, int]:
    if isinstance(r, ReassemblyQueue):
        return r.bytes_held, len(r) + r.chunk_count
    if isinstance(r, LinkedListReass | DictReass):
        return r.held, r.objects
    raise TypeError(type(r).__name__)


def _timed_run(impl: str, segs: Sequence[tuple[int, bytes]], isn: int) -> float:
    r = _make(impl)
    add = r.add
    rcv_nxt = isn
    wnd = 1 << 30
    t0 = time.perf_counter()
    for seq, data in segs:
        out = add(rcv_nxt, wnd, seq, data)
        if out:
            rcv_nxt = (rcv_nxt + len(out)) & MASK
    return time.perf_counter() - t0


def _instrumented_run(impl: str, segs: Sequence[tuple[int, bytes]], isn: int) -> dict[str, int]:
    r = _make(impl)
    rcv_nxt = isn
    peak_bytes = peak_objects = delivered = 0
    for seq, data in segs:
        out = r.add(rcv_nxt, 1 << 30, seq, data)
        rcv_nxt = (rcv_nxt + len(out)) & MASK
        delivered += len(out)
        held, objects = _held(r)
        peak_bytes = max(peak_bytes, held)
        peak_objects = max(peak_objects, objects)
    return {
        "peak_bytes_held": peak_bytes,
        "peak_objects": peak_objects,
        "delivered_bytes": delivered,
    }


def run_reass_bench(
    n_segments: int = 20000,
    seed: int = 1,
    *,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure the three implementations on the three arrival patterns.

    Parameters
    ----------
    n_segments:
        Segments per pattern.
    seed:
        Seeds the payloads and the reordering.
    rounds:
        Timed runs per cell; the best counts.  The rounds interleave the implementations so a
        slow phase of the machine hits all of them.
    progress:
        Called with a short message before each cell, if given.

    Returns
    -------
    list of dict
        One row per (implementation, pattern): ``impl``, ``pattern``, ``segments_per_s``,
        ``peak_bytes_held``, ``peak_objects``, ``delivered_bytes``.
    """
    if n_segments < 2:
        raise ValueError(f"n_segments = {n_segments}: need at least 2")
    isn = (0xFFFF_FFFF - 1000 - seed) & MASK  # the runs cross the sequence wrap point
    rows: list[dict[str, Any]] = []
    for pattern in PATTERNS:
        segs = make_pattern(pattern, n_segments, seed, isn)
        best = dict.fromkeys(IMPLS, float("inf"))
        for _ in range(max(1, rounds)):
            for impl in IMPLS:
                if progress is not None:
                    progress(f"{pattern} / {impl}")
                best[impl] = min(best[impl], _timed_run(impl, segs, isn))
        for impl in IMPLS:
            row: dict[str, Any] = {
                "impl": impl,
                "pattern": pattern,
                "segments_per_s": len(segs) / best[impl] if best[impl] > 0 else float("inf"),
            }
            row.update(_instrumented_run(impl, segs, isn))
            rows.append(row)
    return rows


def reass_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The rows as a table, with speed and memory ratios against the linked list."""
    base = {r["pattern"]: r for r in rows if r["impl"] == "linked_list"}
    table = Table(title="TCP reassembly: segments/s and memory held (ratios vs linked list)")
    for col in (
        "pattern",
        "impl",
        "segments/s",
        "x linked list",
        "peak bytes held",
        "peak objects",
        "delivered bytes",
    ):
        table.add_column(col, justify="left" if col in ("pattern", "impl") else "right")
    for r in rows:
        ref = base.get(r["pattern"])
        ratio = "-"
        if ref is not None and ref["segments_per_s"] > 0:
            ratio = f"{r['segments_per_s'] / ref['segments_per_s']:.1f}x"
        table.add_row(
            r["pattern"],
            r["impl"],
            f"{r['segments_per_s']:,.0f}",
            ratio,
            f"{r['peak_bytes_held']:,}",
            f"{r['peak_objects']:,}",
            f"{r.get('delivered_bytes', 0):,}",
        )
    return table


if __name__ == "__main__":  # pragma: no cover - manual run: python -m netfast.bench.tcp_reass
    from rich.console import Console

    Console().print(reass_table(run_reass_bench()))
