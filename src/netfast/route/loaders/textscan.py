"""The table formats (``text``, ``pfx2as``): numba kernels that validate and parse every line of a
block into arrays, and the scan that carries their rows across blocks, interns the values and
words the rejected lines (through :func:`_line_problem`, the kernels' slow twin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route.loaders.base import (
    MAX_LINE,
    LoadStats,
    RouteFileError,
    ValueKind,
    _blocks,
    _is_ipv4_address,
    _parse_prefix,
    _prefix_reason,
    _too_long,
    shown,
)

# ---------------------------------------------------------------------------------------------
# The table formats: a numba scan over the bytes, block by block


_OK, _IPV6, _BAD, _LONG = 0, 1, 2, 3
_TAB, _NL, _CR, _SP, _HASH, _DOT, _SLASH, _COLON, _ZERO = 9, 10, 13, 32, 35, 46, 47, 58, 48
#: Output rows per call of the scan kernel (bounded scratch arrays).
_ROWS = 1 << 16


@njit(cache=True, nogil=True)
def _scan_line(buf: Any, s: int, e: int, pfx2as: bool) -> tuple[int, int, int, int, int]:
    """Check and parse one line ``buf[s:e]``: ``(status, net, plen, value_start, value_end)``.
    The order of the checks mirrors :func:`_line_problem`."""
    t1 = -1
    t2 = -1
    ntabs = 0
    for k in range(s, e):
        if buf[k] == _TAB:
            ntabs += 1
            if t1 < 0:
                t1 = k
            elif t2 < 0:
                t2 = k
    want = 2 if pfx2as else 1
    if ntabs != want:
        return _BAD, 0, 0, 0, 0
    vs = t2 + 1 if pfx2as else t1 + 1
    ve = e
    while vs < ve and buf[vs] == _SP:
        vs += 1
    while ve > vs and buf[ve - 1] == _SP:
        ve -= 1
    if vs == ve:
        return _BAD, 0, 0, 0, 0
    a = s
    ae = t1
    while a < ae and buf[a] == _SP:
        a += 1
    while ae > a and buf[ae - 1] == _SP:
        ae -= 1
    if pfx2as:
        ls = t1 + 1
        le = t2
    else:
        ls = -1
        le = ae
    for k in range(a, ae):
        if buf[k] == _COLON:
            return _IPV6, 0, 0, 0, 0
        if buf[k] == _SLASH and not pfx2as:
            ls = k + 1
            ae = k
            break
    if pfx2as:
        for k in range(ls, le):
            if buf[k] == _COLON:
                return _IPV6, 0, 0, 0, 0
        while ls < le and buf[ls] == _SP:
            ls += 1
        while le > ls and buf[le - 1] == _SP:
            le -= 1
    if ls < 0:
        return _BAD, 0, 0, 0, 0
    # the dotted quad: four runs of 1..3 digits separated by '.', no leading zeros
    net = 0
    k = a
    for octet in range(4):
        v = 0
        nd = 0
        first = k
        while k < ae and _ZERO <= buf[k] <= _ZERO + 9:
            v = v * 10 + (buf[k] - _ZERO)
            nd += 1
            k += 1
        if nd == 0 or nd > 3 or v > 255 or (nd > 1 and buf[first] == _ZERO):
            return _BAD, 0, 0, 0, 0
        net = (net << 8) | v
        if octet < 3:
            if k >= ae or buf[k] != _DOT:
                return _BAD, 0, 0, 0, 0
            k += 1
    if k != ae:
        return _BAD, 0, 0, 0, 0
    if ls == le or (le - ls > 1 and buf[ls] == _ZERO):
        return _BAD, 0, 0, 0, 0
    plen = 0
    for k in range(ls, le):
        c = buf[k]
        if not _ZERO <= c <= _ZERO + 9:
            return _BAD, 0, 0, 0, 0
        plen = min(plen * 10 + (c - _ZERO), 1000)
    if plen > 32:
        return _BAD, 0, 0, 0, 0
    if plen < 32 and net & ((1 << (32 - plen)) - 1):
        return _BAD, 0, 0, 0, 0
    return _OK, net, plen, vs, ve


@njit(cache=True, nogil=True)
def _scan_table(
    buf: Any,
    pos: int,
    line: int,
    pfx2as: bool,
    max_line: int,
    nets: Any,
    plens: Any,
    vstart: Any,
    vend: Any,
    linenos: Any,
    status: Any,
) -> tuple[int, int, int]:
    """Scan the lines of ``buf`` from ``pos`` (line number ``line`` so far), one output row per
    data line, until the rows are full.  Returns ``(rows, line, pos)``.  A rejected line's row
    holds the line's own byte range in ``vstart:vend``."""
    n = buf.size
    cap = status.size
    row = 0
    i = pos
    while i < n and row < cap:
        line += 1
        s = i
        e = s
        while e < n and buf[e] != _NL:
            e += 1
        i = e + 1
        if e > s and buf[e - 1] == _CR:
            e -= 1
        if e - s > max_line:
            st, net, plen, vs, ve = _LONG, 0, 0, s, e
        else:
            k = s
            while k < e and (buf[k] == _SP or buf[k] == _TAB):
                k += 1
            if k == e or buf[s] == _HASH:
                continue
            st, net, plen, vs, ve = _scan_line(buf, s, e, pfx2as)
            if st == _BAD:
                vs, ve = s, e
        status[row] = st
        nets[row] = net
        plens[row] = plen
        vstart[row] = vs
        vend[row] = ve
        linenos[row] = line
        row += 1
    return row, line, min(i, n)


