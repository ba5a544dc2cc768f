"""IPv4 input checks: the integrity checks of RFC 1812 section 5.2.2 and the martian filter of
section 5.3.7, cheapest first, each failure a named counter (the paper's "Integrity Checks").

Contract
--------
:func:`ip_input_check` looks at one IPv4 packet in a buffer (at ``offset``, e.g. 14 behind an
Ethernet header) and returns either the unpacked fixed header as an :class:`Ipv4Header` -- the
packet is then safe to read up to ``total_length`` and its addresses are not martian -- or the
name of the counter that explains why the packet must be dropped.  It reads the fixed header with
one ``struct`` call and never raises on any input, so the scalar router, the vector path's punt
logic and tests can all share it.

The checks, in order (cheapest first; RFC 1812 5.2.2 numbers them 1-5 but leaves the order free):

===========================  ========================================================
counter                      the packet ...
===========================  ========================================================
``ip.in.too_short``          is shorter than the 20-byte fixed header (5.2.2 (1))
``ip.in.bad_version``        has a version other than 4 (5.2.2 (3))
``ip.in.bad_hlen``           has IHL < 5 (5.2.2 (4))
``ip.in.bad_len``            claims a total length beyond the frame, or below its own
                             header length (5.2.2 (5); the header then does not fit either)
``ip.in.bad_checksum``       has a header checksum that does not verify (5.2.2 (2))
``ip.in.martian_src``        comes from 0/8, 127/8, 224/4 (multicast) or 240/4, which
                             includes 255.255.255.255 (5.3.7)
``ip.in.martian_dst``        goes to 0/8, 127/8 or 240/4 other than the limited broadcast
                             255.255.255.255 (5.3.7)
===========================  ========================================================

The martian tests are :func:`netfast.ip.facts.martian_src` and
:func:`~netfast.ip.facts.martian_dst` (the definitions the vector path's kernels compile), read
here from their per-octet tables.
The checksum test uses the identity of :mod:`netfast.wire.checksum`: the one's complement sum of
a header is 0xFFFF exactly when the header read as one big integer is a non-zero multiple of
0xFFFF; an IPv4 header is never all zeros (its version nibble is 4), so one ``int.from_bytes`` and
one ``%`` decide it.
"""

from __future__ import annotations

from typing import NamedTuple

from netfast.ip.facts import LIMITED_BROADCAST, MARTIAN_DST_TOP, MARTIAN_SRC_TOP
from netfast.wire.buffer import Buffer
from netfast.wire.errors import MalformedError
from netfast.wire.ipv4 import FIXED_HEADER
from netfast.wire.ipv4_options import iter_options

IN_TOO_SHORT = "ip.in.too_short"
IN_BAD_VERSION = "ip.in.bad_version"
IN_BAD_HLEN = "ip.in.bad_hlen"
IN_BAD_LEN = "ip.in.bad_len"
IN_BAD_CHECKSUM = "ip.in.bad_checksum"
IN_MARTIAN_SRC = "ip.in.martian_src"
IN_MARTIAN_DST = "ip.in.martian_dst"

#: Every counter :func:`ip_input_check` can name, in check order.
INPUT_DROPS: tuple[str, ...] = (
    IN_TOO_SHORT,
    IN_BAD_VERSION,
    IN_BAD_HLEN,
    IN_BAD_LEN,
    IN_BAD_CHECKSUM,
    IN_MARTIAN_SRC,
    IN_MARTIAN_DST,
)


class Ipv4Header(NamedTuple):
    """The fixed IPv4 header as one ``struct`` unpack gives it (RFC 791 section 3.1)."""

    ver_ihl: int
    tos: int
    total_length: int
    ident: int
    frag: int
    """Flags and fragment offset, the raw 16-bit word."""
    ttl: int
    proto: int
    checksum: int
    src: int
    dst: int

    @property
    def header_len(self) -> int:
        """Header length in bytes, options included."""
        return (self.ver_ihl & 0x0F) << 2


def options_ok(options: Buffer) -> bool:
    """True when the IP options walk cleanly (:func:`netfast.wire.ipv4_options.iter_options`); a
    malformed list is dropped by router and host alike (RFC 1812 5.2.2 leaves its reply open)."""
    try:
        for _ in iter_options(options):
            pass
    except MalformedError:
        return False
    return True


def ip_input_check(buf: Buffer, offset: int = 0) -> Ipv4Header | str:
    """Integrity and martian checks of the IPv4 packet at ``buf[offset:]``.

    Parameters
    ----------
    buf:
        A frame or packet; bytes after ``total_length`` (link padding) are allowed.
    offset:
        Where the IPv4 header starts (14 behind an untagged Ethernet header).

    Returns
    -------
    Ipv4Header or str
        The unpacked fixed header when every check passes, else the name of the failing
        check's counter (one of :data:`INPUT_DROPS`).  Never raises on any content of ``buf``.
    """
    have = len(buf) - offset
    if have < 20:
        return IN_TOO_SHORT
    fields = FIXED_HEADER.unpack_from(buf, offset)
    ver_ihl = fields[0]
    if ver_ihl >> 4 != 4:
        return IN_BAD_VERSION
    header_len = (ver_ihl & 0x0F) << 2
    if header_len < 20:
        return IN_BAD_HLEN
    total = fields[2]
    if total > have or total < header_len:
        return IN_BAD_LEN
    if int.from_bytes(buf[offset : offset + header_len], "big") % 0xFFFF:
        return IN_BAD_CHECKSUM
    # martian_src / martian_dst by table (a call each would cost more than the whole test)
    if MARTIAN_SRC_TOP[fields[8] >> 24]:
        return IN_MARTIAN_SRC
    dst = fields[9]
    if MARTIAN_DST_TOP[dst >> 24] and dst != LIMITED_BROADCAST:
        return IN_MARTIAN_DST
    return Ipv4Header._make(fields)
