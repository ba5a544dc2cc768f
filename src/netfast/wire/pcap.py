"""Capture file codecs: classic libpcap and pcapng, read from and written to byte streams.

Contract
--------
This module is a codec only: it reads from and writes to binary streams the caller has opened
(``netfast.link.pcap`` opens files, including gzip-compressed ones).  It never opens a file, reads
the clock or draws randomness.

Formats (draft-ietf-opsawg-pcap for classic pcap, draft-ietf-opsawg-pcapng for pcapng):

- classic pcap: both byte orders, microsecond (``0xa1b2c3d4``) and nanosecond (``0xa1b23c4d``)
  magics, version 2.x.  The link type is the low 16 bits of the header's link-type field (the high
  bits carry FCS information that this reader ignores).
- pcapng: Section Header Blocks in either byte order (a file may hold several sections, each with
  its own byte order and interfaces), Interface Description Blocks with ``if_tsresol`` (decimal
  and binary) and ``if_tsoffset``, Enhanced, Simple and Obsolete Packet Blocks.  Other blocks are
  skipped by their length; every block's trailing length copy is checked.

Every packet comes out as a :class:`PcapRecord` with an integer nanosecond timestamp.  Timestamp
resolutions finer than a nanosecond, or binary ones, are rounded down (floor) to nanoseconds.
Simple Packet Blocks carry no timestamp; their records have ``timestamp_ns == 0``.

Timestamps are kept within the range of a signed 64-bit count of nanoseconds since the epoch
(:data:`MIN_TIMESTAMP_NS` .. :data:`MAX_TIMESTAMP_NS`, 1677-09-21 to 2262-04-11 UTC), the range
other tools store capture times in.  A classic pcap timestamp always fits; a pcapng one is units
of ``if_tsresol`` plus ``if_tsoffset`` seconds, so a damaged interface option or timestamp can
put it millions of years away.  Such a packet is refused with a :class:`PcapError` naming the
block, the timestamp and the interface's resolution and offset -- never clamped, since a capture
is evidence and a made-up time would be a lie.

Writing is classic pcap only, whose records hold unsigned 32-bit seconds: :class:`PcapWriter`
refuses a timestamp before 1970-01-01 00:00:00 UTC, at or after 2106-02-07 06:28:16 UTC, or that
is not an integer (a float, ``nan``) with :class:`PcapTimestampError` (a :class:`PcapError`
naming the output and the offset the record would have had); nothing of that record is written.

Errors
------
A damaged file raises :class:`PcapError` (a ``ValueError``) whose message names the stream, the
byte offset of the structure at fault (file header, record or block; counted in the decompressed
stream) and the problem::

    capture.pcap: offset 1234: truncated record header: need 16 bytes, have 7

For truncation the offset is the start of the incomplete record or block, so it is also the length
of the intact prefix of the file.  With ``tolerate_truncation=True`` a reader stops quietly at the
last whole record instead and keeps the error it would have raised in ``reader.truncation``; every
other problem (bad magic, impossible lengths, a bad block trailer) still raises.

Reading works in large chunks with ``struct.unpack_from``; there is no per-byte Python work, so a
million-packet capture streams in seconds without being held in memory.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Protocol

__all__ = [
    "MAX_CAPLEN",
    "MAX_TIMESTAMP_NS",
    "MIN_TIMESTAMP_NS",
    "CaptureReader",
    "Linktype",
    "PcapError",
    "PcapNgInterface",
    "PcapNgReader",
    "PcapReader",
    "PcapRecord",
    "PcapTimestampError",
    "PcapWriter",
    "open_capture_stream",
]


class Linktype(IntEnum):
    """The link types netfast meets most (tcpdump.org/linktypes.html)."""

    NULL = 0
    ETHERNET = 1
    RAW = 101
    LINUX_SLL = 113
    IPV4 = 228


#: The largest record (or pcapng block) this reader accepts.  No real link carries frames this
#: large; a bigger length means a corrupt file, and refusing it bounds the memory a bad file costs.
MAX_CAPLEN = 256 * 1024 * 1024

#: The range of record timestamps a reader yields: a signed 64-bit count of nanoseconds since
#: the epoch (1677-09-21 00:12:43 to 2262-04-11 23:47:16 UTC).
MIN_TIMESTAMP_NS = -(2**63)
MAX_TIMESTAMP_NS = 2**63 - 1

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

# pcapng block types
_BT_IDB = 0x00000001
_BT_OPB = 0x00000002
_BT_SPB = 0x00000003
_BT_EPB = 0x00000006
# pcapng option codes
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

_CHUNK = 1 << 20
_NS_PER_S = 1_000_000_000


class PcapError(ValueError):
    """A capture file is damaged: bad magic, impossible length, truncation, bad block trailer.

    Attributes
    ----------
    name:
        The stream's name as given to the reader (usually the file name).
    offset:
        Byte offset of the file header, record or block at fault.
    problem:
        What is wrong, e.g. ``"bad magic 0x12345678"``.
    """

    def __init__(self, name: str, offset: int, problem: str) -> None:
        self.name = name
        self.offset = offset
        self.problem = problem
        super().__init__(f"{name}: offset {offset}: {problem}")

    def __reduce__(self) -> tuple[type[PcapError], tuple[str, int, str]]:
        return (type(self), (self.name, self.offset, self.problem))


class PcapTimestampError(PcapError):
    """A timestamp cannot be written to a classic pcap record (see :class:`PcapWriter`)."""


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured packet.

    Attributes
    ----------
    timestamp_ns:
        Capture time in integer nanoseconds since the Unix epoch (0 when the format has none).
    data:
        The captured bytes (at most the snapshot length).
    orig_len:
        The packet's length on the wire; ``>= len(data)``.
    linktype:
        The link type of ``data`` (:class:`Linktype` values, or any other LINKTYPE_ number).
    interface:
        pcapng interface index within its section; 0 for classic pcap.
    """

    timestamp_ns: int
    data: bytes
    orig_len: int
    linktype: int
    interface: int = 0