def _line_problem(line: str, pfx2as: bool) -> tuple[str, str] | None:
    """``(reason, message)`` for a bad data line, ``("ipv6", "")`` for an IPv6 one, None if
    fine.  The slow twin of :func:`_scan_line`, used to word its rejections."""
    fields = line.split("\t")
    want = 3 if pfx2as else 2
    shape = "addr<TAB>len<TAB>asn" if pfx2as else "prefix<TAB>value"
    if len(fields) < want:
        return "missing_tab", f"expected {want} tab-separated fields ({shape}), got {shown(line)}"
    if len(fields) > want:
        return "extra_field", f"{len(fields)} tab-separated fields, expected {want} ({shape})"
    if not fields[-1].strip(" "):
        return "empty_value", f"empty value after the prefix in {shown(line)}"
    text = fields[0].strip(" ")
    if pfx2as:
        text = f"{text}/{fields[1].strip(' ')}"
    if ":" in text:
        return "ipv6", ""
    try:
        _parse_prefix(text)
    except ValueError as e:
        return _prefix_reason(str(e)), str(e)
    return None


@dataclass(slots=True)
class _Table:
    nets: npt.NDArray[np.uint32]
    plens: npt.NDArray[np.uint8]
    values: list[str]  # unique values
    codes: npt.NDArray[np.int64]  # index into values, per route


class _TableScan:
    """The state of a table scan across blocks: the rows kept so far and the interned values."""

    def __init__(self, name: str, pfx2as: bool, value: ValueKind, skip_bad: bool, stats: LoadStats):
        self.name = name
        self.pfx2as = pfx2as
        self.nexthop = value == "nexthop"
        self.skip_bad = skip_bad
        self.stats = stats
        self.line = 0
        self.interned: dict[bytes, int] = {}
        self.parts: list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8], Any]] = []
        self.nets = np.empty(_ROWS, np.uint32)
        self.plens = np.empty(_ROWS, np.uint8)
        self.vstart = np.empty(_ROWS, np.int64)
        self.vend = np.empty(_ROWS, np.int64)
        self.linenos = np.empty(_ROWS, np.int64)
        self.status = np.empty(_ROWS, np.uint8)

    def bad(self, err: RouteFileError, reason: str) -> None:
        self.stats._bad(err, reason, self.skip_bad)

    def block(self, data: bytes) -> None:
        """Scan a block of whole lines (the last one unterminated only at the end of the file)."""
        buf = np.frombuffer(data, np.uint8)
        pos = 0
        while pos < len(data):
            rows, self.line, pos = _scan_table(
                buf, pos, self.line, self.pfx2as, MAX_LINE, self.nets, self.plens,
                self.vstart, self.vend, self.linenos, self.status,
            )  # fmt: skip
            self._rows(data, rows)

    def _rows(self, data: bytes, rows: int) -> None:
        status = self.status[:rows]
        self.stats.ipv6_skipped += int(np.count_nonzero(status == _IPV6))
        for r in np.flatnonzero((status == _BAD) | (status == _LONG)).tolist():
            line_no = int(self.linenos[r])
            if status[r] == _LONG:
                self.bad(_too_long(self.name, line_no), "line_too_long")
                continue
            raw = data[int(self.vstart[r]) : int(self.vend[r])]
            line = raw.decode("utf-8", "replace")
            found = _line_problem(line, self.pfx2as)
            reason, problem = found if found else ("unparseable", f"cannot parse {shown(line)}")
            self.bad(RouteFileError(self.name, problem, line=line_no), reason)
        ok = status == _OK
        vs = self.vstart[:rows][ok].tolist()
        ve = self.vend[:rows][ok].tolist()
        interned = self.interned
        known = len(interned)
        codes = np.fromiter(
            (interned.setdefault(data[a:b], len(interned)) for a, b in zip(vs, ve, strict=True)),
            np.int64,
            len(vs),
        )
        nets = self.nets[:rows][ok].copy()
        plens = self.plens[:rows][ok].copy()
        if self.nexthop and len(interned) > known:
            keep = self._check_next_hops(codes, known, self.linenos[:rows][ok])
            if keep is not None:
                nets, plens, codes = nets[keep], plens[keep], codes[keep]
        self.parts.append((nets, plens, codes))

    def _check_next_hops(
        self, codes: npt.NDArray[np.int64], known: int, linenos: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_] | None:
        """With ``value="nexthop"`` a table's values must be addresses: check the values first
        seen in this block; the rows to keep, or None for all."""
        new = list(self.interned)[known:]
        bad = [
            known + i
            for i, v in enumerate(new)
            if not _is_ipv4_address(v.decode("utf-8", "replace"))
        ]
        if not bad:
            return None
        rows_bad = np.isin(codes, bad)
        for r in np.flatnonzero(rows_bad).tolist():
            value = new[int(codes[r]) - known].decode("utf-8", "replace")
            problem = f"next hop {shown(value)} is not an IPv4 address"
            self.bad(RouteFileError(self.name, problem, line=int(linenos[r])), "bad_next_hop")
        return ~rows_bad

    def table(self) -> _Table:
        values = [v.decode("utf-8", "replace") for v in self.interned]
        if not self.parts:
            return _Table(
                np.empty(0, np.uint32), np.empty(0, np.uint8), values, np.empty(0, np.int64)
            )
        nets, plens, codes = (np.concatenate(col) for col in zip(*self.parts, strict=True))
        return _Table(nets, plens, values, codes)


def _scan(
    stream: BinaryIO, name: str, pfx2as: bool, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> _Table:
    scan = _TableScan(name, pfx2as, value, skip_bad, stats)
    for block in _blocks(stream):
        scan.block(block)
    stats.lines += scan.line
    return scan.table()
