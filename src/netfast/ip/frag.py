"""IPv4 fragmentation to an MTU (RFC 791 sections 2.3 and 3.2, "Fragmentation and Reassembly";
RFC 1812 section 5.2.6 for a router).

Contract
--------
:func:`ip_fragment` splits one IPv4 packet whose DF flag is clear into fragments of at most
``mtu`` bytes each:

- every fragment but the last carries a multiple of 8 payload bytes, and its offset field counts
  8-byte units from the start of the *original* datagram -- a packet that is itself a fragment
  keeps its base offset, and its last piece keeps its MF flag (RFC 791, "fragmenting a
  fragment");
- the first fragment carries the whole header with every option; the others carry only the
  options whose *copied* flag is set (RFC 791 3.1, "Options"), padded with zeros (EOL) to a
  4-byte boundary;
- identification, TOS, TTL, protocol and addresses are those of the original; every header's
  checksum is computed afresh.

It is pure (bytes in, list of bytes out).  Calling it with DF set, an MTU that cannot carry 8
payload bytes behind the header, or a malformed header raises ``ValueError`` (API misuse: the
router checks all three first).
"""

from __future__ import annotations

import struct

from netfast.wire import checksum
from netfast.wire.buffer import Buffer
from netfast.wire.ipv4 import FIXED_HEADER, FLAG_DF, FLAG_MF
from netfast.wire.ipv4_options import iter_options

_U16 = struct.Struct(">H")
_OFFSET_MASK = 0x1FFF


def copied_options(options: Buffer) -> bytes:
    """The options a non-first fragment carries: those with the copied flag (type bit 0x80),
    padded with zeros to a multiple of 4 bytes (RFC 791 section 3.1)."""
    kept = b"".join(opt.to_bytes() for opt in iter_options(options) if opt.copied)
    return kept + bytes(-len(kept) % 4)


def _header(fixed: tuple[int, ...], options: bytes, total: int, frag_word: int) -> bytes:
    ver_ihl = 0x40 | ((20 + len(options)) >> 2)
    head = (
        FIXED_HEADER.pack(
            ver_ihl,
            fixed[1],
            total,
            fixed[3],
            frag_word,
            fixed[5],
            fixed[6],
            0,
            fixed[8],
            fixed[9],
        )
        + options
    )
    value = checksum.internet_checksum(head)
    return head[:10] + _U16.pack(value) + head[12:]


def ip_fragment(packet: Buffer, mtu: int) -> list[bytes]:
    """Fragment an IPv4 packet to ``mtu`` bytes (RFC 791 section 3.2, RFC 1812 section 5.2.6).

    Parameters
    ----------
    packet:
        The whole packet, header first; bytes beyond its total length are ignored.
    mtu:
        Largest fragment, header included.

    Returns
    -------
    list of bytes
        The fragments in offset order; the packet itself (one element) when it fits.

    Raises
    ------
    ValueError
        When DF is set, when ``mtu`` leaves fewer than 8 payload bytes behind a header, or when
        the header is malformed (short buffer, bad IHL, malformed options).
    """
    if len(packet) < 20:
        raise ValueError(f"an IPv4 packet of {len(packet)} bytes has no header")
    fixed = FIXED_HEADER.unpack_from(packet)
    header_len = (fixed[0] & 0x0F) << 2
    total = fixed[2]
    if header_len < 20 or total < header_len or total > len(packet):
        raise ValueError(f"malformed IPv4 header: ihl*4={header_len}, total_length={total}")
    if total <= mtu:
        return [bytes(packet[:total])]
    frag_word = fixed[4]
    if frag_word & FLAG_DF:
        raise ValueError("the packet has DF set: send fragmentation needed instead")
    options_first = bytes(packet[20:header_len])
    options_rest = copied_options(options_first) if options_first else b""
    if mtu - header_len < 8:
        raise ValueError(f"MTU {mtu} leaves no 8 payload bytes behind a {header_len}-byte header")

    base = frag_word & _OFFSET_MASK  # in 8-byte units
    last_mf = frag_word & FLAG_MF
    payload = bytes(packet[header_len:total])
    size = len(payload)
    fragments: list[bytes] = []
    pos = 0
    options = options_first
    while pos < size:
        room = (mtu - 20 - len(options)) & ~7
        chunk = payload[pos : pos + room]
        end = pos + len(chunk)
        mf = FLAG_MF if end < size else last_mf
        word = mf | (base + (pos >> 3))
        fragments.append(_header(fixed, options, 20 + len(options) + len(chunk), word) + chunk)
        pos = end
        options = options_rest
    return fragments
