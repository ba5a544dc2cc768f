"""The geometry of a packet-ring link (:class:`netfast.link.ring.RingLink`) as a plain value,
with the checks that tell whether it can serve a link of a given MTU.

Kept apart from the link itself so the router's configuration (:mod:`netfast.router.config`)
can describe and check rings without loading the compiled ring walks.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

__all__ = ["PAGE_SIZE", "TX_DATA_OFFSET", "RingConfig", "align", "max_frame_len"]

#: Where a TX slot's frame starts: after the aligned ``struct tpacket3_hdr``, where the kernel
#: looks without ``PACKET_TX_HAS_OFF`` (``TPACKET3_HDRLEN - sizeof(struct sockaddr_ll)``).
TX_DATA_OFFSET = 48
_ETHER_HEADER_LEN = 14
_VLAN_TAG_LEN = 4

PAGE_SIZE = mmap.PAGESIZE
#: Room a block needs besides one frame: its own header and the gap the kernel leaves before
#: the frame (``tp_mac``: the aligned tpacket3 and sockaddr_ll headers, about 82 bytes).
_BLOCK_OVERHEAD = 256
#: Bounds that keep a typo from asking the kernel for gigabytes.
MAX_RX_BYTES = 1 << 30
MAX_TX_BYTES = 1 << 28
MAX_TX_FRAME = 1 << 17
MAX_RETIRE_MS = 10_000


def max_frame_len(mtu: int) -> int:
    """The longest frame a link of this MTU carries: header, payload and one VLAN tag."""
    return mtu + _ETHER_HEADER_LEN + _VLAN_TAG_LEN


def align(n: int, to: int) -> int:
    """``n`` rounded up to a multiple of ``to``."""
    return -(-n // to) * to


@dataclass(frozen=True, slots=True)
class RingConfig:
    """The geometry of a :class:`RingLink`'s rings.

    Attributes
    ----------
    block_size, block_count
        The RX ring: ``block_count`` blocks of ``block_size`` bytes (a multiple of the page
        size), 4 MiB by default.  A block holds frames of any size back to back (about 450
        minimum-size frames in 64 KiB) and is handed over when full or when its timer
        (``retire_ms``, started when the kernel opens it) runs out with frames in it, so on a
        slow link every block may hold only a few frames: while the
        reader stalls, the ring absorbs ``block_count`` block timeouts' worth of traffic at low
        rates and ``block_size * block_count`` bytes at high ones.  More, smaller blocks also
        mean less held back when a batch ends inside a block.
    retire_ms
        How long the kernel fills a block before handing it over part-full: the receive
        latency on a quiet link.
    tx_frame_size
        Bytes per TX slot (header and frame, a multiple of 16); None: 2048, or more when the
        MTU needs it.
    tx_frames
        TX slots (rounded up to fill whole blocks): how many frames can be in flight.
    qdisc_bypass
        Ask for ``PACKET_QDISC_BYPASS`` (ignored where the kernel refuses it).
    """

    block_size: int = 1 << 16
    block_count: int = 64
    retire_ms: int = 2
    tx_frame_size: int | None = None
    tx_frames: int = 512
    qdisc_bypass: bool = True

    def frame_size(self, mtu: int) -> int:
        """The TX slot size for a link of this MTU."""
        if self.tx_frame_size is not None:
            return self.tx_frame_size
        return max(2048, align(TX_DATA_OFFSET + max_frame_len(mtu), 64))

    def problems(self, mtu: int) -> list[tuple[str, str]]:
        """Why this geometry cannot serve a link of this MTU: ``(field, problem)`` pairs,
        empty when it can."""
        out: list[tuple[str, str]] = []
        largest = max_frame_len(mtu)
        bs, bc = self.block_size, self.block_count
        if bs < PAGE_SIZE or bs % PAGE_SIZE:
            out.append(("block_size", f"{bs} is not a multiple of the page size ({PAGE_SIZE})"))
        elif bs < _BLOCK_OVERHEAD + largest:
            out.append(("block_size", f"{bs} cannot hold one {largest}-byte frame (MTU {mtu})"))
        if not 1 <= bc <= MAX_RX_BYTES // PAGE_SIZE:
            out.append(("block_count", f"{bc} is outside 1..{MAX_RX_BYTES // PAGE_SIZE}"))
        elif bs * bc > MAX_RX_BYTES:
            out.append(("block_count", f"{bc} blocks of {bs} bytes exceed {MAX_RX_BYTES} bytes"))
        if not 1 <= self.retire_ms <= MAX_RETIRE_MS:
            out.append(("retire_ms", f"{self.retire_ms} is outside 1..{MAX_RETIRE_MS}"))
        fs = self.frame_size(mtu)
        if fs % 16 or not TX_DATA_OFFSET + largest <= fs <= MAX_TX_FRAME:
            out.append(
                (
                    "tx_frame_size",
                    f"{fs} must be a multiple of 16 from {TX_DATA_OFFSET + largest} (a "
                    f"{largest}-byte frame behind the {TX_DATA_OFFSET}-byte slot header) to "
                    f"{MAX_TX_FRAME}",
                )
            )
        if not self.tx_frames >= 1 or self.tx_frames * max(fs, 1) > MAX_TX_BYTES:
            out.append(("tx_frames", f"{self.tx_frames} slots: from 1 to {MAX_TX_BYTES} bytes"))
        return out
