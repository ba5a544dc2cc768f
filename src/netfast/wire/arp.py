"""ARP packets for IPv4 over Ethernet (RFC 826).

Contract
--------
:class:`ArpPacket` is a zero-copy view laid out for Ethernet/IPv4 ARP: 28 bytes, hardware
addresses of 6 bytes and protocol addresses of 4.  :meth:`ArpPacket.new_checked` checks that those
28 bytes are present and that the address lengths the packet claims fit the buffer.
:meth:`ArpRepr.parse` then requires exactly hardware type 1 (Ethernet), protocol type 0x0800
(IPv4), lengths 6 and 4 and a request or reply operation; anything else is a
:class:`~netfast.wire.errors.MalformedError` naming the field.  A frame's padding after the 28
bytes is ignored.

Protocol addresses are 32-bit integers and hardware addresses 6-byte ``bytes``, as everywhere in
:mod:`netfast.wire`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.errors import MalformedError, TruncatedError

#: Length of an Ethernet/IPv4 ARP packet.
HEADER_LEN = 28
#: Hardware type of Ethernet.
HTYPE_ETHERNET = 1
#: Protocol type of IPv4 (its EtherType).
PTYPE_IPV4 = 0x0800
HLEN_ETHERNET = 6
PLEN_IPV4 = 4

_HEADER = "arp"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
# htype, ptype, hlen, plen, operation, sha, spa, tha, tpa
_PACKET = struct.Struct(">HHBBH6sI6sI")


class ArpOperation(IntEnum):
    """ARP operation codes (RFC 826)."""

    REQUEST = 1
    REPLY = 2


#: Operation codes by value (a dict look-up is cheaper than the enum's constructor per packet).
_OPERATIONS = {int(op): op for op in ArpOperation}


class ArpPacket:
    """Zero-copy view of an Ethernet/IPv4 ARP packet.

    ``ArpPacket(buf)`` checks nothing; :meth:`new_checked` checks the length, after which no
    accessor can fail.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> ArpPacket:
        """A view known to hold an Ethernet/IPv4 ARP packet (raises :class:`TruncatedError`)."""
        packet = cls(buffer)
        packet.check_len()
        return packet

    def check_len(self) -> None:
        """Raise :class:`TruncatedError` unless the 28 bytes of an Ethernet/IPv4 ARP packet and the
        addresses its ``hlen``/``plen`` claim fit the buffer."""
        have = len(self.buffer)
        if have < HEADER_LEN:
            raise TruncatedError(_HEADER, HEADER_LEN, have)
        claimed = 8 + 2 * (self.buffer[4] + self.buffer[5])
        if claimed > have:
            raise TruncatedError(_HEADER, claimed, have, field="hlen")

    @property
    def htype(self) -> int:
        """Hardware type (1: Ethernet)."""
        return int(_U16.unpack_from(self.buffer, 0)[0])

    @htype.setter
    def htype(self, value: int) -> None:
        _U16.pack_into(self.buffer, 0, value)

    @property
    def ptype(self) -> int:
        """Protocol type (0x0800: IPv4)."""
        return int(_U16.unpack_from(self.buffer, 2)[0])

    @ptype.setter
    def ptype(self, value: int) -> None:
        _U16.pack_into(self.buffer, 2, value)

    @property
    def hlen(self) -> int:
        """Hardware address length (6)."""
        return self.buffer[4]

    @hlen.setter
    def hlen(self, value: int) -> None:
        self.buffer[4] = value

    @property
    def plen(self) -> int:
        """Protocol address length (4)."""
        return self.buffer[5]

    @plen.setter
    def plen(self, value: int) -> None:
        self.buffer[5] = value

    @property
    def operation(self) -> int:
        """Operation (:class:`ArpOperation`)."""
        return int(_U16.unpack_from(self.buffer, 6)[0])

    @operation.setter
    def operation(self, value: int) -> None:
        _U16.pack_into(self.buffer, 6, value)

    @property
    def sender_hw(self) -> bytes:
        """Sender hardware address."""
        return bytes(self.buffer[8:14])

    @sender_hw.setter
    def sender_hw(self, value: Buffer) -> None:
        self.buffer[8:14] = value

    @property
    def sender_ip(self) -> int:
        """Sender protocol address."""
        return int(_U32.unpack_from(self.buffer, 14)[0])

    @sender_ip.setter
    def sender_ip(self, value: int) -> None:
        _U32.pack_into(self.buffer, 14, value)

    @property
    def target_hw(self) -> bytes:
        """Target hardware address (ignored in requests)."""
        return bytes(self.buffer[18:24])

    @target_hw.setter
    def target_hw(self, value: Buffer) -> None:
        self.buffer[18:24] = value

    @property
    def target_ip(self) -> int:
        """Target protocol address."""
        return int(_U32.unpack_from(self.buffer, 24)[0])

    @target_ip.setter
    def target_ip(self, value: int) -> None:
        _U32.pack_into(self.buffer, 24, value)


