"""Static files for HTTP: URL path to file, file metadata, and the response decision.

Contract
--------
Nothing here reads a clock or touches a socket.  :func:`plan_response` turns a parsed
:class:`~netfast.httpd.proto.Request` into a :class:`Response` -- status, headers, a small
in-memory body and/or a file range for ``sendfile`` -- asking the file system only through
``info_for`` (so a server can answer from a :class:`StatCache`, or run the stat calls on a worker
thread) and through ``realpath`` in :func:`resolve` (and ``scandir`` for a directory listing).
:func:`serialize_head` turns the response into the bytes of its head.

Decisions (RFC 9110):

- GET and HEAD are served; the other methods of RFC 9110 9.3 (and PATCH) get 405 with
  ``Allow: GET, HEAD``; any other method 501.
- :func:`resolve` percent-decodes once and refuses what cannot name a file: a bad ``%`` escape,
  NUL or backslash is 400; a ``..`` segment, or a real path outside the root (a symlink leading
  out) is 404, as if there were no such file.
- A directory without a trailing ``/`` is redirected (301) to the URL with one.  With one: its
  first index file, else a generated listing when enabled, else 404 (not 403: whether a
  directory exists is not told).  A regular file asked for with a trailing ``/`` is 404.
- Conditionals (13.2.2): If-None-Match (weak comparison, ``*``), else If-Modified-Since
  (unparsable dates ignored), answer 304 with ETag and Last-Modified and no Content-Length.
  If-Match and If-Unmodified-Since are not evaluated.
- Range (14.2): GET only -- HEAD ignores it, as RFC 9110 14.2 requires for methods other than
  GET.  One ``bytes=`` range (``a-b``, ``a-``, ``-n``): 206 with Content-Range, or 416 with
  ``Content-Range: bytes */size``.  Several ranges, another unit or invalid syntax: the header
  is ignored (200).  If-Range (13.1.5) that does not match strongly: 200 with the whole file.
- ETags are strong: ``"<size hex>-<mtime_ns hex>"``.

The response headers include Content-Length (except for 304); the server adds Connection, Date
and Server in :func:`serialize_head`.
"""

from __future__ import annotations

import calendar
import html
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

from netfast.httpd.proto import HttpError, Request

__all__ = [
    "MISS",
    "REASONS",
    "FileInfo",
    "Response",
    "StatCache",
    "content_type",
    "error_response",
    "file_info",
    "http_date",
    "parse_http_date",
    "plan_response",
    "resolve",
    "serialize_head",
]

#: Reason phrases (RFC 9110 15) of every status this server sends.
REASONS: Final[dict[int, str]] = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

_NOT_ALLOWED = frozenset(("OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"))

# --- content types ------------------------------------------------------------------------------

_UTF8 = "; charset=utf-8"
#: File name extension (lower case) -> Content-Type.  Built in, so every machine agrees.
CONTENT_TYPES: Final[dict[str, str]] = {
    "html": "text/html" + _UTF8,
    "htm": "text/html" + _UTF8,
    "css": "text/css" + _UTF8,
    "js": "text/javascript" + _UTF8,
    "mjs": "text/javascript" + _UTF8,
    "txt": "text/plain" + _UTF8,
    "md": "text/markdown" + _UTF8,
    "csv": "text/csv" + _UTF8,
    "json": "application/json",
    "map": "application/json",
    "webmanifest": "application/manifest+json",
    "xml": "application/xml",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "ico": "image/vnd.microsoft.icon",
    "pdf": "application/pdf",
    "wasm": "application/wasm",
    "zip": "application/zip",
    "gz": "application/gzip",
    "tar": "application/x-tar",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "ttf": "font/ttf",
    "otf": "font/otf",
}
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


def content_type(path: str) -> str:
    """The Content-Type for ``path`` by its extension (case-insensitive), from
    :data:`CONTENT_TYPES`; ``application/octet-stream`` when unknown."""
    name = path.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot file such as ".profile"
        return DEFAULT_CONTENT_TYPE
    return CONTENT_TYPES.get(ext.lower(), DEFAULT_CONTENT_TYPE)


# --- dates ----------------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NO = {m: i + 1 for i, m in enumerate(_MONTHS)}
_D = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_M = "(" + "|".join(_MONTHS) + ")"
_T = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# RFC 9110 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient accepts.
_IMF_FIXDATE = re.compile(_D + ", ([0-9]{2}) " + _M + " ([0-9]{4}) " + _T + " GMT")
_RFC850 = re.compile(
    "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-"
    + _M + "-([0-9]{2}) " + _T + " GMT"
)  # fmt: skip
_ASCTIME = re.compile(_D + " " + _M + " ([0-9 ][0-9]) " + _T + " ([0-9]{4})")