class ByteReader(Protocol):
    """What the readers need from a stream: ``read(n)`` returning at most ``n`` bytes."""

    def read(self, size: int = ..., /) -> bytes: ...


class ByteWriter(Protocol):
    """What the writer needs from a stream."""

    def write(self, data: bytes, /) -> object: ...


class _Source:
    """A byte stream read in large chunks, remembering the file offset of the read position.

    Parsers index ``buf`` directly from ``pos`` and advance ``pos``; ``ensure`` refills.
    """

    __slots__ = ("_stream", "base", "buf", "pos")

    def __init__(self, stream: ByteReader) -> None:
        self._stream = stream
        self.buf = b""
        self.pos = 0
        self.base = 0  # file offset of buf[0]

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def ensure(self, n: int) -> int:
        """Make ``n`` bytes available at ``pos`` (fewer only at end of stream); return how many."""
        avail = len(self.buf) - self.pos
        if avail >= n:
            return avail
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        while avail < n:
            chunk = self._stream.read(max(_CHUNK, n - avail))
            if not chunk:
                break
            parts.append(chunk)
            avail += len(chunk)
        self.buf = b"".join(parts)
        return avail


class CaptureReader:
    """Common behaviour of :class:`PcapReader` and :class:`PcapNgReader`.

    Iterating yields :class:`PcapRecord` values in file order.  A reader is a single pass over its
    stream: iterating again continues where the previous iteration stopped.

    Attributes
    ----------
    name:
        Name used in error messages.
    format:
        ``"pcap"`` or ``"pcapng"``.
    tolerate_truncation:
        When true, a truncated last record ends the iteration instead of raising.
    truncation:
        After iteration ended early on a truncated record (lenient mode only), the
        :class:`PcapError` that strict mode would have raised; otherwise ``None``.
    records_read:
        How many records have been yielded so far.
    """

    format: str = ""

    def __init__(
        self,
        stream: ByteReader | _Source,
        name: str = "<stream>",
        *,
        tolerate_truncation: bool = False,
    ) -> None:
        self.name = name
        self.tolerate_truncation = tolerate_truncation
        self.truncation: PcapError | None = None
        self.records_read = 0
        self._src = stream if isinstance(stream, _Source) else _Source(stream)
        self._iter = self._records()

    def __iter__(self) -> Iterator[PcapRecord]:
        return self

    def __next__(self) -> PcapRecord:
        record = next(self._iter)
        self.records_read += 1
        return record

    def _records(self) -> Iterator[PcapRecord]:
        raise NotImplementedError

    def _error(self, offset: int, problem: str) -> PcapError:
        return PcapError(self.name, offset, problem)

    def _truncated(self, offset: int, what: str, need: int, have: int) -> None:
        """Raise, or in lenient mode remember, a truncation at ``offset``."""
        err = self._error(offset, f"truncated {what}: need {need} bytes, have {have}")
        if not self.tolerate_truncation:
            raise err
        self.truncation = err

    def _read_header(self, what: str, need: int) -> tuple[bytes, int]:
        """The next ``need`` bytes of a file/section header, which truncation may never excuse."""
        src = self._src
        have = src.ensure(need)
        if have < need:
            raise self._error(src.offset, f"truncated {what}: need {need} bytes, have {have}")
        return src.buf, src.pos


