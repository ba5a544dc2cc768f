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

import bz2
import io
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route import mrt
from netfast.route.rib import Rib, format_prefix, prefix_mask

__all__ = [
    "FORMATS",
    "VALUE_KINDS",
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

Format = Literal["text", "pfx2as", "bgpdump", "mrt"]
ValueKind = Literal["origin", "nexthop", "aspath"]
FORMATS: tuple[str, ...] = ("text", "pfx2as", "bgpdump", "mrt")
VALUE_KINDS: tuple[str, ...] = ("origin", "nexthop", "aspath")
PathLike = str | os.PathLike[str]

#: How many error messages :class:`LoadStats` keeps when bad input is skipped.
KEEP_ERRORS = 5


class RouteFileError(ValueError):
    """A route file that cannot be read as its format says.

    ``str(err)`` is ``"<file>: line <n>: <problem>"`` or ``"<file>: offset <n>: <problem>"``.
    ``skippable`` is False for errors ``skip_bad`` cannot get past (a corrupt compressed stream,
    a file of no known format): such errors are raised whatever ``skip_bad`` says.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        line: int | None = None,
        offset: int | None = None,
        skippable: bool = True,
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        where = f"offset {offset}: " if offset is not None else where
        super().__init__(f"{path}: {where}{problem}")
        self.path = path
        self.problem = problem
        self.line = line
        self.offset = offset
        self.skippable = skippable


@dataclass
class LoadStats:
    """What a loader saw.  ``skipped`` counts bad lines/records by reason (only with
    ``skip_bad``); ``ignored`` counts well-formed things that carry no IPv4 route (STATE changes,
    KEEPALIVEs, MRT types other than BGP ...)."""

    path: str
    format: str = ""
    lines: int = 0
    records: int = 0
    routes: int = 0
    announcements: int = 0
    withdrawals: int = 0
    duplicates: int = 0
    ipv6_skipped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def _bad(self, err: RouteFileError, reason: str, skip_bad: bool) -> None:
        if not skip_bad:
            raise err
        self.skipped[reason] += 1
        if len(self.first_errors) < KEEP_ERRORS:
            self.first_errors.append(str(err))


@dataclass(frozen=True, slots=True)
class LoadResult:
    rib: Rib
    stats: LoadStats


@dataclass(frozen=True, slots=True)
class Update:
    """One prefix event of a BGP stream: kind ``'A'`` (announce) or ``'W'`` (withdraw).

    ``value`` is empty for withdrawals.  ``timestamp`` is in seconds (microseconds included for
    BGP4MP_ET).  ``peer`` is the peer's address as text, ``peer_as`` its AS number.
    """

    kind: Literal["A", "W"]
    timestamp: float
    net: int
    plen: int
    value: str
    peer: str
    peer_as: int

    @property
    def prefix(self) -> str:
        return format_prefix(self.net, self.plen)


# ---------------------------------------------------------------------------------------------
# Reading: plain, gzip or bzip2, streamed

#: The longest line a text route file may hold (bytes, without the newline).
MAX_LINE = 64 * 1024
#: Decompressed bytes scanned per block: with the table being built, the loaders' peak memory.
BLOCK = 1 << 20
#: Compressed bytes fed to the decompressor per call.
_PIECE = 64 * 1024
#: Longest excerpt of an offending line quoted in a message (characters).
SHOW = 80

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"


def shown(text: str | bytes) -> str:
    """``text`` quoted for a message, cut to :data:`SHOW` characters with a note of its length."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) <= SHOW:
        return repr(text)
    return f"{text[:SHOW]!r}... ({len(text):,} characters)"


class _Decompressed(io.RawIOBase):
    """The content of a gzip or bzip2 file, decompressed as it is read.

    gzip members and bzip2 streams may follow each other (as ``cat a.gz b.gz`` makes them);
    zero bytes after a gzip member are padding.  Anything else that cannot be decompressed is a
    :class:`RouteFileError` naming the byte offset *in the compressed file* where decompression
    failed: the offset is found by replaying the failing stream byte by byte, which costs time
    only on that error path.
    """

    def __init__(self, f: BinaryIO, name: str, codec: Literal["gzip", "bzip2"]) -> None:
        super().__init__()
        self._f = f
        self._name = name
        self._codec = codec
        self._d: Any = None  # decompressor of the current member; None between members
        self._member = 0  # file offset where the current member starts
        self._input = b""  # compressed bytes read from the file and not yet fed
        self._at = 0  # file offset of self._input[0]
        self._last = 0  # file offset of the last bytes fed

    def readable(self) -> bool:
        return True

    def _new(self) -> Any:
        return zlib.decompressobj(31) if self._codec == "gzip" else bz2.BZ2Decompressor()

    def _error(self, offset: int, problem: str) -> RouteFileError:
        return RouteFileError(
            self._name, f"{self._codec} data {problem}", offset=offset, skippable=False
        )

    def _feed(self, d: Any, data: bytes, limit: int) -> bytes:
        """Feed ``data`` (possibly empty, to drain) to ``d``: at most ``limit`` bytes out.
        Input ``d`` cannot take yet stays in ``self._input``."""
        if self._codec == "gzip":
            out: bytes = d.decompress(data, limit)
            rest = d.unused_data if d.eof else d.unconsumed_tail
        else:
            out = d.decompress(data, limit)
            rest = d.unused_data if d.eof else b""  # bz2 buffers unconsumed input itself
        self._at += len(data) - len(rest)
        self._input = rest
        return out

    def _pending(self, d: Any) -> bool:
        """Whether ``d`` holds input it has not turned into output yet."""
        return not d.eof and self._codec == "bzip2" and not d.needs_input

    def readinto(self, b: Any) -> int:
        limit = len(b)
        while True:
            if not self._input and (self._d is None or not self._pending(self._d)):
                self._input = self._f.read(_PIECE)
                if not self._input:
                    return self._end(b, limit)
            if self._d is None and not self._start_member():
                continue
            data = self._input
            if data:
                self._last = self._at
            try:
                out = self._feed(self._d, data, limit)
            except (zlib.error, OSError, EOFError, ValueError):
                raise self._locate() from None
            if self._d.eof:
                self._d = None
            if out:
                b[: len(out)] = out
                return len(out)

    def _start_member(self) -> bool:
        """Begin the next member at ``self._input``; False when it held only padding."""
        if self._codec == "gzip":
            stripped = self._input.lstrip(b"\0")
            self._at += len(self._input) - len(stripped)
            self._input = stripped
            if not stripped:
                return False
            magic = _GZIP_MAGIC
        else:
            magic = _BZIP2_MAGIC
        if len(self._input) < len(magic):
            more = self._f.read(_PIECE)
            self._input += more
            if more:
                return False
        if not self._input.startswith(magic):
            raise self._error(self._at, f"is followed by bytes that are not {self._codec}")
        self._d = self._new()
        self._member = self._at
        return True

    def _end(self, b: Any, limit: int) -> int:
        """The file is exhausted: drain the decompressor, or report a cut stream."""
        if self._d is None:
            return 0
        try:
            out = self._feed(self._d, b"", limit)
        except (zlib.error, OSError, EOFError, ValueError):
            raise self._locate() from None
        if out:
            b[: len(out)] = out
            return len(out)
        if self._d.eof:
            self._d = None
            return 0
        raise self._error(self._at, "is cut short (the file ends inside the compressed stream)")

    def _locate(self) -> RouteFileError:
        """The error for a failure in the bytes fed since ``self._last``: replay the member from
        its start, then feed those bytes one at a time until the decompressor fails."""
        start, stop = self._last, self._at + len(self._input)
        if not self._f.seekable():
            return self._error(start, "is corrupt")
        self._f.seek(self._member)
        d = self._new()
        pos = self._member
        try:
            while pos < start:
                chunk = self._f.read(min(_PIECE, start - pos))
                if not chunk:
                    break
                self._drain(d, chunk)
                pos += len(chunk)
            for byte in self._f.read(max(stop - pos, 0)):
                self._drain(d, bytes((byte,)))
                pos += 1
            self._drain(d, b"")
        except (zlib.error, OSError, EOFError, ValueError) as e:
            return self._error(pos, f"is corrupt: {_codec_text(e)}")
        return self._error(start, "is corrupt")

    def _drain(self, d: Any, data: bytes) -> None:
        if self._codec == "gzip":
            d.decompress(data, BLOCK)
            while d.unconsumed_tail and not d.eof:
                d.decompress(d.unconsumed_tail, BLOCK)
        else:
            if d.eof:
                raise OSError("data after the end of the stream")
            d.decompress(data, BLOCK)
            while not d.eof and not d.needs_input:
                d.decompress(b"", BLOCK)


def _codec_text(e: BaseException) -> str:
    """zlib's / libbz2's reason, without the Python wrapping around it."""
    text = str(e).split(": ", 1)[-1] if isinstance(e, zlib.error) else str(e)
    if text == "incorrect data check":
        return "CRC mismatch (incorrect data check)"
    if text == "incorrect length check":
        return "length mismatch (incorrect length check)"
    return text[:1].lower() + text[1:] or "unknown error"


def read_bytes(path: PathLike) -> bytes:
    """The file's whole content, gunzipped / bunzipped when its magic bytes say so (the loaders
    themselves stream; this is for small files and tests)."""
    with _content(path) as stream:
        return stream.read()


@contextmanager
def _content(path: PathLike) -> Iterator[BinaryIO]:
    """The decompressed content of a file as a stream, decompressed as it is read."""
    name = os.fspath(path)
    with open(path, "rb") as raw:
        magic = raw.peek(3)[:3]
        if magic.startswith(_GZIP_MAGIC):
            yield io.BufferedReader(_Decompressed(raw, name, "gzip"), _PIECE)
        elif magic == _BZIP2_MAGIC:
            yield io.BufferedReader(_Decompressed(raw, name, "bzip2"), _PIECE)
        else:
            yield raw


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
# Numbers: ASCII digits only (str.isdigit() and int() also take '²' and Arabic-Indic digits)


def _is_ascii_number(text: str | bytes) -> bool:
    if isinstance(text, str):
        return text.isascii() and text.isdigit()
    return text.isdigit()  # bytes.isdigit() is ASCII-only


def _ascii_int(text: str, what: str, limit: int) -> int:
    """``text`` as a decimal integer 0..limit: ASCII digits only, no sign, no spaces."""
    if not _is_ascii_number(text) or len(text) > 20 or int(text) > limit:
        raise ValueError(f"{what} {shown(text)} is not an integer 0..{limit}")
    return int(text)


def _parse_prefix(text: str) -> tuple[int, int]:
    """A strict ``A.B.C.D/len``: ASCII digits, no leading zeros (``010`` reads as octal to some
    tools and as decimal to others), no host bits.  ``ValueError`` words the problem, starting
    with one of the phrases :data:`_PREFIX_REASONS` keys on."""
    addr, sep, length = text.partition("/")
    if not sep:
        raise ValueError(f"{shown(text)} is not a prefix (no '/len')")
    parts = addr.split(".")
    if len(parts) != 4 or not all(_is_ascii_number(p) and len(p) <= 3 for p in parts):
        raise ValueError(f"{shown(addr)} is not a dotted-quad IPv4 address")
    if any(len(p) > 1 and p[0] == "0" for p in parts):
        raise ValueError(
            f"{shown(addr)} has an octet with a leading zero (refused as ambiguous: "
            "octal to some tools, decimal to others)"
        )
    octets = [int(p) for p in parts]
    if max(octets) > 255:
        raise ValueError(f"{shown(addr)} has an octet above 255")
    if not _is_ascii_number(length) or int(length) > 32 or (len(length) > 1 and length[0] == "0"):
        raise ValueError(f"prefix length {shown(length)} is not an integer 0..32")
    plen = int(length)
    net = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    if net & ~prefix_mask(plen) & 0xFFFFFFFF:
        raise ValueError(f"{shown(text)} has host bits set beyond /{plen}")
    return net, plen


def _is_ipv4_address(text: str) -> bool:
    try:
        _parse_prefix(text + "/32")
    except ValueError:
        return False
    return True


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


_PREFIX_REASONS = (
    ("no '/len'", "not_a_prefix"),
    ("dotted-quad", "bad_address"),
    ("above 255", "bad_address"),
    ("leading zero", "bad_address"),
    ("prefix length", "bad_length"),
    ("host bits", "host_bits"),
)


def _prefix_reason(msg: str) -> str:
    return next((r for key, r in _PREFIX_REASONS if key in msg), "bad_prefix")


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


def _too_long(name: str, line: int) -> RouteFileError:
    return RouteFileError(name, f"line longer than {MAX_LINE:,} bytes", line=line)


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


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    """Blocks of whole lines from ``stream`` (the last may be unterminated), each at most
    ``BLOCK + MAX_LINE`` bytes.  A line longer than :data:`MAX_LINE` comes as a stand-in, its
    first ``MAX_LINE + 1`` bytes (which the scans reject by length); the rest of it is read past
    and dropped, never held."""
    carry = b""
    while True:
        chunk = stream.read(BLOCK)
        if not chunk:
            if carry:
                yield carry
            return
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0 and len(data) <= MAX_LINE:
            carry = data
            continue
        if cut >= 0:
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        else:
            carry = data
        if len(carry) > MAX_LINE:
            # An overlong line: hand on a stand-in of MAX_LINE + 1 bytes (the scan rejects it
            # by its length) and drop the rest of it as it streams past.
            yield carry[: MAX_LINE + 1] + b"\n"
            carry = b""
            while True:
                chunk = stream.read(BLOCK)
                if not chunk:
                    return
                nl = chunk.find(b"\n")
                if nl >= 0:
                    carry = chunk[nl + 1 :]
                    break


def _scan(
    stream: BinaryIO, name: str, pfx2as: bool, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> _Table:
    scan = _TableScan(name, pfx2as, value, skip_bad, stats)
    for block in _blocks(stream):
        scan.block(block)
    stats.lines += scan.line
    return scan.table()


# ---------------------------------------------------------------------------------------------
# bgpdump -m text

_BGPDUMP_TYPES = (b"BGP4MP", b"BGP4MP_ET", b"TABLE_DUMP", b"TABLE_DUMP2", b"TABLE_DUMP_V2")


def _origin_of_text(as_path: str) -> str:
    """The origin AS of a bgpdump AS path: last token; ``{a,b}`` -> ``a,b``; confederation
    segments ``(..)`` / ``[..]`` skipped."""
    tokens = as_path.replace("{", " {").split()
    for tok in reversed(tokens):
        if tok[0] in "([" or tok[-1] in ")]":
            continue
        return tok.strip("{}")
    return ""


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a stream, lines cut at ``\\n`` (an overlong line comes as a
    stand-in longer than :data:`MAX_LINE`)."""
    line_no = 0
    for block in _blocks(stream):
        lines = block.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for raw in lines:
            line_no += 1
            yield line_no, raw


def _bgpdump_updates(
    stream: BinaryIO, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    for line_no, raw in _lines(stream):
        stats.lines += 1
        if len(raw) > MAX_LINE:
            stats._bad(_too_long(name, line_no), "line_too_long", skip_bad)
            continue
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        try:
            upd = _bgpdump_line(line, value)
        except ValueError as e:
            reason = e.args[1] if len(e.args) > 1 else "bad_line"
            stats._bad(RouteFileError(name, str(e.args[0]), line=line_no), reason, skip_bad)
            continue
        if upd is None:
            stats.ignored["state_change"] += 1
        elif upd == "ipv6":
            stats.ipv6_skipped += 1
        else:
            yield upd


def _timestamp(text: str) -> float:
    """A bgpdump timestamp: ASCII seconds, optionally ``.`` and ASCII microseconds."""
    whole, dot, frac = text.partition(".")
    if not _is_ascii_number(whole) or len(whole) > 12 or (dot and not _is_ascii_number(frac)):
        raise ValueError(f"bad timestamp {shown(text)} (not a number of seconds)", "bad_number")
    return float(text)


def _bgpdump_line(line: str, value: ValueKind) -> Update | Literal["ipv6"] | None:
    f = line.split("|")
    if f[0] not in ("BGP4MP", "BGP4MP_ET", "TABLE_DUMP", "TABLE_DUMP2", "TABLE_DUMP_V2"):
        raise ValueError(f"unknown record type {shown(f[0])} (not a bgpdump -m line)", "garbage")
    if len(f) < 3:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least 6", "short_line")
    kind = f[2]
    if kind == "STATE":
        return None
    need = 9 if kind in ("A", "B") else 6
    if kind not in ("A", "B", "W"):
        raise ValueError(
            f"unknown entry kind {shown(kind)} (expected A, B, W or STATE)", "bad_kind"
        )
    if len(f) < need:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least {need}", "short_line")
    ts = _timestamp(f[1])
    try:
        peer_as = _ascii_int(f[4], "peer AS", 0xFFFFFFFF)
    except ValueError as e:
        raise ValueError(str(e), "bad_number") from None
    if ":" in f[5]:
        return "ipv6"
    try:
        net, plen = _parse_prefix(f[5])
    except ValueError as e:
        raise ValueError(str(e), _prefix_reason(str(e))) from None
    if kind == "W":
        return Update("W", ts, net, plen, "", f[3], peer_as)
    if value == "origin":
        v = _origin_of_text(f[6])
    elif value == "nexthop":
        v = f[8]
        if not _is_ipv4_address(v):
            raise ValueError(f"next hop {shown(v)} is not an IPv4 address", "bad_next_hop")
    else:
        v = f[6]
    return Update("A", ts, net, plen, v, f[3], peer_as)


# ---------------------------------------------------------------------------------------------
# MRT


def _ip4(addr: int | None) -> str:
    if addr is None:
        return ""
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def _value_of(attrs: mrt.PathAttributes, value: ValueKind, offset: int) -> str:
    """A route's value; ``offset`` (of its record) names the place of an error."""
    if value == "nexthop":
        nh = attrs.next_hop if attrs.next_hop is not None else attrs.mp_next_hop
        if nh is None:
            raise mrt.MrtError(offset, "an IPv4 announcement without a next hop")
        return _ip4(nh)
    path = attrs.path()
    return mrt.origin_as(path) if value == "origin" else mrt.format_as_path(path)


def _mrt_updates(
    stream: BinaryIO, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    peers: list[mrt.Peer] | None = None
    records = mrt.iter_records(stream)
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except mrt.MrtError as e:
            # Framing is lost: nothing after a cut or corrupt header can be found again.
            stats._bad(RouteFileError(name, e.problem, offset=e.offset), "truncated", skip_bad)
            return
        stats.records += 1
        try:
            mrt.check_type(rec)
            if rec.type in (mrt.MrtType.BGP4MP, mrt.MrtType.BGP4MP_ET):
                yield from _bgp4mp_updates(rec, value, stats)
            elif rec.type == mrt.MrtType.TABLE_DUMP_V2:
                if rec.subtype == mrt.TableDumpV2.PEER_INDEX_TABLE:
                    peers = mrt.parse_peer_index_table(rec)
                elif rec.subtype == mrt.TableDumpV2.RIB_IPV4_UNICAST:
                    yield from _rib_updates(rec, peers, value)
                elif rec.subtype in mrt.IPV6_RIB_SUBTYPES:
                    stats.ipv6_skipped += 1
                elif rec.subtype > 12 or rec.subtype == 0:
                    raise mrt.MrtError(
                        rec.offset + 6, f"unknown TABLE_DUMP_V2 subtype {rec.subtype}"
                    )
                else:
                    stats.ignored[f"table_dump_v2_subtype_{rec.subtype}"] += 1
            elif rec.type == mrt.MrtType.TABLE_DUMP:
                entry = mrt.parse_table_dump(rec)
                if entry is None:
                    stats.ipv6_skipped += 1
                else:
                    yield Update(
                        "A",
                        float(rec.timestamp),
                        entry.net,
                        entry.plen,
                        _value_of(entry.attrs, value, rec.offset),
                        entry.peer_ip,
                        entry.peer_as,
                    )
            else:
                stats.ignored[f"mrt_type_{rec.type}"] += 1
        except mrt.MrtError as e:
            stats._bad(RouteFileError(name, e.problem, offset=e.offset), "bad_record", skip_bad)


def _rib_updates(
    rec: mrt.MrtRecord, peers: list[mrt.Peer] | None, value: ValueKind
) -> Iterator[Update]:
    if peers is None:
        raise mrt.MrtError(rec.offset, "RIB_IPV4_UNICAST record before any PEER_INDEX_TABLE")
    rib = mrt.parse_rib_ipv4_unicast(rec)
    out = []
    for entry in rib.entries:
        if entry.peer_index >= len(peers):
            raise mrt.MrtError(
                rec.offset,
                f"RIB entry peer index {entry.peer_index} beyond the {len(peers)} peers",
            )
        peer = peers[entry.peer_index]
        v = _value_of(entry.attrs, value, rec.offset)
        out.append(Update("A", float(rec.timestamp), rib.net, rib.plen, v, peer.address, peer.asn))
    yield from out


def _bgp4mp_updates(rec: mrt.MrtRecord, value: ValueKind, stats: LoadStats) -> Iterator[Update]:
    msg = mrt.parse_bgp4mp(rec)
    if msg is None:
        stats.ignored[f"bgp4mp_subtype_{rec.subtype}"] += 1
        return
    if isinstance(msg, mrt.Bgp4mpStateChange):
        stats.ignored["state_change"] += 1
        return
    if msg.update is None:
        stats.ignored[f"bgp_message_type_{msg.msg_type}"] += 1
        return
    upd = msg.update
    attrs = upd.attrs
    ts = rec.time
    stats.ipv6_skipped += attrs.ipv6_announced + attrs.ipv6_withdrawn
    if attrs.ipv4_other_safi:
        stats.ignored["ipv4_multicast"] += attrs.ipv4_other_safi
    if attrs.other_afi:
        stats.ignored["other_address_family"] += attrs.other_afi
    # Decode fully before yielding, so a bad record yields nothing (skip_bad drops it whole).
    out = [
        Update("W", ts, net, plen, "", msg.peer_ip, msg.peer_as)
        for net, plen in upd.withdrawn + attrs.mp_ipv4_withdrawn
    ]
    reach = upd.nlri + attrs.mp_ipv4_nlri
    if reach:
        v = _value_of(attrs, value, rec.offset)
        out += [Update("A", ts, net, plen, v, msg.peer_ip, msg.peer_as) for net, plen in reach]
    yield from out


# ---------------------------------------------------------------------------------------------
# Public API

#: The bundled full table (see ``netfast/data/SOURCES.md``).
DEFAULT_TABLE = "ipv4-dfz-20260619.txt.gz"


def default_table_path() -> Path:
    """Where the bundled default table is installed."""
    return Path(__file__).resolve().parent.parent / "data" / DEFAULT_TABLE


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
