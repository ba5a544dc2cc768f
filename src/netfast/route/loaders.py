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
``'13335'`` or ``'1101_6939'``, or a next hop).  The BGP formats carry whole paths; ``value``
chooses what a route maps to: ``"origin"`` (last AS of the AS path, an AS_SET as ``a,b``),
``"nexthop"`` (dotted quad) or ``"aspath"`` (the path as bgpdump writes it).

Semantics: :func:`iter_routes` yields every route of a file in file order (for update streams,
every announcement); :func:`iter_updates` yields announcements and withdrawals (a RIB dump's
entries are announcements); :func:`load_table` replays the file into a
:class:`~netfast.route.rib.Rib` -- an announcement sets, a withdrawal deletes, the last
announcement of a prefix wins.  IPv6 routes are skipped and counted everywhere.

Errors: a malformed line or record raises :class:`RouteFileError` naming the file, the line
(text) or the byte offset in the decompressed stream (MRT), and the problem.  With
``skip_bad=True`` bad lines/records are skipped instead and counted in :class:`LoadStats` by
reason, with the first few messages kept.  :func:`load_table` returns a complete table or
raises; it never hands back a partly filled one.

The table formats take a fast path: one numba pass over the decompressed bytes validates and
parses every line into arrays, and :meth:`Rib.add_many` stores them in the Rib in bulk.  Python
re-reads a line only to word the message for a line the scan rejected.
"""

from __future__ import annotations

import bz2
import gzip
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numba import njit

from netfast.route import mrt
from netfast.route.rib import Rib, format_prefix, parse_prefix

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
    """

    def __init__(
        self, path: str, problem: str, *, line: int | None = None, offset: int | None = None
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        where = f"offset {offset}: " if offset is not None else where
        super().__init__(f"{path}: {where}{problem}")
        self.path = path
        self.problem = problem
        self.line = line
        self.offset = offset


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
# Reading and detecting


def read_bytes(path: PathLike) -> bytes:
    """The file's content, gunzipped / bunzipped when its magic bytes say so."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
    except (OSError, EOFError, ValueError) as e:
        raise RouteFileError(os.fspath(path), f"cannot decompress: {e}") from None
    return data


def _first_data_line(data: bytes) -> bytes:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start, start + 65536)
        end = len(data) if end < 0 else end
        line = data[start:end].strip()
        if line and not line.startswith(b"#"):
            return line
        start = end + 1
    return b""


def detect_format(data: bytes) -> Format | None:
    """The format of a (decompressed) file's content, None when it is none of them."""
    if len(data) >= mrt.HEADER_LEN:
        mtype = int.from_bytes(data[4:6], "big")
        if mtype in (12, 13, 16, 17) and b"\n" not in data[:12]:
            return "mrt"
    line = _first_data_line(data)
    if not line:
        return "text"  # comments only, or empty: an empty table
    if b"\0" in line:
        return None
    if b"|" in line and line.split(b"|", 1)[0] in _BGPDUMP_TYPES:
        return "bgpdump"
    fields = line.split(b"\t")
    if len(fields) == 3 and fields[1].strip().isdigit() and b"/" not in fields[0]:
        return "pfx2as"
    return "text"


# ---------------------------------------------------------------------------------------------
# The table formats: a numba scan over the bytes


_OK, _IPV6, _BAD = 0, 1, 2
_TAB, _NL, _CR, _SP, _HASH, _DOT, _SLASH, _COLON, _ZERO = 9, 10, 13, 32, 35, 46, 47, 58, 48


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
    # the dotted quad: four runs of 1..3 digits separated by '.'
    net = 0
    k = a
    for octet in range(4):
        v = 0
        nd = 0
        while k < ae and _ZERO <= buf[k] <= _ZERO + 9:
            v = v * 10 + (buf[k] - _ZERO)
            nd += 1
            k += 1
        if nd == 0 or nd > 3 or v > 255:
            return _BAD, 0, 0, 0, 0
        net = (net << 8) | v
        if octet < 3:
            if k >= ae or buf[k] != _DOT:
                return _BAD, 0, 0, 0, 0
            k += 1
    if k != ae:
        return _BAD, 0, 0, 0, 0
    if ls == le:
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
    buf: Any, pfx2as: bool, nets: Any, plens: Any, vstart: Any, vend: Any, linenos: Any, status: Any
) -> tuple[int, int]:
    """Scan every line; fill one output row per data line.  Returns ``(rows, lines)``."""
    n = buf.size
    row = 0
    line = 0
    i = 0
    while i < n:
        line += 1
        s = i
        e = s
        while e < n and buf[e] != _NL:
            e += 1
        i = e + 1
        if e > s and buf[e - 1] == _CR:
            e -= 1
        k = s
        while k < e and (buf[k] == _SP or buf[k] == _TAB):
            k += 1
        if k == e or buf[s] == _HASH:
            continue
        st, net, plen, vs, ve = _scan_line(buf, s, e, pfx2as)
        status[row] = st
        nets[row] = net
        plens[row] = plen
        vstart[row] = vs
        vend[row] = ve
        linenos[row] = line
        row += 1
    return row, line


