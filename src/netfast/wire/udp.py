"""UDP datagrams (RFC 768) over IPv4, with the pseudo-header checksum.

Contract
--------
:class:`UdpDatagram` is a zero-copy view over the IPv4 payload.  :meth:`UdpDatagram.new_checked`
checks that the 8-byte header is there and that the length field is at least 8 and no more than
the buffer; :attr:`UdpDatagram.payload` is sliced by the length field.

:class:`UdpRepr` holds the ports and the payload length (the length field is derived); the
payload itself stays in the caller's buffer.  The checksum covers the IPv4 pseudo-header, so
parsing and emitting take the source and destination addresses.  A received checksum of 0 means
the sender computed none (RFC 768): it always verifies.  A computed checksum of 0 is sent as
0xFFFF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netfast.wire import checksum
from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.checksum import IPPROTO_UDP
from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError

HEADER_LEN = 8

_HEADER = "udp"
_U16 = struct.Struct(">H")
# source port, destination port, length, checksum
#: The 8-byte UDP header (RFC 768): source port, destination port, length, checksum.
FIXED_HEADER = struct.Struct(">HHHH")


class UdpDatagram:
    """Zero-copy view of a UDP datagram.

    ``UdpDatagram(buf)`` checks nothing; :meth:`new_checked` checks the lengths, after which no
    accessor can fail.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> UdpDatagram:
        """A view whose header and claimed length fit the buffer.

        Raises
        ------
        TruncatedError
            When the buffer is shorter than 8 bytes or than the length field
            (``field="length"``).
        MalformedError
            When the length field is below 8 (``field="length"``).
        """
        datagram = cls(buffer)
        datagram.check_len()
        return datagram

    def check_len(self) -> None:
        """Raise unless the header fits and ``8 <= length <= len(buffer)``."""
        have = len(self.buffer)
        if have < HEADER_LEN:
            raise TruncatedError(_HEADER, HEADER_LEN, have)
        length = self.length
        if length < HEADER_LEN:
            raise MalformedError(
                _HEADER, "below the header length of 8", field="length", value=length
            )
        if length > have:
            raise TruncatedError(_HEADER, length, have, field="length")

    @property
    def src_port(self) -> int:
        """Source port (0: none)."""
        return int(_U16.unpack_from(self.buffer, 0)[0])

    @src_port.setter
    def src_port(self, value: int) -> None:
        _U16.pack_into(self.buffer, 0, value)

    @property
    def dst_port(self) -> int:
        """Destination port."""
        return int(_U16.unpack_from(self.buffer, 2)[0])

    @dst_port.setter
    def dst_port(self, value: int) -> None:
        _U16.pack_into(self.buffer, 2, value)

    @property
    def length(self) -> int:
        """Length of header and payload."""
        return int(_U16.unpack_from(self.buffer, 4)[0])

    @length.setter
    def length(self, value: int) -> None:
        _U16.pack_into(self.buffer, 4, value)

    @property
    def checksum(self) -> int:
        """Checksum as found (0: none computed)."""
        return int(_U16.unpack_from(self.buffer, 6)[0])

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buffer, 6, value)

    @property
    def payload(self) -> memoryview:
        """The payload (zero-copy), ending where the length field says."""
        return self.buffer[HEADER_LEN : self.length]

    def compute_checksum(self, src: int, dst: int) -> int:
        """The checksum the datagram should carry, as sent (0 becomes 0xFFFF)."""
        datagram = self.buffer[: self.length]
        # Sum around the checksum field instead of copying the datagram with it zeroed.
        partial = checksum.ones_sum(
            datagram[:6], checksum.pseudo_header_sum(src, dst, IPPROTO_UDP, len(datagram))
        )
        return checksum.internet_checksum(datagram[8:], partial) or 0xFFFF

    def fill_checksum(self, src: int, dst: int) -> None:
        """Compute and store the checksum for the addresses ``src`` and ``dst``."""
        _U16.pack_into(self.buffer, 6, self.compute_checksum(src, dst))

    def verify_checksum(self, src: int, dst: int) -> bool:
        """True when the checksum verifies or is 0 (none computed)."""
        if self.checksum == 0:
            return True
        return checksum.l4_verify(src, dst, IPPROTO_UDP, self.buffer[: self.length])


@dataclass(frozen=True, slots=True)
class UdpRepr:
    """A UDP header.

    Attributes
    ----------
    src_port, dst_port:
        Ports.
    payload_len:
        Payload length; the length field is ``8 + payload_len``.
    """

    src_port: int
    dst_port: int
    payload_len: int

    def __post_init__(self) -> None:
        for name, value, top in (
            ("src_port", self.src_port, 0xFFFF),
            ("dst_port", self.dst_port, 0xFFFF),
            ("payload_len", self.payload_len, 0xFFFF - HEADER_LEN),
        ):
            if not 0 <= value <= top:
                raise ValueError(f"udp {name} {value} is outside 0..{top}")

    @property
    def length(self) -> int:
        """The length field: header and payload."""
        return HEADER_LEN + self.payload_len

    @classmethod
    def parse(
        cls, datagram: UdpDatagram, src: int, dst: int, *, verify_checksum: bool = True
    ) -> UdpRepr:
        """The header of a length-checked ``datagram`` sent from ``src`` to ``dst``.

        Raises
        ------
        ChecksumError
            When ``verify_checksum`` and a nonzero checksum does not verify.
        """
        src_port, dst_port, length, found = FIXED_HEADER.unpack_from(datagram.buffer)
        if verify_checksum and not datagram.verify_checksum(src, dst):
            raise ChecksumError(_HEADER, found, datagram.compute_checksum(src, dst))
        return cls(src_port, dst_port, length - HEADER_LEN)

    def buffer_len(self) -> int:
        """Bytes the header occupies (8)."""
        return HEADER_LEN

    def emit(
        self,
        datagram: UdpDatagram,
        src: int,
        dst: int,
        payload: Buffer | None = None,
        *,
        fill_checksum: bool = True,
    ) -> None:
        """Write the header -- and ``payload`` when given, else the payload must already be in
        place -- then the checksum over the pseudo-header from ``src`` to ``dst``.

        With ``fill_checksum=False`` the checksum is written as 0 ("none computed").

        Raises
        ------
        ValueError
            When the buffer is shorter than :attr:`length` or ``payload`` is not
            ``payload_len`` bytes.
        """
        buf = datagram.buffer
        length = self.length
        if len(buf) < length:
            raise ValueError(f"buffer of {len(buf)} bytes is shorter than {length}")
        if payload is not None:
            if len(payload) != self.payload_len:
                raise ValueError(
                    f"payload of {len(payload)} bytes, payload_len is {self.payload_len}"
                )
            buf[HEADER_LEN:length] = payload
        FIXED_HEADER.pack_into(buf, 0, self.src_port, self.dst_port, length, 0)
        if fill_checksum:
            datagram.fill_checksum(src, dst)

    def to_bytes(self, src: int, dst: int, payload: Buffer = b"") -> bytes:
        """Header and ``payload``, with the checksum for ``src`` -> ``dst``."""
        buf = bytearray(self.length)
        self.emit(UdpDatagram(buf), src, dst, payload)
        return bytes(buf)
