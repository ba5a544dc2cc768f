"""Routing-table loaders: the only file I/O in :mod:`netfast.route`.

Four formats, recognised from the content (gzip and bzip2 are recognised by their magic bytes):

``text``
    ``A.B.C.D/len<TAB>value`` lines, ``#`` comments and blank lines ignored (the format of
    ``shared/data/routes``).  IPv6 lines are skipped and counted.
``pfx2as``
    CAIDA Prefix-to-AS: ``addr<TAB>len<TAB>asn``.
``bgpdump``
    ``bgpdump -m`` one-line text: ``BGP4MP|ts|A|peer|peer_as|prefix|as_path|origin|next_hop|...``,
    ``BGP4MP|ts|W|peer|peer_as|prefix``, ``BGP4MP|ts|STATE|...``, and RIB dumps
    ``TABLE_DUMP2|ts|B|peer|peer_as|prefix|as_path|...``.
``mrt``
    Raw MRT (RFC 6396): TABLE_DUMP, TABLE_DUMP_V2 and BGP4MP / BGP4MP_ET with BGP UPDATE
    messages (RFC 4271), decoded by :mod:`netfast.route.mrt`.

The two table formats carry one value column, loaded as written (an origin ASN such as
``'13335'`` or ``'1101_6939'``, or a next hop); with ``value="nexthop"`` every value must be
an IPv4 address, and one that is not is a bad line.  The BGP formats carry whole paths; ``value``
chooses what a route maps to: ``"origin"`` (last AS of the AS path, an AS_SET as ``a,b``),
``"nexthop"`` (dotted quad) or ``"aspath"`` (the path as bgpdump writes it).

Semantics: :func:`iter_routes` yields every route of a file in file order (for update streams,
every announcement); :func:`iter_updates` yields announcements and withdrawals (a RIB dump's
entries are announcements); :func:`load_table` replays the file into a
:class:`~netfast.route.rib.Rib` -- an announcement sets, a withdrawal deletes, the last
announcement of a prefix wins.  IPv6 routes are skipped and counted everywhere.

Input is hostile until parsed: numbers are ASCII digits only (``str.isdigit`` and ``int``
also take ``'²'`` and Arabic-Indic digits), dotted quads have no leading zeros (``010`` is octal
to some tools), a line is at most :data:`MAX_LINE` bytes, and an offending line is quoted cut
to :data:`SHOW` characters.

Errors: a malformed line or record raises :class:`RouteFileError` naming the file, the line
(text) or the byte offset in the decompressed stream (MRT), and the problem.  A gzip or bzip2
stream that cannot be decompressed names the offset in the compressed file where decompression
failed; ``skip_bad`` cannot get past it (``RouteFileError.skippable`` is False).  With
``skip_bad=True`` bad lines/records are skipped instead and counted in :class:`LoadStats` by
reason, with the first few messages kept.  :func:`load_table` returns a complete table or
raises; it never hands back a partly filled one.

Files stream: compressed files are decompressed as they are read and scanned in blocks of
:data:`BLOCK` bytes (a partial last line carried over), so memory follows the table being built,
not the size of the file -- a small gzip of gigabytes of comments loads in bounded memory.  The
table formats take a fast path: a numba pass over each block validates and parses every line
into arrays, and :meth:`Rib.add_many` stores them in the Rib in bulk.  Python re-reads a line
only to word the message for a line the scan rejected.  MRT records are read one at a time
(at most :data:`netfast.route.mrt.MAX_RECORD_LEN` bytes each).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from netfast.route import mrt
from netfast.route.loaders.base import (
    _PIECE,
    BLOCK,
    FORMATS,
    KEEP_ERRORS,
    MAX_LINE,
    SHOW,
    VALUE_KINDS,
    Format,
    LoadResult,
    LoadStats,
    PathLike,
    RouteFileError,
    Update,
    ValueKind,
    _content,
    _is_ascii_number,
    read_bytes,
    shown,
)
from netfast.route.loaders.textscan import _scan
from netfast.route.loaders.updates import _bgpdump_updates, _mrt_updates
from netfast.route.rib import Rib

__all__ = [
    "FORMATS",
    "VALUE_KINDS",
    "BLOCK",
    "DETECT",
    "KEEP_ERRORS",
    "MAX_LINE",
    "SHOW",
    "Format",
    "PathLike",
    "ValueKind",
    "LoadResult",
    "LoadStats",
    "RouteFileError",
    "Update",
    "DEFAULT_TABLE",
    "default_table_path",
    "detect_format",
    "load_default_table",
    "iter_routes",
    "iter_updates",
    "load_table",
    "read_bytes",
    "shown",
]


# ---------------------------------------------------------------------------------------------
# Recognising a format


_BGPDUMP_TYPES = (b"BGP4MP", b"BGP4MP_ET", b"TABLE_DUMP", b"TABLE_DUMP2", b"TABLE_DUMP_V2")


def _first_data_line(data: bytes, complete: bool = True) -> bytes:
    """The first line of ``data`` that is neither blank nor a comment.  ``complete=False``: the
    data is the head of a longer stream, so its unterminated last line does not count."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            if not complete:
                return b""
            end = len(data)
        line = data[start:end].strip()
        if line and not line.startswith(b"#"):
            return line
        start = end + 1
    return b""


