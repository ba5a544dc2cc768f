"""A Linux TAP device as a netfast link: whole Ethernet frames through /dev/net/tun, optionally
with TSO/GSO and checksum offloads through a ``virtio_net_hdr``.

Opening /dev/net/tun and issuing ``TUNSETIFF`` with ``IFF_TAP | IFF_NO_PI`` attaches the file
descriptor to a TAP interface (creating it when it does not exist); every read then returns one
frame the kernel transmitted on the interface and every write injects one frame as if received
from a wire (Linux Documentation/networking/tuntap.rst).  The descriptor is non-blocking, so
:meth:`TapLink.recv_batch` returns what is queued now.  The descriptor stays attached when the
interface moves to another network namespace, which is how tests give the kernel's side of the
TAP its own stack.

A TAP created here is not persistent: it disappears when the link is closed.  Bringing it up,
addressing it or moving it is left to ``ip`` (root's business, not the data path's).

Offloads (``vnet_hdr=True``)
----------------------------
The paper's TSO question (hand the device one large TCP segment and let it cut wire-sized ones)
is exactly the contract a TAP offers: with ``IFF_VNET_HDR`` every frame in either direction is
preceded by a ``struct virtio_net_hdr``, whose fields and pure helpers live in
:mod:`netfast.link.vnet`.

Choices made here:

* The header is the 10-byte legacy ``struct virtio_net_hdr`` (``TUNSETVNETHDRSZ`` 10), not the
  12-byte one with ``num_buffers``: TUN never uses mergeable receive buffers, and on a read it
  skips the two extra bytes without writing them, so they would hold whatever was in our buffer.
* The header is little-endian.  ``TUNSETVNETLE`` asks for that explicitly; it is also the
  native (legacy) order on every little-endian host, so a kernel refusing the ioctl there
  changes nothing.  On a big-endian host a refusal is an error.
* ``TUNSETOFFLOAD`` with ``TUN_F_CSUM | TUN_F_TSO4``: the kernel may hand us TCP/IPv4
  super-frames and partial checksums (the TAP advertises hardware checksumming and TSO).  What we
  write may carry the same whatever the offload flags say.

Receive: :meth:`TapLink.recv_batch` keeps its meaning -- whole frames with valid checksums.  A
``NEEDS_CSUM`` frame has its checksum completed in software (``rx.csum_completed``); a GSO
super-frame (``rx.gso_frames``) is cut into wire-sized segments by :func:`gso_segment` with
``rx_gso="segment"`` (the default; ``rx.gso_segments``), or handed up whole with
``rx_gso="keep"`` for a stack that wants large segments.  :meth:`TapLink.recv_batch_meta`
returns ``(VnetHeader, frame)`` pairs and leaves checksums as the kernel sent them: a consumer
of the metadata trusts ``NEEDS_CSUM`` and ``DATA_VALID`` frames as Linux does (they come from
the local kernel, not from a wire), and only segments software produced are rewritten (their
header then says ``DATA_VALID``).

Send: :meth:`TapLink.send` writes plain frames behind an all-zero header;
:meth:`TapLink.send_tso` writes one TCP/IPv4 frame of up to 64 KiB for the kernel to segment at
``mss``; :meth:`TapLink.send_meta` writes frames behind any header.  A partial checksum must be
prepared by the caller with :func:`prepare_partial_csum` (the pseudo-header sum over the *whole*
L4 length, which Linux adjusts per segment).

Observed (Linux 6.18, tests/link/test_tap_vnet.py): a TSO super-frame written to the TAP and
redirected by tc to a TAP without offloads leaves it as wire-sized segments with full checksums;
a kernel UDP socket sending through the TAP hands us ``NEEDS_CSUM`` frames (``csum_start`` 34,
``csum_offset`` 6), and ICMP arrives with an all-zero header.  Note that the kernel's own
receive path trusts ``NEEDS_CSUM`` without checking: only a path that completes the checksum
(forwarding or redirecting to a device without checksum offload) shows a wrong partial sum.

What the offloads are worth end to end -- the paper's TSO question -- is measured by ``netfast
bench tcp`` (TAP transfers with offloads on and off): in Python the per-packet cost TSO saves is
the dominant one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import sys
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from netfast.link.base import (
    ETHER_HEADER_LEN,
    VLAN_TAG_LEN,
    Frame,
    GsoFrame,
    frame_too_big,
    send_each,
)
from netfast.link.offload import gso_segment, ipv4_l4
from netfast.link.vnet import (
    MAX_GSO_FRAME,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VNET_HDR_LEN,
    VnetHeader,
    complete_csum,
    partial_csum_header,
    prepare_partial_csum,
)
from netfast.wire.checksum import IPPROTO_TCP

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUNSETVNETHDRSZ = 0x400454D8  # _IOW('T', 216, int)
TUNSETVNETLE = 0x400454DC  # _IOW('T', 220, int)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
IFNAMSIZ = 16
# struct ifreq is 40 bytes on 64-bit Linux: the name, then a union as large as struct ifmap.
_IFREQ_LEN = 40

_ZERO_VNET = bytes(VNET_HDR_LEN)

RxGso = Literal["segment", "keep"]


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) < IFNAMSIZ:
        raise ValueError(f"interface name {name!r}: must be 1 to {IFNAMSIZ - 1} bytes")
    packed = struct.pack(f"{IFNAMSIZ}s{fmt}", raw, *values)
    return packed.ljust(_IFREQ_LEN, b"\0")


def _ifreq_name(buf: bytes) -> str:
    return buf[:IFNAMSIZ].split(b"\0", 1)[0].decode()


_DATA_VALID = VnetHeader(flags=VIRTIO_NET_HDR_F_DATA_VALID)
_NO_OFFLOAD = VnetHeader()


# --- the link ------------------------------------------------------------------------------


class TapLink:
    """A TAP interface; frames in and out through its file descriptor.

    Parameters
    ----------
    name
        Interface name (at most 15 bytes); a pattern such as ``"nftap%d"`` lets the kernel pick
        the number, and :attr:`name` reports the result.
    mtu
        Largest Ethernet payload; set on the interface when it differs from the kernel's.
    create
        When False the interface must exist already (a persistent TAP made with
        ``ip tuntap add``); FileNotFoundError otherwise.
    vnet_hdr
        Exchange a ``virtio_net_hdr`` with every frame and turn on checksum and TCP/IPv4
        segmentation offloads (see the module docstring).
    rx_gso
        With offloads, what to do with a TSO super-frame the kernel hands over: ``"segment"``
        (default) cuts it into wire-sized frames, ``"keep"`` hands it up whole.

    Attributes
    ----------
    counters
        ``rx.frames``, ``rx.bytes``, ``tx.frames``, ``tx.bytes`` and ``drop.<reason>``:
        ``oversize`` and ``runt`` (refused on send), ``rx_oversize`` (read a frame longer than
        the MTU allows), ``busy`` (the kernel's queue was full), ``error`` (any other write
        failure, e.g. the interface is down), ``closed``.  With offloads also
        ``rx.gso_frames`` (super-frames read), ``rx.gso_segments`` (segments cut from them),
        ``rx.csum_completed`` (partial checksums completed in software), ``tx.tso_frames``,
        ``tx.csum_partial`` and drops ``rx_vnet_short`` (read shorter than the header),
        ``rx_bad_gso`` (a super-frame we cannot cut: not TCP/IPv4 or malformed) and
        ``rx_bad_csum`` (a partial checksum pointing outside the frame).
    """

    def __init__(
        self,
        name: str,
        mtu: int = 1500,
        create: bool = True,
        vnet_hdr: bool = False,
        rx_gso: RxGso = "segment",
    ) -> None:
        if mtu < 68:
            raise ValueError(f"mtu = {mtu}: below the IPv4 minimum of 68")
        if rx_gso not in ("segment", "keep"):
            raise ValueError(f"rx_gso = {rx_gso!r}: must be 'segment' or 'keep'")
        if not create and "%" not in name and not Path("/sys/class/net", name).exists():
            raise FileNotFoundError(f"TAP interface {name!r} does not exist (create=False)")
        self.counters: Counter[str] = Counter()
        self._closed = False
        self._offloads = vnet_hdr
        self._rx_gso: RxGso = rx_gso
        # Segments cut from a super-frame that did not fit in the caller's batch.
        self._pending: deque[tuple[VnetHeader, Frame]] = deque()
        self._fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            ifr = fcntl.ioctl(self._fd, TUNSETIFF, _ifreq(name, "H", flags))
            self._name = _ifreq_name(ifr)
            if vnet_hdr:
                self._enable_offloads()
            self._mtu = self._sync_mtu(mtu)
        except BaseException:
            os.close(self._fd)
            raise
        # One byte beyond the largest legal frame, so a longer one shows as too long rather
        # than arriving silently cut (a TAP read truncates to the buffer it is given).
        if vnet_hdr:
            self._read_size = VNET_HDR_LEN + MAX_GSO_FRAME + 1
        else:
            self._read_size = self._mtu + ETHER_HEADER_LEN + VLAN_TAG_LEN + 1

    def _enable_offloads(self) -> None:
        fd = self._fd
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        try:
            fcntl.ioctl(fd, TUNSETVNETLE, struct.pack("i", 1))
        except OSError:
            # Little-endian is the legacy (native) order on a little-endian host anyway.
            if sys.byteorder != "little":
                raise
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)

    def _sync_mtu(self, mtu: int) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            current = struct.unpack_from(
                "i", fcntl.ioctl(s, SIOCGIFMTU, _ifreq(self._name, "i", 0)), IFNAMSIZ
            )[0]
            if current != mtu:
                fcntl.ioctl(s, SIOCSIFMTU, _ifreq(self._name, "i", mtu))
        return mtu

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def offloads(self) -> bool:
        """True when frames travel with a ``virtio_net_hdr`` (``vnet_hdr=True``)."""
        return self._offloads

    def fileno(self) -> int:
        return self._fd

    def _read(self) -> bytes | None:
        try:
            return os.read(self._fd, self._read_size)
        except BlockingIOError:
            return None
        except OSError as e:
            # EIO/EBADFD while the interface is being torn down: nothing to read.
            if e.errno in (errno.EIO, errno.EBADFD):
                return None
            raise

    def _take(self, header: VnetHeader, frame: Frame, out: list[tuple[VnetHeader, Frame]]) -> None:
        out.append((header, frame))
        self.counters["rx.frames"] += 1
        self.counters["rx.bytes"] += len(frame)

    def _receive(self, max_frames: int, complete: bool) -> list[tuple[VnetHeader, Frame]]:
        """Frames with their headers; ``complete`` fills in partial checksums."""
        out: list[tuple[VnetHeader, Frame]] = []
        if self._closed:
            return out
        counters = self.counters
        while self._pending and len(out) < max_frames:
            out.append(self._pending.popleft())
        reads = 0
        # Bounded by reads as well as output, so a stream of dropped frames cannot spin forever.
        while len(out) < max_frames and reads < max_frames:
            raw = self._read()
            if raw is None:
                break
            reads += 1
            if not self._offloads:
                if frame_too_big(raw, self._mtu):
                    counters["drop.rx_oversize"] += 1
                    continue
                self._take(_NO_OFFLOAD, raw, out)
                continue
            if len(raw) < VNET_HDR_LEN:
                counters["drop.rx_vnet_short"] += 1
                continue
            if len(raw) >= self._read_size:
                counters["drop.rx_oversize"] += 1
                continue
            header = VnetHeader.parse(raw)
            frame = raw[VNET_HDR_LEN:]
            if header.is_gso:
                self._receive_gso(header, frame, out, max_frames, complete)
                continue
            if frame_too_big(frame, self._mtu):
                counters["drop.rx_oversize"] += 1
                continue
            if header.needs_csum and complete:
                try:
                    frame = complete_csum(frame, header.csum_start, header.csum_offset)
                except ValueError:
                    counters["drop.rx_bad_csum"] += 1
                    continue
                counters["rx.csum_completed"] += 1
                header = _DATA_VALID
            self._take(header, frame, out)
        return out

    def _receive_gso(
        self,
        header: VnetHeader,
        frame: Frame,
        out: list[tuple[VnetHeader, Frame]],
        max_frames: int,
        complete: bool,
    ) -> None:
        counters = self.counters
        counters["rx.gso_frames"] += 1
        if header.gso_type & ~VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_TCPV4:
            counters["drop.rx_bad_gso"] += 1
            return
        if self._rx_gso == "keep":
            if header.needs_csum and complete:
                try:
                    frame = complete_csum(frame, header.csum_start, header.csum_offset)
                except ValueError:
                    counters["drop.rx_bad_csum"] += 1
                    return
                counters["rx.csum_completed"] += 1
            self._take(header, frame, out)
            return
        try:
            segments = gso_segment(frame, header.gso_size)
        except ValueError:
            counters["drop.rx_bad_gso"] += 1
            return
        counters["rx.gso_segments"] += len(segments)
        for segment in segments:
            if len(out) < max_frames:
                self._take(_DATA_VALID, segment, out)
            else:
                self._pending.append((_DATA_VALID, segment))
                counters["rx.frames"] += 1
                counters["rx.bytes"] += len(segment)

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        """Up to ``max_frames`` frames the kernel transmitted on the TAP; never blocks.

        With offloads, partial checksums are completed and super-frames cut (or kept whole, see
        ``rx_gso``), so every frame carries valid checksums."""
        return [frame for _, frame in self._receive(max_frames, complete=True)]

    def recv_batch_meta(self, max_frames: int = 64) -> list[tuple[VnetHeader, Frame]]:
        """Like :meth:`recv_batch`, with each frame's ``virtio_net_hdr``; never blocks.

        Checksums are left as the kernel sent them: a ``NEEDS_CSUM`` frame holds a partial
        checksum (trust it or call :func:`complete_csum`).  Segments cut in software carry
        ``DATA_VALID``.  Without offloads every header is all zero."""
        return self._receive(max_frames, complete=False)

    def _writer(self, header: bytes) -> _Writer:
        return _Writer(self._fd, header, self._offloads)

    def send(self, frames: Iterable[Frame]) -> int:
        """Inject frames into the kernel as if received on the TAP; returns how many went.

        A :class:`~netfast.link.base.GsoFrame` larger than the MTU goes to the kernel whole for
        TSO when offloads are on (counted as one frame), and is cut by :func:`gso_segment`
        otherwise."""
        plain: list[Frame] = []
        sent = 0
        for frame in frames:
            mss = frame.gso_mss if isinstance(frame, GsoFrame) else 0
            if not mss or len(frame) <= self._mtu + ETHER_HEADER_LEN:
                plain.append(frame)
                continue
            if plain:
                sent += self._send_plain(plain)
                plain = []
            try:
                if self._offloads:
                    sent += self.send_tso(prepare_partial_csum(frame), mss)
                else:
                    self.counters["tx.gso_software"] += 1
                    sent += self._send_plain(gso_segment(frame, mss))
            except ValueError:
                self.counters["drop.bad_gso"] += 1
        if plain:
            sent += self._send_plain(plain)
        return sent

    def _send_plain(self, frames: Iterable[Frame]) -> int:
        return send_each(
            frames,
            self._writer(_ZERO_VNET),
            mtu=self._mtu,
            counters=self.counters,
            closed=lambda: self._closed,
        )

    def send_meta(self, items: Iterable[tuple[VnetHeader, Frame]]) -> int:
        """Inject frames behind the given ``virtio_net_hdr``\\ s; returns how many went.

        A frame whose header is not GSO must fit the MTU (else ``drop.oversize``); a GSO frame
        may be up to 64 KiB of IPv4.  A ``NEEDS_CSUM`` frame must already hold the partial sum
        (:func:`prepare_partial_csum`).

        Raises
        ------
        ValueError
            Offloads are off and a header is not all zero, or a header's checksum field lies
            outside its frame.
        """
        counters = self.counters
        sent = 0
        for header, frame in items:
            if header != _NO_OFFLOAD and not self._offloads:
                raise ValueError("a virtio_net_hdr needs offloads (vnet_hdr=True)")
            if header.needs_csum and header.csum_start + header.csum_offset + 2 > len(frame):
                raise ValueError(
                    f"csum_start {header.csum_start} + csum_offset {header.csum_offset}: "
                    f"beyond the {len(frame)}-byte frame"
                )
            if header.is_gso:
                reason = self._send_big(header, frame)
            else:
                reason = None
                went = send_each(
                    [frame],
                    self._writer(header.to_bytes()),
                    mtu=self._mtu,
                    counters=counters,
                    closed=lambda: self._closed,
                )
                if went:
                    if header.needs_csum:
                        counters["tx.csum_partial"] += 1
                    sent += 1
                continue
            if reason is None:
                sent += 1
        return sent

    def _send_big(self, header: VnetHeader, frame: Frame) -> str | None:
        counters = self.counters
        if self._closed:
            reason: str | None = "closed"
        elif len(frame) > MAX_GSO_FRAME:
            reason = "oversize"
        else:
            reason = self._writer(header.to_bytes())(frame)
        if reason is not None:
            counters[f"drop.{reason}"] += 1
            return reason
        counters["tx.frames"] += 1
        counters["tx.bytes"] += len(frame)
        counters["tx.tso_frames"] += 1
        if header.needs_csum:
            counters["tx.csum_partial"] += 1
        return None

    def send_tso(self, frame: Frame, mss: int) -> bool:
        """Inject one TCP/IPv4 frame of up to 64 KiB for the kernel to cut at ``mss``.

        The TCP checksum field must hold the partial sum (:func:`prepare_partial_csum`); the
        header says ``NEEDS_CSUM`` and, when the payload exceeds ``mss``, ``GSO_TCPV4``.
        Returns whether the frame went (a refusal is counted under ``drop.<reason>``).

        Raises
        ------
        ValueError
            Offloads are off, ``frame`` is not TCP/IPv4 in Ethernet, or ``mss`` is below 1 or
            makes segments larger than the MTU.
        """
        if not self._offloads:
            raise ValueError("send_tso needs offloads (vnet_hdr=True)")
        if mss < 1:
            raise ValueError(f"mss = {mss}: must be positive")
        l3, ihl, protocol, _ = ipv4_l4(frame)
        if protocol != IPPROTO_TCP:
            raise ValueError(f"ipv4.protocol = {protocol}: send_tso carries TCP only")
        header = partial_csum_header(frame, mss)
        thl = (frame[l3 + ihl + 12] >> 4) * 4
        if ihl + thl + mss > self._mtu:
            raise ValueError(f"mss = {mss}: segments would exceed the MTU of {self._mtu}")
        return self.send_meta([(header, frame)]) == 1

    def close(self) -> None:
        """Detach; a TAP this link created disappears with it."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            os.close(self._fd)

    def __enter__(self) -> TapLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TapLink(name={self._name!r}, mtu={self._mtu}, fd={self._fd}, "
            f"offloads={self._offloads})"
        )


class _Writer:
    """One write to the TAP, behind ``header`` when offloads are on; returns a drop reason."""

    __slots__ = ("_fd", "_parts")

    def __init__(self, fd: int, header: bytes, offloads: bool) -> None:
        self._fd = fd
        self._parts: list[bytes] = [header] if offloads else []

    def __call__(self, frame: Frame) -> str | None:
        try:
            # writev: the header and the frame go as one TAP write without concatenating them.
            os.writev(self._fd, [*self._parts, frame])
        except BlockingIOError:
            return "busy"
        except OSError:
            return "error"
        return None