class PcapReader(CaptureReader):
    """Reader of classic libpcap files.

    Parameters
    ----------
    stream:
        A binary stream positioned at the file header.
    name:
        Name used in error messages (usually the file name).
    tolerate_truncation:
        Stop at the last whole record instead of raising on a truncated one.

    Attributes
    ----------
    byte_order:
        ``"<"`` or ``">"``, as found in the magic number.
    nanosecond:
        True for nanosecond-resolution files.
    version:
        ``(major, minor)``.
    snaplen:
        The snapshot length from the header (0 means unknown; then only :data:`MAX_CAPLEN`
        bounds records).
    linktype:
        The link type of every record.

    Raises
    ------
    PcapError
        For a bad or truncated file header (at construction) or a bad record (while iterating).
    """

    format = "pcap"
    HEADER_LEN = 24
    RECORD_HEADER_LEN = 16

    def __init__(
        self,
        stream: ByteReader | _Source,
        name: str = "<stream>",
        *,
        tolerate_truncation: bool = False,
    ) -> None:
        super().__init__(stream, name, tolerate_truncation=tolerate_truncation)
        buf, pos = self._read_header("file header", self.HEADER_LEN)
        (magic,) = struct.unpack_from("<I", buf, pos)
        if magic in (MAGIC_US, MAGIC_NS):
            order: Literal["<", ">"] = "<"
        else:
            order = ">"
            (magic,) = struct.unpack_from(">I", buf, pos)
            if magic not in (MAGIC_US, MAGIC_NS):
                raise self._error(pos + self._src.base, f"bad magic 0x{magic:08x}")
        major, minor, _zone, _sigfigs, snaplen, linktype_field = struct.unpack_from(
            order + "HHiIII", buf, pos + 4
        )
        if major != 2:
            raise self._error(
                self._src.offset, f"unsupported version {major}.{minor} (only 2.x is defined)"
            )
        self.byte_order = order
        self.nanosecond = magic == MAGIC_NS
        self.version = (major, minor)
        self.snaplen = snaplen
        self.linktype = linktype_field & 0xFFFF
        self._src.pos += self.HEADER_LEN

    def _records(self) -> Iterator[PcapRecord]:
        src = self._src
        unpack = struct.Struct(self.byte_order + "IIII").unpack_from
        frac_ns = 1 if self.nanosecond else 1000
        limit = self.snaplen if 0 < self.snaplen <= MAX_CAPLEN else MAX_CAPLEN
        linktype = self.linktype
        hdr_len = self.RECORD_HEADER_LEN
        while True:
            buf, pos = src.buf, src.pos
            if len(buf) - pos < hdr_len:
                have = src.ensure(hdr_len)
                if have == 0:
                    return
                if have < hdr_len:
                    self._truncated(src.offset, "record header", hdr_len, have)
                    return
                buf, pos = src.buf, src.pos
            sec, frac, caplen, orig_len = unpack(buf, pos)
            if caplen > limit:
                what = "snaplen" if limit == self.snaplen else "the limit"
                raise self._error(src.base + pos, f"record caplen {caplen} exceeds {what} {limit}")
            if orig_len < caplen:
                raise self._error(
                    src.base + pos,
                    f"record orig_len {orig_len} is smaller than caplen {caplen}",
                )
            end = pos + hdr_len + caplen
            if end > len(buf):
                have = src.ensure(hdr_len + caplen)
                if have < hdr_len + caplen:
                    self._truncated(src.offset, "record data", caplen, have - hdr_len)
                    return
                buf, pos = src.buf, src.pos
                end = pos + hdr_len + caplen
            src.pos = end
            yield PcapRecord(
                sec * _NS_PER_S + frac * frac_ns, buf[pos + hdr_len : end], orig_len, linktype
            )