_PREFIX_REASONS = (
    ("no '/len'", "not_a_prefix"),
    ("dotted-quad", "bad_address"),
    ("above 255", "bad_address"),
    ("prefix length", "bad_length"),
    ("host bits", "host_bits"),
)


def _line_problem(line: str, pfx2as: bool) -> tuple[str, str] | None:
    """``(reason, message)`` for a bad data line, ``("ipv6", "")`` for an IPv6 one, None if
    fine.  The slow twin of :func:`_scan_line`, used to word its rejections."""
    fields = line.split("\t")
    want = 3 if pfx2as else 2
    shape = "addr<TAB>len<TAB>asn" if pfx2as else "prefix<TAB>value"
    if len(fields) < want:
        return "missing_tab", f"expected {want} tab-separated fields ({shape}), got {line!r}"
    if len(fields) > want:
        return "extra_field", f"{len(fields)} tab-separated fields, expected {want} ({shape})"
    if not fields[-1].strip(" "):
        return "empty_value", f"empty value after the prefix in {line!r}"
    text = fields[0].strip(" ")
    if pfx2as:
        text = f"{text}/{fields[1].strip(' ')}"
    if ":" in text:
        return "ipv6", ""
    if not text.isascii() or text != text.strip():
        return "bad_address", f"{text!r} is not a dotted-quad IPv4 prefix"
    try:
        parse_prefix(text)
    except ValueError as e:
        msg = str(e)
        reason = next((r for key, r in _PREFIX_REASONS if key in msg), "bad_prefix")
        return reason, msg
    return None


@dataclass(slots=True)
class _Table:
    nets: npt.NDArray[np.uint32]
    plens: npt.NDArray[np.uint8]
    values: list[str]  # unique values
    codes: npt.NDArray[np.int64]  # index into values, per route


def _scan(data: bytes, name: str, pfx2as: bool, skip_bad: bool, stats: LoadStats) -> _Table:
    buf = np.frombuffer(data, np.uint8)
    cap = data.count(b"\n") + 1
    nets = np.empty(cap, np.uint32)
    plens = np.empty(cap, np.uint8)
    vstart = np.empty(cap, np.int64)
    vend = np.empty(cap, np.int64)
    linenos = np.empty(cap, np.int64)
    status = np.empty(cap, np.uint8)
    rows, lines = _scan_table(buf, pfx2as, nets, plens, vstart, vend, linenos, status)
    stats.lines += int(lines)
    status = status[:rows]
    ok = status == _OK
    stats.ipv6_skipped += int(np.count_nonzero(status == _IPV6))
    for r in np.flatnonzero(status == _BAD).tolist():
        line_no = int(linenos[r])
        line = _line_text(data, line_no)
        found = _line_problem(line, pfx2as)
        reason, problem = found if found else ("unparseable", f"cannot parse {line!r}")
        stats._bad(RouteFileError(name, problem, line=line_no), reason, skip_bad)
    vs = vstart[:rows][ok].tolist()
    ve = vend[:rows][ok].tolist()
    interned: dict[bytes, int] = {}
    codes = np.fromiter(
        (interned.setdefault(data[a:b], len(interned)) for a, b in zip(vs, ve, strict=True)),
        np.int64,
        len(vs),
    )
    values = [v.decode("utf-8", "replace") for v in interned]
    return _Table(nets[:rows][ok], plens[:rows][ok], values, codes)


def _line_text(data: bytes, line_no: int) -> str:
    """The text of line ``line_no`` (1-based).  Only rejected lines are looked up, so walking
    from the start of the data is cheap enough."""
    pos = 0
    for _ in range(line_no - 1):
        pos = data.index(b"\n", pos) + 1
    end = data.find(b"\n", pos)
    raw = data[pos : len(data) if end < 0 else end]
    return raw.rstrip(b"\r").decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Bulk fill


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


