"""The packet rings' compiled walks (numba): received frames gathered out of TPACKET_V3 blocks
into the slots of a :class:`~netfast.wire.batch.FrameBatch`, and a batch's rows scattered into
the slots of a TX ring.  :mod:`netfast.link.ring` owns the socket and the mapping; these kernels
only read and write the mapped memory, and allocate nothing per frame.

Layout (``<linux/if_packet.h>``, Documentation/networking/packet_mmap.rst)
--------------------------------------------------------------------------
An RX block starts with ``struct tpacket_block_desc``: ``version``, ``offset_to_priv``, then
``struct tpacket_hdr_v1`` -- ``block_status`` at byte 8, ``num_pkts`` at 12,
``offset_to_first_pkt`` at 16 (the header is 48 bytes).  Each frame in a block starts with a
``struct tpacket3_hdr`` (48 bytes once aligned to ``TPACKET_ALIGNMENT``): ``tp_next_offset`` 0,
``tp_sec`` 4, ``tp_nsec`` 8, ``tp_snaplen`` 12, ``tp_len`` 16, ``tp_status`` 20, ``tp_mac``
(u16) 24, ``tp_net`` 26, ``hv1.tp_rxhash`` 28, ``hv1.tp_vlan_tci`` 32, ``hv1.tp_vlan_tpid``
(u16) 36; a ``struct sockaddr_ll`` follows at 48 (``sll_pkttype`` at 48 + 10), and the frame
itself at ``tp_mac``.  A TX slot is the same header followed by the frame at byte 48 (the
header length less the ``sockaddr_ll``, where the kernel looks without ``PACKET_TX_HAS_OFF``);
only ``tp_len`` and ``tp_status`` matter to the kernel, and ``tp_next_offset`` must be 0.

Header fields are host-endian, so they are read through ``uint16``/``uint32`` views of the
mapping (every field is aligned); frame bytes through the ``uint8`` view.

Memory ordering
---------------
The status words are the only synchronisation between this process and the kernel, as in
packet_mmap.rst: a block (RX) or slot (TX) belongs to whoever its status says.  The status is
read with an acquire load before anything it guards is read, and handed back with a release
store after everything it guards was read (RX) or written (TX) -- LLVM atomics, so neither the
compiler nor a weakly ordered CPU moves a frame access across the hand-over (on x86-64 both are
plain moves).

Counts
------
Each kernel adds to a small ``int64`` ``counts`` array, indexed by the ``RX_*`` / ``TX_*``
constants below, so the caller turns them into named link counters after one call.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from netfast.link.ring_config import TX_DATA_OFFSET

__all__ = [
    "BLOCK_HEADER_LEN",
    "RX_COUNTS",
    "TPACKET3_HDR_LEN",
    "TX_COUNTS",
    "rx_gather",
    "tx_scatter",
]

# tp_status / block_status bits (RX) and slot states (TX).
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_LOSING = 4
TP_STATUS_VLAN_VALID = 16
TP_STATUS_VLAN_TPID_VALID = 64
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
#: A TX slot is free when none of SEND_REQUEST, SENDING, WRONG_FORMAT is set (the high bits may
#: carry timestamp flags).
TX_BUSY_MASK = 1 | 2 | 4
PACKET_OUTGOING = 4

BLOCK_STATUS = 8
BLOCK_NUM_PKTS = 12
BLOCK_FIRST_PKT = 16
#: ``struct tpacket_block_desc`` with its ``tpacket_hdr_v1``, aligned: no frame starts before.
BLOCK_HEADER_LEN = 48

H3_SEC = 4
H3_NSEC = 8
H3_SNAPLEN = 12
H3_LEN = 16
H3_STATUS = 20
H3_MAC = 24
H3_VLAN_TCI = 32
H3_VLAN_TPID = 36
#: ``TPACKET_ALIGN(sizeof(struct tpacket3_hdr))``: where ``struct sockaddr_ll`` starts.
TPACKET3_HDR_LEN = 48
SLL_LEN = 20
SLL_PKTTYPE = TPACKET3_HDR_LEN + 10
# A TX slot's frame starts at TX_DATA_OFFSET (ring_config), which is TPACKET3_HDR_LEN.

# counts[] indexes of rx_gather ...
RX_OUTGOING = 0  # PACKET_OUTGOING copies skipped
RX_OVERSIZE = 1  # longer than the MTU allows, truncated by the kernel, or wider than a slot
RX_LOSING = 2  # blocks that arrived marked TP_STATUS_LOSING
RX_BYTES = 3  # bytes of the frames gathered
RX_CORRUPT = 4  # frames abandoned because a header pointed outside its block
RX_COUNTS = 5
# ... and of tx_scatter.
TX_RUNT = 0
TX_OVERSIZE = 1
TX_FULL = 2  # no free slot left
TX_BYTES = 3
TX_COUNTS = 4

_ETHER_HEADER_LEN = 14
_VLAN_TAG_LEN = 4


def _word_pointer(context: Any, builder: Any, sig: Any, args: Any) -> Any:  # pragma: no cover
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = context.cast(builder, args[1], sig.args[1], types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


def _u32_array(arr: Any, idx: Any) -> bool:
    return (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.dtype == types.uint32
        and isinstance(idx, types.Integer)
    )


def _load_acquire_typer(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover
    """``arr[idx]`` read with acquire ordering: nothing after it is read before it."""
    if not _u32_array(arr, idx):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _word_pointer(context, builder, sig, args)
        return builder.load_atomic(ptr, "acquire", 4, typ=ir.IntType(32))

    return types.uint32(arr, idx), codegen


def _store_release_typer(typingctx: Any, arr: Any, idx: Any, value: Any) -> Any:  # pragma: no cover
    """``arr[idx] = value`` with release ordering: nothing before it is written after it."""
    if not (_u32_array(arr, idx) and isinstance(value, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _word_pointer(context, builder, sig, args)
        val = context.cast(builder, args[2], sig.args[2], types.uint32)
        builder.store_atomic(val, ptr, "release", 4)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


_load_acquire: Any = intrinsic(_load_acquire_typer)
_store_release: Any = intrinsic(_store_release_typer)


@numba.njit(nogil=True, cache=True, inline="always")
def _too_big(length: Any, hi: Any, lo: Any, mtu: Any) -> bool:  # pragma: no cover - compiled
    """:func:`netfast.link.base.frame_too_big` for a frame whose bytes 12-13 are ``hi, lo``."""
    limit = mtu + _ETHER_HEADER_LEN
    if length > limit and ((hi == 0x81 and lo == 0x00) or (hi == 0x88 and lo == 0xA8)):
        limit += _VLAN_TAG_LEN
    return length > limit


@numba.njit(nogil=True, cache=True)
def rx_gather(
    ring8: Any,
    ring16: Any,
    ring32: Any,
    state: Any,
    block_size: int,
    block_count: int,
    mtu: int,
    out_data: Any,
    out_len: Any,
    out_ts: Any,
    max_out: int,
    counts: Any,
) -> int:  # pragma: no cover - compiled
    """Copy up to ``max_out`` frames from the ready blocks into rows ``0..n-1`` of ``out_data``
    / ``out_len`` / ``out_ts``; returns ``n``.

    ``state`` (int64[3]) is the walk's position kept between calls: the block, the frames of it
    already taken and the offset of the next one.  Starting there, blocks whose status has
    ``TP_STATUS_USER`` are walked in ring order, at most ``block_count`` of them; a block is
    handed back (``TP_STATUS_KERNEL``) as soon as its last frame was taken, so a batch that
    ends inside a block keeps only that block.  Skipped, never copied: ``PACKET_OUTGOING``
    copies (``RX_OUTGOING``), frames the kernel truncated, longer than ``mtu`` allows
    (:func:`netfast.link.base.frame_too_big`) or wider than a row (``RX_OVERSIZE``).

    A frame the kernel stripped an 802.1Q/802.1ad tag from (``TP_STATUS_VLAN_VALID``) gets the
    tag back in the row, so the row is the frame as it was on the wire.  Each row is left
    zero beyond its length: only the bytes between the new length and the length the row held
    before (``out_len``, zero in a fresh batch) are cleared.
    """
    n = 0
    slot = out_data.shape[1]
    for _ in range(block_count):
        block = state[0]
        base = block * block_size
        status = _load_acquire(ring32, (base + BLOCK_STATUS) >> 2)
        if status & TP_STATUS_USER == 0:
            break
        num = np.int64(ring32[(base + BLOCK_NUM_PKTS) >> 2])
        pkt = state[1]
        off = state[2]
        if pkt == 0:
            off = np.int64(ring32[(base + BLOCK_FIRST_PKT) >> 2])
            if status & TP_STATUS_LOSING:
                counts[RX_LOSING] += 1
        while pkt < num:
            if n >= max_out:
                state[1] = pkt
                state[2] = off
                return n
            if off < BLOCK_HEADER_LEN or off + TPACKET3_HDR_LEN + SLL_LEN > block_size:
                counts[RX_CORRUPT] += num - pkt
                break
            h = base + off
            nxt = np.int64(ring32[h >> 2])
            snap = np.int64(ring32[(h + H3_SNAPLEN) >> 2])
            wire = np.int64(ring32[(h + H3_LEN) >> 2])
            fstatus = ring32[(h + H3_STATUS) >> 2]
            mac = np.int64(ring16[(h + H3_MAC) >> 1])
            if mac < TPACKET3_HDR_LEN or mac + snap > block_size - off:
                counts[RX_CORRUPT] += num - pkt
                break
            pkt += 1
            off += nxt
            if ring8[h + SLL_PKTTYPE] == PACKET_OUTGOING:
                counts[RX_OUTGOING] += 1
                continue
            src = h + mac
            tagged = (fstatus & TP_STATUS_VLAN_VALID) != 0 and snap >= 12
            flen = wire
            tpid = np.int64(0)
            tci = np.int64(0)
            if tagged:
                tpid = np.int64(0x8100)
                if fstatus & TP_STATUS_VLAN_TPID_VALID:
                    tpid = np.int64(ring16[(h + H3_VLAN_TPID) >> 1])
                tci = np.int64(ring32[(h + H3_VLAN_TCI) >> 2]) & 0xFFFF
                flen = wire + _VLAN_TAG_LEN
                too_big = _too_big(flen, tpid >> 8, tpid & 0xFF, mtu)
            elif snap >= 14:
                too_big = _too_big(flen, ring8[src + 12], ring8[src + 13], mtu)
            else:
                too_big = _too_big(flen, 0, 0, mtu)
            if snap < wire or flen > slot or too_big:
                counts[RX_OVERSIZE] += 1
                continue
            row = out_data[n]
            if tagged:
                row[0:12] = ring8[src : src + 12]
                row[12] = tpid >> 8
                row[13] = tpid & 0xFF
                row[14] = tci >> 8
                row[15] = tci & 0xFF
                row[16:flen] = ring8[src + 12 : src + wire]
            else:
                row[0:flen] = ring8[src : src + wire]
            old = np.int64(out_len[n])
            if old > flen:
                row[flen:old] = 0
            out_len[n] = flen
            sec = np.int64(ring32[(h + H3_SEC) >> 2])
            out_ts[n] = sec * 1_000_000_000 + np.int64(ring32[(h + H3_NSEC) >> 2])
            counts[RX_BYTES] += flen
            n += 1
        _store_release(ring32, (base + BLOCK_STATUS) >> 2, TP_STATUS_KERNEL)
        state[0] = (block + 1) % block_count
        state[1] = 0
        state[2] = 0
    return n


@numba.njit(nogil=True, cache=True)
def tx_scatter(
    ring8: Any,
    ring32: Any,
    slot_off: Any,
    head: int,
    data: Any,
    length: Any,
    rows: Any,
    mtu: int,
    capacity: int,
    counts: Any,
) -> int:  # pragma: no cover - compiled
    """Write ``data[rows]`` into the TX slots from ``head`` on, in order; returns how many went.

    ``slot_off[k]`` is slot ``k``'s byte offset in the mapping.  Rows shorter than an Ethernet
    header (``TX_RUNT``), longer than ``mtu`` allows or than a slot holds (``capacity`` bytes)
    (``TX_OVERSIZE``) are skipped.  Slots are used in ring order only -- the kernel walks them
    that way -- so the first slot still in flight ends the batch: that row and every later
    valid row count as ``TX_FULL``.  Each slot gets the frame, ``tp_len`` and ``tp_snaplen``,
    and then ``TP_STATUS_SEND_REQUEST`` (release); nothing is sent until the caller's
    ``send()``.
    """
    nslots = slot_off.shape[0]
    used = 0
    full = False
    width = data.shape[1]
    for j in range(rows.shape[0]):
        r = rows[j]
        size = np.int64(length[r])
        if size < _ETHER_HEADER_LEN:
            counts[TX_RUNT] += 1
            continue
        if size > width or size > capacity or _too_big(size, data[r, 12], data[r, 13], mtu):
            counts[TX_OVERSIZE] += 1
            continue
        o = np.int64(0)
        if not full:
            if used >= nslots:
                full = True
            else:
                o = slot_off[(head + used) % nslots]
                if _load_acquire(ring32, (o + H3_STATUS) >> 2) & TX_BUSY_MASK:
                    full = True
        if full:
            counts[TX_FULL] += 1
            continue
        ring8[o + TX_DATA_OFFSET : o + TX_DATA_OFFSET + size] = data[r, :size]
        ring32[o >> 2] = 0
        ring32[(o + H3_SNAPLEN) >> 2] = size
        ring32[(o + H3_LEN) >> 2] = size
        _store_release(ring32, (o + H3_STATUS) >> 2, TP_STATUS_SEND_REQUEST)
        used += 1
        counts[TX_BYTES] += size
    return used