@dataclass(frozen=True, slots=True)
class PcapNgInterface:
    """An interface described by a pcapng Interface Description Block.

    Attributes
    ----------
    linktype, snaplen:
        From the block (snaplen 0: no limit).
    tsresol:
        The raw ``if_tsresol`` byte: high bit clear, units of 10**-n s; set, 2**-n s.
        Default 6 (microseconds).
    tsoffset:
        ``if_tsoffset``: seconds added to every timestamp (default 0).
    """

    linktype: int
    snaplen: int
    tsresol: int = 6
    tsoffset: int = 0

    def to_ns(self, units: int) -> int:
        """Convert a timestamp in this interface's units to nanoseconds since the epoch (floor).

        The result is exact and unbounded; the reader checks it against the timestamp range.
        """
        exp = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            ns = (units * _NS_PER_S) >> exp
        elif exp <= 9:
            ns = units * 10 ** (9 - exp)
        else:
            ns = units // 10 ** (exp - 9)
        return ns + self.tsoffset * _NS_PER_S

    def describe_tsresol(self) -> str:
        """``if_tsresol`` for people: ``"10^-6 s"`` or ``"2^-20 s"``."""
        base = 2 if self.tsresol & 0x80 else 10
        return f"{base}^-{self.tsresol & 0x7F} s"


