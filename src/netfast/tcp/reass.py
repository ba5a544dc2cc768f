"""The TCP reassembly queue: coalesced blocks, bounded bytes and holes, SACK from the blocks.

Contract
--------
:class:`ReassemblyQueue` holds the out-of-order data of one receiving TCP connection (RFC 9293
section 3.10.7.4, "segment text") and hands back in-order bytes as soon as they exist.  It
implements the design of the paper's "TCP Reassembly" section (Oppermann, "Optimizing the FreeBSD
IP and TCP Stack", Transport Layer):

- **Coalescing.**  Contiguous data is kept as *one block*, however many segments it came in.  A
  block is a start/end sequence pair and a deque of byte chunks, so appending at its tail and
  prepending at its head are O(1) (small chunks are merged into a neighbouring chunk of at most
  :data:`CHUNK_MERGE` bytes, as the paper merges small mbufs, so a stream of tiny segments does not
  turn into a stream of tiny objects).  The chunks are joined only when the block is delivered.
- **No overwriting.**  New data is trimmed against what was already accepted (delivered or
  queued): the first copy of a byte wins, as in 4.4BSD and RFC 9293.
- **Bounds.**  At most ``max_bytes`` payload bytes are held, and at most ``max_holes`` blocks
  exist (each block has a hole in front of it, so the number of blocks is the number of holes).
  Data that would cross either bound is not queued, in whole or in part, and is counted.  This is
  what defeats the paper's attack ("sending many small packets while forgetting the first one").
- **Progress.**  The segment starting exactly at ``rcv_nxt`` is always taken, whatever the limits,
  and delivered together with every queued block it now reaches.
- **SACK.**  :meth:`ReassemblyQueue.sack_blocks` lists the blocks most recently changed first,
  which is the order RFC 2018 section 4 asks for: the first block reports the data containing the
  most recently received segment, the others follow most recent first.

The queue is sans-IO: it never reads the clock and never raises for anything a peer sends.
``rcv_nxt`` is passed to every call; when it has moved past queued data (the caller advanced it),
that data is dropped or trimmed on the next call.  Sequence numbers are 32-bit and wrap around
(:mod:`netfast.wire.seq`); every block lies in the window, so less than 2**31 after ``rcv_nxt``.

Blocks are kept in a small list in sequence order.  The hole bound keeps it short, so finding a
segment's place is a short scan; a segment extending the last block -- the common case while a
hole waits for its retransmission -- takes the fast path without a scan.

Counters (``ReassemblyQueue.counters``), one per segment unless noted:

``tcp.reass.delivered``
    Segments delivered in order (starting at ``rcv_nxt``).
``tcp.reass.delivered_bytes``
    Bytes returned by :meth:`~ReassemblyQueue.add` (in-order segment plus joined blocks).
``tcp.reass.queued``
    Out-of-order segments of which at least one new byte was queued.
``tcp.reass.dup``
    Segments carrying no new byte: all before ``rcv_nxt`` or all already queued.
``tcp.reass.overlap_trimmed``
    Segments partly overlapping accepted data; the overlapping part was dropped.
``tcp.reass.beyond_window``
    Segments wholly or partly beyond ``rcv_nxt + rcv_wnd``; that part was dropped.
``tcp.reass.hole_limit``
    Out-of-order segments dropped because they would have opened a hole beyond ``max_holes``.
``tcp.reass.byte_limit``
    Out-of-order segments of which some new bytes were dropped to keep within ``max_bytes``.
``tcp.reass.stale_bytes``
    Queued bytes dropped because ``rcv_nxt`` moved past them without them being delivered.
"""

from __future__ import annotations

from collections import Counter, deque

from netfast.wire.seq import SEQ_MASK

__all__ = ["CHUNK_MERGE", "ReassemblyQueue"]

#: Chunks are merged while the result stays at most this long (the size of an mbuf cluster in the
#: paper): an append or prepend then copies at most this many bytes, so it stays O(1).
CHUNK_MERGE = 2048

_SIGN = 1 << 31
_MOD = 1 << 32


def _off(seq: int, rcv_nxt: int) -> int:
    """Signed distance ``seq - rcv_nxt`` on the sequence circle."""
    d = (seq - rcv_nxt) & SEQ_MASK
    return d - _MOD if d & _SIGN else d