def _bgpdump_updates(
    data: bytes, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    lines = data.decode("utf-8", "replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line_no, raw in enumerate(lines, 1):
        stats.lines += 1
        line = raw.rstrip("\r")
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


def _bgpdump_line(line: str, value: ValueKind) -> Update | Literal["ipv6"] | None:
    f = line.split("|")
    if f[0] not in ("BGP4MP", "BGP4MP_ET", "TABLE_DUMP", "TABLE_DUMP2", "TABLE_DUMP_V2"):
        raise ValueError(f"unknown record type {f[0][:40]!r} (not a bgpdump -m line)", "garbage")
    if len(f) < 3:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least 6", "short_line")
    kind = f[2]
    if kind == "STATE":
        return None
    need = 9 if kind in ("A", "B") else 6
    if kind not in ("A", "B", "W"):
        raise ValueError(f"unknown entry kind {kind!r} (expected A, B, W or STATE)", "bad_kind")
    if len(f) < need:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least {need}", "short_line")
    try:
        ts = float(f[1])
        peer_as = int(f[4])
    except ValueError:
        raise ValueError(f"bad timestamp {f[1]!r} or peer AS {f[4]!r}", "bad_number") from None
    if ":" in f[5]:
        return "ipv6"
    try:
        net, plen = parse_prefix(f[5])
    except ValueError as e:
        reason = next((r for key, r in _PREFIX_REASONS if key in str(e)), "bad_prefix")
        raise ValueError(str(e), reason) from None
    if kind == "W":
        return Update("W", ts, net, plen, "", f[3], peer_as)
    if value == "origin":
        v = _origin_of_text(f[6])
    elif value == "nexthop":
        v = f[8]
    else:
        v = f[6]
    return Update("A", ts, net, plen, v, f[3], peer_as)


# ---------------------------------------------------------------------------------------------
# MRT


def _ip4(addr: int | None) -> str:
    if addr is None:
        return ""
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def _value_of(attrs: mrt.PathAttributes, value: ValueKind) -> str:
    if value == "nexthop":
        return _ip4(attrs.next_hop if attrs.next_hop is not None else attrs.mp_next_hop)
    path = attrs.path()
    return mrt.origin_as(path) if value == "origin" else mrt.format_as_path(path)


def _mrt_updates(
    data: bytes, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    peers: list[mrt.Peer] | None = None
    records = mrt.iter_records(data)
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
                        _value_of(entry.attrs, value),
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
        v = _value_of(entry.attrs, value)
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
        v = _value_of(attrs, value)
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


def _open(path: PathLike, fmt: str | None, value: str) -> tuple[bytes, str, Format]:
    name = os.fspath(path)
    if value not in VALUE_KINDS:
        raise ValueError(f"value must be one of {VALUE_KINDS}, not {value!r}")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    data = read_bytes(path)
    found = fmt or detect_format(data)
    if found is None:
        raise RouteFileError(name, "not a route file (text, pfx2as, bgpdump -m or MRT)", offset=0)
    return data, name, found  # type: ignore[return-value]


def _events(
    data: bytes, name: str, fmt: Format, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    """Every event of a file as :class:`Update` (the table formats as announcements)."""
    if fmt == "bgpdump":
        yield from _bgpdump_updates(data, name, value, skip_bad, stats)
    elif fmt == "mrt":
        yield from _mrt_updates(data, name, value, skip_bad, stats)
    else:
        t = _scan(data, name, fmt == "pfx2as", skip_bad, stats)
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
    data, name, found = _open(path, fmt, value)
    st = stats if stats is not None else LoadStats(name)
    st.path, st.format = name, found
    for u in _events(data, name, found, value, skip_bad, st):
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
    data, name, found = _open(path, fmt, value)
    st = stats if stats is not None else LoadStats(name)
    st.path, st.format = name, found
    for u in _events(data, name, found, value, skip_bad, st):
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
    data, name, found = _open(path, fmt, value)
    stats = LoadStats(name, found)
    rib = Rib(capacity=1024)
    if found in ("text", "pfx2as"):
        t = _scan(data, name, found == "pfx2as", skip_bad, stats)
        stats.announcements = len(t.nets)
        if len(t.nets):
            rib = Rib(capacity=len(t.nets))
            rib.add_many(t.nets, t.plens, t.values, t.codes)
        stats.duplicates = len(t.nets) - len(rib)
    else:
        final: dict[tuple[int, int], str] = {}
        for u in _events(data, name, found, value, skip_bad, stats):
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
