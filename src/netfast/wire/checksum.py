"""The Internet checksum: RFC 1071 sum, TCP/UDP pseudo-header, RFC 1624 incremental update, and a
vectorized form over numpy batches.

The paper ("Data Link Layer") notes that checksum offload is often broken in hardware and must then
be done by the CPU; this module is that CPU fallback, so it has to be fast.

Theory of operation
-------------------
The one's complement sum of 16-bit big-endian words is congruent to the plain integer value of the
byte string modulo 0xFFFF (because 2**16 == 1 mod 0xFFFF).  ``int.from_bytes(data) % 0xFFFF`` thus
computes the folded sum in C with no per-byte Python loop.  The only subtlety is the two zeros of
one's complement arithmetic: a non-empty sum congruent to 0 is +0 only when every word is zero and
-0 (0xFFFF) otherwise, as the end-around-carry adder of RFC 1071 would produce.

Functions named ``*_sum`` return the folded one's complement sum (not complemented); functions
named ``*_checksum`` return the value that goes into a header (the complement of the sum).
A received header verifies when the sum over it, checksum field included, is 0xFFFF.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.wire.buffer import Buffer

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17


def fold(total: int) -> int:
    """Fold a non-negative integer into a 16-bit one's complement sum (end-around carry)."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


#: From this many bytes on, the sum runs in a compiled loop: converting a large buffer to one
#: big integer costs far more per byte than the loop's word additions (see ``netfast bench
#: checksum``), and TCP segments of 1500 bytes to 64 KiB pass through here on every send.
LARGE = 256


@numba.njit(nogil=True, cache=True, inline="always")
def words_sum(a: Any, start: int, stop: int) -> Any:  # pragma: no cover - compiled
    """Compiled: the unfolded sum of the big-endian 16-bit words of ``a[start:stop]`` (a uint8
    array; an odd tail is padded with a zero byte).  For numba kernels that checksum pieces of a
    batch in place (:mod:`netfast.link.offload`); fold with :func:`words_fold`."""
    total = np.uint64(0)
    eight = np.uint64(8)
    i = start
    while i + 1 < stop:
        total += (np.uint64(a[i]) << eight) | np.uint64(a[i + 1])
        i += 2
    if i < stop:
        total += np.uint64(a[i]) << eight
    return total


@numba.njit(nogil=True, cache=True, inline="always")
def words_fold(total: Any) -> Any:  # pragma: no cover - compiled
    """Compiled :func:`fold` of a uint64 sum."""
    mask = np.uint64(0xFFFF)
    while total > mask:
        total = (total & mask) + (total >> np.uint64(16))
    return total


@numba.njit(nogil=True, cache=True)
def _ones_sum_kernel(a: Any) -> int:  # pragma: no cover - compiled
    return int(words_fold(words_sum(a, 0, a.shape[0])))


def ones_sum(data: Buffer, initial: int = 0) -> int:
    """Folded 16-bit one's complement sum of ``data`` (odd length padded with a zero byte).

    ``initial`` is a previous folded sum (e.g. of a pseudo-header) to add in.
    """
    n = len(data)
    if n >= LARGE:
        total = _ones_sum_kernel(np.frombuffer(data, np.uint8))
        return fold(total + initial) if initial else total
    value = int.from_bytes(data, "big")
    if n & 1:
        value <<= 8
    total = value % 0xFFFF
    if total == 0 and value != 0:
        total = 0xFFFF
    if initial:
        total = fold(total + initial)
    return total


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """RFC 1071 checksum of ``data``: the complement of its one's complement sum."""
    return ~ones_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: int, dst: int, protocol: int, length: int) -> int:
    """Folded sum of the IPv4 pseudo-header (RFC 793 / RFC 768) for TCP and UDP.

    ``src`` and ``dst`` are IPv4 addresses as 32-bit integers, ``length`` the L4 length in bytes.
    """
    total = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + protocol + length
    return fold(total)


def l4_checksum(src: int, dst: int, protocol: int, segment: Buffer) -> int:
    """TCP/UDP checksum of ``segment`` (its checksum field must hold zero) over the pseudo-header.

    For UDP a computed value of 0 is sent as 0xFFFF (RFC 768); callers emitting UDP use
    :func:`udp_wire_checksum`.
    """
    return internet_checksum(segment, pseudo_header_sum(src, dst, protocol, len(segment)))


def udp_wire_checksum(src: int, dst: int, segment: Buffer) -> int:
    """The UDP checksum as transmitted: a computed 0 becomes 0xFFFF (RFC 768)."""
    value = l4_checksum(src, dst, IPPROTO_UDP, segment)
    return value or 0xFFFF