class PcapNgReader(CaptureReader):
    """Reader of pcapng files.

    Parameters
    ----------
    stream:
        A binary stream positioned at a Section Header Block.
    name:
        Name used in error messages.
    tolerate_truncation:
        Stop at the last whole block instead of raising on a truncated one.

    Attributes
    ----------
    byte_order:
        ``"<"`` or ``">"`` of the current section.
    version:
        ``(major, minor)`` of the current section.
    interfaces:
        The current section's interfaces, indexed by interface id.
    linktype:
        The first interface's link type once one has been read, else ``None``.

    Raises
    ------
    PcapError
        For a missing or bad Section Header Block (at construction) or a bad block.
    """

    format = "pcapng"

    def __init__(
        self,
        stream: ByteReader | _Source,
        name: str = "<stream>",
        *,
        tolerate_truncation: bool = False,
    ) -> None:
        super().__init__(stream, name, tolerate_truncation=tolerate_truncation)
        self.interfaces: list[PcapNgInterface] = []
        self.byte_order: Literal["<", ">"] = "<"
        self.version = (1, 0)
        buf, pos = self._read_header("section header block", 12)
        (block_type,) = struct.unpack_from("<I", buf, pos)
        if block_type != PCAPNG_SHB:
            raise self._error(self._src.offset, f"bad magic 0x{block_type:08x}")
        # The first section header is read eagerly so a damaged file fails at open; no lenient
        # mode for it, since a file without a whole section header holds no records to keep.
        self.tolerate_truncation = False
        self._first = self._next_block()
        self.tolerate_truncation = tolerate_truncation

    @property
    def linktype(self) -> int | None:
        return self.interfaces[0].linktype if self.interfaces else None

    def _next_block(self) -> tuple[int, int, int] | None:
        """Read the next whole block; return ``(type, body start, body end)`` in ``src.buf``.

        Returns ``None`` at end of stream (or at a tolerated truncation).  The position is left at
        the block's start; the caller advances past ``body end + 4``.
        """
        src = self._src
        offset = src.offset
        have = src.ensure(8)
        if have == 0:
            return None
        if have < 8:
            self._truncated(offset, "block header", 8, have)
            return None
        buf, pos = src.buf, src.pos
        (block_type,) = struct.unpack_from(self.byte_order + "I", buf, pos)
        if block_type == PCAPNG_SHB:  # a palindrome: readable before the byte order is known
            have = src.ensure(12)
            if have < 12:
                self._truncated(offset, "section header block", 12, have)
                return None
            buf, pos = src.buf, src.pos
            bom = buf[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                self.byte_order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                self.byte_order = ">"
            else:
                raise self._error(offset, f"bad byte-order magic 0x{bom.hex()}")
        (length,) = struct.unpack_from(self.byte_order + "I", buf, pos + 4)
        minimum = 28 if block_type == PCAPNG_SHB else 12
        if length < minimum or length % 4 or length > MAX_CAPLEN:
            raise self._error(
                offset,
                f"bad block total length {length} for block type 0x{block_type:08x}"
                f" (must be a multiple of 4, at least {minimum}, at most {MAX_CAPLEN})",
            )
        have = src.ensure(length)
        if have < length:
            self._truncated(offset, f"block of type 0x{block_type:08x}", length, have)
            return None
        buf, pos = src.buf, src.pos
        (trailer,) = struct.unpack_from(self.byte_order + "I", buf, pos + length - 4)
        if trailer != length:
            raise self._error(
                offset, f"block trailer length {trailer} does not match block length {length}"
            )
        if block_type == PCAPNG_SHB:
            major, minor = struct.unpack_from(self.byte_order + "HH", buf, pos + 12)
            if major != 1:
                raise self._error(
                    offset, f"unsupported pcapng version {major}.{minor} (only 1.x is defined)"
                )
            self.version = (major, minor)
            self.interfaces = []
        return block_type, pos + 8, pos + length - 4

    def _records(self) -> Iterator[PcapRecord]:
        src = self._src
        block = self._first
        while block is not None:
            block_type, start, end = block
            offset = src.base + start - 8
            buf = src.buf
            record: PcapRecord | None = None
            if block_type == _BT_EPB:
                record = self._packet(buf, start, end, offset, "EPB", "IIIII", 20)
            elif block_type == _BT_SPB:
                record = self._simple_packet(buf, start, end, offset)
            elif block_type == _BT_OPB:
                record = self._packet(buf, start, end, offset, "OPB", "HHIIII", 20)
            elif block_type == _BT_IDB:
                self.interfaces.append(self._interface(buf, start, end, offset))
            src.pos = end + 4
            if record is not None:
                yield record
            block = self._next_block()

    def _packet(
        self, buf: bytes, start: int, end: int, offset: int, kind: str, fmt: str, fixed: int
    ) -> PcapRecord:
        if end - start < fixed:
            raise self._error(offset, f"{kind} body of {end - start} bytes is shorter than {fixed}")
        if_id, *rest = struct.unpack_from(self.byte_order + fmt, buf, start)
        if kind == "OPB":
            _drops, ts_high, ts_low, caplen, orig_len = rest
        else:
            ts_high, ts_low, caplen, orig_len = rest
        iface = self._iface(if_id, offset, kind)
        if caplen > end - start - fixed:
            raise self._error(
                offset, f"{kind} caplen {caplen} exceeds the block body ({end - start} bytes)"
            )
        if iface.snaplen and caplen > iface.snaplen:
            raise self._error(
                offset, f"{kind} caplen {caplen} exceeds interface snaplen {iface.snaplen}"
            )
        if orig_len < caplen:
            raise self._error(offset, f"{kind} orig_len {orig_len} is smaller than caplen {caplen}")
        units = (ts_high << 32) | ts_low
        timestamp_ns = iface.to_ns(units)
        if not MIN_TIMESTAMP_NS <= timestamp_ns <= MAX_TIMESTAMP_NS:
            raise self._error(
                offset,
                f"{kind} timestamp {units} (interface {if_id}: if_tsresol "
                f"{iface.describe_tsresol()}, if_tsoffset {iface.tsoffset} s) is "
                f"{_seconds_str(timestamp_ns)} from the epoch, outside the years 1677 to 2262",
            )
        data = buf[start + fixed : start + fixed + caplen]
        return PcapRecord(timestamp_ns, data, orig_len, iface.linktype, if_id)

    def _simple_packet(self, buf: bytes, start: int, end: int, offset: int) -> PcapRecord:
        if end - start < 4:
            raise self._error(offset, f"SPB body of {end - start} bytes is shorter than 4")
        iface = self._iface(0, offset, "SPB")
        (orig_len,) = struct.unpack_from(self.byte_order + "I", buf, start)
        caplen = min(orig_len, iface.snaplen) if iface.snaplen else orig_len
        if caplen > end - start - 4:
            raise self._error(
                offset, f"SPB packet of {caplen} bytes exceeds the block body ({end - start} bytes)"
            )
        return PcapRecord(0, buf[start + 4 : start + 4 + caplen], orig_len, iface.linktype, 0)

    def _iface(self, if_id: int, offset: int, kind: str) -> PcapNgInterface:
        if if_id >= len(self.interfaces):
            raise self._error(
                offset,
                f"{kind} refers to interface {if_id}, but the section has "
                f"{len(self.interfaces)} interface(s)",
            )
        return self.interfaces[if_id]

    def _interface(self, buf: bytes, start: int, end: int, offset: int) -> PcapNgInterface:
        if end - start < 8:
            raise self._error(offset, f"IDB body of {end - start} bytes is shorter than 8")
        order = self.byte_order
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, start)
        tsresol, tsoffset = 6, 0
        pos = start + 8
        while pos + 4 <= end:
            code, length = struct.unpack_from(order + "HH", buf, pos)
            if code == _OPT_ENDOFOPT:
                break
            value_end = pos + 4 + length
            if value_end > end:
                raise self._error(offset, f"IDB option {code} of {length} bytes overruns the block")
            if code == _OPT_IF_TSRESOL:
                if length != 1:
                    raise self._error(offset, f"IDB if_tsresol has length {length}, not 1")
                tsresol = buf[pos + 4]
            elif code == _OPT_IF_TSOFFSET:
                if length != 8:
                    raise self._error(offset, f"IDB if_tsoffset has length {length}, not 8")
                (tsoffset,) = struct.unpack_from(order + "q", buf, pos + 4)
            pos = value_end + (-length % 4)
        return PcapNgInterface(linktype, snaplen, tsresol, tsoffset)


