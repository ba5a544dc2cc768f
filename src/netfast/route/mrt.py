"""MRT routing-information export format (RFC 6396) and BGP UPDATE messages (RFC 4271), on bytes.

This module is the codec only: it decodes records from a buffer or a binary stream handed to it
and encodes records for tests and tools.  Opening files is :mod:`netfast.route.loaders`' job.

What is decoded:

- the 12-byte common header (RFC 6396 section 2) and the microsecond field of the ``_ET`` types
  (section 3), whose length the header's Length field includes;
- TABLE_DUMP (section 4.2, IPv4 subtype), TABLE_DUMP_V2 PEER_INDEX_TABLE and RIB_IPV4_UNICAST
  (section 4.3); the IPv6 and multicast RIB subtypes are recognised so that callers can skip and
  count them;
- BGP4MP and BGP4MP_ET (section 4.4): MESSAGE, MESSAGE_AS4, their _LOCAL variants, STATE_CHANGE
  and STATE_CHANGE_AS4;
- the BGP message header and UPDATE (RFC 4271 section 4.3): withdrawn routes, path attributes
  (ORIGIN, AS_PATH with 2- or 4-byte ASNs and all four segment types, NEXT_HOP, AS4_PATH as
  RFC 6793 section 4.2.3 merges it, MP_REACH_NLRI / MP_UNREACH_NLRI of RFC 4760) and NLRI.
  IPv4 unicast prefixes carried in MP_REACH/MP_UNREACH are decoded; IPv6 ones are counted only.

Every decoding error is a :class:`MrtError` carrying the byte offset, in the whole stream, of the
field that could not be read, and a sentence naming the field and the numbers involved.  Prefix
bits beyond the prefix length are cleared, as RFC 4271 section 4.3 says they are irrelevant.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------------------------------------
# Prefixes, addresses, path attributes


def _prefix(r: _Reader, max_len: int, what: str) -> tuple[int, int]:
    """One ``(length, prefix bytes)`` NLRI item as ``(net, plen)``, trailing bits cleared (for
    IPv6, ``net`` is the 128-bit integer)."""
    if r.left < 1:
        raise MrtError(r.offset, f"{what} prefix length needs 1 bytes, 0 left")
    return _prefixes(r, max_len, what, limit=1)[0]


def _prefixes(r: _Reader, max_len: int, what: str, limit: int = -1) -> list[tuple[int, int]]:
    """NLRI items until the reader is exhausted (or ``limit`` of them).  Byte access is inlined:
    this loop runs once per prefix of a full table."""
    buf, pos, end, base = r.buf, r.pos, r.end, r.base
    width = max_len // 8
    full = (1 << max_len) - 1
    out = []
    while pos < end and limit != 0:
        plen = buf[pos]
        if plen > max_len:
            raise MrtError(base + pos, f"{what} prefix length {plen} exceeds {max_len}")
        nbytes = (plen + 7) >> 3
        if end - pos - 1 < nbytes:
            raise MrtError(
                base + pos + 1, f"{what} prefix /{plen} needs {nbytes} bytes, {end - pos - 1} left"
            )
        net = int.from_bytes(buf[pos + 1 : pos + 1 + nbytes], "big") << (8 * (width - nbytes))
        out.append((net & (full ^ (full >> plen)), plen))
        pos += 1 + nbytes
        limit -= 1
    r.pos = pos
    return out


def _address(r: _Reader, ipv6: bool, what: str) -> str:
    if ipv6:
        return str(ipaddress.IPv6Address(bytes(r.take(16, what))))
    a, b, c, d = r.take(4, what)
    return f"{a}.{b}.{c}.{d}"


@dataclass(slots=True)
class PathAttributes:
    """The path attributes a route loader needs; others are skipped.

    ``mp_ipv4_nlri`` / ``mp_ipv4_withdrawn`` hold IPv4 unicast prefixes from MP_REACH_NLRI /
    MP_UNREACH_NLRI; ``ipv6_announced`` / ``ipv6_withdrawn`` count the IPv6 prefixes there,
    ``ipv4_other_safi`` the IPv4 multicast prefixes (other IPv4 SAFIs: one per attribute).
    """

    origin: int | None = None
    as_path: AsPath | None = None
    as4_path: AsPath | None = None
    next_hop: int | None = None
    mp_next_hop: int | None = None
    mp_ipv4_nlri: list[tuple[int, int]] = field(default_factory=list)
    mp_ipv4_withdrawn: list[tuple[int, int]] = field(default_factory=list)
    ipv6_announced: int = 0
    ipv6_withdrawn: int = 0
    ipv4_other_safi: int = 0
    other_afi: int = 0

    def path(self) -> AsPath:
        """The AS path, with AS4_PATH merged in as RFC 6793 section 4.2.3 prescribes."""
        return merge_as4_path(self.as_path or [], self.as4_path)


def _path_length(path: AsPath) -> int:
    # RFC 4271 9.1.2.2 a): an AS_SET counts as one, confederation segments not at all.
    n = 0
    for seg_type, asns in path:
        if seg_type == Segment.AS_SEQUENCE:
            n += len(asns)
        elif seg_type == Segment.AS_SET:
            n += 1
    return n


def merge_as4_path(as_path: AsPath, as4_path: AsPath | None) -> AsPath:
    """Rebuild the 4-byte path from a 2-byte AS_PATH and an AS4_PATH (RFC 6793 4.2.3)."""
    if not as4_path:
        return as_path
    keep = _path_length(as_path) - _path_length(as4_path)
    if keep < 0:
        return as_path
    out: AsPath = []
    for seg_type, asns in as_path:
        if keep <= 0:
            break
        if seg_type == Segment.AS_SEQUENCE:
            out.append((seg_type, asns[:keep]))
            keep -= min(keep, len(asns))
        elif seg_type == Segment.AS_SET:
            out.append((seg_type, asns))
            keep -= 1
        else:
            out.append((seg_type, asns))
    return out + as4_path


def format_as_path(path: AsPath) -> str:
    """bgpdump's rendering: sequences space-separated, ``{a,b}`` sets, ``(a b)`` / ``[a,b]``
    confederation sequences / sets."""
    parts: list[str] = []
    for seg_type, asns in path:
        if seg_type == Segment.AS_SEQUENCE:
            parts.extend(str(a) for a in asns)
        elif seg_type == Segment.AS_SET:
            parts.append("{" + ",".join(str(a) for a in asns) + "}")
        elif seg_type == Segment.AS_CONFED_SEQUENCE:
            parts.append("(" + " ".join(str(a) for a in asns) + ")")
        else:
            parts.append("[" + ",".join(str(a) for a in asns) + "]")
    return " ".join(parts)


def origin_as(path: AsPath) -> str:
    """The originating AS as text: the last AS of the last AS_SEQUENCE/AS_SET segment, an AS_SET
    written ``a,b`` (CAIDA pfx2as syntax); ``""`` for an empty path."""
    for seg_type, asns in reversed(path):
        if not asns:
            continue
        if seg_type == Segment.AS_SEQUENCE:
            return str(asns[-1])
        if seg_type == Segment.AS_SET:
            return ",".join(str(a) for a in asns)
    return ""


def _as_path(r: _Reader, asn_size: int, what: str) -> AsPath:
    path: AsPath = []
    while r.left:
        at = r.offset
        seg_type = r.u8(f"{what} segment type")
        if seg_type not in (1, 2, 3, 4):
            raise MrtError(at, f"{what} segment type {seg_type} is not 1..4")
        count = r.u8(f"{what} segment length")
        raw = r.take(count * asn_size, f"{what} segment of {count} {asn_size}-byte ASNs")
        fmt = f">{count}{'I' if asn_size == 4 else 'H'}"
        path.append((seg_type, list(struct.unpack(fmt, raw))))
    return path


def _mp_nlri(r: _Reader, attrs: PathAttributes, reach: bool) -> None:
    afi = r.u16("MP AFI")
    safi = r.u8("MP SAFI")
    if reach:
        nh_len = r.u8("MP_REACH next hop length")
        nh = r.take(nh_len, "MP_REACH next hop")
        r.u8("MP_REACH reserved byte")
    if afi == AFI_IPV4 and safi == SAFI_UNICAST:
        prefixes = _prefixes(r, 32, "MP IPv4 NLRI")
        if reach:
            if len(nh) >= 4:
                attrs.mp_next_hop = int.from_bytes(nh[:4], "big")
            attrs.mp_ipv4_nlri.extend(prefixes)
        else:
            attrs.mp_ipv4_withdrawn.extend(prefixes)
    elif afi == AFI_IPV4:
        # Multicast (SAFI 2) and other IPv4 SAFIs are not unicast routes: counted, not returned.
        attrs.ipv4_other_safi += len(_prefixes(r, 32, "MP IPv4 NLRI")) if safi == 2 else 1
        r.pos = r.end
    elif afi == AFI_IPV6:
        n = len(_prefixes(r, 128, "MP IPv6 NLRI")) if safi == SAFI_UNICAST else 1
        if reach:
            attrs.ipv6_announced += n
        else:
            attrs.ipv6_withdrawn += n
        r.pos = r.end
    else:
        attrs.other_afi += 1
        r.pos = r.end


_DECODED_ATTRS = frozenset(
    int(a)
    for a in (
        AttrType.ORIGIN,
        AttrType.AS_PATH,
        AttrType.AS4_PATH,
        AttrType.NEXT_HOP,
        AttrType.MP_REACH_NLRI,
        AttrType.MP_UNREACH_NLRI,
    )
)


def parse_attributes(r: _Reader, asn_size: int, *, rib_entry: bool = False) -> PathAttributes:
    """Path attributes filling reader ``r`` (RFC 4271 section 4.3).

    ``rib_entry`` selects the abbreviated MP_REACH_NLRI of TABLE_DUMP_V2 RIB entries
    (RFC 6396 section 4.3.4: next hop length and next hop only).  Byte access is inlined for
    the attribute headers: a full table has ten attributes per UPDATE.
    """
    attrs = PathAttributes()
    buf, pos, end, base = r.buf, r.pos, r.end, r.base
    while pos < end:
        at = pos
        if end - pos < 3:
            raise MrtError(base + pos, f"attribute header needs 3 bytes, {end - pos} left")
        flags = buf[pos]
        code = buf[pos + 1]
        if flags & 0x10:
            if end - pos < 4:
                raise MrtError(
                    base + pos + 2, f"attribute {code} extended length needs 2 bytes, 1 left"
                )
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            pos += 4
        else:
            length = buf[pos + 2]
            pos += 3
        if length > end - pos:
            raise MrtError(
                base + at,
                f"BGP UPDATE attribute {code} length {length} exceeds the attributes "
                f"({end - pos} bytes left)",
            )
        if code in _DECODED_ATTRS:
            _attribute(
                _Reader(buf, base, pos, pos + length), base + at, code, asn_size, rib_entry, attrs
            )
        pos += length
    r.pos = end
    return attrs


def _attribute(
    a: _Reader, at: int, code: int, asn_size: int, rib_entry: bool, attrs: PathAttributes
) -> None:
    if code == AttrType.ORIGIN:
        attrs.origin = a.u8("ORIGIN")
    elif code == AttrType.AS_PATH:
        attrs.as_path = _as_path(a, asn_size, "AS_PATH")
    elif code == AttrType.AS4_PATH:
        attrs.as4_path = _as_path(a, 4, "AS4_PATH")
    elif code == AttrType.NEXT_HOP:
        if a.left != 4:
            raise MrtError(at, f"NEXT_HOP length {a.left} is not 4")
        attrs.next_hop = a.u32("NEXT_HOP")
    elif code == AttrType.MP_REACH_NLRI and rib_entry:
        nh_len = a.u8("MP_REACH next hop length")
        nh = a.take(nh_len, "MP_REACH next hop")
        if nh_len == 4:
            attrs.mp_next_hop = int.from_bytes(nh, "big")
    else:
        _mp_nlri(a, attrs, code == AttrType.MP_REACH_NLRI)


# ---------------------------------------------------------------------------------------------
# BGP messages (RFC 4271 section 4)


@dataclass(frozen=True, slots=True)
class BgpUpdate:
    withdrawn: list[tuple[int, int]]
    attrs: PathAttributes
    nlri: list[tuple[int, int]]

    @property
    def next_hop(self) -> int | None:
        """The next hop of the IPv4 NLRI (NEXT_HOP, else an IPv4 MP_REACH next hop)."""
        return self.attrs.next_hop if self.attrs.next_hop is not None else self.attrs.mp_next_hop


def parse_bgp_message(r: _Reader, asn_size: int) -> tuple[int, BgpUpdate | None]:
    """One BGP message filling ``r``: ``(type, update)``; ``update`` is None unless UPDATE."""
    at = r.offset
    marker = r.take(16, "BGP marker")
    if marker != _MARKER:
        raise MrtError(at, "BGP marker is not all ones")
    at = r.offset
    length = r.u16("BGP message length")
    mtype = r.u8("BGP message type")
    if length < BGP_HEADER_LEN:
        raise MrtError(at, f"BGP message length {length} is below {BGP_HEADER_LEN}")
    if length - BGP_HEADER_LEN > r.left:
        raise MrtError(
            at,
            f"BGP message length {length} exceeds the record "
            f"({r.left + BGP_HEADER_LEN} bytes left)",
        )
    m = r.sub(length - BGP_HEADER_LEN, "BGP message")
    if mtype != BgpType.UPDATE:
        return mtype, None
    at = m.offset
    wlen = m.u16("withdrawn routes length")
    if wlen > m.left:
        raise MrtError(
            at,
            f"BGP UPDATE withdrawn routes length {wlen} exceeds the message ({m.left} bytes left)",
        )
    withdrawn = _prefixes(m.sub(wlen, "withdrawn routes"), 32, "withdrawn")
    at = m.offset
    alen = m.u16("total path attribute length")
    if alen > m.left:
        raise MrtError(
            at, f"BGP UPDATE attribute length {alen} exceeds the message ({m.left} bytes left)"
        )
    attrs = parse_attributes(m.sub(alen, "path attributes"), asn_size)
    nlri = _prefixes(m, 32, "NLRI")
    return mtype, BgpUpdate(withdrawn, attrs, nlri)


# ---------------------------------------------------------------------------------------------
# BGP4MP (RFC 6396 section 4.4)


@dataclass(frozen=True, slots=True)
class Bgp4mpMessage:
    peer_as: int
    local_as: int
    peer_ip: str
    local_ip: str
    msg_type: int
    update: BgpUpdate | None


@dataclass(frozen=True, slots=True)
class Bgp4mpStateChange:
    peer_as: int
    local_as: int
    peer_ip: str
    old_state: int
    new_state: int


def parse_bgp4mp(rec: MrtRecord) -> Bgp4mpMessage | Bgp4mpStateChange | None:
    """A BGP4MP / BGP4MP_ET record; None for the ADD-PATH subtypes (RFC 8050), not decoded."""
    sub = rec.subtype
    if sub > 11 or sub in (2, 3):
        raise MrtError(rec.offset + 6, f"unknown BGP4MP subtype {sub}")
    if sub not in _BGP4MP_MESSAGES and sub not in (Bgp4mp.STATE_CHANGE, Bgp4mp.STATE_CHANGE_AS4):
        return None
    asn_size = 4 if sub in _BGP4MP_AS4 else 2
    r = rec.reader()
    peer_as = r.u32("peer AS") if asn_size == 4 else r.u16("peer AS")
    local_as = r.u32("local AS") if asn_size == 4 else r.u16("local AS")
    r.u16("interface index")
    at = r.offset
    afi = r.u16("address family")
    if afi not in (AFI_IPV4, AFI_IPV6):
        raise MrtError(at, f"BGP4MP address family {afi} is neither 1 (IPv4) nor 2 (IPv6)")
    peer_ip = _address(r, afi == AFI_IPV6, "peer IP")
    local_ip = _address(r, afi == AFI_IPV6, "local IP")
    if sub in (Bgp4mp.STATE_CHANGE, Bgp4mp.STATE_CHANGE_AS4):
        old = r.u16("old state")
        new = r.u16("new state")
        return Bgp4mpStateChange(peer_as, local_as, peer_ip, old, new)
    # The BGP message always carries 4-byte ASNs in the AS4 subtypes (RFC 6396 4.4.3).
    mtype, update = parse_bgp_message(r, asn_size)
    return Bgp4mpMessage(peer_as, local_as, peer_ip, local_ip, mtype, update)


# ---------------------------------------------------------------------------------------------
# TABLE_DUMP (4.2) and TABLE_DUMP_V2 (4.3)


@dataclass(frozen=True, slots=True)
class Peer:
    bgp_id: int
    address: str
    asn: int


@dataclass(frozen=True, slots=True)
class RibEntry:
    peer_index: int
    originated: int
    attrs: PathAttributes


@dataclass(frozen=True, slots=True)
class RibRecord:
    sequence: int
    net: int
    plen: int
    entries: list[RibEntry]


def parse_peer_index_table(rec: MrtRecord) -> list[Peer]:
    r = rec.reader()
    r.u32("collector BGP ID")
    r.take(r.u16("view name length"), "view name")
    count = r.u16("peer count")
    peers = []
    for _ in range(count):
        ptype = r.u8("peer type")
        bgp_id = r.u32("peer BGP ID")
        address = _address(r, bool(ptype & 1), "peer IP")
        asn = r.u32("peer AS") if ptype & 2 else r.u16("peer AS")
        peers.append(Peer(bgp_id, address, asn))
    return peers


def parse_rib_ipv4_unicast(rec: MrtRecord) -> RibRecord:
    """A RIB_IPV4_UNICAST record; AS_PATHs in TABLE_DUMP_V2 always hold 4-byte ASNs."""
    r = rec.reader()
    seq = r.u32("sequence number")
    net, plen = _prefix(r, 32, "RIB")
    entries = []
    for _ in range(r.u16("entry count")):
        peer_index = r.u16("peer index")
        originated = r.u32("originated time")
        at = r.offset
        alen = r.u16("attribute length")
        if alen > r.left:
            raise MrtError(
                at, f"RIB entry attribute length {alen} exceeds the record ({r.left} bytes left)"
            )
        attrs = parse_attributes(r.sub(alen, "RIB entry attributes"), 4, rib_entry=True)
        entries.append(RibEntry(peer_index, originated, attrs))
    return RibRecord(seq, net, plen, entries)


@dataclass(frozen=True, slots=True)
class TableDumpEntry:
    net: int
    plen: int
    peer_ip: str
    peer_as: int
    originated: int
    attrs: PathAttributes


def parse_table_dump(rec: MrtRecord) -> TableDumpEntry | None:
    """A TABLE_DUMP (version 1) record; None for its IPv6 subtype (AFI 2)."""
    if rec.subtype not in (AFI_IPV4, AFI_IPV6):
        raise MrtError(rec.offset + 6, f"unknown TABLE_DUMP subtype {rec.subtype}")
    if rec.subtype == AFI_IPV6:
        return None
    r = rec.reader()
    r.u16("view number")
    r.u16("sequence number")
    at = r.offset
    net = r.u32("prefix")
    plen = r.u8("prefix length")
    if plen > 32:
        raise MrtError(at + 4, f"TABLE_DUMP prefix length {plen} exceeds 32")
    net &= ~((1 << (32 - plen)) - 1) & 0xFFFFFFFF
    r.u8("status")
    originated = r.u32("originated time")
    peer_ip = _address(r, False, "peer IP")
    peer_as = r.u16("peer AS")
    at = r.offset
    alen = r.u16("attribute length")
    if alen > r.left:
        raise MrtError(
            at, f"TABLE_DUMP attribute length {alen} exceeds the record ({r.left} bytes left)"
        )
    attrs = parse_attributes(r.sub(alen, "attributes"), 2)
    return TableDumpEntry(net, plen, peer_ip, peer_as, originated, attrs)


# ---------------------------------------------------------------------------------------------
# Encoding (tests and tools)


def encode_record(
    mrt_type: int, subtype: int, body: bytes, timestamp: int = 0, microseconds: int | None = None
) -> bytes:
    """A whole record: common header (+ ET microseconds when given) + body."""
    if microseconds is not None:
        body = microseconds.to_bytes(4, "big") + body
    return struct.pack(">IHHI", timestamp, mrt_type, subtype, len(body)) + body


def encode_prefix(net: int, plen: int) -> bytes:
    nbytes = (plen + 7) // 8
    return bytes([plen]) + net.to_bytes(4, "big")[:nbytes]


def encode_attribute(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value


def encode_as_path(path: AsPath, asn_size: int = 4) -> bytes:
    out = bytearray()
    for seg_type, asns in path:
        out += bytes([seg_type, len(asns)])
        for a in asns:
            out += a.to_bytes(asn_size, "big")
    return bytes(out)


def encode_update(
    withdrawn: list[tuple[int, int]],
    nlri: list[tuple[int, int]],
    *,
    as_path: AsPath | None = None,
    next_hop: int | None = None,
    origin: int = 0,
    asn_size: int = 4,
) -> bytes:
    """A whole BGP UPDATE message (header included)."""
    attrs = b""
    if nlri:
        attrs += encode_attribute(AttrType.ORIGIN, bytes([origin]))
        attrs += encode_attribute(AttrType.AS_PATH, encode_as_path(as_path or [], asn_size))
        if next_hop is not None:
            attrs += encode_attribute(AttrType.NEXT_HOP, next_hop.to_bytes(4, "big"))
    w = b"".join(encode_prefix(n, p) for n, p in withdrawn)
    body = len(w).to_bytes(2, "big") + w + len(attrs).to_bytes(2, "big") + attrs
    body += b"".join(encode_prefix(n, p) for n, p in nlri)
    return _MARKER + (BGP_HEADER_LEN + len(body)).to_bytes(2, "big") + bytes([2]) + body


def encode_bgp4mp_message(
    bgp_message: bytes, *, peer_as: int, peer_ip: int, local_as: int = 0, local_ip: int = 0
) -> bytes:
    """The body of a BGP4MP MESSAGE_AS4 record over IPv4."""
    return (
        struct.pack(">IIHH", peer_as, local_as, 0, AFI_IPV4)
        + peer_ip.to_bytes(4, "big")
        + local_ip.to_bytes(4, "big")
        + bgp_message
    )