def _is_mrt(head: bytes) -> bool:
    if len(head) < mrt.HEADER_LEN:
        return False
    mtype = int.from_bytes(head[4:6], "big")
    return mtype in (12, 13, 16, 17) and b"\n" not in head[:12]


def _classify(line: bytes) -> Format | None:
    if not line:
        return "text"  # comments only, or empty: an empty table
    if b"\0" in line:
        return None
    if b"|" in line and line.split(b"|", 1)[0] in _BGPDUMP_TYPES:
        return "bgpdump"
    fields = line.split(b"\t")
    if len(fields) == 3 and _is_ascii_number(fields[1].strip()) and b"/" not in fields[0]:
        return "pfx2as"
    return "text"


def detect_format(data: bytes) -> Format | None:
    """The format of a (decompressed) file's content, None when it is none of them."""
    if _is_mrt(data):
        return "mrt"
    return _classify(_first_data_line(data))


#: Decompressed bytes looked at to recognise a format: a file whose first data line comes
#: later (after a megabyte of comments) is taken as a text table.
DETECT = 1 << 20


def _detect_stream(head: bytes, at_eof: bool) -> Format | None:
    if _is_mrt(head):
        return "mrt"
    return _classify(_first_data_line(head, complete=at_eof))


# ---------------------------------------------------------------------------------------------
# Public API

#: The bundled full table (see ``netfast/data/SOURCES.md``).
DEFAULT_TABLE = "ipv4-dfz-20260619.txt.gz"


def default_table_path() -> Path:
    """Where the bundled default table is installed."""
    return Path(__file__).resolve().parents[2] / "data" / DEFAULT_TABLE


def load_default_table() -> LoadResult:
    """The bundled 2026 IPv4 full table, values are origin ASNs."""
    return load_table(default_table_path())


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: the bytes format detection looked at are
    read again, without reading the file twice."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(b))
        b[: len(data)] = data
        return len(data)


@contextmanager
def _open(path: PathLike, fmt: str | None, value: str) -> Iterator[tuple[BinaryIO, str, Format]]:
    """The decompressed content of a route file as a stream, its name and its format."""
    name = os.fspath(path)
    if value not in VALUE_KINDS:
        raise ValueError(f"value must be one of {VALUE_KINDS}, not {value!r}")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    with _content(path) as stream:
        found: Format | None = fmt  # type: ignore[assignment]
        if found is None:
            head = stream.read(DETECT)
            found = _detect_stream(head, at_eof=len(head) < DETECT)
            if found is None:
                raise RouteFileError(
                    name, "not a route file (text, pfx2as, bgpdump -m or MRT)", offset=0,
                    skippable=False,
                )  # fmt: skip
            stream = io.BufferedReader(_Prefixed(head, stream), _PIECE)
        yield stream, name, found