@dataclass(frozen=True, slots=True)
class ArpRepr:
    """An Ethernet/IPv4 ARP request or reply.

    Attributes
    ----------
    operation:
        :class:`ArpOperation` (request or reply).
    sender_hw, target_hw:
        MAC addresses, 6 bytes each (``target_hw`` is conventionally zero in requests).
    sender_ip, target_ip:
        IPv4 addresses (32-bit integers).
    """

    operation: ArpOperation
    sender_hw: bytes
    sender_ip: int
    target_hw: bytes
    target_ip: int

    def __post_init__(self) -> None:
        if self.operation not in (ArpOperation.REQUEST, ArpOperation.REPLY):
            raise ValueError(f"ARP operation {self.operation} is neither request nor reply")
        if len(self.sender_hw) != 6 or len(self.target_hw) != 6:
            raise ValueError("ARP hardware addresses are 6 bytes")
        if not (0 <= self.sender_ip <= 0xFFFFFFFF and 0 <= self.target_ip <= 0xFFFFFFFF):
            raise ValueError("ARP protocol addresses are 32-bit")

    @classmethod
    def parse(cls, packet: ArpPacket) -> ArpRepr:
        """Sanity-check a length-checked ``packet``.

        Raises
        ------
        MalformedError
            Naming the field, when ``htype`` is not 1, ``ptype`` not 0x0800, ``hlen`` not 6,
            ``plen`` not 4 or ``operation`` neither request nor reply.
        """
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _PACKET.unpack_from(packet.buffer)
        if htype != HTYPE_ETHERNET:
            raise MalformedError(_HEADER, "not Ethernet (1)", field="htype", value=htype)
        if ptype != PTYPE_IPV4:
            raise MalformedError(_HEADER, "not IPv4 (0x0800)", field="ptype", value=ptype)
        if hlen != HLEN_ETHERNET:
            raise MalformedError(
                _HEADER, "an Ethernet address is 6 bytes", field="hlen", value=hlen
            )
        if plen != PLEN_IPV4:
            raise MalformedError(_HEADER, "an IPv4 address is 4 bytes", field="plen", value=plen)
        operation = _OPERATIONS.get(op)
        if operation is None:
            raise MalformedError(
                _HEADER, "neither request (1) nor reply (2)", field="operation", value=op
            )
        return cls(operation, sha, spa, tha, tpa)

    def buffer_len(self) -> int:
        """Bytes the packet occupies (28)."""
        return HEADER_LEN

    def emit(self, packet: ArpPacket) -> None:
        """Write all 28 bytes of the packet.

        Raises
        ------
        ValueError
            When the buffer is shorter than 28 bytes.
        """
        if len(packet.buffer) < HEADER_LEN:
            raise ValueError(f"buffer of {len(packet.buffer)} bytes is shorter than {HEADER_LEN}")
        packet.buffer[:HEADER_LEN] = self.to_bytes()

    def to_bytes(self, payload: Buffer = b"") -> bytes:
        """The 28-byte packet followed by ``payload`` (e.g. padding up to a minimum frame)."""
        packet = _PACKET.pack(
            HTYPE_ETHERNET,
            PTYPE_IPV4,
            HLEN_ETHERNET,
            PLEN_IPV4,
            self.operation,
            self.sender_hw,
            self.sender_ip,
            self.target_hw,
            self.target_ip,
        )
        return packet + bytes(payload) if payload else packet
