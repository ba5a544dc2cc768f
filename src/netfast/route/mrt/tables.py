"""Routing-table snapshots in MRT: TABLE_DUMP (RFC 6396 section 4.2) and TABLE_DUMP_V2
PEER_INDEX_TABLE and RIB_IPV4_UNICAST (section 4.3)."""

from __future__ import annotations

from dataclasses import dataclass

from netfast.route.mrt.bgp import PathAttributes, _address, _prefix, parse_attributes
from netfast.route.mrt.records import AFI_IPV4, AFI_IPV6, MrtError, MrtRecord

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
