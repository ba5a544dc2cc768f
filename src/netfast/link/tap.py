"""A Linux TAP device as a netfast link: whole Ethernet frames through /dev/net/tun.

Opening /dev/net/tun and issuing ``TUNSETIFF`` with ``IFF_TAP | IFF_NO_PI`` attaches the file
descriptor to a TAP interface (creating it when it does not exist); every read then returns one
frame the kernel transmitted on the interface and every write injects one frame as if received
from a wire (Linux Documentation/networking/tuntap.rst).  The descriptor is non-blocking, so
:meth:`TapLink.recv_batch` returns what is queued now.  The descriptor stays attached when the
interface moves to another network namespace, which is how tests give the kernel's side of the
TAP its own stack.

A TAP created here is not persistent: it disappears when the link is closed.  Bringing it up,
addressing it or moving it is left to ``ip`` (root's business, not the data path's).

TODO(offloads): ``vnet_hdr=True`` will set ``IFF_VNET_HDR`` and exchange a ``virtio_net_hdr``
in front of every frame, so the kernel can hand over and accept TSO/GSO super-frames with
checksums left to offload (the paper's TSO section).  Until then it raises.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from netfast.link.base import ETHER_HEADER_LEN, VLAN_TAG_LEN, Frame, frame_too_big, send_each

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
IFNAMSIZ = 16
# struct ifreq is 40 bytes on 64-bit Linux: the name, then a union as large as struct ifmap.
_IFREQ_LEN = 40


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) < IFNAMSIZ:
        raise ValueError(f"interface name {name!r}: must be 1 to {IFNAMSIZ - 1} bytes")
    packed = struct.pack(f"{IFNAMSIZ}s{fmt}", raw, *values)
    return packed.ljust(_IFREQ_LEN, b"\0")


def _ifreq_name(buf: bytes) -> str:
    return buf[:IFNAMSIZ].split(b"\0", 1)[0].decode()


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
        Reserved for TSO/GSO offloads (see the module TODO); must be False for now.

    Attributes
    ----------
    counters
        ``rx.frames``, ``rx.bytes``, ``tx.frames``, ``tx.bytes`` and ``drop.<reason>``:
        ``oversize`` and ``runt`` (refused on send), ``rx_oversize`` (read a frame longer than
        the MTU allows), ``busy`` (the kernel's queue was full), ``error`` (any other write
        failure, e.g. the interface is down), ``closed``.
    """

    def __init__(
        self, name: str, mtu: int = 1500, create: bool = True, vnet_hdr: bool = False
    ) -> None:
        if vnet_hdr:
            raise NotImplementedError("IFF_VNET_HDR offloads are not implemented yet")
        if mtu < 68:
            raise ValueError(f"mtu = {mtu}: below the IPv4 minimum of 68")
        if not create and "%" not in name and not Path("/sys/class/net", name).exists():
            raise FileNotFoundError(f"TAP interface {name!r} does not exist (create=False)")
        self.counters: Counter[str] = Counter()
        self._closed = False
        self._fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = fcntl.ioctl(self._fd, TUNSETIFF, _ifreq(name, "H", IFF_TAP | IFF_NO_PI))
            self._name = _ifreq_name(ifr)
            self._mtu = self._sync_mtu(mtu)
        except BaseException:
            os.close(self._fd)
            raise
        # One byte beyond the largest legal frame, so a longer one shows as too long rather
        # than arriving silently cut (a TAP read truncates to the buffer it is given).
        self._read_size = self._mtu + ETHER_HEADER_LEN + VLAN_TAG_LEN + 1

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

    def fileno(self) -> int:
        return self._fd

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        """Up to ``max_frames`` frames the kernel transmitted on the TAP; never blocks."""
        out: list[Frame] = []
        if self._closed:
            return out
        counters = self.counters
        fd = self._fd
        for _ in range(max_frames):
            try:
                frame = os.read(fd, self._read_size)
            except BlockingIOError:
                break
            except OSError as e:
                # EIO/EBADFD while the interface is being torn down: nothing to read.
                if e.errno in (errno.EIO, errno.EBADFD):
                    break
                raise
            if frame_too_big(frame, self._mtu):
                counters["drop.rx_oversize"] += 1
                continue
            out.append(frame)
            counters["rx.frames"] += 1
            counters["rx.bytes"] += len(frame)
        return out

    def send(self, frames: Iterable[Frame]) -> int:
        """Inject frames into the kernel as if received on the TAP; returns how many went."""
        fd = self._fd

        def write(frame: Frame) -> str | None:
            try:
                os.write(fd, frame)
            except BlockingIOError:
                return "busy"
            except OSError:
                return "error"
            return None

        return send_each(
            frames, write, mtu=self._mtu, counters=self.counters, closed=lambda: self._closed
        )

    def close(self) -> None:
        """Detach; a TAP this link created disappears with it."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> TapLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TapLink(name={self._name!r}, mtu={self._mtu}, fd={self._fd})"