class _Block:
    """Contiguous queued data ``[start, end)`` (sequence numbers) as a deque of chunks."""

    __slots__ = ("chunks", "end", "stamp", "start")

    def __init__(self, start: int, end: int, chunk: bytes | bytearray, stamp: int) -> None:
        self.start = start
        self.end = end
        self.chunks: deque[bytes | bytearray] = deque((chunk,))
        self.stamp = stamp

    def append(self, data: memoryview) -> None:
        """Add ``data`` at the tail (the caller moves ``end``)."""
        chunks = self.chunks
        last = chunks[-1]
        n = len(data)
        if len(last) + n <= CHUNK_MERGE:
            # Copies at most CHUNK_MERGE bytes; a bytearray tail grows in place (amortized).
            if isinstance(last, bytearray):
                last += data
            else:
                merged = bytearray(last)
                merged += data
                chunks[-1] = merged
        else:
            # A small chunk stays mutable so that the next small segments can join it.
            chunks.append(bytes(data) if n >= CHUNK_MERGE else bytearray(data))

    def prepend(self, data: memoryview) -> None:
        """Add ``data`` at the head (the caller moves ``start``)."""
        chunks = self.chunks
        first = chunks[0]
        if len(first) + len(data) <= CHUNK_MERGE:
            merged = bytearray(data)
            merged += first
            chunks[0] = merged
        else:
            chunks.appendleft(bytes(data))

    def absorb(self, other: _Block) -> None:
        """Append the chunks of ``other``, the block right after this one (now adjacent).

        The shorter deque is moved into the longer one, so a chunk is moved O(log n) times over
        any sequence of merges rather than once per merge.  The two chunks meeting at the seam
        are merged when small, which keeps the invariant every mutation keeps: two neighbouring
        chunks together hold more than CHUNK_MERGE bytes, so a block of ``b`` bytes has at most
        ``2 * b / CHUNK_MERGE + 1`` chunks.
        """
        left = self.chunks
        right = other.chunks
        if len(left[-1]) + len(right[0]) <= CHUNK_MERGE:
            seam = left.pop()
            if not isinstance(seam, bytearray):
                seam = bytearray(seam)
            seam += right.popleft()
            left.append(seam)
        if len(right) > len(left):
            right.extendleft(reversed(left))
            self.chunks = right
        else:
            left.extend(right)
        self.end = other.end


