"""IPv4 reassembly of datagrams addressed to this host (RFC 791 section 3.2, RFC 815), sans-IO.

Contract
--------
:meth:`Reassembler.input` takes one fragment (a packet with MF set or a non-zero offset) and
returns the whole datagram once every byte from offset 0 to the end (the fragment without MF)
has arrived, else None.  Fragments belong together by (source, destination, protocol,
identification), RFC 791's key.  The hole bookkeeping is RFC 815's: the pieces received so far
are kept as byte ranges, and the datagram is complete when they cover ``[0, end)``.  Where
fragments overlap, the bytes that arrived first are kept (what FreeBSD's ``ip_reass`` does).

The reassembled datagram has the first fragment's header (its options included) with MF and
the offset cleared, the total length set and the checksum recomputed.

Bounds against hostile input (each a named counter, the fragment dropped):

=============================  ==========================================================
``ip.reass.overflow``          a new datagram while ``max_datagrams`` are pending
``ip.reass.too_many_frags``    a datagram already holding ``max_fragments`` pieces
``ip.reass.too_big``           a fragment ending past 65535 bytes, or past a known end
``ip.reass.bad``               an inconsistent fragment (a non-last fragment whose data is
                               not a multiple of 8 bytes, a second, different end)
=============================  ==========================================================

A fragment that is kept but does not complete its datagram counts ``ip.reass.queued``; the one
that completes it counts nothing here (the caller delivers the datagram and counts its fate);
``ip.reass.done`` counts datagrams rebuilt.  :meth:`Reassembler.poll` drops datagrams older
than ``timeout`` seconds (``ip.reass.timeout``, RFC 791's TTL-bounded timer; 30 s as FreeBSD's
``ipfragttl``) and hands back the first fragment of each one that had it, so the caller can
send time exceeded, code 1 (RFC 792; RFC 1122 3.3.2).  Nothing here reads a clock.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from netfast.wire import checksum
from netfast.wire.ipv4 import FIXED_HEADER

QUEUED = "ip.reass.queued"
DONE = "ip.reass.done"
OVERFLOW = "ip.reass.overflow"
TOO_MANY_FRAGS = "ip.reass.too_many_frags"
TOO_BIG = "ip.reass.too_big"
BAD = "ip.reass.bad"
TIMEOUT = "ip.reass.timeout"

#: Exactly one of these counts a fragment that does not complete a datagram.
REASS_OUTCOMES: tuple[str, ...] = (QUEUED, OVERFLOW, TOO_MANY_FRAGS, TOO_BIG, BAD)

_U16 = struct.Struct(">H")
_MF = 0x2000
_OFFSET = 0x1FFF

Key = tuple[int, int, int, int]


@dataclass(slots=True)
class _Pending:
    expires: float
    pieces: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, data), arrival order
    end: int | None = None
    first: bytes | None = None  # the offset-0 fragment, whole


class Reassembler:
    """Pending datagrams and their pieces (see the module docstring).

    Parameters
    ----------
    counters:
        Where outcomes are counted.
    timeout:
        Seconds a datagram may stay incomplete.
    max_datagrams:
        Datagrams pending at once.
    max_fragments:
        Pieces one datagram may hold.
    """

    def __init__(
        self,
        counters: Counter[str],
        *,
        timeout: float = 30.0,
        max_datagrams: int = 64,
        max_fragments: int = 128,
    ) -> None:
        if timeout <= 0 or max_datagrams < 1 or max_fragments < 2:
            raise ValueError("reassembly: timeout > 0, max_datagrams >= 1, max_fragments >= 2")
        self.counters = counters
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_fragments = max_fragments
        self.pending: dict[Key, _Pending] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def input(self, packet: bytes, now: float) -> bytes | None:
        """Add one fragment (a packet that passed the IP input checks, cut to its total length);
        return the reassembled datagram when this fragment completes it."""
        ver_ihl, _tos, total, ident, frag, _ttl, proto, _cs, src, dst = FIXED_HEADER.unpack_from(
            packet
        )
        hl = (ver_ihl & 0x0F) << 2
        data = packet[hl:total]
        offset = (frag & _OFFSET) << 3
        more = bool(frag & _MF)
        stop = offset + len(data)
        counters = self.counters
        if more and len(data) % 8:
            counters[BAD] += 1
            return None
        if hl + stop > 0xFFFF:
            counters[TOO_BIG] += 1
            return None
        key = (src, dst, proto, ident)
        entry = self.pending.get(key)
        if entry is None:
            if len(self.pending) >= self.max_datagrams:
                counters[OVERFLOW] += 1
                return None
            entry = _Pending(now + self.timeout)
            self.pending[key] = entry
        elif len(entry.pieces) >= self.max_fragments:
            counters[TOO_MANY_FRAGS] += 1
            return None
        if not more:
            if entry.end is not None and entry.end != stop:
                counters[BAD] += 1
                return None
            if any(o + len(d) > stop for o, d in entry.pieces):
                counters[BAD] += 1
                return None
            entry.end = stop
        elif entry.end is not None and stop > entry.end:
            counters[TOO_BIG] += 1
            return None
        entry.pieces.append((offset, data))
        if offset == 0 and entry.first is None:
            entry.first = packet[:total]
        if entry.end is None or entry.first is None or not self._covered(entry):
            counters[QUEUED] += 1
            return None
        del self.pending[key]
        # The datagram takes the first fragment's header, whose options may be longer than the
        # header of the fragment that fixed the end: check the size the rebuilt one will have.
        if ((entry.first[0] & 0x0F) << 2) + entry.end > 0xFFFF:
            counters[TOO_BIG] += 1
            return None
        counters[DONE] += 1
        return self._rebuild(entry)

    @staticmethod
    def _covered(entry: _Pending) -> bool:
        """True when the pieces cover [0, end) without a hole (RFC 815's empty hole list)."""
        assert entry.end is not None
        reach = 0
        for offset, data in sorted(entry.pieces, key=lambda p: p[0]):
            if offset > reach:
                return False
            reach = max(reach, offset + len(data))
        return reach >= entry.end

    @staticmethod
    def _rebuild(entry: _Pending) -> bytes:
        assert entry.end is not None and entry.first is not None
        first = entry.first
        hl = (first[0] & 0x0F) << 2
        body = bytearray(entry.end)
        # Later arrivals first, so that where pieces overlap the earliest bytes win.
        for offset, data in reversed(entry.pieces):
            body[offset : offset + len(data)] = data
        header = bytearray(first[:hl])
        _U16.pack_into(header, 2, hl + entry.end)
        frag = _U16.unpack_from(header, 6)[0] & ~(_MF | _OFFSET)
        _U16.pack_into(header, 6, frag)
        _U16.pack_into(header, 10, 0)
        _U16.pack_into(header, 10, checksum.internet_checksum(header))
        header += body
        return bytes(header)

    def poll(self, now: float) -> list[bytes]:
        """Drop datagrams past their time; return the first fragments of those that had one."""
        expired = [k for k, e in self.pending.items() if e.expires <= now]
        firsts: list[bytes] = []
        for key in expired:
            entry = self.pending.pop(key)
            self.counters[TIMEOUT] += 1
            if entry.first is not None:
                firsts.append(entry.first)
        return firsts

    def poll_at(self) -> float | None:
        """When the oldest pending datagram expires (None: nothing pending)."""
        if not self.pending:
            return None
        return min(e.expires for e in self.pending.values())
