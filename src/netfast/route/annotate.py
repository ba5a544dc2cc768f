"""Annotating text of addresses with their longest-prefix match, bytes in and bytes out.

``netfast route annotate`` reads millions of lines; a Python loop per line (parse, look up,
format, write) tops out below a million lines per second.  Here the whole block of text is parsed
by one numba kernel into addresses, looked up with one ``lookup_batch`` call, and the output is
assembled by a second kernel from a small table of pre-formatted answers -- one per distinct
route in the block -- so Python touches each distinct route, never each line.

Input lines are stripped of surrounding spaces, tabs and CR; empty lines and lines starting with
``#`` are skipped.  An address must be a strict dotted quad (four decimal octets 0-255, no leading
zeros, no other characters).  Output lines are ``address<TAB>prefix<TAB>value``; an address
without a route gets ``-`` and ``-``, and -- when malformed lines are passed through -- a
malformed one ``invalid`` and ``-``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.route.rib import NO_ROUTE, Rib, format_prefix

LINE_ADDRESS = 0
LINE_SKIPPED = 1
LINE_INVALID = 2


@numba.njit(nogil=True, cache=True, inline="always")
def dotted_quad(buf: Any, s: int, e: int) -> int:  # pragma: no cover - compiled
    """The address ``buf[s:e]`` spells as a strict dotted quad (four decimal octets 0-255, no
    leading zeros, nothing else), or -1.  The one parser of address text in compiled code
    (line files here, Arrow string columns in :mod:`netfast.route.arrow`)."""
    value = 0
    octets = 0
    digits = 0
    octet = 0
    for k in range(s, e):
        c = buf[k]
        if 48 <= c <= 57:
            if digits > 0 and octet == 0:  # a leading zero
                return -1
            octet = octet * 10 + (c - 48)
            digits += 1
            if digits > 3 or octet > 255:
                return -1
        elif c == 46 and digits > 0 and octets < 3:
            value = (value << 8) | octet
            octets += 1
            digits = 0
            octet = 0
        else:
            return -1
    if octets == 3 and digits > 0:
        return (value << 8) | octet
    return -1


@numba.njit(nogil=True, cache=True)
def _scan(buf: Any, starts: Any, ends: Any, addrs: Any, status: Any) -> int:  # pragma: no cover
    """Split ``buf`` into lines and parse each; returns the number of lines."""
    n = len(buf)
    i = 0
    line = 0
    while i < n:
        j = i
        while j < n and buf[j] != 10:
            j += 1
        s, e = i, j
        while s < e and (buf[s] == 32 or buf[s] == 9 or buf[s] == 13):
            s += 1
        while e > s and (buf[e - 1] == 32 or buf[e - 1] == 9 or buf[e - 1] == 13):
            e -= 1
        starts[line] = s
        ends[line] = e
        if s == e or buf[s] == 35:  # empty or '#'
            status[line] = 1
        else:
            value = dotted_quad(buf, s, e)
            if value >= 0:
                addrs[line] = value
                status[line] = 0
            else:
                addrs[line] = 0
                status[line] = 2
        line += 1
        i = j + 1
    return line


@numba.njit(nogil=True, cache=True)
def _assemble(
    buf: Any, starts: Any, ends: Any, keep: Any, answer: Any, blob: Any, boff: Any, out: Any
) -> int:  # pragma: no cover - compiled
    """Write ``line<TAB>answer<LF>`` for every kept line; returns the bytes written."""
    w = 0
    for i in range(len(starts)):
        if not keep[i]:
            continue
        for k in range(starts[i], ends[i]):
            out[w] = buf[k]
            w += 1
        out[w] = 9
        w += 1
        a = answer[i]
        for k in range(boff[a], boff[a + 1]):
            out[w] = blob[k]
            w += 1
        out[w] = 10
        w += 1
    return w


@dataclass(slots=True)
class Parsed:
    """A block split into lines: byte ranges, a LINE_* status and a route id per line
    (``-1`` no route, ``-2`` malformed)."""

    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    status: npt.NDArray[np.uint8]
    rids: npt.NDArray[np.int64]


@dataclass(slots=True)
class BlockResult:
    output: bytes
    lines: int
    annotated: int
    invalid_lines: npt.NDArray[np.int64]
    """0-based indices (within the block) of malformed lines."""


class Annotator:
    """Turns blocks of address text into annotated text against one routing table.

    ``lookup_batch`` maps a uint32 array to route ids; ``rib`` names them.  ``skip_bad`` decides
    whether malformed lines are passed through (``invalid``) or reported for the caller to raise.
    """

    def __init__(
        self,
        lookup_batch: Callable[[npt.NDArray[np.uint32]], npt.NDArray[np.int32]],
        rib: Rib,
        skip_bad: bool = False,
    ) -> None:
        self._lookup = lookup_batch
        self._rib = rib
        self.skip_bad = skip_bad
        #: Malformed lines passed through so far (with ``skip_bad``).
        self.invalid = 0
        self._cache: dict[int, bytes] = {NO_ROUTE: b"-\t-", -2: b"invalid\t-"}

    def text(self, rid: int) -> bytes:
        """``prefix<TAB>value`` of a route id (``-<TAB>-`` for no route, ``invalid<TAB>-``
        for -2, a malformed address)."""
        text = self._cache.get(rid)
        if text is None:
            net, plen = self._rib.prefix_of(rid)
            value: Hashable = self._rib.value_of(rid)
            text = f"{format_prefix(net, plen)}\t{value}".encode()
            self._cache[rid] = text
        return text

    def parse(self, data: bytes) -> Parsed:
        """Split a block of lines, parse each address and look them all up in one batch."""
        buf = np.frombuffer(data, np.uint8)
        cap = int(np.count_nonzero(buf == 10)) + 1
        starts = np.empty(cap, np.int64)
        ends = np.empty(cap, np.int64)
        addrs = np.empty(cap, np.uint32)
        status = np.empty(cap, np.uint8)
        n = _scan(buf, starts, ends, addrs, status)
        status = status[:n]
        rids = self._lookup(addrs[:n]).astype(np.int64)
        rids[status == LINE_INVALID] = -2
        return Parsed(starts[:n], ends[:n], status, rids)

    def block(self, data: bytes) -> BlockResult:
        """Annotate a block of whole lines (the caller splits input at newlines)."""
        p = self.parse(data)
        starts, ends, status, rids = p.starts, p.ends, p.status, p.rids
        n = len(status)
        invalid = np.flatnonzero(status == LINE_INVALID)
        keep = status != LINE_SKIPPED
        if not self.skip_bad and len(invalid):
            keep[invalid[0] :] = False  # stop before the first malformed line
        elif len(invalid):
            self.invalid += len(invalid)
        uniq, answer = np.unique(rids[keep], return_inverse=True)
        texts = [self.text(int(r)) for r in uniq.tolist()]
        boff = np.zeros(len(texts) + 1, np.int64)
        if texts:
            boff[1:] = np.cumsum([len(t) for t in texts])
        blob = np.frombuffer(b"".join(texts) or b"\0", np.uint8)
        full_answer = np.zeros(n, np.int64)
        full_answer[keep] = answer
        kept = int(keep.sum())
        lengths = boff[1:] - boff[:-1]
        size = int((ends - starts)[keep].sum()) + 2 * kept + int(lengths[answer].sum())
        out = np.empty(max(size, 1), np.uint8)
        buf = np.frombuffer(data, np.uint8)
        w = _assemble(buf, starts, ends, keep, full_answer, blob, boff, out)
        return BlockResult(out[:w].tobytes(), n, kept, invalid)


def line_text(data: bytes, index: int) -> str:
    """The ``index``-th line of ``data`` (0-based), stripped, for error messages."""
    pos = 0
    for _ in range(index):
        pos = data.index(b"\n", pos) + 1
    end = data.find(b"\n", pos)
    return data[pos : len(data) if end < 0 else end].strip().decode("utf-8", "replace")