def _events(
    stream: BinaryIO, name: str, fmt: Format, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    """Every event of a file as :class:`Update` (the table formats as announcements)."""
    if fmt == "bgpdump":
        yield from _bgpdump_updates(stream, name, value, skip_bad, stats)
    elif fmt == "mrt":
        yield from _mrt_updates(stream, name, value, skip_bad, stats)
    else:
        t = _scan(stream, name, fmt == "pfx2as", value, skip_bad, stats)
        values = t.values
        for net, plen, code in zip(
            t.nets.tolist(), t.plens.tolist(), t.codes.tolist(), strict=True
        ):
            yield Update("A", 0.0, net, plen, values[code], "", 0)


def iter_updates(
    path: PathLike,
    *,
    value: ValueKind = "origin",
    skip_bad: bool = False,
    fmt: Format | None = None,
    stats: LoadStats | None = None,
) -> Iterator[Update]:
    """Announcements and withdrawals of IPv4 prefixes, in file order.

    Parameters
    ----------
    path
        A bgpdump -m text or MRT file (gzip/bzip2 or plain); a table file gives announcements.
    value
        What an announcement's ``value`` is: ``"origin"``, ``"nexthop"`` or ``"aspath"``.
    skip_bad
        Skip and count malformed lines/records instead of raising :class:`RouteFileError`.
    fmt
        Force a format instead of detecting it.
    stats
        Filled in as the iteration proceeds (counters, skipped reasons).
    """
    with _open(path, fmt, value) as (stream, name, found):
        st = stats if stats is not None else LoadStats(name)
        st.path, st.format = name, found
        for u in _events(stream, name, found, value, skip_bad, st):
            if u.kind == "A":
                st.announcements += 1
            else:
                st.withdrawals += 1
            yield u


def iter_routes(
    path: PathLike,
    *,
    value: ValueKind = "origin",
    skip_bad: bool = False,
    fmt: Format | None = None,
    stats: LoadStats | None = None,
) -> Iterator[tuple[int, int, str]]:
    """``(net, plen, value)`` of every IPv4 route in file order: each line of a table, each
    entry of a RIB dump, each announcement of an update stream (withdrawals are not routes).
    Parameters as for :func:`iter_updates`."""
    with _open(path, fmt, value) as (stream, name, found):
        st = stats if stats is not None else LoadStats(name)
        st.path, st.format = name, found
        for u in _events(stream, name, found, value, skip_bad, st):
            if u.kind == "A":
                st.routes += 1
                yield u.net, u.plen, u.value
            else:
                st.withdrawals += 1


def load_table(
    path: PathLike,
    *,
    value: ValueKind = "origin",
    skip_bad: bool = False,
    fmt: Format | None = None,
) -> LoadResult:
    """Load a route file into a new :class:`~netfast.route.rib.Rib`.

    Tables and RIB dumps: every route is added, a repeated prefix replaces the earlier value
    (counted in ``stats.duplicates``).  Update streams are replayed: announcements set,
    withdrawals delete, so the Rib holds the final state.  Values are strings (see the module
    docstring and ``value``).

    Returns
    -------
    LoadResult
        ``rib`` and ``stats`` (``stats.routes == len(rib)``).

    Raises
    ------
    RouteFileError
        The first malformed line/record (unless ``skip_bad``); no partial table is returned.
    """
    with _open(path, fmt, value) as (stream, name, found):
        return _load(stream, name, found, value, skip_bad)


def _load(
    stream: BinaryIO, name: str, found: Format, value: ValueKind, skip_bad: bool
) -> LoadResult:
    stats = LoadStats(name, found)
    rib = Rib(capacity=1024)
    if found in ("text", "pfx2as"):
        t = _scan(stream, name, found == "pfx2as", value, skip_bad, stats)
        stats.announcements = len(t.nets)
        if len(t.nets):
            rib = Rib(capacity=len(t.nets))
            rib.add_many(t.nets, t.plens, t.values, t.codes)
        stats.duplicates = len(t.nets) - len(rib)
    else:
        final: dict[tuple[int, int], str] = {}
        for u in _events(stream, name, found, value, skip_bad, stats):
            key = (u.net, u.plen)
            if u.kind == "A":
                stats.announcements += 1
                if key in final:
                    stats.duplicates += 1
                final[key] = u.value
            else:
                stats.withdrawals += 1
                if final.pop(key, None) is None:
                    stats.ignored["withdrawal_of_absent_prefix"] += 1
        if final:
            rib = Rib(capacity=len(final))
            keys = np.array(list(final), np.uint32).reshape(-1, 2)
            rib.add_many(keys[:, 0], keys[:, 1].astype(np.uint8), list(final.values()))
    stats.routes = len(rib)
    return LoadResult(rib, stats)
