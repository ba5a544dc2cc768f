"""What the capture codecs share: the record, the errors, the stream protocols and the reader base.

Contract
--------
:mod:`netfast.wire.pcap` (classic libpcap) and :mod:`netfast.wire.pcapng` read from and write to
binary streams the caller has opened (``netfast.link.pcap`` opens files, including gzip-compressed
ones); none of them opens a file, reads the clock or draws randomness.  Formats:
draft-ietf-opsawg-pcap and draft-ietf-opsawg-pcapng.

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

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

__all__ = [
    "MAX_CAPLEN",
    "MAX_TIMESTAMP_NS",
    "MIN_TIMESTAMP_NS",
    "NS_PER_S",
    "ByteReader",
    "ByteSource",
    "ByteWriter",
    "CaptureReader",
    "Linktype",
    "PcapError",
    "PcapRecord",
    "PcapTimestampError",
    "seconds_str",
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

_CHUNK = 1 << 20
NS_PER_S = 1_000_000_000


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


class ByteSource:
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
        stream: ByteReader | ByteSource,
        name: str = "<stream>",
        *,
        tolerate_truncation: bool = False,
    ) -> None:
        self.name = name
        self.tolerate_truncation = tolerate_truncation
        self.truncation: PcapError | None = None
        self.records_read = 0
        self._src = stream if isinstance(stream, ByteSource) else ByteSource(stream)
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


def seconds_str(timestamp_ns: int) -> str:
    """A far-off timestamp as seconds from the epoch, in scientific notation when huge."""
    seconds = timestamp_ns // NS_PER_S
    return f"{seconds} s" if abs(seconds) < 10**15 else f"{float(seconds):.3e} s"
