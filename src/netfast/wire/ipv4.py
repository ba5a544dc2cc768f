"""IPv4 headers (RFC 791) and their options, with the RFC 1624 incremental TTL update that the
router fast path (RFC 1812 section 5.3.1) uses.

Contract
--------
:class:`Ipv4Packet` is a zero-copy view over an IPv4 packet.  :meth:`Ipv4Packet.new_checked`
performs the integrity checks of RFC 1812 section 5.2.2 that make every accessor safe: the buffer
holds 20 bytes, the header length ``ihl * 4`` and the ``total_length``.  A frame may carry link
padding after ``total_length``: :attr:`Ipv4Packet.payload` is sliced by ``total_length``, never by
the buffer.  :meth:`Ipv4Packet.new_checked_header` checks only the header, for the truncated
packets that ICMP errors quote.

:class:`Ipv4Repr` is the validated value of a header; :meth:`Ipv4Repr.parse` performs the sanity
checks (version 4, ``ihl >= 5``, ``total_length >= ihl * 4``, the reserved flag clear, options
well-formed, and optionally the header checksum).  Options are kept as raw bytes -- a router copies
them, it does not rebuild them -- and :func:`netfast.wire.ipv4_options.iter_options` walks them.

Addresses are 32-bit integers in host order; :func:`ip_to_str` and :func:`ip_from_str` convert.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

from netfast.wire import checksum
from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError
from netfast.wire.ipv4_options import MAX_OPTIONS_LEN, iter_options

#: Length of a header without options.
HEADER_LEN = 20
#: Longest header (``ihl`` = 15).
MAX_HEADER_LEN = 60
#: Longest options field.
VERSION = 4

FLAG_RESERVED = 0x8000
FLAG_DF = 0x4000
FLAG_MF = 0x2000
_FRAG_OFFSET_MASK = 0x1FFF

_HEADER = "ipv4"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
#: The fixed 20-byte IPv4 header (RFC 791 3.1): version/IHL, TOS, total length, identification,
#: flags/fragment offset, TTL, protocol, header checksum, source, destination.  The one
#: definition every module packing or unpacking the header uses.
FIXED_HEADER = struct.Struct(">BBHHHBBHII")


class IpProtocol(IntEnum):
    """IP protocol numbers this stack knows (IANA registry)."""

    ICMP = 1
    IGMP = 2
    TCP = 6
    UDP = 17
    IPV6 = 41
    GRE = 47
    ESP = 50
    AH = 51
    SCTP = 132


def ip_to_str(address: int) -> str:
    """Dotted-quad form of a 32-bit address.

    Raises
    ------
    ValueError
        When ``address`` is not in ``0 .. 2**32 - 1``.
    """
    if not 0 <= address <= 0xFFFFFFFF:
        raise ValueError(f"not a 32-bit IPv4 address: {address}")
    return socket.inet_ntoa(_U32.pack(address))


def ip_from_str(text: str) -> int:
    """The 32-bit address written in strict dotted-quad form (``"192.0.2.1"``).

    Raises
    ------
    ValueError
        When ``text`` is not four decimal octets (leading zeros are refused as ambiguous).
    """
    return int(ipaddress.IPv4Address(text))


# --- view ---------------------------------------------------------------------------------------


class Ipv4Packet:
    """Zero-copy view of an IPv4 packet.

    ``Ipv4Packet(buf)`` checks nothing; :meth:`new_checked` performs the integrity checks, after
    which no accessor can fail.  Setters write in place when the buffer is writable.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> Ipv4Packet:
        """A view known to hold its whole header and ``total_length`` bytes.

        Raises
        ------
        TruncatedError
            When the buffer is shorter than 20 bytes, than the header (``field="ihl"``) or than
            the total length (``field="total_length"``).
        """
        packet = cls(buffer)
        packet.check_len()
        return packet

    @classmethod
    def new_checked_header(cls, buffer: Buffer) -> Ipv4Packet:
        """A view known to hold its whole header; the payload may be cut short, as in the quote
        of an ICMP error.  :attr:`payload` then holds what is there.

        Raises
        ------
        TruncatedError
            When the buffer is shorter than 20 bytes or than the header (``field="ihl"``).
        """
        packet = cls(buffer)
        packet.check_header_len()
        return packet

    def check_header_len(self) -> None:
        """Raise :class:`TruncatedError` unless the fixed header and the options fit."""
        have = len(self.buffer)
        if have < HEADER_LEN:
            raise TruncatedError(_HEADER, HEADER_LEN, have)
        header_len = (self.buffer[0] & 0x0F) * 4
        if header_len > have:
            raise TruncatedError(_HEADER, header_len, have, field="ihl")

    def check_len(self) -> None:
        """Raise :class:`TruncatedError` unless the header and ``total_length`` bytes fit."""
        self.check_header_len()
        have = len(self.buffer)
        total = self.total_length
        if total > have:
            raise TruncatedError(_HEADER, total, have, field="total_length")

    # --- fields -----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """IP version (4)."""
        return self.buffer[0] >> 4

    @version.setter
    def version(self, value: int) -> None:
        self.buffer[0] = (value << 4) | (self.buffer[0] & 0x0F)

    @property
    def ihl(self) -> int:
        """Header length in 32-bit words."""
        return self.buffer[0] & 0x0F

    @ihl.setter
    def ihl(self, value: int) -> None:
        self.buffer[0] = (self.buffer[0] & 0xF0) | value

    @property
    def header_len(self) -> int:
        """Header length in bytes (``ihl * 4``)."""
        return (self.buffer[0] & 0x0F) * 4

    @property
    def tos(self) -> int:
        """The whole type-of-service octet (DSCP and ECN)."""
        return self.buffer[1]

    @tos.setter
    def tos(self, value: int) -> None:
        self.buffer[1] = value

    @property
    def dscp(self) -> int:
        """Differentiated services code point (RFC 2474), 6 bits."""
        return self.buffer[1] >> 2

    @dscp.setter
    def dscp(self, value: int) -> None:
        self.buffer[1] = (value << 2) | (self.buffer[1] & 0x03)

    @property
    def ecn(self) -> int:
        """Explicit congestion notification (RFC 3168), 2 bits."""
        return self.buffer[1] & 0x03

    @ecn.setter
    def ecn(self, value: int) -> None:
        self.buffer[1] = (self.buffer[1] & 0xFC) | value

    @property
    def total_length(self) -> int:
        """Length of header and payload in bytes."""
        return int(_U16.unpack_from(self.buffer, 2)[0])

    @total_length.setter
    def total_length(self, value: int) -> None:
        _U16.pack_into(self.buffer, 2, value)

    @property
    def identification(self) -> int:
        """Identification, for reassembly."""
        return int(_U16.unpack_from(self.buffer, 4)[0])

    @identification.setter
    def identification(self, value: int) -> None:
        _U16.pack_into(self.buffer, 4, value)

    @property
    def flags(self) -> int:
        """The 3 flag bits (reserved, DF, MF) as an integer 0..7."""
        return self.buffer[6] >> 5

    @property
    def dont_frag(self) -> bool:
        """The DF (don't fragment) flag."""
        return bool(self.buffer[6] & 0x40)

    @dont_frag.setter
    def dont_frag(self, value: bool) -> None:
        self.buffer[6] = (self.buffer[6] & 0xBF) | (0x40 if value else 0)

    @property
    def more_frags(self) -> bool:
        """The MF (more fragments) flag."""
        return bool(self.buffer[6] & 0x20)

    @more_frags.setter
    def more_frags(self, value: bool) -> None:
        self.buffer[6] = (self.buffer[6] & 0xDF) | (0x20 if value else 0)

    @property
    def frag_offset(self) -> int:
        """Fragment offset in bytes (the field counts 8-byte units)."""
        return (int(_U16.unpack_from(self.buffer, 6)[0]) & _FRAG_OFFSET_MASK) * 8

    @frag_offset.setter
    def frag_offset(self, value: int) -> None:
        word = int(_U16.unpack_from(self.buffer, 6)[0])
        _U16.pack_into(self.buffer, 6, (word & ~_FRAG_OFFSET_MASK) | (value // 8))

    @property
    def ttl(self) -> int:
        """Time to live."""
        return self.buffer[8]

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.buffer[8] = value

    @property
    def protocol(self) -> int:
        """Protocol of the payload (:class:`IpProtocol`)."""
        return self.buffer[9]

    @protocol.setter
    def protocol(self, value: int) -> None:
        self.buffer[9] = value

    @property
    def checksum(self) -> int:
        """Header checksum as found."""
        return int(_U16.unpack_from(self.buffer, 10)[0])

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buffer, 10, value)

    @property
    def src(self) -> int:
        """Source address."""
        return int(_U32.unpack_from(self.buffer, 12)[0])

    @src.setter
    def src(self, value: int) -> None:
        _U32.pack_into(self.buffer, 12, value)

    @property
    def dst(self) -> int:
        """Destination address."""
        return int(_U32.unpack_from(self.buffer, 16)[0])

    @dst.setter
    def dst(self, value: int) -> None:
        _U32.pack_into(self.buffer, 16, value)

    @property
    def options(self) -> memoryview:
        """The raw options field (zero-copy; empty when ``ihl`` is 5)."""
        return self.buffer[HEADER_LEN : self.header_len]

    @property
    def header(self) -> memoryview:
        """The whole header, options included (zero-copy)."""
        return self.buffer[: self.header_len]

    @property
    def payload(self) -> memoryview:
        """The payload (zero-copy), ending at ``total_length``: link padding is excluded."""
        return self.buffer[self.header_len : self.total_length]

    # --- checksum and TTL ---------------------------------------------------------------------

    def compute_checksum(self) -> int:
        """The header checksum the header should carry."""
        header = self.buffer[: self.header_len]
        # Sum the header around the checksum field instead of copying it with the field zeroed.
        partial = checksum.ones_sum(header[:10])
        return checksum.internet_checksum(header[12:], partial)

    def fill_checksum(self) -> None:
        """Compute and store the header checksum."""
        _U16.pack_into(self.buffer, 10, self.compute_checksum())

    def verify_checksum(self) -> bool:
        """True when the header checksum verifies."""
        return checksum.verify(self.buffer[: self.header_len])

    def decrement_ttl(self) -> int:
        """Decrement the TTL in place and patch the checksum incrementally (RFC 1624); return the
        new TTL.  A header whose checksum was valid stays valid.

        Raises
        ------
        ValueError
            When the TTL is already 0 (a router must drop such a packet, not forward it).
        """
        buf = self.buffer
        ttl = buf[8]
        if ttl == 0:
            raise ValueError("cannot decrement a TTL of 0")
        old_checksum = int(_U16.unpack_from(buf, 10)[0])
        buf[8] = ttl - 1
        _U16.pack_into(buf, 10, checksum.update_ttl(old_checksum, ttl, buf[9], ttl - 1))
        return ttl - 1


# --- repr ---------------------------------------------------------------------------------------


def _known_protocol(value: int) -> int:
    try:
        return IpProtocol(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class Ipv4Repr:
    """An IPv4 header.

    ``version`` is always 4 and ``ihl``, ``total_length`` and ``checksum`` are derived, so they
    are not fields: see :attr:`header_len` and :attr:`total_length`; the checksum is verified by
    :meth:`parse` and computed by :meth:`emit`.

    Attributes
    ----------
    src, dst:
        Addresses (32-bit integers).
    protocol:
        Payload protocol; an :class:`IpProtocol` when known.
    payload_len:
        Payload length in bytes (``total_length - header_len``).
    ttl:
        Time to live.
    dscp, ecn:
        The two parts of the type-of-service octet.
    identification:
        Identification (for reassembly).
    dont_frag, more_frags:
        The DF and MF flags.
    frag_offset:
        Fragment offset in bytes, a multiple of 8.
    options:
        The raw options field, a multiple of 4 bytes long, at most 40.
    """

    src: int
    dst: int
    protocol: int
    payload_len: int
    ttl: int = 64
    dscp: int = 0
    ecn: int = 0
    identification: int = 0
    dont_frag: bool = False
    more_frags: bool = False
    frag_offset: int = 0
    options: bytes = b""

    def __post_init__(self) -> None:
        for name, value, top in (
            ("src", self.src, 0xFFFFFFFF),
            ("dst", self.dst, 0xFFFFFFFF),
            ("protocol", self.protocol, 0xFF),
            ("ttl", self.ttl, 0xFF),
            ("dscp", self.dscp, 0x3F),
            ("ecn", self.ecn, 0x03),
            ("identification", self.identification, 0xFFFF),
            ("frag_offset", self.frag_offset, _FRAG_OFFSET_MASK * 8),
        ):
            if not 0 <= value <= top:
                raise ValueError(f"ipv4 {name} {value} is outside 0..{top}")
        if self.frag_offset % 8:
            raise ValueError(f"ipv4 frag_offset {self.frag_offset} is not a multiple of 8")
        if len(self.options) % 4 or len(self.options) > MAX_OPTIONS_LEN:
            raise ValueError(
                f"ipv4 options of {len(self.options)} bytes: need a multiple of 4, at most 40"
            )
        if not 0 <= self.payload_len <= 0xFFFF - self.header_len:
            raise ValueError(f"ipv4 payload_len {self.payload_len} does not fit total_length")

    @property
    def header_len(self) -> int:
        """Header length in bytes, options included."""
        return HEADER_LEN + len(self.options)

    @property
    def total_length(self) -> int:
        """The total length field: header and payload."""
        return self.header_len + self.payload_len

    @classmethod
    def parse(cls, packet: Ipv4Packet, *, verify_checksum: bool = True) -> Ipv4Repr:
        """Sanity-check the header of an integrity-checked ``packet``.

        Raises
        ------
        MalformedError
            Naming the field: ``version`` not 4, ``ihl`` below 5, ``total_length`` below the
            header length, the reserved ``flags`` bit set, malformed ``options``.
        ChecksumError
            When ``verify_checksum`` and the header checksum does not verify.
        """
        (ver_ihl, tos, total, ident, frag, ttl, proto, found, src, dst) = FIXED_HEADER.unpack_from(
            packet.buffer
        )
        version, ihl = ver_ihl >> 4, ver_ihl & 0x0F
        if version != VERSION:
            raise MalformedError(_HEADER, "not IPv4", field="version", value=version)
        if ihl < 5:
            raise MalformedError(_HEADER, "below the minimum of 5", field="ihl", value=ihl)
        header_len = ihl * 4
        if total < header_len:
            raise MalformedError(
                _HEADER,
                f"below the header length of {header_len}",
                field="total_length",
                value=total,
            )
        if frag & FLAG_RESERVED:
            raise MalformedError(
                _HEADER, "the reserved flag bit is set", field="flags", value=frag >> 13
            )
        if verify_checksum and not packet.verify_checksum():
            raise ChecksumError(_HEADER, found, packet.compute_checksum())
        options = bytes(packet.buffer[HEADER_LEN:header_len])
        if options:
            for _ in iter_options(options):
                pass
        return cls(
            src=src,
            dst=dst,
            protocol=_known_protocol(proto),
            payload_len=total - header_len,
            ttl=ttl,
            dscp=tos >> 2,
            ecn=tos & 0x03,
            identification=ident,
            dont_frag=bool(frag & FLAG_DF),
            more_frags=bool(frag & FLAG_MF),
            frag_offset=(frag & _FRAG_OFFSET_MASK) * 8,
            options=options,
        )

    def buffer_len(self) -> int:
        """Bytes the header occupies (options included; the payload is not counted)."""
        return self.header_len

    def emit(self, packet: Ipv4Packet, *, fill_checksum: bool = True) -> None:
        """Write every header byte, options included, at the start of ``packet``.

        With ``fill_checksum=False`` the checksum field is written as 0 (for checksum offload).

        Raises
        ------
        ValueError
            When the buffer is shorter than the header.
        """
        buf = packet.buffer
        header_len = self.header_len
        if len(buf) < header_len:
            raise ValueError(
                f"buffer of {len(buf)} bytes is shorter than the {header_len}-byte header"
            )
        frag = (
            (FLAG_DF if self.dont_frag else 0)
            | (FLAG_MF if self.more_frags else 0)
            | (self.frag_offset // 8)
        )
        FIXED_HEADER.pack_into(
            buf,
            0,
            (VERSION << 4) | (header_len // 4),
            (self.dscp << 2) | self.ecn,
            self.total_length,
            self.identification,
            frag,
            self.ttl,
            self.protocol,
            0,
            self.src,
            self.dst,
        )
        buf[HEADER_LEN:header_len] = self.options
        if fill_checksum:
            packet.fill_checksum()

    def to_bytes(self, payload: Buffer = b"") -> bytes:
        """Header (with its checksum) followed by ``payload``.

        Raises
        ------
        ValueError
            When ``len(payload)`` differs from :attr:`payload_len`.
        """
        if len(payload) != self.payload_len:
            raise ValueError(f"payload of {len(payload)} bytes, payload_len is {self.payload_len}")
        buf = bytearray(self.total_length)
        self.emit(Ipv4Packet(buf))
        buf[self.header_len :] = payload
        return bytes(buf)
