"""The ``struct virtio_net_hdr`` that precedes every frame on a TAP opened with
``IFF_VNET_HDR`` (:mod:`netfast.link.tap`), and the pure checksum helpers that go with it.

The paper ("Transport Layer") weighs TCP segmentation offload: hand the device one large TCP
segment and let it cut wire-sized ones, so the stack pays its per-packet costs once per 64 KiB
instead of once per 1460 bytes.  A TAP offers exactly that contract.  With ``IFF_VNET_HDR`` every
frame in either direction is preceded by a ``struct virtio_net_hdr`` (virtio 1.x spec, 5.1.6):

* ``flags``: ``NEEDS_CSUM`` (1) -- the L4 checksum is *partial*: the field at
  ``csum_start + csum_offset`` holds the pseudo-header sum and the one's complement sum from
  ``csum_start`` to the end of the frame still has to be added (Linux's ``CHECKSUM_PARTIAL``);
  ``DATA_VALID`` (2) -- the checksum was already verified.
* ``gso_type``: ``NONE`` (0), ``TCPV4`` (1), ``| ECN`` (0x80, the super-frame carries CWR);
  ``gso_size`` is the MSS the super-frame is cut into, ``hdr_len`` the length of its headers.

The header is the 10-byte legacy one, little-endian (why: :mod:`netfast.link.tap`).
:func:`prepare_partial_csum` writes the pseudo-header sum a ``NEEDS_CSUM`` frame must carry,
:func:`partial_csum_header` builds the header for such a frame (``GSO_TCPV4`` when it is to be
cut), and :func:`complete_csum` finishes a partial checksum as a device would.  Nothing here does
I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netfast.link.base import ETHER_HEADER_LEN, VLAN_TAG_LEN
from netfast.link.offload import ipv4_l4
from netfast.wire.checksum import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    internet_checksum,
    pseudo_header_sum,
)
from netfast.wire.tcp import TcpFlags

VNET_HDR_LEN = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_ECN = 0x80

# The largest frame a super-frame can be: an IPv4 packet of 65535 bytes behind one VLAN tag.
MAX_GSO_FRAME = ETHER_HEADER_LEN + VLAN_TAG_LEN + 0xFFFF

_VNET = struct.Struct("<BBHHHH")
_TCP_FLAG_CWR = int(TcpFlags.CWR)
_TCP_CSUM_OFFSET = 16
_UDP_CSUM_OFFSET = 6


# --- the virtio-net header -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """A ``struct virtio_net_hdr`` (10 bytes, little-endian): offload metadata of one frame.

    Parameters
    ----------
    flags
        ``VIRTIO_NET_HDR_F_NEEDS_CSUM`` and/or ``VIRTIO_NET_HDR_F_DATA_VALID``.
    gso_type
        ``VIRTIO_NET_HDR_GSO_NONE``, ``..._TCPV4`` (other kinds are not offered by
        :class:`~netfast.link.tap.TapLink`),
        optionally or-ed with ``VIRTIO_NET_HDR_GSO_ECN``.
    hdr_len
        Bytes of headers (Ethernet through TCP) in a super-frame; a hint.
    gso_size
        The MSS a super-frame is cut at.
    csum_start, csum_offset
        Where the partial checksum's sum starts (from the frame's first byte) and where, relative
        to that, the checksum field lies.
    """

    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    def __post_init__(self) -> None:
        for field, value, limit in (
            ("flags", self.flags, 0xFF),
            ("gso_type", self.gso_type, 0xFF),
            ("hdr_len", self.hdr_len, 0xFFFF),
            ("gso_size", self.gso_size, 0xFFFF),
            ("csum_start", self.csum_start, 0xFFFF),
            ("csum_offset", self.csum_offset, 0xFFFF),
        ):
            if not 0 <= value <= limit:
                raise ValueError(f"virtio_net_hdr.{field} = {value}: outside 0..{limit}")

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> VnetHeader:
        """The header at the start of ``buf``; ValueError when ``buf`` is shorter than 10."""
        if len(buf) < VNET_HDR_LEN:
            raise ValueError(f"virtio_net_hdr: need {VNET_HDR_LEN} bytes, have {len(buf)}")
        return cls(*_VNET.unpack_from(buf))

    def buffer_len(self) -> int:
        return VNET_HDR_LEN

    def emit(self, buf: bytearray | memoryview, offset: int = 0) -> None:
        """Write all 10 bytes at ``buf[offset:]``."""
        _VNET.pack_into(
            buf,
            offset,
            self.flags,
            self.gso_type,
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        )

    def to_bytes(self) -> bytes:
        out = bytearray(VNET_HDR_LEN)
        self.emit(out)
        return bytes(out)

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_DATA_VALID)

    @property
    def is_gso(self) -> bool:
        return self.gso_type & ~VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_NONE


# --- checksum and segmentation helpers (pure) ------------------------------------------------


def _l4_csum_offset(protocol: int) -> int:
    if protocol == IPPROTO_TCP:
        return _TCP_CSUM_OFFSET
    if protocol == IPPROTO_UDP:
        return _UDP_CSUM_OFFSET
    raise ValueError(f"ipv4.protocol = {protocol}: only TCP and UDP checksums are offloaded")


def prepare_partial_csum(frame: bytes | bytearray | memoryview) -> bytes:
    """``frame`` (Ethernet/IPv4/TCP or UDP) with the L4 checksum field set for a partial
    checksum: the folded, uncomplemented pseudo-header sum over the whole L4 length, which is
    what Linux keeps there for ``CHECKSUM_PARTIAL`` (and adjusts per segment when it cuts a
    super-frame).  The IPv4 header checksum is left alone.

    Raises
    ------
    ValueError
        ``frame`` is not an unfragmented IPv4 TCP/UDP packet in Ethernet.
    """
    l3, ihl, protocol, total = ipv4_l4(frame)
    field = l3 + ihl + _l4_csum_offset(protocol)
    if field + 2 > l3 + total:
        raise ValueError(f"ipv4.total_length = {total}: too short for the L4 header")
    src = int.from_bytes(frame[l3 + 12 : l3 + 16], "big")
    dst = int.from_bytes(frame[l3 + 16 : l3 + 20], "big")
    out = bytearray(frame)
    out[field : field + 2] = pseudo_header_sum(src, dst, protocol, total - ihl).to_bytes(2, "big")
    return bytes(out)


def partial_csum_header(frame: bytes | bytearray | memoryview, mss: int = 0) -> VnetHeader:
    """The ``NEEDS_CSUM`` header for ``frame`` (Ethernet/IPv4/TCP or UDP); with ``mss`` > 0 and
    a TCP payload longer than ``mss`` also ``GSO_TCPV4`` (``| ECN`` when CWR is set)."""
    l3, ihl, protocol, total = ipv4_l4(frame)
    l4 = l3 + ihl
    header = VnetHeader(
        flags=VIRTIO_NET_HDR_F_NEEDS_CSUM,
        csum_start=l4,
        csum_offset=_l4_csum_offset(protocol),
    )
    if mss <= 0 or protocol != IPPROTO_TCP:
        return header
    thl = (frame[l4 + 12] >> 4) * 4
    if thl < 20 or ihl + thl > total:
        raise ValueError(f"tcp.data_offset = {thl // 4}: does not fit the IPv4 packet")
    if total - ihl - thl <= mss:
        return header
    gso_type = VIRTIO_NET_HDR_GSO_TCPV4
    if frame[l4 + 13] & _TCP_FLAG_CWR:
        gso_type |= VIRTIO_NET_HDR_GSO_ECN
    return VnetHeader(
        flags=VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type=gso_type,
        hdr_len=l4 + thl,
        gso_size=mss,
        csum_start=l4,
        csum_offset=_TCP_CSUM_OFFSET,
    )


def complete_csum(
    frame: bytes | bytearray | memoryview, csum_start: int, csum_offset: int
) -> bytes:
    """``frame`` with a partial checksum completed, as a device would: the one's complement sum
    from ``csum_start`` to the end of the frame (the field holding the pseudo-header sum),
    complemented into the field; a result of 0 is written as 0xFFFF, as Linux does.

    Raises
    ------
    ValueError
        The checksum field does not lie within the frame.
    """
    field = csum_start + csum_offset
    if field + 2 > len(frame):
        raise ValueError(f"csum_start {csum_start} + csum_offset {csum_offset}: beyond the frame")
    out = bytearray(frame)
    value = internet_checksum(memoryview(out)[csum_start:]) or 0xFFFF
    out[field : field + 2] = value.to_bytes(2, "big")
    return bytes(out)
