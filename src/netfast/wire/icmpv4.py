"""ICMP for IPv4 (RFC 792), with the next-hop MTU of "fragmentation needed" (RFC 1191) and the
quoted-packet rules of RFC 1812 section 4.3.2.3.

Contract
--------
:class:`Icmpv4Message` is a zero-copy view over one ICMP message: the IPv4 payload, sliced by the IP
total length (the checksum covers exactly the message, so link padding must not be included).

The repr is a small family, each a frozen value with ``buffer_len()``, ``emit()`` and
``to_bytes()``; :meth:`Icmpv4Repr.parse` returns the member that fits:

- :class:`Icmpv4Echo` -- echo request or reply: identifier, sequence number, data;
- :class:`Icmpv4DestUnreachable` -- code, quoted packet, and for code 4 (fragmentation needed)
  the next-hop MTU;
- :class:`Icmpv4TimeExceeded` -- code, quoted packet;
- :class:`Icmpv4Other` -- any other type, kept generically: type, code, the 4 rest-of-header
  bytes and the data.

Error messages quote the offending packet's IP header and at least its first 8 payload bytes,
usually no more, so the quoted header's total length exceeds what is quoted.
:func:`parse_quoted_ipv4` reads such a quote.  Unused rest-of-header bytes of the error messages
are ignored on receive and sent as zero (RFC 792).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from netfast.wire import checksum
from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError
from netfast.wire.ipv4 import Ipv4Packet, Ipv4Repr

#: Type, code, checksum and the 4 rest-of-header bytes.
HEADER_LEN = 8
#: Bytes of the offending packet's payload an error must quote at least (RFC 792).
QUOTED_PAYLOAD_LEN = 8

_HEADER = "icmpv4"
_U16 = struct.Struct(">H")
# type, code, checksum, rest of header
_FIXED = struct.Struct(">BBHI")


class Icmpv4Type(IntEnum):
    """ICMP message types (IANA registry)."""

    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    ROUTER_ADVERTISEMENT = 9
    ROUTER_SOLICITATION = 10
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class DestUnreachableCode(IntEnum):
    """Codes of destination unreachable (RFC 792, RFC 1122, RFC 1812)."""

    NET_UNREACHABLE = 0
    HOST_UNREACHABLE = 1
    PROTOCOL_UNREACHABLE = 2
    PORT_UNREACHABLE = 3
    FRAG_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    DEST_NET_UNKNOWN = 6
    DEST_HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_UNREACHABLE_FOR_TOS = 11
    HOST_UNREACHABLE_FOR_TOS = 12
    COMM_PROHIBITED = 13
    HOST_PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF = 15


class TimeExceededCode(IntEnum):
    """Codes of time exceeded (RFC 792)."""

    TTL_EXCEEDED = 0
    FRAG_REASSEMBLY_EXCEEDED = 1


class Icmpv4Message:
    """Zero-copy view of an ICMP message (the whole IPv4 payload).

    ``Icmpv4Message(buf)`` checks nothing; :meth:`new_checked` checks that the 8-byte header is
    there, after which no accessor can fail.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> Icmpv4Message:
        """A view known to hold the 8-byte header (raises :class:`TruncatedError`)."""
        message = cls(buffer)
        message.check_len()
        return message

    def check_len(self) -> None:
        """Raise :class:`TruncatedError` unless the 8-byte header fits."""
        if len(self.buffer) < HEADER_LEN:
            raise TruncatedError(_HEADER, HEADER_LEN, len(self.buffer))

    @property
    def msg_type(self) -> int:
        """Message type (:class:`Icmpv4Type`)."""
        return self.buffer[0]

    @msg_type.setter
    def msg_type(self, value: int) -> None:
        self.buffer[0] = value

    @property
    def code(self) -> int:
        """Message code."""
        return self.buffer[1]

    @code.setter
    def code(self, value: int) -> None:
        self.buffer[1] = value

    @property
    def checksum(self) -> int:
        """Checksum as found."""
        return int(_U16.unpack_from(self.buffer, 2)[0])

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buffer, 2, value)

    @property
    def rest_of_header(self) -> bytes:
        """The 4 type-specific header bytes."""
        return bytes(self.buffer[4:8])

    @rest_of_header.setter
    def rest_of_header(self, value: Buffer) -> None:
        self.buffer[4:8] = value

    @property
    def ident(self) -> int:
        """Identifier of an echo request or reply."""
        return int(_U16.unpack_from(self.buffer, 4)[0])

    @ident.setter
    def ident(self, value: int) -> None:
        _U16.pack_into(self.buffer, 4, value)

    @property
    def seq_no(self) -> int:
        """Sequence number of an echo request or reply."""
        return int(_U16.unpack_from(self.buffer, 6)[0])

    @seq_no.setter
    def seq_no(self, value: int) -> None:
        _U16.pack_into(self.buffer, 6, value)

    @property
    def next_hop_mtu(self) -> int:
        """Next-hop MTU of a "fragmentation needed" message (RFC 1191)."""
        return int(_U16.unpack_from(self.buffer, 6)[0])

    @next_hop_mtu.setter
    def next_hop_mtu(self, value: int) -> None:
        _U16.pack_into(self.buffer, 6, value)

    @property
    def data(self) -> memoryview:
        """Everything after the header (zero-copy): echo data or the quoted packet."""
        return self.buffer[HEADER_LEN:]

    def compute_checksum(self) -> int:
        """The checksum the message should carry (over the whole message)."""
        partial = checksum.ones_sum(self.buffer[:2])
        return checksum.internet_checksum(self.buffer[4:], partial)

    def fill_checksum(self) -> None:
        """Compute and store the checksum."""
        _U16.pack_into(self.buffer, 2, self.compute_checksum())

    def verify_checksum(self) -> bool:
        """True when the checksum verifies."""
        return checksum.verify(self.buffer)


