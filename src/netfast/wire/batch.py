"""Batch form of frames for the vector path: fixed slots in a 2-D numpy array, viewed as columns.

The paper's cache-prefetch section is about hiding the memory latency of the first touch of every
packet header.  In Python the same effect comes from batching: a batch of frames sits in one
contiguous ``(N, slot)`` uint8 array, and every stage of the router runs over whole columns
(``batch.headers["dst"]``, ``batch.headers["ttl"]``) with numpy/numba kernels instead of touching
packets one at a time.

Layout
------
Each frame occupies one row ("slot") of ``data``; ``length[i]`` is its real length, the rest of
the row is zero.  :data:`ETH_IPV4_L4` is a numpy structured dtype whose itemsize is the slot size
and whose fields sit at the offsets of an untagged Ethernet II + option-less IPv4 + TCP/UDP/ICMP
frame.  ``data.view(dtype)`` is a zero-copy view: reading a column reads the frames, assigning to
a column writes the frames in place.  Fields are big-endian as on the wire (numpy converts on
read).  The L4 columns are only meaningful where ``ihl == 5``: a frame with IP options, an 802.1Q
tag or anything else unusual is detected by :func:`fast_path_mask` and handed to the scalar path.
L4 fields overlap (``tcp_seq`` and ``udp_len`` share bytes 38-39); which one applies depends on
``proto``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from netfast.wire.checksum import batch_ones_sum

#: Slot size: room for a 1500-byte IP packet, Ethernet header and an 802.1Q tag, 64-byte aligned.
DEFAULT_SLOT = 1536

ETH_LEN = 14
IPV4_OFF = ETH_LEN
L4_OFF = ETH_LEN + 20

# (name, format, offset) of every column of ETH_IPV4_L4.
_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("eth_dst", "6u1", 0),
    ("eth_src", "6u1", 6),
    ("ethertype", ">u2", 12),
    ("ver_ihl", "u1", 14),
    ("tos", "u1", 15),
    ("total_length", ">u2", 16),
    ("ident", ">u2", 18),
    ("frag", ">u2", 20),
    ("ttl", "u1", 22),
    ("proto", "u1", 23),
    ("ip_checksum", ">u2", 24),
    ("src", ">u4", 26),
    ("dst", ">u4", 30),
    # L4, valid for ihl == 5
    ("sport", ">u2", 34),
    ("dport", ">u2", 36),
    ("tcp_seq", ">u4", 38),
    ("tcp_ack", ">u4", 42),
    ("tcp_off", "u1", 46),
    ("tcp_flags", "u1", 47),
    ("tcp_window", ">u2", 48),
    ("tcp_checksum", ">u2", 50),
    ("tcp_urgent", ">u2", 52),
    ("udp_length", ">u2", 38),
    ("udp_checksum", ">u2", 40),
    ("icmp_type", "u1", 34),
    ("icmp_code", "u1", 35),
    ("icmp_checksum", ">u2", 36),
    ("icmp_ident", ">u2", 38),
    ("icmp_seq", ">u2", 40),
)


def header_dtype(slot: int = DEFAULT_SLOT) -> np.dtype:
    """The Ethernet+IPv4+L4 column dtype for rows of ``slot`` bytes."""
    if slot < 64:
        raise ValueError(f"slot must hold at least 64 bytes, got {slot}")
    return np.dtype(
        {
            "names": [f[0] for f in _FIELDS],
            "formats": [f[1] for f in _FIELDS],
            "offsets": [f[2] for f in _FIELDS],
            "itemsize": slot,
        }
    )


#: The column dtype for the default slot size.
ETH_IPV4_L4 = header_dtype(DEFAULT_SLOT)


@dataclass(slots=True)
class FrameBatch:
    """``n`` frames in fixed slots.

    Attributes
    ----------
    data:
        ``(n, slot)`` uint8 array, one frame per row, zero beyond its length.
    length:
        ``(n,)`` uint32 array of frame lengths.
    timestamp_ns:
        ``(n,)`` int64 array of receive times (0 when unknown).
    """

    data: npt.NDArray[np.uint8]
    length: npt.NDArray[np.uint32]
    timestamp_ns: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, n: int, slot: int = DEFAULT_SLOT) -> FrameBatch:
        return cls(np.zeros((n, slot), np.uint8), np.zeros(n, np.uint32), np.zeros(n, np.int64))

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[bytes | bytearray | memoryview],
        slot: int = DEFAULT_SLOT,
        timestamps_ns: Iterable[int] | None = None,
    ) -> FrameBatch:
        """Copy ``frames`` into slots.  A frame longer than ``slot`` raises ``ValueError``:
        the caller decides whether giants go to the scalar path or are dropped."""
        n = len(frames)
        if n == 0:
            return cls.empty(0, slot)
        lengths = np.fromiter(map(len, frames), np.uint32, n)
        if int(lengths.max()) > slot:
            i = int(lengths.argmax())
            raise ValueError(f"frame {i} is {int(lengths[i])} bytes, larger than the slot ({slot})")
        # One join plus one compiled copy into the slots (zeroing each row's tail).
        flat = np.frombuffer(b"".join(frames), np.uint8)
        batch = cls(np.empty((n, slot), np.uint8), np.empty(n, np.uint32), np.zeros(n, np.int64))
        _fill_slots(flat, lengths, batch.data)
        batch.length[:] = lengths
        if timestamps_ns is not None:
            batch.timestamp_ns[:] = np.fromiter(timestamps_ns, np.int64, n)
        return batch

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def slot(self) -> int:
        return int(self.data.shape[1])

    @property
    def headers(self) -> np.ndarray:
        """Zero-copy column view (structured array of shape ``(n,)``, dtype ETH_IPV4_L4)."""
        return self.data.view(header_dtype(self.slot)).reshape(len(self))

    def frame(self, i: int) -> bytes:
        return self.data[i, : self.length[i]].tobytes()

    def frames(self) -> Iterator[bytes]:
        """Each frame as bytes, in row order (one copy of the slots, then a slice per frame)."""
        flat = np.ascontiguousarray(self.data).tobytes()
        width = self.slot
        at = 0
        for n in self.length.tolist():
            yield flat[at : at + n]
            at += width

    def select(self, mask: npt.NDArray[np.bool_]) -> FrameBatch:
        """A new batch holding the rows where ``mask`` is true (copies)."""
        return FrameBatch(self.data[mask], self.length[mask], self.timestamp_ns[mask])


@numba.njit(nogil=True, cache=True)
def _fill_slots(flat: npt.NDArray[np.uint8], lengths: npt.NDArray[np.uint32],
                out: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled  # fmt: skip
    """Row i of ``out`` = the next ``lengths[i]`` bytes of ``flat``, then zeros."""
    at = np.int64(0)
    width = out.shape[1]
    for i in range(out.shape[0]):
        ln = np.int64(lengths[i])
        row = out[i]
        row[:ln] = flat[at : at + ln]
        row[ln:width] = 0
        at += ln


def fast_path_mask(batch: FrameBatch) -> npt.NDArray[np.bool_]:
    """Rows the column view describes exactly: untagged IPv4, no options, whole header present.

    Anything else (ARP, VLAN tags, IP options, runts) belongs to the scalar path.  This is a
    shape test only; the integrity checks of RFC 1812 are the ip layer's job.
    """
    h = batch.headers
    return (
        (h["ethertype"] == 0x0800)
        & (h["ver_ihl"] == 0x45)
        & (batch.length >= L4_OFF)
        & (h["total_length"].astype(np.int64) + ETH_LEN <= batch.length)
    )


def ipv4_header_sums(batch: FrameBatch) -> npt.NDArray[np.uint16]:
    """One's complement sum of each row's IPv4 header (length from IHL, clipped to the frame);
    a valid header sums to 0xFFFF."""
    ihl = (batch.data[:, IPV4_OFF] & 0x0F).astype(np.int64) * 4
    ln = np.clip(np.minimum(ihl, batch.length.astype(np.int64) - IPV4_OFF), 0, None)
    return batch_ones_sum(batch.data, IPV4_OFF, ln)


def l4_checksum_sums(batch: FrameBatch) -> npt.NDArray[np.uint16]:
    """One's complement sum over pseudo-header + TCP/UDP segment for every option-less IPv4 row
    (segment length from ``total_length``); a valid TCP/UDP checksum sums to 0xFFFF.  For ICMP
    rows the sum is over the ICMP message alone.  Rows outside :func:`fast_path_mask` get 0."""
    h = batch.headers
    ok = fast_path_mask(batch)
    proto = h["proto"].astype(np.int64)
    seg_len = np.where(ok, h["total_length"].astype(np.int64) - 20, 0)
    src = h["src"].astype(np.int64)
    dst = h["dst"].astype(np.int64)
    pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + seg_len
    pseudo = np.where(proto == 1, 0, pseudo)
    pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    sums = batch_ones_sum(batch.data, L4_OFF, seg_len, pseudo.astype(np.uint32))
    return np.where(ok, sums, 0).astype(np.uint16)