def l4_verify(src: int, dst: int, protocol: int, segment: Buffer) -> bool:
    """True when the TCP/UDP ``segment`` (checksum field included) verifies."""
    return ones_sum(segment, pseudo_header_sum(src, dst, protocol, len(segment))) == 0xFFFF


def verify(data: Buffer) -> bool:
    """True when ``data`` (checksum field included, e.g. an IPv4 header) verifies."""
    return ones_sum(data) == 0xFFFF


def update16(checksum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update of ``checksum`` when a 16-bit word changes ``old -> new``.

    Uses equation 3 of RFC 1624, ``HC' = ~(~HC + ~m + m')``, which -- unlike RFC 1141's
    equation -- never produces the -0 that a full recomputation cannot produce.  The single
    exception is data whose words are all zero apart from the checksum (impossible for an IPv4
    header, whose first byte is 0x4_): there this returns 0x0000 where recomputation gives 0xFFFF.
    """
    total = (~checksum & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    return ~fold(total) & 0xFFFF


def update32(checksum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update for a 32-bit field (an IPv4 address) changing ``old -> new``."""
    total = (
        (~checksum & 0xFFFF)
        + (~(old >> 16) & 0xFFFF)
        + (~old & 0xFFFF)
        + ((new >> 16) & 0xFFFF)
        + (new & 0xFFFF)
    )
    return ~fold(total) & 0xFFFF


def update_ttl(checksum: int, ttl: int, protocol: int, new_ttl: int) -> int:
    """Incremental IPv4 header checksum update for a TTL change (TTL shares a word with the
    protocol field)."""
    return update16(checksum, (ttl << 8) | protocol, (new_ttl << 8) | protocol)


# --- vectorized form --------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _rows_sum(
    buf: Any, start: Any, length: Any, initial: Any, out: Any
) -> None:  # pragma: no cover - compiled
    for i in range(buf.shape[0]):
        s = np.uint64(initial[i])
        b = start[i]
        n = length[i]
        j = 0
        while j + 1 < n:
            s += (np.uint64(buf[i, b + j]) << np.uint64(8)) | np.uint64(buf[i, b + j + 1])
            j += 2
        if j < n:
            s += np.uint64(buf[i, b + j]) << np.uint64(8)
        while s > 0xFFFF:
            s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
        out[i] = s


def batch_ones_sum(
    rows: npt.NDArray[np.uint8],
    start: npt.ArrayLike,
    length: npt.ArrayLike,
    initial: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint16]:
    """Folded one's complement sums over a batch: row ``i`` summed over
    ``rows[i, start[i] : start[i] + length[i]]``, plus ``initial[i]``.

    ``rows`` is a 2-D uint8 array (one frame per row, fixed slots); ``start``/``length`` are
    scalars or per-row arrays.  Ranges must lie within a row.
    """
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D, got shape {rows.shape}")
    n = rows.shape[0]
    st = np.broadcast_to(np.asarray(start, dtype=np.int64), (n,))
    ln = np.broadcast_to(np.asarray(length, dtype=np.int64), (n,))
    if n and (st.min() < 0 or ln.min() < 0 or (st + ln).max() > rows.shape[1]):
        raise ValueError("a checksum range lies outside its row")
    init = (
        np.zeros(n, np.uint32)
        if initial is None
        else np.broadcast_to(np.asarray(initial, dtype=np.uint32), (n,))
    )
    out = np.empty(n, np.uint16)
    _rows_sum(
        rows, np.ascontiguousarray(st), np.ascontiguousarray(ln), np.ascontiguousarray(init), out
    )
    return out


def batch_checksum(
    rows: npt.NDArray[np.uint8],
    start: npt.ArrayLike,
    length: npt.ArrayLike,
    initial: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint16]:
    """Checksums (complemented sums) over a batch; see :func:`batch_ones_sum`."""
    return ~batch_ones_sum(rows, start, length, initial)


def batch_ipv4_header_checksum(headers: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint16]:
    """Header checksums of N option-less IPv4 headers, ``headers`` of shape (N, >=20), in pure
    numpy: the checksum field (bytes 10-11) is treated as zero."""
    h = np.asarray(headers, dtype=np.uint8)[:, :20].astype(np.uint32)
    words = (h[:, 0::2] << 8) | h[:, 1::2]
    words[:, 5] = 0
    s = words.sum(axis=1, dtype=np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).astype(np.uint16)
