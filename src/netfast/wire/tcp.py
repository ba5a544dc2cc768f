"""TCP header: a zero-copy view and a validated repr (RFC 9293 3.1).

Contract
--------
- :class:`TcpSegment` is a view over one whole TCP segment (header and payload, exactly as the IP
  layer delimits it: the checksum covers the whole buffer).  ``TcpSegment.new_checked`` checks
  integrity once -- at least 20 bytes, ``data_offset * 4 <= len`` -- after which no accessor can
  fail.  Over a writable buffer every field can be set in place.
- :class:`TcpRepr` is the parsed value.  ``TcpRepr.parse`` adds the sanity checks (data offset of
  at least 5, well-formed options, the checksum over the RFC 9293 pseudo-header) and raises a
  :class:`~netfast.wire.errors.WireError` naming the field.  Flag combinations, port 0, an
  acknowledgment number without ACK and an urgent pointer without URG are left as found: they are
  the TCP engine's business (RFC 9293 says what to do with each), not the wire format's.
- The options (:class:`~netfast.wire.tcp_options.TcpOptions`) are parsed and emitted by
  :mod:`netfast.wire.tcp_options`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntFlag

from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.checksum import IPPROTO_TCP, l4_checksum, l4_verify
from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError
from netfast.wire.tcp_options import EMPTY_OPTIONS, MAX_OPTIONS_LEN, TcpOptions

HEADER_LEN = 20
"""Length of the fixed TCP header (no options)."""
MAX_HEADER_LEN = HEADER_LEN + MAX_OPTIONS_LEN

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_HEADER = struct.Struct("!HHIIHHHH")
_U32_MAX = 0xFFFFFFFF


class TcpFlags(IntFlag):
    """The nine TCP control bits, as they sit in the low 9 bits of header bytes 12-13.

    ``NS`` (RFC 3540, now historic) is the bit that AccECN reuses as ``AE``; it is kept under the
    name the header diagrams use.
    """

    FIN = 0x001
    SYN = 0x002
    RST = 0x004
    PSH = 0x008
    ACK = 0x010
    URG = 0x020
    ECE = 0x040
    CWR = 0x080
    NS = 0x100


_FLAGS_MASK = 0x1FF


def _bad(problem: str, field: str, value: object = None) -> MalformedError:
    return MalformedError("tcp", problem, field=field, value=value)


# --- the view --------------------------------------------------------------------------------


class TcpSegment:
    """A zero-copy view of a TCP segment (header + payload) over a caller's buffer.

    The constructor does not check anything; :meth:`new_checked` (or :meth:`check_len`) makes
    every accessor safe.  With a data offset below 5 (rejected by :meth:`TcpRepr.parse`)
    :attr:`options` is empty and :attr:`payload` starts at byte 20.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> TcpSegment:
        """A view after the integrity checks of :meth:`check_len` (raises TruncatedError)."""
        seg = cls(buffer)
        seg.check_len()
        return seg

    def check_len(self) -> None:
        """Integrity: at least the fixed header, and the header length the data offset claims."""
        have = len(self.buffer)
        if have < HEADER_LEN:
            raise TruncatedError("tcp", HEADER_LEN, have)
        need = (self.buffer[12] >> 4) * 4
        if need > have:
            raise TruncatedError("tcp", need, have, field="data_offset")

    # -- fields --

    @property
    def src_port(self) -> int:
        return _U16.unpack_from(self.buffer, 0)[0]

    @src_port.setter
    def src_port(self, value: int) -> None:
        _U16.pack_into(self.buffer, 0, value)

    @property
    def dst_port(self) -> int:
        return _U16.unpack_from(self.buffer, 2)[0]

    @dst_port.setter
    def dst_port(self, value: int) -> None:
        _U16.pack_into(self.buffer, 2, value)

    @property
    def seq(self) -> int:
        return _U32.unpack_from(self.buffer, 4)[0]

    @seq.setter
    def seq(self, value: int) -> None:
        _U32.pack_into(self.buffer, 4, value)

    @property
    def ack(self) -> int:
        return _U32.unpack_from(self.buffer, 8)[0]

    @ack.setter
    def ack(self, value: int) -> None:
        _U32.pack_into(self.buffer, 8, value)

    @property
    def data_offset(self) -> int:
        """Header length in 32-bit words (the 4-bit field)."""
        return self.buffer[12] >> 4

    @data_offset.setter
    def data_offset(self, value: int) -> None:
        if not 0 <= value <= 15:
            raise ValueError(f"data offset {value} does not fit 4 bits")
        self.buffer[12] = (value << 4) | (self.buffer[12] & 0x0F)

    @property
    def header_len(self) -> int:
        """Header length in bytes (``data_offset * 4``)."""
        return (self.buffer[12] >> 4) * 4

    @property
    def reserved(self) -> int:
        """The 3 reserved bits between the data offset and NS (zero when sent, RFC 9293)."""
        return (self.buffer[12] >> 1) & 0x07

    @property
    def flags(self) -> TcpFlags:
        return TcpFlags(_U16.unpack_from(self.buffer, 12)[0] & _FLAGS_MASK)

    @flags.setter
    def flags(self, value: int) -> None:
        if not 0 <= value <= _FLAGS_MASK:
            raise ValueError(f"TCP flags 0x{value:x} do not fit 9 bits")
        word = _U16.unpack_from(self.buffer, 12)[0]
        _U16.pack_into(self.buffer, 12, (word & ~_FLAGS_MASK) | value)

    @property
    def window(self) -> int:
        return _U16.unpack_from(self.buffer, 14)[0]

    @window.setter
    def window(self, value: int) -> None:
        _U16.pack_into(self.buffer, 14, value)

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buffer, 16)[0]

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buffer, 16, value)

    @property
    def urgent(self) -> int:
        """The urgent pointer."""
        return _U16.unpack_from(self.buffer, 18)[0]

    @urgent.setter
    def urgent(self, value: int) -> None:
        _U16.pack_into(self.buffer, 18, value)

    @property
    def options(self) -> memoryview:
        """The raw option bytes (zero-copy), padding included."""
        return self.buffer[HEADER_LEN : max(HEADER_LEN, self.header_len)]

    @property
    def payload(self) -> memoryview:
        """The data after the header (zero-copy)."""
        return self.buffer[max(HEADER_LEN, self.header_len) :]

    # -- checksum --

    def compute_checksum(self, src_ip: int, dst_ip: int) -> int:
        """The checksum this segment should carry between ``src_ip`` and ``dst_ip``."""
        if self.checksum == 0:
            return l4_checksum(src_ip, dst_ip, IPPROTO_TCP, self.buffer)
        zeroed = bytearray(self.buffer)
        zeroed[16:18] = b"\0\0"
        return l4_checksum(src_ip, dst_ip, IPPROTO_TCP, zeroed)

    def fill_checksum(self, src_ip: int, dst_ip: int) -> None:
        """Compute the checksum over the pseudo-header and the whole buffer, and store it."""
        self.checksum = 0
        self.checksum = l4_checksum(src_ip, dst_ip, IPPROTO_TCP, self.buffer)

    def verify_checksum(self, src_ip: int, dst_ip: int) -> bool:
        """True when the stored checksum is right for ``src_ip`` -> ``dst_ip``."""
        return l4_verify(src_ip, dst_ip, IPPROTO_TCP, self.buffer)