def _seconds_str(timestamp_ns: int) -> str:
    """A far-off timestamp as seconds from the epoch, in scientific notation when huge."""
    seconds = timestamp_ns // _NS_PER_S
    return f"{seconds} s" if abs(seconds) < 10**15 else f"{float(seconds):.3e} s"


def open_capture_stream(
    stream: ByteReader, name: str = "<stream>", *, tolerate_truncation: bool = False
) -> PcapReader | PcapNgReader:
    """Open a classic pcap or pcapng stream, chosen by its magic number.

    Parameters
    ----------
    stream:
        A binary stream at the start of the capture (it need not be seekable).
    name:
        Name used in error messages.
    tolerate_truncation:
        Passed to the reader.

    Raises
    ------
    PcapError
        When the stream is neither format, or its header is damaged.
    """
    src = _Source(stream)
    have = src.ensure(4)
    if have < 4:
        raise PcapError(name, 0, f"truncated file header: need 4 bytes, have {have}")
    if src.buf[:4] == b"\x0a\x0d\x0d\x0a":
        return PcapNgReader(src, name, tolerate_truncation=tolerate_truncation)
    magic_le, magic_be = struct.unpack_from("<I", src.buf)[0], struct.unpack_from(">I", src.buf)[0]
    if MAGIC_US in (magic_le, magic_be) or MAGIC_NS in (magic_le, magic_be):
        return PcapReader(src, name, tolerate_truncation=tolerate_truncation)
    raise PcapError(name, 0, f"bad magic 0x{magic_be:08x} (neither pcap nor pcapng)")


