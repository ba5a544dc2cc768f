"""MRT records (RFC 6396): the common header, the record and message type numbers, and the
reader that walks records in a buffer or a binary stream.  Errors are :class:`MrtError` with the
byte offset of the field that could not be read."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO

HEADER_LEN = 12
BGP_HEADER_LEN = 19
_MARKER = b"\xff" * 16


class MrtError(ValueError):
    """A record that cannot be decoded; ``offset`` is the stream offset of the bad field."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"offset {offset}: {problem}")
        self.offset = offset
        self.problem = problem


class MrtType(IntEnum):
    """Record types defined by RFC 6396 section 4 (0-10 are deprecated, section 5)."""

    OSPFV2 = 11
    TABLE_DUMP = 12
    TABLE_DUMP_V2 = 13
    BGP4MP = 16
    BGP4MP_ET = 17
    ISIS = 32
    ISIS_ET = 33
    OSPFV3 = 48
    OSPFV3_ET = 49


KNOWN_TYPES = frozenset(int(t) for t in MrtType) | frozenset(range(11))
_ET_TYPES = frozenset({MrtType.BGP4MP_ET, MrtType.ISIS_ET, MrtType.OSPFV3_ET})


class TableDumpV2(IntEnum):
    PEER_INDEX_TABLE = 1
    RIB_IPV4_UNICAST = 2
    RIB_IPV4_MULTICAST = 3
    RIB_IPV6_UNICAST = 4
    RIB_IPV6_MULTICAST = 5
    RIB_GENERIC = 6
    GEO_PEER_TABLE = 7  # RFC 6397
    RIB_IPV4_UNICAST_ADDPATH = 8  # RFC 8050, 8..12
    RIB_IPV4_MULTICAST_ADDPATH = 9
    RIB_IPV6_UNICAST_ADDPATH = 10
    RIB_IPV6_MULTICAST_ADDPATH = 11
    RIB_GENERIC_ADDPATH = 12


IPV6_RIB_SUBTYPES = frozenset(
    {
        TableDumpV2.RIB_IPV6_UNICAST,
        TableDumpV2.RIB_IPV6_MULTICAST,
        TableDumpV2.RIB_IPV6_UNICAST_ADDPATH,
        TableDumpV2.RIB_IPV6_MULTICAST_ADDPATH,
    }
)


class Bgp4mp(IntEnum):
    STATE_CHANGE = 0
    MESSAGE = 1
    MESSAGE_AS4 = 4
    STATE_CHANGE_AS4 = 5
    MESSAGE_LOCAL = 6
    MESSAGE_AS4_LOCAL = 7
    MESSAGE_ADDPATH = 8  # RFC 8050, 8..11
    MESSAGE_AS4_ADDPATH = 9
    MESSAGE_LOCAL_ADDPATH = 10
    MESSAGE_AS4_LOCAL_ADDPATH = 11


_BGP4MP_AS4 = frozenset({Bgp4mp.MESSAGE_AS4, Bgp4mp.STATE_CHANGE_AS4, Bgp4mp.MESSAGE_AS4_LOCAL})
_BGP4MP_MESSAGES = frozenset(
    {Bgp4mp.MESSAGE, Bgp4mp.MESSAGE_AS4, Bgp4mp.MESSAGE_LOCAL, Bgp4mp.MESSAGE_AS4_LOCAL}
)


