"""IPv4 protocol facts the scalar and the compiled paths share: one definition each.

Contract
--------
Every fact here has two forms that compute the same function on every input:

- a Python form for the per-packet scalar code (:mod:`netfast.ip.input`, :mod:`netfast.ip.router`,
  :mod:`netfast.ip.icmp`), and
- a compiled form, ``@numba.njit(inline="always")``, that the numba kernels call
  (:mod:`netfast.ip.vector_kernels`, :mod:`netfast.link.offload`); inlined, it compiles to the
  same instructions the kernels used to spell out themselves.

Where the two can be one function (the martian tests: plain integer comparisons), the compiled
form is the Python function compiled; where the scalar form is faster written with ``struct``
or :mod:`netfast.wire.checksum` (the header sum, the TTL update), the two are written apart.
The transport fields have their one compiled form inside the vector path's pfil kernel
(``netfast.ip.vector_kernels.pfil_kernel``: an inlined helper measured 30% slower there), with
:func:`l4_fields` as its twin.  ``tests/ip/test_facts.py`` checks each pair against each other
over all the inputs that matter (hypothesis).

The facts
---------
- martian source and destination: RFC 1812 section 5.3.7;
- the IPv4 header sum: RFC 791 section 3.1, RFC 1071 (it is 0xFFFF for a header that verifies);
- the TTL decrement with the RFC 1624 (eqn. 3) incremental update of the header checksum
  (RFC 1812 section 5.3.1); the Python twin is :func:`netfast.wire.checksum.update_ttl`;
- the transport fields a packet filter reads (ports, TCP flags, ICMP type and code), present
  only when the transport header's bytes are (else -1, as in :class:`netfast.pfil.PfilPacket`).
"""

from __future__ import annotations

import struct
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.wire.buffer import Buffer
from netfast.wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

__all__ = [
    "LIMITED_BROADCAST",
    "MARTIAN_DST_TOP",
    "MARTIAN_SRC_TOP",
    "L4_ABSENT",
    "l4_fields",
    "martian_dst",
    "martian_dst_mask",
    "martian_src",
    "nb_ipv4_header_sum",
    "nb_martian_dst",
    "nb_martian_src",
    "nb_ttl_decrement_checksum",
]

LIMITED_BROADCAST = 0xFFFFFFFF

#: sport, dport, tcp_flags, icmp_type, icmp_code of a packet without them.
L4_ABSENT: tuple[int, int, int, int, int] = (-1, -1, -1, -1, -1)

_PORTS = struct.Struct(">HH")


# --- martians (RFC 1812 5.3.7) --------------------------------------------------------------


def martian_src(src: int) -> bool:
    """True for a source a router must not accept (RFC 1812 5.3.7): 0/8 ("this network"),
    127/8 (loopback), 224/4 (multicast, never a source) and 240/4 (reserved and the limited
    broadcast)."""
    top = src >> 24
    return top == 0 or top == 127 or top >= 224


def martian_dst(dst: int) -> bool:
    """True for a destination a router must not accept (RFC 1812 5.3.7): 0/8, 127/8, and 240/4
    except the limited broadcast 255.255.255.255.  Multicast (224/4) is not martian."""
    top = dst >> 24
    return top == 0 or top == 127 or (top >= 240 and dst != LIMITED_BROADCAST)


#: :func:`martian_src` by the address's first octet, for per-packet Python code that cannot
#: afford a call: ``MARTIAN_SRC_TOP[src >> 24]`` is ``martian_src(src)``.
MARTIAN_SRC_TOP = bytes(martian_src(top << 24) for top in range(256))
#: :func:`martian_dst` by first octet, less its one exception: ``martian_dst(dst)`` is
#: ``MARTIAN_DST_TOP[dst >> 24] and dst != LIMITED_BROADCAST``.
MARTIAN_DST_TOP = bytes(martian_dst(top << 24) for top in range(256))

#: Compiled :func:`martian_src`, for kernels (an unsigned 32-bit address).
nb_martian_src: Any = numba.njit(nogil=True, cache=True, inline="always")(martian_src)
#: Compiled :func:`martian_dst`, for kernels (an unsigned 32-bit address).
nb_martian_dst: Any = numba.njit(nogil=True, cache=True, inline="always")(martian_dst)


@numba.njit(nogil=True, cache=True)
def _martian_dst_mask_kernel(addrs: Any, out: Any) -> None:  # pragma: no cover - compiled
    for i in range(addrs.shape[0]):
        out[i] = nb_martian_dst(addrs[i])


def martian_dst_mask(addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """:func:`martian_dst` of every address of ``addrs``."""
    out = np.empty(len(addrs), np.bool_)
    _martian_dst_mask_kernel(np.ascontiguousarray(addrs, np.uint32), out)
    return out


# --- the header sum (RFC 791 3.1, RFC 1071) -------------------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def nb_ipv4_header_sum(a: Any, off: int) -> Any:  # pragma: no cover - compiled
    """Compiled: the folded one's complement sum of the 20-byte fixed IPv4 header at
    ``a[off:off + 20]`` (a uint8 array), checksum field included: 0xFFFF when it verifies.
    The Python twin is ``netfast.wire.checksum.ones_sum(buf[off:off + 20])``."""
    s = np.uint32(0)
    for j in range(off, off + 20, 2):
        s += (np.uint32(a[j]) << np.uint32(8)) | np.uint32(a[j + 1])
    s = (s & np.uint32(0xFFFF)) + (s >> np.uint32(16))
    return (s & np.uint32(0xFFFF)) + (s >> np.uint32(16))


# --- TTL - 1 and the checksum (RFC 1812 5.3.1, RFC 1624) --------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def nb_ttl_decrement_checksum(csum: Any, ttl: Any, proto: Any) -> Any:  # pragma: no cover
    """Compiled: the header checksum after TTL -> TTL - 1 (RFC 1624 eqn. 3,
    ``HC' = ~(~HC + ~m + m')`` over the TTL/protocol word), for ``1 <= ttl <= 255``.
    The Python twin is ``netfast.wire.checksum.update_ttl(csum, ttl, proto, ttl - 1)``."""
    mask = np.uint32(0xFFFF)
    word = (np.uint32(ttl) << np.uint32(8)) | np.uint32(proto)
    s = (~np.uint32(csum) & mask) + (~word & mask) + (word - np.uint32(0x100))
    while s > mask:
        s = (s & mask) + (s >> np.uint32(16))
    return ~s & mask


# --- transport fields a filter reads ----------------------------------------------------------


def l4_fields(packet: Buffer, off: int, proto: int) -> tuple[int, int, int, int, int]:
    """sport, dport, tcp_flags, icmp_type, icmp_code of the transport header at
    ``packet[off:]`` (the end of ``packet`` is the end of the IP packet), -1 for each field
    whose bytes are not all there or that ``proto`` does not have.  Only for a first
    fragment (a later one carries no transport header)."""
    l4 = len(packet) - off
    if proto == IPPROTO_TCP and l4 >= 14:
        sport, dport = _PORTS.unpack_from(packet, off)
        return sport, dport, packet[off + 13], -1, -1
    if proto == IPPROTO_UDP and l4 >= 4:
        sport, dport = _PORTS.unpack_from(packet, off)
        return sport, dport, -1, -1, -1
    if proto == IPPROTO_ICMP and l4 >= 2:
        return -1, -1, -1, packet[off], packet[off + 1]
    return L4_ABSENT
