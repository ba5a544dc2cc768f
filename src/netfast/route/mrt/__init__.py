"""MRT routing-information export format (RFC 6396) and BGP UPDATE messages (RFC 4271), on bytes.

This package is the codec only: it decodes records from a buffer or a binary stream handed to it
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

from netfast.route.mrt.bgp import (
    Bgp4mpMessage,
    Bgp4mpStateChange,
    BgpUpdate,
    PathAttributes,
    format_as_path,
    merge_as4_path,
    origin_as,
    parse_attributes,
    parse_bgp4mp,
    parse_bgp_message,
)
from netfast.route.mrt.encode import (
    encode_as_path,
    encode_attribute,
    encode_bgp4mp_message,
    encode_prefix,
    encode_record,
    encode_update,
)
from netfast.route.mrt.records import (
    AFI_IPV4,
    AFI_IPV6,
    BGP_HEADER_LEN,
    HEADER_LEN,
    IPV6_RIB_SUBTYPES,
    KNOWN_TYPES,
    MAX_RECORD_LEN,
    SAFI_UNICAST,
    AsPath,
    AttrType,
    Bgp4mp,
    BgpType,
    MrtError,
    MrtRecord,
    MrtType,
    Segment,
    TableDumpV2,
    check_type,
    iter_records,
)
from netfast.route.mrt.tables import (
    Peer,
    RibEntry,
    RibRecord,
    TableDumpEntry,
    parse_peer_index_table,
    parse_rib_ipv4_unicast,
    parse_table_dump,
)

__all__ = [
    "AFI_IPV4",
    "AFI_IPV6",
    "AsPath",
    "AttrType",
    "BGP_HEADER_LEN",
    "Bgp4mp",
    "Bgp4mpMessage",
    "Bgp4mpStateChange",
    "BgpType",
    "BgpUpdate",
    "HEADER_LEN",
    "IPV6_RIB_SUBTYPES",
    "KNOWN_TYPES",
    "MAX_RECORD_LEN",
    "MrtError",
    "MrtRecord",
    "MrtType",
    "PathAttributes",
    "Peer",
    "RibEntry",
    "RibRecord",
    "SAFI_UNICAST",
    "Segment",
    "TableDumpEntry",
    "TableDumpV2",
    "check_type",
    "encode_as_path",
    "encode_attribute",
    "encode_bgp4mp_message",
    "encode_prefix",
    "encode_record",
    "encode_update",
    "format_as_path",
    "iter_records",
    "merge_as4_path",
    "origin_as",
    "parse_attributes",
    "parse_bgp4mp",
    "parse_bgp_message",
    "parse_peer_index_table",
    "parse_rib_ipv4_unicast",
    "parse_table_dump",
]