class QuotedIpv4(NamedTuple):
    """The offending packet quoted by an ICMP error."""

    header: Ipv4Repr
    """Its IP header; ``header.payload_len`` is what the original packet claimed."""
    payload_head: bytes
    """The quoted start of its payload (8 bytes normally: the ports of TCP or UDP), ending at the
    quoted total length, so that ICMP extensions (RFC 4884) after a whole quoted packet are not
    taken for its payload."""


def parse_quoted_ipv4(quote: Buffer, *, verify_checksum: bool = False) -> QuotedIpv4:
    """Read the IP header and payload start that an ICMP error quotes.

    The quote is normally cut short: its total length may exceed the bytes present.  The header
    checksum is not verified by default (a NAT on the path may have rewritten the quote).

    Raises
    ------
    TruncatedError
        When the quote does not hold the whole IP header.
    MalformedError
        When the quoted header fails the sanity checks of :meth:`Ipv4Repr.parse`.
    """
    packet = Ipv4Packet.new_checked_header(quote)
    header = Ipv4Repr.parse(packet, verify_checksum=verify_checksum)
    return QuotedIpv4(header, bytes(packet.payload))


# --- reprs --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Icmpv4Repr:
    """Base of the ICMP message values; :meth:`parse` returns one of its subclasses."""

    def _wire(self) -> tuple[int, int, int, bytes]:
        """Type, code, the rest of the header as a 32-bit integer, and the data."""
        raise NotImplementedError

    @classmethod
    def parse(cls, message: Icmpv4Message, *, verify_checksum: bool = True) -> AnyIcmpv4Repr:
        """The value of a length-checked ``message``.

        Raises
        ------
        ChecksumError
            When ``verify_checksum`` and the checksum does not verify.
        MalformedError
            When an echo's ``code`` is not 0, or an error's ``code`` is unknown.
        """
        kind, code, found, rest = _FIXED.unpack_from(message.buffer)
        if verify_checksum and not message.verify_checksum():
            raise ChecksumError(_HEADER, found, message.compute_checksum())
        data = bytes(message.buffer[HEADER_LEN:])
        if kind in (Icmpv4Type.ECHO_REQUEST, Icmpv4Type.ECHO_REPLY):
            if code != 0:
                raise MalformedError(_HEADER, "an echo has code 0", field="code", value=code)
            return Icmpv4Echo(
                ident=rest >> 16,
                seq_no=rest & 0xFFFF,
                data=data,
                reply=kind == Icmpv4Type.ECHO_REPLY,
            )
        if kind == Icmpv4Type.DEST_UNREACHABLE:
            try:
                unreachable = DestUnreachableCode(code)
            except ValueError:
                raise MalformedError(
                    _HEADER, "unknown destination unreachable code", field="code", value=code
                ) from None
            mtu = rest & 0xFFFF if unreachable == DestUnreachableCode.FRAG_NEEDED else 0
            return Icmpv4DestUnreachable(unreachable, data, next_hop_mtu=mtu)
        if kind == Icmpv4Type.TIME_EXCEEDED:
            try:
                exceeded = TimeExceededCode(code)
            except ValueError:
                raise MalformedError(
                    _HEADER, "unknown time exceeded code", field="code", value=code
                ) from None
            return Icmpv4TimeExceeded(exceeded, data)
        return Icmpv4Other(kind, code, bytes(message.buffer[4:8]), data)

    def buffer_len(self) -> int:
        """Bytes the whole message occupies: header and data."""
        return HEADER_LEN + len(self._wire()[3])

    def emit(self, message: Icmpv4Message) -> None:
        """Write the whole message (header, data, checksum) at the start of ``message``.

        Raises
        ------
        ValueError
            When the buffer is shorter than :meth:`buffer_len`.
        """
        kind, code, rest, data = self._wire()
        end = HEADER_LEN + len(data)
        if len(message.buffer) < end:
            raise ValueError(f"buffer of {len(message.buffer)} bytes is shorter than {end}")
        _FIXED.pack_into(message.buffer, 0, kind, code, 0, rest)
        message.buffer[HEADER_LEN:end] = data
        # The checksum covers exactly this message, not whatever follows it in the buffer.
        Icmpv4Message(message.buffer[:end]).fill_checksum()

    def to_bytes(self) -> bytes:
        """The message as bytes (the data is part of the value, so there is no payload
        argument)."""
        buf = bytearray(self.buffer_len())
        self.emit(Icmpv4Message(buf))
        return bytes(buf)


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"icmpv4 {name} {value} is outside 0..65535")