def http_date(epoch_seconds: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7) of a time, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Locale independent; fractions of a second are dropped (floor)."""
    t = time.gmtime(int(epoch_seconds // 1))
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of its three forms, or None.

    The weekday is not checked against the date; a two-digit RFC 850 year below 70 is 20yy."""
    m = _IMF_FIXDATE.fullmatch(text)
    if m is not None:
        day, mon, year, hms = m[2], m[3], int(m[4]), m.group(5, 6, 7)
    elif (m := _RFC850.fullmatch(text)) is not None:
        yy = int(m[4])
        day, mon, year, hms = m[2], m[3], yy + (2000 if yy < 70 else 1900), m.group(5, 6, 7)
    elif (m := _ASCTIME.fullmatch(text)) is not None:
        day, mon, year, hms = m[3], m[2], int(m[7]), m.group(4, 5, 6)
    else:
        return None
    return _timegm(year, _MONTH_NO[mon], int(day), *map(int, hms))


def _timegm(year: int, mon: int, day: int, h: int, mi: int, s: int) -> int | None:
    # A leap second (60) is read as :59; impossible dates are no date.
    if not (1 <= day <= calendar.monthrange(year, mon)[1] and h < 24 and mi < 60 and s < 61):
        return None
    return calendar.timegm((year, mon, day, h, mi, min(s, 59), 0, 0, 0))


# --- paths ----------------------------------------------------------------------------------------

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def resolve(root: str | os.PathLike[str], raw_path: str) -> str:
    """The real path of the file a URL path names under ``root``.

    Parameters
    ----------
    root:
        The served directory as an absolute real path (the server resolves it once).
    raw_path:
        :attr:`Request.path`, still percent-encoded.

    Raises
    ------
    HttpError
        400 for a path not starting with ``/``, a bad percent escape, or a NUL or backslash
        after decoding (no file can be named so); 404 for a ``..`` segment and for a real path
        outside ``root`` (a symlink leading out), as if the file did not exist.

    Percent-decoding happens exactly once: ``%252e%252e`` names a file literally called
    ``%2e%2e``.  The result need not exist.
    """
    root = os.fspath(root)
    if raw_path[:1] != "/":
        raise HttpError(400, "the path does not start with /")
    if "%" in raw_path:
        if _BAD_ESCAPE.search(raw_path) is not None:
            raise HttpError(400, "malformed percent escape in the path")
        decoded = os.fsdecode(urllib.parse.unquote_to_bytes(raw_path))
    else:
        decoded = raw_path
    if "\0" in decoded or "\\" in decoded:
        raise HttpError(400, "NUL or backslash in the path")
    segments = [s for s in decoded.split("/") if s and s != "."]
    if ".." in segments:
        raise HttpError(404, "'..' in the path")
    joined = os.path.join(root, *segments) if segments else root
    real = os.path.realpath(joined)
    if not _inside(root, real):
        raise HttpError(404, "the path leads outside the root")
    return real


def _inside(root: str, real: str) -> bool:
    if real == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return real.startswith(prefix)


# --- metadata -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a response needs to know about a regular file or a directory."""

    path: str
    size: int
    mtime_ns: int
    is_dir: bool
    #: Strong entity tag, with its quotes.
    etag: str
    #: IMF-fixdate of the modification time.
    last_modified: str
    content_type: str


