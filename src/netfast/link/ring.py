"""An existing Linux interface as a netfast link through AF_PACKET packet rings (PACKET_MMAP):
frames in and out through memory shared with the kernel instead of one system call per frame.

:class:`RingLink` is an :class:`~netfast.link.afpacket.AfPacketLink` with the copies moved into
mapped rings (packet(7), Documentation/networking/packet_mmap.rst):

- Receive: a ``TPACKET_V3`` ring of ``block_count`` blocks of ``block_size`` bytes.  The kernel
  fills a block with frames of any size and hands it over whole (``TP_STATUS_USER``) when it is
  full or its ``retire_ms`` timer runs out with frames in it; ``poll``/``select`` on
  :meth:`RingLink.fileno` wakes when a block is ready.  :meth:`RingLink.recv_frame_batch`
  copies frames out of the ready blocks into a :class:`~netfast.wire.batch.FrameBatch` with
  one compiled gather (:func:`netfast.link.ring_kernels.rx_gather`) and returns each block to
  the kernel as soon as its last frame is copied.
- Send: a TX ring of ``tx_frames`` fixed slots on the same socket.
  :meth:`RingLink.send_frame_batch` writes a batch's rows into free slots with one compiled
  scatter, marks them ``TP_STATUS_SEND_REQUEST`` and issues ONE ``send()``, in which the kernel
  transmits them all.  ``PACKET_QDISC_BYPASS`` is asked for when ``qdisc_bypass`` (the
  default): frames go straight to the driver, so no qdisc queues them and other packet sockets
  on the interface (tcpdump) no longer see them.  ``PACKET_LOSS`` is set, so a frame the kernel
  refuses cannot stall the ring (the link checks every frame before it takes a slot, so none
  should be refused).

Everything else is AfPacketLink's: the socket is created with protocol 0 and bound with
``ETH_P_ALL`` only after the rings exist (nothing reaches it before); ``PACKET_IGNORE_OUTGOING``
is set where the kernel has it and ``PACKET_OUTGOING`` copies are skipped and counted otherwise;
promiscuous mode through ``PACKET_ADD_MEMBERSHIP``; the MTU is the interface's unless given.

Counters (the names every link uses, plus the ring's own)
---------------------------------------------------------
``rx.frames``, ``rx.bytes``, ``tx.frames``, ``tx.bytes``, ``rx.outgoing``; drops:
``drop.rx_oversize`` (longer than the MTU allows, or truncated by the kernel -- a GSO/GRO
super-frame larger than a block), ``drop.rx_ring`` (frames the kernel had to drop because every
block was still ours: ``tp_drops`` of ``PACKET_STATISTICS``), ``drop.rx_ring_corrupt`` (a frame
header pointing outside its block; never seen, but a compiled walk checks before it copies),
``drop.oversize``, ``drop.runt``, ``drop.tx_ring_full`` (no free TX slot: the frame is dropped,
never waited for -- a router must not stall its other ports behind one busy egress),
``drop.busy`` (the kernel could not take a frame: socket buffer or device queue full),
``drop.error``, ``drop.closed``.  Ring statistics: ``rx.ring_offered`` (frames the kernel offered
the ring, dropped ones included: ``tp_packets``), ``rx.ring_freezes`` (times the kernel found
every block in use: ``tp_freeze_q_cnt``), ``rx.ring_losing`` (blocks that arrived marked
``TP_STATUS_LOSING``, i.e. after a drop).  The kernel's statistics are read (and reset, as
``getsockopt`` does) whenever a block arrives marked losing, whenever :attr:`RingLink.counters`
is read, and on close, so once everything was read ``rx.ring_offered == rx.frames + rx.outgoing
+ drop.rx_oversize + drop.rx_ring_corrupt + drop.rx_ring``: no frame disappears unaccounted.

A frame sent is one the kernel took from its slot; what the driver does with it afterwards (a
veth whose peer's backlog is full drops it and counts it there) is as invisible here as it is to
AfPacketLink.  ``drop.busy`` frames are taken back from their slots, so they are never sent
later behind the caller's back.

:func:`open_packet_link` opens a RingLink and falls back to an AfPacketLink, saying so once and
counting ``link.ring_fallback``, when the kernel refuses the rings (no ``TPACKET_V3`` or TX ring
support, no memory for the blocks, mmap refused).  A RingLink is not thread-safe: one thread
sends and receives on it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from mmap import mmap as _mmap

import numpy as np
import numpy.typing as npt

from netfast.link.afpacket import (
    ETH_P_ALL,
    PACKET_IGNORE_OUTGOING,
    SOL_PACKET,
    AfPacketLink,
    interface_mtu,
    join_promiscuous,
)
from netfast.link.base import ETHER_HEADER_LEN, Frame, Link, frame_too_big
from netfast.link.ring_config import (
    PAGE_SIZE,
    TX_DATA_OFFSET,
    RingConfig,
    align,
    max_frame_len,
)
from netfast.link.ring_kernels import (
    RX_BYTES,
    RX_CORRUPT,
    RX_COUNTS,
    RX_LOSING,
    RX_OUTGOING,
    RX_OVERSIZE,
    TX_BYTES,
    TX_COUNTS,
    TX_FULL,
    TX_OVERSIZE,
    TX_RUNT,
    rx_gather,
    tx_scatter,
)
from netfast.wire.batch import FrameBatch

__all__ = ["RingConfig", "RingLink", "RingUnavailable", "open_packet_link"]

log = logging.getLogger(__name__)

PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_QDISC_BYPASS = 20
TPACKET_V3 = 2
SO_SNDBUFFORCE = 32
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_AVAILABLE = 0
_H3_LEN_WORD = 16 // 4  # tp_len, in 32-bit words from a slot's start
_H3_STATUS_WORD = 20 // 4


class RingUnavailable(OSError):
    """The kernel refused the packet rings (a setsockopt or the mmap failed); a plain AF_PACKET
    socket may still work (:func:`open_packet_link` falls back to one)."""


def _new_socket() -> socket.socket:
    # Protocol 0: nothing is received until bind() names the interface and ETH_P_ALL.
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)


class RingLink:
    """Frames in and out of an existing interface through TPACKET_V3 packet rings.

    Parameters
    ----------
    ifname, promiscuous, mtu
        As for :class:`~netfast.link.afpacket.AfPacketLink`.
    config
        The rings' geometry (default :class:`RingConfig`).

    Raises
    ------
    ValueError
        ``config`` cannot serve this MTU (:meth:`RingConfig.problems`).
    RingUnavailable
        The kernel refused the rings or their mapping.
    OSError
        Anything else a plain AF_PACKET socket would fail on too (no such interface, no
        permission to open packet sockets).

    Attributes
    ----------
    counters
        See the module docstring; reading it first folds in the kernel's ring statistics.
    slot
        The row width of the batches :meth:`recv_frame_batch` returns: the longest frame the
        MTU allows, rounded up to 64 bytes.
    tx_slots
        TX slots in the ring.
    config
        The geometry it was opened with.
    """

    def __init__(
        self,
        ifname: str,
        promiscuous: bool = False,
        mtu: int | None = None,
        config: RingConfig | None = None,
    ) -> None:
        self._name = ifname
        self._counters: Counter[str] = Counter()
        self._closed = True
        cfg = config if config is not None else RingConfig()
        socket.if_nametoindex(ifname)  # OSError when there is no such interface
        sock = _new_socket()
        mapping: _mmap | None = None
        try:
            self._mtu = mtu if mtu is not None else interface_mtu(sock, ifname)
            problems = cfg.problems(self._mtu)
            if problems:
                raise ValueError(
                    f"{ifname}: ring geometry: " + "; ".join(f"{k}: {p}" for k, p in problems)
                )
            mapping = self._map_rings(sock, cfg)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            if cfg.qdisc_bypass:
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            # Every frame in flight holds socket send buffer until the driver frees it; room for
            # the whole ring keeps the buffer from refusing what the ring accepted.
            sndbuf = self.tx_slots * (self._tx_frame + 1024)
            for opt in (SO_SNDBUFFORCE, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, sndbuf)
                    break
                except OSError:
                    continue
            if promiscuous:
                join_promiscuous(sock, ifname)
        except BaseException:
            self._release_views()
            if mapping is not None:
                with contextlib.suppress(BufferError):
                    mapping.close()
            sock.close()
            raise
        self._sock = sock
        self._mm = mapping
        self._closed = False
        self.config = cfg
        self._slot = align(max_frame_len(self._mtu), 64)
        self._scratch = FrameBatch.empty(0, self._slot)

    # -- setup ---------------------------------------------------------------------------------

    def _map_rings(self, sock: socket.socket, cfg: RingConfig) -> _mmap:
        """Version, RX ring, TX ring and the mapping of both; RingUnavailable naming the step
        the kernel refused."""
        rx_frame = 2048  # V3 places frames freely; the kernel only checks the arithmetic
        rx_req = struct.pack(
            "7I",
            cfg.block_size,
            cfg.block_count,
            rx_frame,
            cfg.block_size // rx_frame * cfg.block_count,
            cfg.retire_ms,
            0,
            0,
        )
        frame = cfg.frame_size(self._mtu)
        tx_block = align(frame, PAGE_SIZE)
        per_block = tx_block // frame
        tx_blocks = -(-cfg.tx_frames // per_block)
        tx_req = struct.pack("7I", tx_block, tx_blocks, frame, per_block * tx_blocks, 0, 0, 0)
        rx_bytes = cfg.block_size * cfg.block_count
        size = rx_bytes + tx_block * tx_blocks
        steps: list[tuple[str, int, bytes | int]] = [
            ("PACKET_VERSION TPACKET_V3", PACKET_VERSION, TPACKET_V3),
            ("PACKET_LOSS", PACKET_LOSS, 1),
            ("PACKET_RX_RING", PACKET_RX_RING, rx_req),
            ("PACKET_TX_RING", PACKET_TX_RING, tx_req),
        ]
        for what, opt, value in steps:
            try:
                sock.setsockopt(SOL_PACKET, opt, value)
            except OSError as exc:
                raise RingUnavailable(exc.errno, f"{what}: {exc.strerror or exc}") from exc
        try:
            mapping = _mmap(sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise RingUnavailable(exc.errno, f"mmap of {size} bytes: {exc.strerror}") from exc
        ring8 = np.frombuffer(mapping, np.uint8)
        self._ring8 = ring8
        self._ring16 = ring8.view(np.uint16)
        self._ring32 = ring8.view(np.uint32)
        self._block_size = cfg.block_size
        self._block_count = cfg.block_count
        self._rx_state = np.zeros(3, np.int64)
        self._rx_counts = np.zeros(RX_COUNTS, np.int64)
        k = np.arange(per_block * tx_blocks, dtype=np.int64)
        self._tx_off = rx_bytes + (k // per_block) * tx_block + (k % per_block) * frame
        self._tx_frame = frame
        self._tx_head = 0
        self._tx_counts = np.zeros(TX_COUNTS, np.int64)
        return mapping

    def _release_views(self) -> None:
        empty = np.zeros(0, np.uint8)
        self._ring8 = empty
        self._ring16 = empty.view(np.uint16)
        self._ring32 = empty.view(np.uint32)

    # -- the Link interface ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def counters(self) -> Counter[str]:
        """The link's counters, with the kernel's ring statistics read first."""
        self._read_statistics()
        return self._counters

    @property
    def slot(self) -> int:
        return self._slot

    @property
    def tx_slots(self) -> int:
        return len(self._tx_off)

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        """Up to ``max_frames`` frames from the RX ring as bytes; never blocks."""
        if len(self._scratch) < max_frames:
            self._scratch = FrameBatch.empty(max_frames, self.slot)
        batch = self.recv_frame_batch(max_frames, self._scratch)
        return [batch.data[i, : batch.length[i]].tobytes() for i in range(len(batch))]

    def send(self, frames: Iterable[Frame]) -> int:
        """Transmit frames through the TX ring, one ``send()`` for all; returns how many the
        kernel took."""
        todo = list(frames)
        if self._closed:
            self._counters["drop.closed"] += len(todo)
            return 0
        good: list[Frame] = []
        for frame in todo:
            if len(frame) < ETHER_HEADER_LEN:
                self._counters["drop.runt"] += 1
            elif frame_too_big(frame, self._mtu):
                self._counters["drop.oversize"] += 1
            else:
                good.append(frame)
        if not good:
            return 0
        width = align(max(len(f) for f in good), 64)
        return self.send_frame_batch(FrameBatch.from_frames(good, width))

    # -- batches -------------------------------------------------------------------------------

    def recv_frame_batch(self, max_frames: int = 256, out: FrameBatch | None = None) -> FrameBatch:
        """Up to ``max_frames`` frames from the ready RX blocks, copied into one batch by one
        compiled gather; never blocks.

        The batch's rows are :attr:`slot` bytes wide (every frame the MTU allows fits) and zero
        beyond each frame; ``timestamp_ns`` holds the kernel's receive times.  With ``out``
        (rows at least :attr:`slot` wide) the frames go into ``out`` and the result is a view of
        its first rows; ``out`` must be a batch whose rows are zero beyond their lengths (one
        from :meth:`FrameBatch.empty` and only ever passed here keeps that), and the view is
        valid until ``out`` is used again.
        """
        if out is None:
            batch = FrameBatch.empty(max(0, max_frames), self.slot)
        else:
            if out.slot < self.slot:
                raise ValueError(f"out has {out.slot}-byte rows; this link needs {self.slot}")
            batch = out
        cap = min(max_frames, len(batch))
        if self._closed or cap <= 0:
            return FrameBatch(batch.data[:0], batch.length[:0], batch.timestamp_ns[:0])
        counts = self._rx_counts
        counts[:] = 0
        n = rx_gather(
            self._ring8,
            self._ring16,
            self._ring32,
            self._rx_state,
            self._block_size,
            self._block_count,
            self._mtu,
            batch.data,
            batch.length,
            batch.timestamp_ns,
            cap,
            counts,
        )
        c = self._counters
        if n:
            c["rx.frames"] += n
            c["rx.bytes"] += int(counts[RX_BYTES])
        for index, name in (
            (RX_OUTGOING, "rx.outgoing"),
            (RX_OVERSIZE, "drop.rx_oversize"),
            (RX_CORRUPT, "drop.rx_ring_corrupt"),
            (RX_LOSING, "rx.ring_losing"),
        ):
            if counts[index]:
                c[name] += int(counts[index])
        if counts[RX_LOSING]:
            self._read_statistics()
        return FrameBatch(batch.data[:n], batch.length[:n], batch.timestamp_ns[:n])

    def send_frame_batch(self, batch: FrameBatch, rows: npt.NDArray[np.intp] | None = None) -> int:
        """Send the batch's rows (or ``rows`` of it, in that order) through the TX ring: one
        compiled scatter into free slots, one ``send()``; returns how many the kernel took.

        Runts and frames too long for the MTU are dropped and counted as :meth:`send` does;
        rows beyond the free slots count as ``drop.tx_ring_full`` (no waiting); frames the
        kernel could not take now (``drop.busy``) are taken back from the ring."""
        n = len(batch) if rows is None else len(rows)
        if self._closed:
            self._counters["drop.closed"] += n
            return 0
        if n == 0:
            return 0
        idx = np.arange(n, dtype=np.intp) if rows is None else np.asarray(rows, np.intp)
        counts = self._tx_counts
        counts[:] = 0
        first = self._tx_head
        used = int(
            tx_scatter(
                self._ring8,
                self._ring32,
                self._tx_off,
                first,
                batch.data,
                batch.length,
                idx,
                self._mtu,
                self._tx_frame - TX_DATA_OFFSET,
                counts,
            )
        )
        c = self._counters
        for index, name in (
            (TX_RUNT, "drop.runt"),
            (TX_OVERSIZE, "drop.oversize"),
            (TX_FULL, "drop.tx_ring_full"),
        ):
            if counts[index]:
                c[name] += int(counts[index])
        if used == 0:
            return 0
        self._tx_head = (first + used) % self.tx_slots
        sent_bytes = int(counts[TX_BYTES])
        # A socket error left pending (ENETDOWN after the interface went down and up again) is
        # reported once, by the first frame sent; the second try sends the batch.
        reason = self._kick() and self._kick()
        back, back_bytes = self._take_back(first, used)
        if back:
            c[f"drop.{reason or 'busy'}"] += back
        c["tx.frames"] += used - back
        c["tx.bytes"] += sent_bytes - back_bytes
        return used - back

    def _kick(self) -> str | None:
        """``send()``: the kernel sends every frame marked ``TP_STATUS_SEND_REQUEST`` from its
        ring head on.  None, or the drop reason of the error that stopped it."""
        try:
            self._sock.send(b"")
        except (BlockingIOError, InterruptedError):
            return "busy"
        except OSError as exc:
            return "busy" if exc.errno in (errno.ENOBUFS, errno.EAGAIN) else "error"
        return None

    def _take_back(self, first: int, used: int) -> tuple[int, int]:
        """After ``send()``: the slots ``first .. first + used - 1`` the kernel left
        unprocessed (it stops at the first frame it cannot take and walks the ring in order, so
        they are a tail) are made free again and the ring head moved back to the first of
        them.  Returns how many, and their bytes."""
        n = self.tx_slots
        words = (self._tx_off[(first + np.arange(used)) % n] >> 2).astype(np.intp)
        status = self._ring32[words + _H3_STATUS_WORD]
        if not status[-1] & TP_STATUS_SEND_REQUEST:
            return 0, 0
        pending = np.flatnonzero(status & TP_STATUS_SEND_REQUEST)
        k = int(pending[0])
        back = words[k:]
        back_bytes = int(self._ring32[back + _H3_LEN_WORD].astype(np.int64).sum())
        self._ring32[back + _H3_STATUS_WORD] = TP_STATUS_AVAILABLE
        self._tx_head = (first + k) % n
        return used - k, back_bytes

    # -- statistics and life -----------------------------------------------------------------

    def _read_statistics(self) -> None:
        """Fold in (and so reset) the kernel's ``struct tpacket_stats_v3``."""
        if self._closed:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        except OSError:
            return
        offered, drops, freezes = struct.unpack("3I", raw[:12])
        c = self._counters
        for name, value in (
            ("rx.ring_offered", offered),
            ("drop.rx_ring", drops),
            ("rx.ring_freezes", freezes),
        ):
            if value:
                c[name] += value

    def close(self) -> None:
        if self._closed:
            return
        self._read_statistics()
        self._closed = True
        self._release_views()
        self._scratch = FrameBatch.empty(0, self.slot)
        if self._mm is not None:
            # A view still exported (none is handed out) would keep the mapping; it goes with
            # the last reference then.
            with contextlib.suppress(BufferError):
                self._mm.close()
        self._sock.close()

    def __enter__(self) -> RingLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RingLink(name={self._name!r}, mtu={self._mtu})"


def open_packet_link(
    device: str,
    promiscuous: bool = False,
    mtu: int | None = None,
    ring: RingConfig | None = None,
) -> Link:
    """A link on interface ``device``: a :class:`RingLink` with geometry ``ring``, or a plain
    :class:`~netfast.link.afpacket.AfPacketLink` when ``ring`` is None.

    When the kernel refuses the rings (:class:`RingUnavailable`) the port still opens, as an
    AfPacketLink: the fallback is logged once (a warning on ``netfast.link.ring``) and counted
    in the link's ``link.ring_fallback``.  Any other failure raises (``OSError``; ``ValueError``
    for a geometry that cannot serve the MTU).
    """
    if ring is None:
        return AfPacketLink(device, promiscuous=promiscuous, mtu=mtu)
    try:
        return RingLink(device, promiscuous=promiscuous, mtu=mtu, config=ring)
    except RingUnavailable as exc:
        log.warning(
            "%s: no packet ring (%s); using a plain AF_PACKET socket, one system call per frame",
            device,
            exc.strerror or exc,
        )
        link = AfPacketLink(device, promiscuous=promiscuous, mtu=mtu)
        link.counters["link.ring_fallback"] += 1
        return link