@dataclass(frozen=True, slots=True)
class Icmpv4Echo(Icmpv4Repr):
    """Echo request (type 8) or echo reply (type 0)."""

    ident: int
    seq_no: int
    data: bytes = b""
    reply: bool = False

    def __post_init__(self) -> None:
        _check_u16("ident", self.ident)
        _check_u16("seq_no", self.seq_no)

    @property
    def msg_type(self) -> Icmpv4Type:
        """:attr:`Icmpv4Type.ECHO_REPLY` or :attr:`Icmpv4Type.ECHO_REQUEST`."""
        return Icmpv4Type.ECHO_REPLY if self.reply else Icmpv4Type.ECHO_REQUEST

    @property
    def code(self) -> int:
        """Always 0."""
        return 0

    def _wire(self) -> tuple[int, int, int, bytes]:
        return self.msg_type, 0, (self.ident << 16) | self.seq_no, self.data

    def make_reply(self) -> Icmpv4Echo:
        """The reply to this request: same identifier, sequence number and data."""
        return Icmpv4Echo(self.ident, self.seq_no, self.data, reply=True)


class _QuotingError:
    """Accessors shared by the error messages, which quote the offending packet."""

    __slots__ = ()
    data: bytes

    @property
    def quoted(self) -> bytes:
        """The quoted packet: its IP header and the start of its payload."""
        return self.data

    def quoted_ipv4(self, *, verify_checksum: bool = False) -> QuotedIpv4:
        """The quoted packet, parsed (see :func:`parse_quoted_ipv4`)."""
        return parse_quoted_ipv4(self.data, verify_checksum=verify_checksum)


@dataclass(frozen=True, slots=True)
class Icmpv4DestUnreachable(_QuotingError, Icmpv4Repr):
    """Destination unreachable (type 3).

    ``next_hop_mtu`` is the MTU of the next hop for code 4, fragmentation needed (RFC 1191),
    0 when the router does not say; for the other codes it must be 0.
    """

    code: DestUnreachableCode
    data: bytes
    next_hop_mtu: int = 0

    def __post_init__(self) -> None:
        _check_u16("next_hop_mtu", self.next_hop_mtu)
        if self.next_hop_mtu and self.code != DestUnreachableCode.FRAG_NEEDED:
            raise ValueError("only fragmentation needed (code 4) carries a next-hop MTU")

    @property
    def msg_type(self) -> Icmpv4Type:
        """Always :attr:`Icmpv4Type.DEST_UNREACHABLE`."""
        return Icmpv4Type.DEST_UNREACHABLE

    def _wire(self) -> tuple[int, int, int, bytes]:
        return Icmpv4Type.DEST_UNREACHABLE, self.code, self.next_hop_mtu, self.data


@dataclass(frozen=True, slots=True)
class Icmpv4TimeExceeded(_QuotingError, Icmpv4Repr):
    """Time exceeded (type 11): TTL exceeded in transit (code 0) or reassembly time exceeded
    (code 1)."""

    code: TimeExceededCode
    data: bytes

    @property
    def msg_type(self) -> Icmpv4Type:
        """Always :attr:`Icmpv4Type.TIME_EXCEEDED`."""
        return Icmpv4Type.TIME_EXCEEDED

    def _wire(self) -> tuple[int, int, int, bytes]:
        return Icmpv4Type.TIME_EXCEEDED, self.code, 0, self.data


@dataclass(frozen=True, slots=True)
class Icmpv4Other(Icmpv4Repr):
    """Any other message, kept generically: type, code, the 4 rest-of-header bytes and data."""

    msg_type: int
    code: int
    rest_of_header: bytes = bytes(4)
    data: bytes = b""

    def __post_init__(self) -> None:
        if not (0 <= self.msg_type <= 0xFF and 0 <= self.code <= 0xFF):
            raise ValueError("icmpv4 type and code are 8-bit values")
        if len(self.rest_of_header) != 4:
            raise ValueError("icmpv4 rest_of_header is 4 bytes")

    def _wire(self) -> tuple[int, int, int, bytes]:
        return self.msg_type, self.code, int.from_bytes(self.rest_of_header, "big"), self.data


#: Every member of the family, for ``match`` statements and annotations.
AnyIcmpv4Repr = Icmpv4Echo | Icmpv4DestUnreachable | Icmpv4TimeExceeded | Icmpv4Other
