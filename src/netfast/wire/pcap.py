"""Classic libpcap files: the reader, the writer, and :func:`open_capture_stream`, which picks
the classic or the pcapng reader by the stream's magic number.

Contract
--------
A codec only (see :mod:`netfast.wire.capture` for what all capture codecs promise).  The format
is draft-ietf-opsawg-pcap: both byte orders, microsecond (``0xa1b2c3d4``) and nanosecond
(``0xa1b23c4d``) magics, version 2.x.  The link type is the low 16 bits of the header's link-type
field (the high bits carry FCS information that this reader ignores).

Writing is classic pcap only, whose records hold unsigned 32-bit seconds: :class:`PcapWriter`
refuses a timestamp before 1970-01-01 00:00:00 UTC, at or after 2106-02-07 06:28:16 UTC, or that
is not an integer (a float, ``nan``) with :class:`~netfast.wire.capture.PcapTimestampError`
(naming the output and the offset the record would have had); nothing of that record is written.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterator
from typing import Literal

from netfast.wire.capture import (
    MAX_CAPLEN,
    NS_PER_S,
    ByteReader,
    ByteSource,
    ByteWriter,
    CaptureReader,
    Linktype,
    PcapError,
    PcapRecord,
    PcapTimestampError,
    seconds_str,
)
from netfast.wire.pcapng import PcapNgReader

__all__ = ["MAGIC_NS", "MAGIC_US", "PcapReader", "PcapWriter", "open_capture_stream"]

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


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
        stream: ByteReader | ByteSource,
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
                sec * NS_PER_S + frac * frac_ns, buf[pos + hdr_len : end], orig_len, linktype
            )


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
    src = ByteSource(stream)
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
    END_NS = 2**32 * NS_PER_S

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
        sec, rest = divmod(self._check_timestamp(timestamp_ns), NS_PER_S)
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
                f"record timestamp {ns} ns ({seconds_str(ns)} from the epoch) does not fit a "
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