def file_info(path: str) -> FileInfo | None:
    """``os.stat`` of ``path`` as a :class:`FileInfo`; None when it is missing, neither a
    regular file nor a directory, or not reachable (permission)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(st.st_mode):
        is_dir = False
    elif stat.S_ISDIR(st.st_mode):
        is_dir = True
    else:
        return None
    size, mtime_ns = st.st_size, st.st_mtime_ns
    return FileInfo(
        path, size, mtime_ns, is_dir, f'"{size:x}-{mtime_ns:x}"',
        http_date(mtime_ns // 1_000_000_000),
        "text/html" + _UTF8 if is_dir else content_type(path),
    )  # fmt: skip


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "StatCache.MISS"


class StatCache:
    """Recent :func:`file_info` results (including "no such file"), each valid ``ttl`` seconds.

    No clock inside: ``now`` is an argument.  At most ``size`` entries; when full, the oldest
    insertion goes (first in, first out: a look-up costs one dictionary access)."""

    #: What :meth:`get` returns for a path not cached (or expired); None means "cached: no file".
    MISS: ClassVar[_Miss] = _Miss()

    __slots__ = ("_entries", "size", "ttl")

    def __init__(self, ttl: float = 1.0, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("StatCache size must be at least 1")
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[FileInfo | None, float]] = {}

    def get(self, path: str, now: float) -> FileInfo | _Miss | None:
        """The cached info for ``path``, or :attr:`MISS`."""
        hit = self._entries.get(path)
        if hit is None:
            return self.MISS
        info, at = hit
        if at <= now < at + self.ttl:
            return info
        del self._entries[path]
        return self.MISS

    def put(self, path: str, info: FileInfo | None, now: float) -> None:
        """Remember ``info`` (None: no such file) for ``path`` from time ``now``."""
        entries = self._entries
        if path in entries:
            del entries[path]  # re-inserted last: evicted last
        elif len(entries) >= self.size:
            del entries[next(iter(entries))]
        entries[path] = (info, now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: The "not cached" sentinel of :meth:`StatCache.get`.
MISS: Final = StatCache.MISS


# --- responses ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    """A planned response: head fields, an in-memory body, then optionally a file range.

    ``Content-Length`` in ``headers`` equals ``len(body) + length`` (``length`` counting only
    with a ``file_path``) -- also for HEAD, where ``head_only`` says no body bytes are sent."""

    status: int
    #: In order, with Content-Length (none on 304); without Connection, Date and Server.
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: The file whose bytes ``offset`` .. ``offset + length`` follow the body (sendfile).
    file_path: str | None = None
    offset: int = 0
    length: int = 0
    head_only: bool = False


def error_response(status: int, detail: str = "") -> Response:
    """A short ``text/plain`` response naming the status (and ``detail``, ASCII-escaped)."""
    text = f"{status} {REASONS.get(status, 'Error')}\n"
    if detail:
        text += detail + "\n"
    body = text.encode("ascii", "backslashreplace")
    return Response(
        status,
        [("Content-Type", "text/plain" + _UTF8), ("Content-Length", str(len(body)))],
        body,
    )


def serialize_head(
    resp: Response, *, keep_alive: bool, date: str, server: str = "netfast"
) -> bytes:
    """The response head: status line, ``resp.headers``, Connection, Date, Server, empty line."""
    parts = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}\r\n"]
    for name, value in resp.headers:
        parts.append(f"{name}: {value}\r\n")
    parts.append(
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        f"Date: {date}\r\nServer: {server}\r\n\r\n"
    )
    return "".join(parts).encode("latin-1")


InfoFor = Callable[[str], FileInfo | None]


def plan_response(
    req: Request,
    root: str,
    info_for: InfoFor,
    *,
    index: bool = False,
    index_files: tuple[str, ...] = ("index.html",),
) -> Response:
    """The response to ``req`` for the files under ``root`` (see the module docstring).

    Parameters
    ----------
    req:
        The parsed request.
    root:
        The served directory as an absolute real path.
    info_for:
        :func:`file_info` or a cached equivalent, called with real paths only.
    index:
        Generate an HTML listing for a directory without an index file.
    index_files:
        Names tried, in order, in a directory.
    """
    method = req.method
    if method == "GET" or method == "HEAD":
        resp = _plan_get(req, root, info_for, index, index_files)
        resp.head_only = method == "HEAD"
        return resp
    if method in _NOT_ALLOWED:
        resp = error_response(405, f"{method} is not allowed")
        resp.headers.insert(0, ("Allow", "GET, HEAD"))
        return resp
    return error_response(501, f"method {method} is not implemented")


def _plan_get(
    req: Request, root: str, info_for: InfoFor, index: bool, index_files: tuple[str, ...]
) -> Response:
    try:
        real = resolve(root, req.path)
    except HttpError as exc:
        return error_response(exc.status, exc.detail)
    info = info_for(real)
    if info is None:
        return error_response(404)
    if not info.is_dir:
        if req.path.endswith("/"):
            return error_response(404)
        return _plan_file(req, info)
    if not req.path.endswith("/"):
        return _redirect(req.path + "/", req.query)
    for name in index_files:
        candidate = os.path.realpath(os.path.join(real, name))
        if not _inside(root, candidate):
            continue
        found = info_for(candidate)
        if found is not None and not found.is_dir:
            return _plan_file(req, found)
    if index:
        return _listing(req, real)
    return error_response(404)


# Characters a Location may carry unchanged: RFC 3986 reserved and unreserved, and "%".
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


def _redirect(path: str, query: str) -> Response:
    # "//host/" would be read as another host (network-path reference): keep one slash.
    location = "/" + urllib.parse.quote(path.lstrip("/"), safe=_URI_SAFE)
    if query:
        location += "?" + urllib.parse.quote(query, safe=_URI_SAFE)
    resp = error_response(301)
    resp.headers.insert(0, ("Location", location))
    return resp


# The quoted part of each entity-tag; a "W/" before it is skipped: weak comparison (8.8.3.2).
_ETAG = re.compile(r'"[^"]*"')


def _plan_file(req: Request, info: FileInfo) -> Response:
    """200, 206, 304 or 416 for a regular file."""
    validators = [("Last-Modified", info.last_modified), ("ETag", info.etag)]
    inm = req.header("if-none-match")
    if inm is not None:
        if inm == "*" or info.etag in _ETAG.findall(inm):
            return Response(304, validators)
    else:
        ims = req.header("if-modified-since")
        if ims is not None:
            # Browsers send back the Last-Modified they got: equal text needs no parse.
            if ims == info.last_modified:
                return Response(304, validators)
            since = parse_http_date(ims)
            if since is not None and info.mtime_ns // 1_000_000_000 <= since:
                return Response(304, validators)

    size = info.size
    rng = req.header("range") if req.method == "GET" else None
    if rng is not None and _if_range_holds(req.header("if-range"), info):
        span = _byte_range(rng, size)
        if span is not None:
            if span[0] < 0:
                resp = error_response(416)
                resp.headers.append(("Content-Range", f"bytes */{size}"))
                return resp
            first, last = span
            n = last - first + 1
            return Response(
                206,
                [
                    ("Content-Type", info.content_type),
                    ("Content-Length", str(n)),
                    ("Content-Range", f"bytes {first}-{last}/{size}"),
                    *validators,
                    ("Accept-Ranges", "bytes"),
                ],
                b"",
                info.path,
                first,
                n,
            )
    return Response(
        200,
        [
            ("Content-Type", info.content_type),
            ("Content-Length", str(size)),
            *validators,
            ("Accept-Ranges", "bytes"),
        ],
        b"",
        info.path if size else None,
        0,
        size,
    )


def _if_range_holds(value: str | None, info: FileInfo) -> bool:
    """RFC 9110 13.1.5: absent, or a strong match of the ETag or the exact date."""
    if value is None:
        return True
    if value.startswith('"') or value.startswith("W/"):
        return value == info.etag  # a weak tag never matches (strong comparison)
    return parse_http_date(value) == info.mtime_ns // 1_000_000_000


_INT_RANGE = re.compile(r"([0-9]*)-([0-9]*)")


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single satisfiable byte range; (-1, -1) when unsatisfiable (416);
    None when the header is to be ignored (another unit, several ranges, bad syntax)."""
    unit, eq, ranges = value.partition("=")
    if not eq or unit.lower() != "bytes":
        return None
    specs = [s for s in (r.strip(" \t") for r in ranges.split(",")) if s]
    if len(specs) != 1:
        return None
    m = _INT_RANGE.fullmatch(specs[0])
    if m is None or not (m[1] or m[2]):
        return None
    if m[1]:
        first = _bounded_int(m[1])
        if m[2]:
            last = _bounded_int(m[2])
            if last < first:
                return None  # an invalid range-spec (14.1.1)
        else:
            last = size - 1
        if first >= size:
            return (-1, -1)
        return first, min(last, size - 1)
    suffix = _bounded_int(m[2])
    if suffix == 0 or size == 0:
        return (-1, -1)
    return max(0, size - suffix), size - 1