class PcapWriter:
    """Writer of classic libpcap files.

    The file header is written at construction.  Timestamps are rounded down to the file's
    resolution; packets longer than ``snaplen`` are cut to it, keeping their original length.
    A timestamp a record cannot hold (before 1970, from 2106-02-07 06:28:16 UTC on, or not an
    integer) raises :class:`PcapTimestampError` before any byte of the record is written: the
    writer never clamps, so a capture written by it holds only true times.

    Parameters
    ----------
    stream:
        A binary stream to write to (the caller owns and closes it).
    linktype:
        The link type of every record (default Ethernet).
    snaplen:
        Snapshot length, 1 .. 2**31-1 (default 262144, as tcpdump).
    nanosecond:
        Write a nanosecond-resolution file (magic ``0xa1b23c4d``) instead of microseconds.
    byte_order:
        ``"<"`` (default) or ``">"``.
    name:
        Name used in error messages (usually the file name).

    Attributes
    ----------
    offset:
        Bytes written so far (the offset the next record will have).
    """

    RECORD_HEADER_LEN = PcapReader.RECORD_HEADER_LEN
    #: The first timestamp a classic pcap record cannot hold: 2**32 s after the epoch.
    END_NS = 2**32 * _NS_PER_S

    def __init__(
        self,
        stream: ByteWriter,
        *,
        linktype: int = Linktype.ETHERNET,
        snaplen: int = 262144,
        nanosecond: bool = False,
        byte_order: Literal["<", ">"] = "<",
        name: str = "<stream>",
    ) -> None:
        if not 0 < snaplen < 2**31:
            raise ValueError(f"snaplen {snaplen} is out of range 1..2**31-1")
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"linktype {linktype} is out of range 0..65535")
        if byte_order not in ("<", ">"):
            raise ValueError(f"byte_order must be '<' or '>', not {byte_order!r}")
        self._stream = stream
        self.name = name
        self.linktype = int(linktype)
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.records_written = 0
        self._record = struct.Struct(byte_order + "IIII")
        self._ns_per_frac = 1 if nanosecond else 1000
        magic = MAGIC_NS if nanosecond else MAGIC_US
        stream.write(struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self.offset = PcapReader.HEADER_LEN

    def write(self, data: bytes, timestamp_ns: int, orig_len: int | None = None) -> None:
        """Write one packet.

        Parameters
        ----------
        data:
            The packet bytes; cut to ``snaplen``.
        timestamp_ns:
            Capture time in integer nanoseconds since the epoch; 0 <= seconds < 2**32.
        orig_len:
            Length on the wire; defaults to ``len(data)``.  Must be ``>= len(data)``.

        Raises
        ------
        PcapTimestampError
            ``timestamp_ns`` is not an integer or is outside what a record holds.
        """
        size = len(data)
        if orig_len is None:
            orig_len = size
        elif not size <= orig_len < 2**32:
            raise ValueError(f"orig_len {orig_len} is below the data length {size} or too big")
        sec, rest = divmod(self._check_timestamp(timestamp_ns), _NS_PER_S)
        if size > self.snaplen:
            data = data[: self.snaplen]
            size = self.snaplen
        self._stream.write(self._record.pack(sec, rest // self._ns_per_frac, size, orig_len))
        self._stream.write(data)
        self.offset += self.RECORD_HEADER_LEN + size
        self.records_written += 1

    def _check_timestamp(self, timestamp_ns: int) -> int:
        try:
            # operator.index takes ints (and numpy's), never floats: nan or 1.5e18 is refused.
            # bool is an int, but True as a time is a bug in the caller, not a moment in 1970.
            if isinstance(timestamp_ns, bool):
                raise TypeError
            ns = operator.index(timestamp_ns)
        except TypeError:
            raise PcapTimestampError(
                self.name,
                self.offset,
                f"record timestamp {timestamp_ns!r} is not an integer number of nanoseconds",
            ) from None
        if not 0 <= ns < self.END_NS:
            raise PcapTimestampError(
                self.name,
                self.offset,
                f"record timestamp {ns} ns ({_seconds_str(ns)} from the epoch) does not fit a "
                "classic pcap record, which holds 1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC",
            )
        return ns

    def write_record(self, record: PcapRecord) -> None:
        """Write a :class:`PcapRecord` (its link type must match the file's)."""
        if record.linktype != self.linktype:
            raise ValueError(
                f"record linktype {record.linktype} differs from the file's {self.linktype}"
            )
        self.write(record.data, record.timestamp_ns, record.orig_len)
