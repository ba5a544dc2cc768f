"""Address annotation over Arrow columns: addresses in, matched prefix, length and value out.

:class:`ArrowAnnotator` takes an Arrow array of addresses -- strings (``string``,
``large_string``, or dictionary-encoded strings) or integers (any integer type holding an IPv4
address as a number) -- and returns the three columns of its longest-prefix match in a
:class:`~netfast.route.table.RoutingTable`:

- ``prefix``: the matched prefix as text (``198.18.0.0/15``), dictionary-encoded over every
  route of the table;
- ``prefix_len``: its length (uint8);
- ``value``: the route's value (in the bundled table, the origin AS), dictionary-encoded.

A row with no route, a null address or an address that does not parse gets nulls in all three;
:class:`AnnotateStats` counts the rows by reason.  Address text is parsed by one compiled pass
over the Arrow string buffers (a strict dotted quad: four decimal octets 0-255 without leading
zeros, surrounding spaces and tabs allowed), looked up with one ``lookup_batch`` call, and the
output columns are built from the route ids with numpy: nothing is done per row in Python, and
nothing goes through pandas.  The dictionaries are built once per annotator (one compiled pass
formats every prefix), so every batch's columns share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from netfast.route.annotate import dotted_quad
from netfast.route.table import RoutingTable

__all__ = ["COLUMNS", "REASONS", "AnnotateStats", "ArrowAnnotator", "parse_address_array"]

#: The names of :meth:`ArrowAnnotator.annotate`'s columns.
COLUMNS = ("prefix", "prefix_len", "value")
#: Why a row has no annotation, by status code (0 is annotated).
REASONS = ("annotated", "null", "malformed", "no_route")
_OK, _NULL, _MALFORMED, _NO_ROUTE = range(4)


@dataclass
class AnnotateStats:
    """Rows seen, by outcome (see :data:`REASONS`)."""

    rows: int = 0
    annotated: int = 0
    null: int = 0
    malformed: int = 0
    no_route: int = 0

    def add(self, status: npt.NDArray[np.uint8]) -> None:
        counts = np.bincount(status, minlength=len(REASONS))
        self.rows += len(status)
        self.annotated += int(counts[_OK])
        self.null += int(counts[_NULL])
        self.malformed += int(counts[_MALFORMED])
        self.no_route += int(counts[_NO_ROUTE])


@numba.njit(nogil=True, cache=True)
def _parse_strings(
    data: Any, offsets: Any, valid: Any, has_valid: bool, start: int, addrs: Any, status: Any
) -> None:  # pragma: no cover - compiled
    """Parse slots ``start .. start + n`` of an Arrow string array (``valid``: its validity
    bitmap, bit per slot, when ``has_valid``)."""
    for i in range(addrs.shape[0]):
        slot = start + i
        addrs[i] = 0
        if has_valid and not (valid[slot >> 3] >> (slot & 7)) & 1:
            status[i] = _NULL
            continue
        s, e = offsets[slot], offsets[slot + 1]
        while s < e and (data[s] == 32 or data[s] == 9):
            s += 1
        while e > s and (data[e - 1] == 32 or data[e - 1] == 9):
            e -= 1
        value = dotted_quad(data, s, e)
        if value >= 0:
            addrs[i] = value
            status[i] = _OK
        else:
            status[i] = _MALFORMED


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def parse_address_array(
    values: pa.Array | pa.ChunkedArray,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    """Addresses and a status per row (``0`` parsed, ``1`` null, ``2`` malformed) of an Arrow
    array of address strings or integers.

    Raises
    ------
    TypeError
        For an array of another type (floats, binary, nested...).
    """
    parts = [_parse_chunk(chunk) for chunk in _chunks(values)]
    if not parts:
        return np.empty(0, np.uint32), np.empty(0, np.uint8)
    if len(parts) == 1:
        return parts[0]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _parse_chunk(arr: pa.Array) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    t = arr.type
    n = len(arr)
    if pa.types.is_dictionary(t):
        d_addrs, d_status = _parse_chunk(arr.dictionary)
        idx = arr.indices.to_numpy(zero_copy_only=False)
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        idx = np.where(nulls, 0, idx).astype(np.intp)
        if len(d_addrs) == 0:
            return np.zeros(n, np.uint32), np.full(n, _NULL, np.uint8)
        addrs, status = d_addrs[idx], d_status[idx]
        status[nulls] = _NULL
        addrs[nulls] = 0
        return addrs, status
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        validity, offsets_buf, data_buf = arr.buffers()
        off_type = np.int32 if pa.types.is_string(t) else np.int64
        offsets = np.frombuffer(offsets_buf, off_type) if offsets_buf is not None else None
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        addrs = np.empty(n, np.uint32)
        status = np.empty(n, np.uint8)
        if n == 0:
            return addrs, status
        assert offsets is not None
        has_valid = validity is not None and arr.null_count > 0
        valid = np.frombuffer(validity, np.uint8) if has_valid else np.empty(1, np.uint8)
        _parse_strings(data, offsets, valid, has_valid, arr.offset, addrs, status)
        return addrs, status
    if pa.types.is_integer(t):
        raw = arr.to_numpy(zero_copy_only=False)  # floats with NaN where null
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        if arr.null_count:
            raw = np.where(nulls, 0, raw)
        ints = raw.astype(np.int64) if t != pa.uint64() else raw.astype(np.uint64)
        ok = (ints >= 0) & (ints <= 0xFFFFFFFF)
        status = np.where(ok, _OK, _MALFORMED).astype(np.uint8)
        status[nulls] = _NULL
        return np.where(ok & ~nulls, ints, 0).astype(np.uint32), status
    raise TypeError(f"addresses must be strings or integers, not {t}")


@numba.njit(nogil=True, cache=True)
def _format_prefixes(net: Any, plen: Any, out: Any, offsets: Any) -> int:  # pragma: no cover
    """``a.b.c.d/len`` of every route into ``out``; returns the bytes written."""
    w = 0
    for i in range(net.shape[0]):
        offsets[i] = w
        a = net[i]
        for shift in (24, 16, 8, 0):
            octet = (a >> shift) & 255
            if octet >= 100:
                out[w] = 48 + octet // 100
                w += 1
            if octet >= 10:
                out[w] = 48 + (octet // 10) % 10
                w += 1
            out[w] = 48 + octet % 10
            w += 1
            out[w] = 46 if shift else 47
            w += 1
        p = plen[i]
        if p >= 10:
            out[w] = 48 + p // 10
            w += 1
        out[w] = 48 + p % 10
        w += 1
    offsets[net.shape[0]] = w
    return w


class ArrowAnnotator:
    """Annotates Arrow arrays of addresses against ``table`` (see the module docstring).

    ``stats`` adds up every call's rows by outcome."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        rib = table.rib
        n = rib.route_count
        net = rib.net[:n].astype(np.uint32)
        self._plen = rib.plen[:n].astype(np.uint8)
        out = np.empty(max(1, 19 * n), np.uint8)
        offsets = np.empty(n + 1, np.int32)
        size = _format_prefixes(net, self._plen, out, offsets)
        self.prefixes = pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(out[:size].copy())
        )
        self._value_id = rib.value_id[:n].astype(np.int32)
        self.values = pa.array([str(v) for v in rib.values], pa.string())
        self.stats = AnnotateStats()

    def annotate(self, addresses: pa.Array | pa.ChunkedArray) -> pa.RecordBatch:
        """The ``prefix``, ``prefix_len`` and ``value`` columns of ``addresses``, row for row."""
        addrs, status = parse_address_array(addresses)
        return self.annotate_parsed(addrs, status)

    def annotate_parsed(
        self, addrs: npt.NDArray[np.uint32], status: npt.NDArray[np.uint8]
    ) -> pa.RecordBatch:
        """The same from addresses already parsed (``status`` as :func:`parse_address_array`
        gives it; rows whose status is not 0 get nulls)."""
        n = len(addrs)
        rids = self.table.lookup_batch(addrs)
        status = np.ascontiguousarray(status, np.uint8).copy()
        idx = np.empty(n, np.int32)
        plen = np.empty(n, np.uint8)
        vid = np.empty(n, np.int32)
        valid = np.empty((n + 7) // 8, np.uint8)
        nulls = _columns_kernel(rids, status, self._plen, self._value_id, idx, plen, vid, valid)
        self.stats.add(status)
        vbuf = pa.py_buffer(valid) if nulls else None
        prefix = pa.DictionaryArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), n, [vbuf, pa.py_buffer(idx)], nulls), self.prefixes
        )
        value = pa.DictionaryArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), n, [vbuf, pa.py_buffer(vid)], nulls), self.values
        )
        length = pa.Array.from_buffers(pa.uint8(), n, [vbuf, pa.py_buffer(plen)], nulls)
        return pa.RecordBatch.from_arrays([prefix, length, value], names=list(COLUMNS))


@numba.njit(nogil=True, cache=True)
def _columns_kernel(
    rids: Any,
    status: Any,
    route_plen: Any,
    route_vid: Any,
    idx: Any,
    plen: Any,
    vid: Any,
    valid: Any,
) -> int:  # pragma: no cover - compiled
    """The output columns' values and validity bitmap from the route ids; marks rows without a
    route in ``status``; returns the null count."""
    nulls = 0
    for b in range(valid.shape[0]):
        valid[b] = 0
    for i in range(rids.shape[0]):
        r = rids[i]
        if status[i] == _OK and r < 0:
            status[i] = _NO_ROUTE
        if status[i] == _OK:
            idx[i] = r
            plen[i] = route_plen[r]
            vid[i] = route_vid[r]
            valid[i >> 3] |= np.uint8(1 << (i & 7))
        else:
            idx[i] = 0
            plen[i] = 0
            vid[i] = 0
            nulls += 1
    return nulls