class ReassemblyQueue:
    """Out-of-order data of one connection, coalesced into at most ``max_holes`` blocks.

    Parameters
    ----------
    max_bytes:
        The most payload bytes held out of order (typically the socket receive buffer).
    max_holes:
        The most blocks (holes) held at once; default 32 (``TcpConfig.max_holes``).

    Raises
    ------
    ValueError
        ``max_bytes`` is negative or ``max_holes`` is below 1.
    """

    __slots__ = (
        "_blocks",
        "_counters",
        "_delivered",
        "_delivered_bytes",
        "_held",
        "_stamp",
        "max_bytes",
        "max_holes",
    )

    def __init__(self, *, max_bytes: int, max_holes: int = 32) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes = {max_bytes}: must not be negative")
        if max_holes < 1:
            raise ValueError(f"max_holes = {max_holes}: must be at least 1")
        self.max_bytes = max_bytes
        self.max_holes = max_holes
        self._counters: Counter[str] = Counter()
        # The in-order fast path counts in plain ints; ``counters`` folds them in when read.
        self._delivered = 0
        self._delivered_bytes = 0
        self._blocks: list[_Block] = []
        self._held = 0
        self._stamp = 0

    # -- queries -----------------------------------------------------------------------------

    @property
    def counters(self) -> Counter[str]:
        """Drop and event counters (names in the module docstring)."""
        c = self._counters
        if self._delivered:
            c["tcp.reass.delivered"] += self._delivered
            c["tcp.reass.delivered_bytes"] += self._delivered_bytes
            self._delivered = self._delivered_bytes = 0
        return c

    @property
    def bytes_held(self) -> int:
        """Payload bytes queued out of order."""
        return self._held

    @property
    def holes(self) -> int:
        """Number of holes, which is the number of blocks queued (each has a hole before it)."""
        return len(self._blocks)

    @property
    def chunk_count(self) -> int:
        """Number of byte chunks stored over all blocks (the objects the queue holds on to)."""
        return sum(len(b.chunks) for b in self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def blocks(self) -> list[tuple[int, int]]:
        """``(start, end)`` sequence numbers of every block, in sequence order."""
        return [(b.start, b.end) for b in self._blocks]

    def sack_blocks(self, limit: int = 4) -> list[tuple[int, int]]:
        """SACK blocks ``(left edge, right edge)``, the most recently changed block first.

        RFC 2018 section 4: the first block holds the most recently received segment, the rest
        follow in order of recency.  ``limit`` is the number of blocks the option has room for
        (4, or 3 beside a timestamp option).  The blocks are relative to the ``rcv_nxt`` of the
        last :meth:`add`.
        """
        if limit <= 0:
            return []
        recent = sorted(self._blocks, key=lambda b: b.stamp, reverse=True)
        return [(b.start, b.end) for b in recent[:limit]]

    def clear(self) -> None:
        """Drop every queued byte (counters are kept)."""
        self._blocks.clear()
        self._held = 0

    # -- insertion ---------------------------------------------------------------------------

    def add(self, rcv_nxt: int, rcv_wnd: int, seq: int, data: bytes | memoryview) -> bytes:
        """Take one segment's payload; return the bytes now deliverable from ``rcv_nxt``.

        Parameters
        ----------
        rcv_nxt:
            The next sequence number the receiver expects.
        rcv_wnd:
            Bytes acceptable from ``rcv_nxt``; data at or beyond ``rcv_nxt + rcv_wnd`` is
            dropped, as is data before ``rcv_nxt``.
        seq:
            Sequence number of the first byte of ``data``.
        data:
            The payload (copied if queued; never kept as a view of the caller's buffer).

        Returns
        -------
        bytes
            In-order bytes starting exactly at ``rcv_nxt`` (``b""`` if none); the caller advances
            ``rcv_nxt`` by their length.

        Raises
        ------
        ValueError
            ``rcv_wnd`` is negative or not below 2**31 (API misuse, not peer input).
        """
        n = len(data)
        blocks = self._blocks
        # The common case first: in order, nothing queued, fits the window.
        if seq == rcv_nxt and not blocks and 0 < n <= rcv_wnd < _SIGN:
            self._delivered += 1
            self._delivered_bytes += n
            return bytes(data)
        if not 0 <= rcv_wnd < _SIGN:
            raise ValueError(f"rcv_wnd = {rcv_wnd}: must be in 0 .. 2**31 - 1")
        rcv_nxt &= SEQ_MASK
        counters = self._counters
        off = _off(seq, rcv_nxt)

        if blocks and blocks[0].start != rcv_nxt and _off(blocks[0].start, rcv_nxt) < 0:
            self._advance(rcv_nxt)
        if n == 0:
            return self._deliver_head(rcv_nxt)

        # Trim to the window [rcv_nxt, rcv_nxt + rcv_wnd).
        s = off
        e = off + n
        if e <= 0:
            counters["tcp.reass.dup"] += 1
            return self._deliver_head(rcv_nxt)
        if s >= rcv_wnd:
            counters["tcp.reass.beyond_window"] += 1
            return self._deliver_head(rcv_nxt)
        if s < 0:
            counters["tcp.reass.overlap_trimmed"] += 1
            s = 0
        if e > rcv_wnd:
            counters["tcp.reass.beyond_window"] += 1
            e = rcv_wnd
        if s > 0 and len(blocks) >= self.max_holes and s > _off(blocks[-1].end, rcv_nxt):
            # Cheapest rejection first: the attack's segments land here.
            counters["tcp.reass.hole_limit"] += 1
            return self._deliver_head(rcv_nxt)
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        mv = mv[s - off : e - off]  # now mv[i] is the byte at offset s + i

        if s == 0:
            return self._add_in_order(rcv_nxt, e, mv)
        self._add_out_of_order(rcv_nxt, s, e, mv)
        return self._deliver_head(rcv_nxt)

    def _advance(self, rcv_nxt: int) -> None:
        """Drop or trim blocks that ``rcv_nxt`` has moved into or past."""
        blocks = self._blocks
        while blocks and _off(blocks[0].start, rcv_nxt) < 0:
            b = blocks[0]
            if _off(b.end, rcv_nxt) <= 0:
                stale = (b.end - b.start) & SEQ_MASK
                del blocks[0]
            else:
                stale = (rcv_nxt - b.start) & SEQ_MASK
                data = b"".join(b.chunks)[stale:]
                b.chunks = deque((data,))
                b.start = rcv_nxt
            self._held -= stale
            self._counters["tcp.reass.stale_bytes"] += stale

    def _deliver_head(self, rcv_nxt: int) -> bytes:
        """Deliver the first block if it starts at ``rcv_nxt`` (the caller moved rcv_nxt onto
        it); otherwise ``b""``."""
        blocks = self._blocks
        if not blocks or blocks[0].start != rcv_nxt:
            return b""
        b = blocks.pop(0)
        out = b"".join(b.chunks)
        self._held -= len(out)
        self._counters["tcp.reass.delivered_bytes"] += len(out)
        return out

    def _add_in_order(self, rcv_nxt: int, e: int, mv: memoryview) -> bytes:
        """Deliver ``mv`` (offsets ``[0, e)``) and every block it reaches; queued bytes win."""
        blocks = self._blocks
        counters = self._counters
        parts: list[bytes | bytearray | memoryview] = []
        cur = 0  # offset up to which the output is assembled
        overlapped = False
        while blocks:
            b = blocks[0]
            bs = _off(b.start, rcv_nxt)
            if bs > cur and bs > e:
                break  # a hole remains before this block
            if bs > cur:
                parts.append(mv[cur:bs])
            be = _off(b.end, rcv_nxt)
            if e > bs:
                overlapped = True
            parts.extend(b.chunks)
            self._held -= be - bs
            cur = be
            del blocks[0]
        if e > cur:
            parts.append(mv[cur:e])
        counters["tcp.reass.delivered"] += 1
        if overlapped:
            counters["tcp.reass.overlap_trimmed"] += 1
        out = b"".join(parts)
        counters["tcp.reass.delivered_bytes"] += len(out)
        return out

    def _add_out_of_order(self, rcv_nxt: int, s: int, e: int, mv: memoryview) -> None:
        """Queue offsets ``[s, e)`` (``0 < s < e``), trimmed against the blocks and the bounds."""
        blocks = self._blocks
        counters = self._counters
        nblocks = len(blocks)
        room = self.max_bytes - self._held

        # Fast path: extends the last block's tail, or lies wholly after the last block.
        i = nblocks
        if nblocks:
            last = blocks[-1]
            le = _off(last.end, rcv_nxt)
            if s >= le:
                if s == le:
                    take = min(e - s, room)
                    if take <= 0:
                        counters["tcp.reass.byte_limit"] += 1
                        return
                    if take < e - s:
                        counters["tcp.reass.byte_limit"] += 1
                    last.append(mv[:take])
                    last.end = (last.end + take) & SEQ_MASK
                    self._held += take
                    self._stamp += 1
                    last.stamp = self._stamp
                    counters["tcp.reass.queued"] += 1
                    return
            else:
                # Find the first block that ends at or after s (it may touch the segment).
                i = 0
                while _off(blocks[i].end, rcv_nxt) < s:
                    i += 1

        # Blocks i .. j-1 touch or overlap [s, e).
        j = i
        while j < nblocks and _off(blocks[j].start, rcv_nxt) <= e:
            j += 1

        if i == j:
            # A new block, and a new hole in front of it.
            if nblocks >= self.max_holes:
                counters["tcp.reass.hole_limit"] += 1
                return
            take = min(e - s, room)
            if take <= 0:
                counters["tcp.reass.byte_limit"] += 1
                return
            if take < e - s:
                counters["tcp.reass.byte_limit"] += 1
            self._stamp += 1
            start = (rcv_nxt + s) & SEQ_MASK
            chunk = mv[:take]
            blocks.insert(
                i,
                _Block(
                    start,
                    (start + take) & SEQ_MASK,
                    bytearray(chunk) if take < CHUNK_MERGE else bytes(chunk),
                    self._stamp,
                ),
            )
            self._held += take
            counters["tcp.reass.queued"] += 1
            return

        first = blocks[i]
        overlapped = any(
            _off(b.start, rcv_nxt) < e and _off(b.end, rcv_nxt) > s for b in blocks[i:j]
        )
        added = 0
        limited = False
        # Leading piece, before the first touching block: keep the part adjacent to it.
        fs = _off(first.start, rcv_nxt)
        if s < fs:
            need = fs - s
            take = min(need, room)
            if take < need:
                limited = True
            if take > 0:
                first.prepend(mv[need - take : need])
                first.start = (first.start - take) & SEQ_MASK
                room -= take
                added += take
        # Gaps between touching blocks, then the trailing piece; a gap filled completely merges
        # the next block into the first one.
        cur = _off(first.end, rcv_nxt)
        merged = 0
        for k in range(i + 1, j):
            nb = blocks[k]
            gap_end = _off(nb.start, rcv_nxt)
            need = gap_end - cur
            take = min(need, room)
            if take > 0:
                first.append(mv[cur - s : cur - s + take])
                first.end = (first.end + take) & SEQ_MASK
                room -= take
                added += take
            if take < need:
                limited = True
                break
            first.absorb(nb)
            merged += 1
            cur = _off(nb.end, rcv_nxt)
        else:
            if e > cur:
                need = e - cur
                take = min(need, room)
                if take < need:
                    limited = True
                if take > 0:
                    first.append(mv[cur - s : cur - s + take])
                    first.end = (first.end + take) & SEQ_MASK
                    room -= take
                    added += take
        if merged:
            del blocks[i + 1 : i + 1 + merged]
        self._held += added
        if added or not limited:
            # RFC 2018: this block now holds the most recently received segment.
            self._stamp += 1
            first.stamp = self._stamp
        if limited:
            counters["tcp.reass.byte_limit"] += 1
        if added:
            counters["tcp.reass.queued"] += 1
            if overlapped:
                counters["tcp.reass.overlap_trimmed"] += 1
        elif not limited:
            counters["tcp.reass.dup"] += 1
