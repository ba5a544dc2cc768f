"""BGP inside MRT: prefixes, path attributes (RFC 4271 4.3, AS4_PATH of RFC 6793, MP_REACH /
MP_UNREACH of RFC 4760), UPDATE messages and the BGP4MP records that carry them (RFC 6396
section 4.4)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from netfast.route.mrt.records import (
    _BGP4MP_AS4,
    _BGP4MP_MESSAGES,
    _MARKER,
    AFI_IPV4,
    AFI_IPV6,
    BGP_HEADER_LEN,
    SAFI_UNICAST,
    AsPath,
    AttrType,
    Bgp4mp,
    BgpType,
    MrtError,
    MrtRecord,
    Segment,
    _Reader,
)

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
