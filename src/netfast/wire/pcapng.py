"""pcapng files: the reader (draft-ietf-opsawg-pcapng).

Contract
--------
A codec only (see :mod:`netfast.wire.capture` for what all capture codecs promise).  It reads
Section Header Blocks in either byte order (a file may hold several sections, each with its own
byte order and interfaces), Interface Description Blocks with ``if_tsresol`` (decimal and binary)
and ``if_tsoffset``, Enhanced, Simple and Obsolete Packet Blocks.  Other blocks are skipped by
their length; every block's trailing length copy is checked.  netfast writes classic pcap only
(:class:`~netfast.wire.pcap.PcapWriter`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from netfast.wire.capture import (
    MAX_CAPLEN,
    MAX_TIMESTAMP_NS,
    MIN_TIMESTAMP_NS,
    NS_PER_S,
    ByteReader,
    ByteSource,
    CaptureReader,
    PcapRecord,
    seconds_str,
)

__all__ = ["PCAPNG_BYTE_ORDER_MAGIC", "PCAPNG_SHB", "PcapNgInterface", "PcapNgReader"]

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
            ns = (units * NS_PER_S) >> exp
        elif exp <= 9:
            ns = units * 10 ** (9 - exp)
        else:
            ns = units // 10 ** (exp - 9)
        return ns + self.tsoffset * NS_PER_S

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
        stream: ByteReader | ByteSource,
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
                f"{seconds_str(timestamp_ns)} from the epoch, outside the years 1677 to 2262",
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