def _bounded_int(digits: str) -> int:
    # int() refuses more than 4300 digits; anything above 2**63 is "larger than any file".
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 1 << 63


def _listing(req: Request, real: str) -> Response:
    """A generated HTML index of the directory ``real``."""
    try:
        with os.scandir(real) as it:
            entries = []
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                entries.append((entry.name, is_dir))
    except PermissionError:
        return error_response(403)
    except (FileNotFoundError, NotADirectoryError):
        return error_response(404)
    entries.sort()
    shown = html.escape(urllib.parse.unquote(req.path, errors="replace"))
    rows = [] if req.path == "/" else ['<li><a href="../">../</a></li>']
    for name, is_dir in entries:
        slash = "/" if is_dir else ""
        raw = os.fsencode(name)
        href = urllib.parse.quote(raw, safe="") + slash
        text = html.escape(raw.decode("utf-8", "replace")) + slash
        rows.append(f'<li><a href="{href}">{text}</a></li>')
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Index of {shown}</title></head>\n<body><h1>Index of {shown}</h1>\n<ul>\n"
        + "\n".join(rows)
        + "\n</ul></body></html>\n"
    )
    body = page.encode("utf-8")
    return Response(
        200,
        [("Content-Type", "text/html" + _UTF8), ("Content-Length", str(len(body)))],
        body,
    )