# --- the repr --------------------------------------------------------------------------------


def _check_field(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"tcp.{name} = {value!r} does not fit {bits} bits")


@dataclass(frozen=True, slots=True)
class TcpRepr:
    """A parsed TCP segment: header fields, typed options and the payload.

    After :meth:`parse`, ``payload`` is a zero-copy ``memoryview`` into the parsed buffer.
    Field ranges are checked by :meth:`emit` (``ValueError``), so parsing stays cheap.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlags
    window: int
    urgent: int = 0
    options: TcpOptions = EMPTY_OPTIONS
    payload: bytes | memoryview = field(default=b"")

    @classmethod
    def parse(
        cls, view: TcpSegment, src_ip: int, dst_ip: int, *, verify_checksum: bool = True
    ) -> TcpRepr:
        """Check integrity and sanity and parse ``view``; ``src_ip``/``dst_ip`` (32-bit ints) are
        the IPv4 addresses of the pseudo-header.

        Raises
        ------
        TruncatedError
            Shorter than 20 bytes, or than the header length the data offset claims.
        MalformedError
            Data offset below 5, or a malformed option.
        ChecksumError
            The checksum does not verify (only with ``verify_checksum``).
        """
        view.check_len()
        buf = view.buffer
        sport, dport, seq, ack, off_flags, window, checksum, urgent = _HEADER.unpack_from(buf)
        offset = off_flags >> 12
        if offset < 5:
            raise _bad("below the minimum of 5", "data_offset", offset)
        if verify_checksum and not l4_verify(src_ip, dst_ip, IPPROTO_TCP, buf):
            raise ChecksumError("tcp", checksum, view.compute_checksum(src_ip, dst_ip))
        hl = offset * 4
        options = TcpOptions.parse(buf[HEADER_LEN:hl]) if hl > HEADER_LEN else EMPTY_OPTIONS
        return cls(
            sport,
            dport,
            seq,
            ack,
            TcpFlags(off_flags & _FLAGS_MASK),
            window,
            urgent,
            options,
            buf[hl:],
        )

    def header_len(self) -> int:
        """Bytes of the header when emitted (20 + padded options)."""
        return HEADER_LEN + self.options.buffer_len()

    def buffer_len(self) -> int:
        """Bytes of the whole segment when emitted (header + payload)."""
        return self.header_len() + len(self.payload)

    @property
    def segment_len(self) -> int:
        """Sequence space the segment occupies: payload bytes, plus one each for SYN and FIN."""
        return len(self.payload) + bool(self.flags & TcpFlags.SYN) + bool(self.flags & TcpFlags.FIN)

    def emit(self, view: TcpSegment, src_ip: int, dst_ip: int) -> None:
        """Write the header and payload into the first :meth:`buffer_len` bytes of ``view`` and
        fill in the checksum over them.  Every header byte is written (reserved bits as 0)."""
        # One combined test on the hot path; the loop names the field only when one is wrong.
        if not self._fields_fit():
            for name, value, bits in (
                ("src_port", self.src_port, 16),
                ("dst_port", self.dst_port, 16),
                ("seq", self.seq, 32),
                ("ack", self.ack, 32),
                ("flags", int(self.flags), 9),
                ("window", self.window, 16),
                ("urgent", self.urgent, 16),
            ):
                _check_field(name, value, bits)
        opts = self.options.to_bytes() if self.options.items else b""
        hl = HEADER_LEN + len(opts)
        total = hl + len(self.payload)
        buf = view.buffer
        if len(buf) < total:
            raise ValueError(f"buffer of {len(buf)} bytes is too small for a {total}-byte segment")
        self._fill(buf, opts, hl, total, src_ip, dst_ip)

    def _fields_fit(self) -> bool:
        return (
            0 <= self.src_port <= 0xFFFF
            and 0 <= self.dst_port <= 0xFFFF
            and 0 <= self.seq <= _U32_MAX
            and 0 <= self.ack <= _U32_MAX
            and 0 <= self.flags <= _FLAGS_MASK
            and 0 <= self.window <= 0xFFFF
            and 0 <= self.urgent <= 0xFFFF
        )

    def _fill(
        self,
        buf: bytearray | memoryview,
        opts: bytes,
        hl: int,
        total: int,
        src: int,
        dst: int,
        checksum: bool = True,
    ) -> None:
        _HEADER.pack_into(
            buf,
            0,
            self.src_port,
            self.dst_port,
            self.seq,
            self.ack,
            ((hl // 4) << 12) | int(self.flags),
            self.window,
            0,
            self.urgent,
        )
        buf[HEADER_LEN:hl] = opts
        buf[hl:total] = self.payload
        if checksum:
            whole = buf if len(buf) == total else buf[:total]
            _U16.pack_into(buf, 16, l4_checksum(src, dst, IPPROTO_TCP, whole))

    def to_bytes(self, src_ip: int, dst_ip: int, *, checksum: bool = True) -> bytes:
        """The segment as bytes (header, options, payload, checksum filled in).

        ``checksum=False`` leaves the checksum field zero, for a segment whose checksum is
        computed later anyway (cut by segmentation offload, each piece checksummed)."""
        opts = self.options.to_bytes() if self.options.items else b""
        hl = HEADER_LEN + len(opts)
        total = hl + len(self.payload)
        if not self._fields_fit():
            self.emit(TcpSegment(bytearray(total)), src_ip, dst_ip)  # raises, naming the field
        buf = bytearray(total)
        self._fill(buf, opts, hl, total, src_ip, dst_ip, checksum)
        return bytes(buf)
