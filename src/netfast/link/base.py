"""The link interface every packet I/O device implements, and the rules all links share: what
frame size a link of a given MTU carries, and the per-frame checks and counters of ``send``.

Counter names are the same on every link: ``rx.frames``, ``rx.bytes``, ``tx.frames``,
``tx.bytes`` and ``drop.<reason>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from netfast.wire.batch import FrameBatch

Frame = bytes


class GsoFrame(bytes):
    """A TCP/IPv4 frame larger than the link MTU, to be cut into ``gso_mss``-byte segments by the
    link: by the kernel when the link has TSO (a TAP with a virtio-net header), in software
    otherwise.  It is a plain ``bytes`` for every other purpose."""

    gso_mss: int

    def __new__(cls, data: bytes, gso_mss: int) -> GsoFrame:
        obj = super().__new__(cls, data)
        obj.gso_mss = gso_mss
        return obj


ETHER_HEADER_LEN = 14
VLAN_TAG_LEN = 4
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")


def frame_too_big(frame: Frame, mtu: int) -> bool:
    """True when ``frame`` cannot travel on a link of this ``mtu``.

    The MTU counts the Ethernet payload only; the 14-byte header comes on top, and one 802.1Q
    (or 802.1ad) tag may add 4 more, as Linux allows for VLAN-tagged frames.
    """
    limit = mtu + ETHER_HEADER_LEN
    if len(frame) > limit and frame[12:14] in _VLAN_TPIDS:
        limit += VLAN_TAG_LEN
    return len(frame) > limit


def send_each(
    frames: Iterable[Frame],
    transmit: Callable[[Frame], str | None],
    *,
    mtu: int,
    counters: Counter[str],
    closed: Callable[[], bool],
) -> int:
    """The ``send`` loop of every link: drop closed-link, runt and oversize frames under their
    counters, hand the rest to ``transmit`` -- which returns ``None`` when the frame went, or the
    drop reason -- and count what went.  Returns the number of frames that went."""
    sent = 0
    for frame in frames:
        if closed():
            reason: str | None = "closed"
        elif len(frame) < ETHER_HEADER_LEN:
            reason = "runt"
        elif frame_too_big(frame, mtu):
            reason = "oversize"
        else:
            reason = transmit(frame)
        if reason is None:
            sent += 1
            counters["tx.frames"] += 1
            counters["tx.bytes"] += len(frame)
        else:
            counters[f"drop.{reason}"] += 1
    return sent


@runtime_checkable
class Link(Protocol):
    """A device that moves whole Ethernet frames (no FCS).

    ``recv_batch`` never blocks: it returns the frames available now (at most ``max_frames``),
    possibly none.  ``send`` queues or transmits frames and returns how many were accepted; a
    frame that cannot be sent (too big, link down) is dropped and counted by the link, never
    raised; ``counters`` holds the link's named counts (``rx.frames``, ``tx.frames``,
    ``drop.<reason>`` ...).  Links that wrap an OS file descriptor are also
    :class:`WaitableLink`.
    """

    @property
    def name(self) -> str: ...

    @property
    def counters(self) -> Counter[str]:
        """The link's counters (a live view or a snapshot)."""
        ...

    @property
    def mtu(self) -> int:
        """Largest IP packet (Ethernet payload) the link carries, in bytes."""
        ...

    def recv_batch(self, max_frames: int = 64) -> list[Frame]: ...

    def send(self, frames: Iterable[Frame]) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class WaitableLink(Link, Protocol):
    """A link over an OS file descriptor: readable when frames may be there, so a driver waits
    on it with ``select``/``epoll`` instead of polling it."""

    def fileno(self) -> int: ...


@runtime_checkable
class BatchLink(Link, Protocol):
    """A link that also moves frames as :class:`~netfast.wire.batch.FrameBatch` slots, with no
    Python object per frame (a packet ring: :class:`netfast.link.ring.RingLink`).

    ``recv_frame_batch`` never blocks: it returns the frames available now, at most
    ``max_frames``, as one batch (possibly empty) -- the same frames ``recv_batch`` would have
    returned, counted under the same counters.  With ``out`` the frames are written into
    ``out``'s rows and the result is a view of its first rows, valid until ``out`` is used
    again.  ``send_frame_batch`` sends the batch's rows (or the rows listed in ``rows``, in that
    order) as ``send`` would send their bytes, and returns how many went.  ``slot`` is the row
    width the link's batches have (and ``out`` needs): every frame its MTU allows fits.
    """

    @property
    def slot(self) -> int: ...

    def recv_frame_batch(
        self, max_frames: int = 256, out: FrameBatch | None = None
    ) -> FrameBatch: ...

    def send_frame_batch(
        self, batch: FrameBatch, rows: npt.NDArray[np.intp] | None = None
    ) -> int: ...