class BgpType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class AttrType(IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    AS4_PATH = 17


class Segment(IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1

AsPath = list[tuple[int, list[int]]]
"""AS_PATH segments as ``(segment type, [asn, ...])``."""


# ---------------------------------------------------------------------------------------------
# Reading


class _Reader:
    """A bounded cursor over a buffer that knows the stream offset of its first byte."""

    __slots__ = ("base", "buf", "end", "pos")

    def __init__(self, buf: memoryview, base: int, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.base = base
        self.pos = pos
        self.end = len(buf) if end is None else end

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return self.end - self.pos

    def need(self, n: int, what: str) -> None:
        if self.end - self.pos < n:
            raise MrtError(self.offset, f"{what} needs {n} bytes, {self.end - self.pos} left")

    def u8(self, what: str) -> int:
        self.need(1, what)
        self.pos += 1
        return self.buf[self.pos - 1]

    def u16(self, what: str) -> int:
        self.need(2, what)
        self.pos += 2
        return int.from_bytes(self.buf[self.pos - 2 : self.pos], "big")

    def u32(self, what: str) -> int:
        self.need(4, what)
        self.pos += 4
        return int.from_bytes(self.buf[self.pos - 4 : self.pos], "big")

    def take(self, n: int, what: str) -> memoryview:
        self.need(n, what)
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def sub(self, n: int, what: str) -> _Reader:
        """A reader over the next ``n`` bytes; this one skips past them."""
        self.need(n, what)
        r = _Reader(self.buf, self.base, self.pos, self.pos + n)
        self.pos += n
        return r


@dataclass(frozen=True, slots=True)
class MrtRecord:
    """One MRT record.  ``body`` excludes the common header and the ET microsecond field;
    ``body_offset`` is the stream offset of ``body[0]``."""

    offset: int
    timestamp: int
    type: int
    subtype: int
    body: memoryview
    body_offset: int
    microseconds: int = 0

    @property
    def time(self) -> float:
        """Seconds since the epoch, with the ET microseconds when present."""
        return self.timestamp + self.microseconds / 1e6

    def reader(self) -> _Reader:
        return _Reader(self.body, self.body_offset)


def _record(offset: int, header: bytes | memoryview, body: memoryview) -> MrtRecord:
    ts, rtype, subtype, length = struct.unpack_from(">IHHI", header)
    if rtype in _ET_TYPES:
        if length < 4:
            raise MrtError(offset + 8, f"MRT length {length} of an _ET record is below 4")
        usec = int.from_bytes(body[:4], "big")
        if usec > 999_999:
            raise MrtError(offset + HEADER_LEN, f"ET microseconds {usec} exceed 999999")
        return MrtRecord(offset, ts, rtype, subtype, body[4:], offset + HEADER_LEN + 4, usec)
    return MrtRecord(offset, ts, rtype, subtype, body, offset + HEADER_LEN)


#: The longest record body :func:`iter_records` reads from a stream (bytes).  The largest real
#: records, TABLE_DUMP_V2 RIB entries of a prefix seen by every peer of a big collector, are a
#: few hundred kilobytes; a corrupt Length field must not make a reader buffer gigabytes.
MAX_RECORD_LEN = 16 << 20


def iter_records(
    source: bytes | bytearray | memoryview | BinaryIO, *, max_length: int = MAX_RECORD_LEN
) -> Iterator[MrtRecord]:
    """Split an MRT stream into records.

    Parameters
    ----------
    source
        The whole stream as a buffer (records are zero-copy views into it), or a binary file
        object read record by record.
    max_length
        For a file object: the longest record body read (see :data:`MAX_RECORD_LEN`); a longer
        Length field is an error, as nothing after it can be found again.

    Raises
    ------
    MrtError
        A header or body cut short.  Nothing after a truncated record can be trusted, so
        iteration ends there.  Record types are not checked here (see :func:`check_type`): a
        record of an unknown type can still be stepped over.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        buf = memoryview(source).cast("B")
        pos, n = 0, len(buf)
        while pos < n:
            if n - pos < HEADER_LEN:
                raise MrtError(pos, f"MRT header needs {HEADER_LEN} bytes, {n - pos} left")
            length = int.from_bytes(buf[pos + 8 : pos + 12], "big")
            if n - pos - HEADER_LEN < length:
                raise MrtError(
                    pos + 8,
                    f"MRT record length {length} exceeds the data ({n - pos - HEADER_LEN} "
                    "bytes left)",
                )
            end = pos + HEADER_LEN + length
            yield _record(pos, buf[pos : pos + HEADER_LEN], buf[pos + HEADER_LEN : end])
            pos = end
        return
    pos = 0
    while True:
        header = source.read(HEADER_LEN)
        if not header:
            return
        if len(header) < HEADER_LEN:
            raise MrtError(pos, f"MRT header needs {HEADER_LEN} bytes, {len(header)} left")
        length = int.from_bytes(header[8:12], "big")
        if length > max_length:
            raise MrtError(
                pos + 8, f"MRT record length {length:,} exceeds the limit of {max_length:,} bytes"
            )
        body = source.read(length)
        if len(body) < length:
            raise MrtError(
                pos + 8, f"MRT record length {length} exceeds the data ({len(body)} bytes left)"
            )
        yield _record(pos, header, memoryview(body))
        pos += HEADER_LEN + length


def check_type(rec: MrtRecord) -> None:
    """Raise :class:`MrtError` for a record type RFC 6396 does not define."""
    if rec.type not in KNOWN_TYPES:
        raise MrtError(rec.offset + 4, f"unknown MRT type {rec.type}")
