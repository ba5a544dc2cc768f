"""An existing Linux interface as a netfast link, through an AF_PACKET raw socket.

The socket (packet(7)) is bound to one interface with protocol ``ETH_P_ALL``: it receives a
copy of every frame the interface receives and, unless filtered, every frame it transmits;
frames written to it leave on the interface unchanged.  Three details matter:

- The socket is created with protocol 0 and only then bound with ``ETH_P_ALL``.  A socket
  created with ``ETH_P_ALL`` receives from *every* interface until ``bind`` narrows it, so
  frames from other interfaces could slip into the first batch.
- Frames the host transmits on the interface (including the ones this link sends) come back
  marked ``PACKET_OUTGOING`` in the address returned by ``recvfrom``; they are skipped and
  counted (``rx.outgoing``).  ``PACKET_IGNORE_OUTGOING`` (Linux 4.20) is also set where
  available so the kernel need not copy them at all.
- Promiscuous mode is asked for with ``PACKET_ADD_MEMBERSHIP`` / ``PACKET_MR_PROMISC``: it is
  reference-counted by the kernel and dropped automatically when the socket closes, so a
  crashed process leaves no interface stuck in promiscuous mode.

The MTU is the interface's own (``SIOCGIFMTU``).  Frames longer than the MTU allows are
dropped and counted on both paths; on receive that includes GSO/GRO super-frames, so offloads
must be off on the interface for TCP to pass (TODO: ``PACKET_VNET_HDR``).

Frames the kernel drops because the socket's receive buffer is full are not counted here (they
never reach the socket).  The router's ports use :class:`netfast.link.ring.RingLink`, which
reads the kernel's drop counts and needs no system call per frame; this link is its fallback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import socket
import struct
from collections import Counter
from collections.abc import Iterable

from netfast.link.base import Frame, frame_too_big, send_each

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SIOCGIFMTU = 0x8921
MSG_TRUNC = socket.MSG_TRUNC
# Large enough for any frame the kernel can hand a packet socket (a 64 KiB GSO frame), so the
# true length of an oversize frame is known and it is dropped whole, never delivered cut.
_RECV_BUFFER = 65536 + 64


def interface_mtu(sock: socket.socket, ifname: str) -> int:
    """The MTU of interface ``ifname`` (``SIOCGIFMTU`` through any socket)."""
    ifr = struct.pack("16si", ifname.encode(), 0).ljust(40, b"\0")
    return int(struct.unpack_from("i", fcntl.ioctl(sock, SIOCGIFMTU, ifr), 16)[0])


def join_promiscuous(sock: socket.socket, ifname: str) -> None:
    """Put ``ifname`` in promiscuous mode for as long as packet socket ``sock`` is open
    (``PACKET_ADD_MEMBERSHIP`` / ``PACKET_MR_PROMISC``: reference-counted by the kernel)."""
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


class AfPacketLink:
    """Frames in and out of an existing interface through an AF_PACKET socket.

    Parameters
    ----------
    ifname
        The interface, in the caller's network namespace.
    promiscuous
        Also receive unicast frames addressed to other hosts (most drivers filter them).
    mtu
        Override the interface's MTU (for example to leave room for a tag); by default it is
        read from the interface.

    Attributes
    ----------
    counters
        ``rx.frames``, ``rx.bytes``, ``tx.frames``, ``tx.bytes``, ``rx.outgoing`` (skipped
        copies of transmitted frames) and ``drop.<reason>``: ``oversize``, ``runt``,
        ``rx_oversize``, ``busy`` (the socket buffer or device queue was full), ``error``,
        ``closed``.
    """

    def __init__(self, ifname: str, promiscuous: bool = False, mtu: int | None = None) -> None:
        self._name = ifname
        self.counters: Counter[str] = Counter()
        self._closed = False
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            # Python's AF_PACKET address takes the protocol in host order.
            self._sock.bind((ifname, ETH_P_ALL))
            self._sock.setblocking(False)
            # Older kernels lack it; the PACKET_OUTGOING check in recv_batch still applies.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            if promiscuous:
                join_promiscuous(self._sock, ifname)
            self._mtu = mtu if mtu is not None else interface_mtu(self._sock, ifname)
        except BaseException:
            self._sock.close()
            raise
        self._buffer = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buffer)

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu(self) -> int:
        return self._mtu

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        """Up to ``max_frames`` frames received on the interface; never blocks."""
        out: list[Frame] = []
        if self._closed:
            return out
        counters = self.counters
        sock = self._sock
        view = self._view
        # Bounded by max_frames accepted and by a multiple of it in skipped frames, so a flood
        # of our own outgoing copies cannot keep one call busy.
        for _ in range(4 * max_frames):
            if len(out) >= max_frames:
                break
            try:
                n, addr = sock.recvfrom_into(view, 0, MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            if addr[2] == PACKET_OUTGOING:
                counters["rx.outgoing"] += 1
                continue
            if n > _RECV_BUFFER:
                counters["drop.rx_oversize"] += 1
                continue
            frame = bytes(view[:n])
            if frame_too_big(frame, self._mtu):
                counters["drop.rx_oversize"] += 1
                continue
            out.append(frame)
            counters["rx.frames"] += 1
            counters["rx.bytes"] += n
        return out

    def send(self, frames: Iterable[Frame]) -> int:
        """Transmit frames on the interface; returns how many the kernel took."""
        sock = self._sock

        def write(frame: Frame) -> str | None:
            try:
                sock.send(frame)
            except (BlockingIOError, InterruptedError):
                return "busy"
            except OSError as e:
                return "busy" if e.errno == errno.ENOBUFS else "error"
            return None

        return send_each(
            frames, write, mtu=self._mtu, counters=self.counters, closed=lambda: self._closed
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> AfPacketLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AfPacketLink(name={self._name!r}, mtu={self._mtu})"
