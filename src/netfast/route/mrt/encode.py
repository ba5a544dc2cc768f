"""Encoding MRT records and BGP messages, for tests and tools (the inverse of the decoders)."""

from __future__ import annotations

import struct

from netfast.route.mrt.records import _MARKER, AFI_IPV4, BGP_HEADER_LEN, AsPath, AttrType

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
