"""HTTP/1.1 request parsing, sans-IO: bytes in, :class:`Request` values out (RFC 9112, RFC 9110).

Theory of operation
-------------------
:class:`RequestParser` holds the unconsumed bytes of one connection in a ``bytearray``.
:meth:`~RequestParser.feed` only appends; :meth:`~RequestParser.next_request` does the work in
steps, cheapest first:

1. Skip leading empty lines (RFC 9112 2.2 lets a server ignore a few; more than
   :data:`MAX_EMPTY_LINES` is 400).
2. Look for the end of the head, ``CRLF CRLF``, starting where the previous search stopped and
   never further than the limits allow, so a head that trickles in is not rescanned and a huge
   one is not searched to its end.
3. Without an end: check the bytes that arrived since the last call for what makes the request
   certainly bad already (a bare CR or LF, a request line over ``max_line``, a header section
   over ``max_header_bytes``, a malformed request line) and raise at once, else return ``None``.
4. With an end: validate the request line and every field line with one precompiled bytes
   pattern each, decode the head as latin-1 once, split the fields, then apply the semantic
   rules (Host, Content-Length, Transfer-Encoding, Connection).
5. Delete the head from the buffer in one step.  A body announced by Content-Length is skipped
   as it arrives -- never stored -- and the request is returned once the last body byte is in,
   so the next pipelined request starts exactly where this one ended.

Anything that could be read two ways is refused, since a proxy in front might read it the other
way (request smuggling): conflicting Content-Length values, Transfer-Encoding (this server has no
use for request bodies), obs-fold, whitespace before a field's colon, a bare CR or LF.  After a
:class:`HttpError` the parser is dead: every later call raises the same error, and the
connection is to be closed after the error response.

Method policy (405, 501) is not decided here but by the response planner.

Limits, all inclusive (a value equal to the limit is accepted):

- ``max_line``: bytes of the request line without its CRLF (414 beyond);
- ``max_header_bytes``: bytes of the field lines, each with its CRLF, without the request line
  and the final empty line (431 beyond);
- ``max_headers``: number of field lines (431 beyond);
- ``max_body``: Content-Length (413 beyond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_EMPTY_LINES",
    "HttpError",
    "Request",
    "RequestParser",
    "request_complete",
]

#: Empty lines (CRLF) accepted before a request line (RFC 9112 2.2: "at least one").
MAX_EMPTY_LINES = 8

# tchar, RFC 9110 5.6.2.
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r\n")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_TOKEN = re.compile(_TCHAR + rb"+")
_TOKEN_PREFIX = re.compile(_TCHAR + rb"*")
_TARGET = re.compile(rb"[\x21-\x7e]+")
# What may follow the target's space while the request line is incomplete.
_VERSION_PREFIX = re.compile(rb"(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?")
# field-line = field-name ":" OWS field-value OWS; field-value chars are HTAB, SP, VCHAR and
# obs-text (RFC 9110 5.5) -- no other control character, so no CR, LF or NUL.  Used on the head
# decoded as latin-1 (one code point per byte, so the classes mean the same bytes).  A match
# starts at the LF ending the previous line and stops at the CR before the next LF: the field
# lines are valid exactly when there are as many matches as LFs after the request line.  The
# possessive OWS keeps the match linear.
_FIELD = re.compile(r"\n(" + _TCHAR.decode() + r"+):[ \t]*+([\t\x20-\x7e\x80-\xff]*)\r(?=\n)")
_FIELD_LINE = re.compile(_TCHAR + rb"+:[\t\x20-\x7e\x80-\xff]*")
_BARE_CR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_EMPTY_LINES = re.compile(rb"(?:\r\n)+")
_BLANK = re.compile(rb"[\r\n]*")
_ABSOLUTE = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://([^/?#]+)([/?].*)?", re.DOTALL)
# uri-host [ ":" port ] (RFC 9110 7.2): reg-name, IP literal or IPv4 characters only.
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]*")
# For request_complete: is a body announced?  Exact names; "content-length :" is a 400 anyway.
_CL_FIELD = re.compile(rb"\r\ncontent-length:([^\r\n]*)", re.IGNORECASE)
_TE_FIELD = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)

_SPECIAL = frozenset(("host", "content-length", "transfer-encoding", "connection"))


class HttpError(Exception):
    """The peer sent something we refuse; ``status`` is the response code to send, then close.

    Parameters
    ----------
    status:
        The HTTP status code of the error response (400, 413, 414, 431, 501, 505).
    detail:
        What was wrong, for the error page and the log (peer bytes appear as ``repr``).
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request head (the body, if any, was skipped)."""

    #: As sent (a case-sensitive token).
    method: str
    #: The raw request-target.
    target: str
    #: The part of the target's path before ``?``, still percent-encoded; ``*`` for
    #: ``OPTIONS *``; the path of an absolute-form target.
    path: str
    #: The part after ``?``, or "".
    query: str
    #: (1, 0) or (1, 1); HTTP/1.2 and later minors are read as (1, 1).
    version: tuple[int, int]
    #: Field names lower-cased, values without surrounding whitespace, in the order sent.
    headers: tuple[tuple[str, str], ...]
    #: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    keep_alive: bool

    def header(self, name: str) -> str | None:
        """The first value of the field ``name`` (lower case), or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None


class RequestParser:
    """Requests of one connection, one at a time: see the module docstring.

    Parameters
    ----------
    max_line, max_header_bytes, max_headers, max_body:
        The limits described in the module docstring.
    """

    __slots__ = (
        "_body_left",
        "_buf",
        "_checked",
        "_empty_lines",
        "_error",
        "_head_limit",
        "_line_ok",
        "_pending",
        "_scan",
        "max_body",
        "max_header_bytes",
        "max_headers",
        "max_line",
    )

    def __init__(
        self,
        *,
        max_line: int = 8192,
        max_header_bytes: int = 16384,
        max_headers: int = 100,
        max_body: int = 1 << 20,
    ) -> None:
        if min(max_line, max_header_bytes, max_headers) < 1 or max_body < 0:
            raise ValueError("parser limits must be positive")
        self.max_line = max_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        # A whole head (line, CRLF, fields, CRLF) within the limits is at most this long.
        self._head_limit = max_line + max_header_bytes + 4
        self._buf = bytearray()
        self._scan = 0  # where the next search for CRLF CRLF starts
        self._checked = 0  # bytes already searched for a bare CR or LF
        self._line_ok = False  # the buffered request line was validated already
        self._empty_lines = 0
        self._pending: Request | None = None  # returned once its body was skipped
        self._body_left = 0
        self._error: tuple[int, str] | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (ignored once the parser raised an error)."""
        if self._error is None:
            self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held and not yet consumed (a skipped body is not held)."""
        return len(self._buf)

    @property
    def in_request(self) -> bool:
        """True when part of a request is buffered: a head (beyond empty lines) or a body.

        After :meth:`next_request` returned None this says whether the peer is in the middle of
        a request (the header timeout answers 408) or idle between requests (close quietly)."""
        if self._pending is not None:
            return True
        buf = self._buf
        return bool(buf) and _BLANK.fullmatch(buf) is None

    def next_request(self) -> Request | None:
        """The next complete request, or None when more bytes are needed.

        Raises
        ------
        HttpError
            The peer sent something refused; the same error again on every later call.
        """
        if self._error is not None:
            raise HttpError(*self._error)
        try:
            return self._next()
        except HttpError as exc:
            self._error = (exc.status, exc.detail)
            self._buf.clear()
            self._pending = None
            raise

    def _next(self) -> Request | None:
        buf = self._buf
        if self._pending is not None:
            return self._skip_body()
        if not buf:
            return None
        if buf[0] == 13:  # CR: leading empty lines?
            m = _EMPTY_LINES.match(buf)
            if m is not None:
                n = m.end()
                self._empty_lines += n >> 1
                if self._empty_lines > MAX_EMPTY_LINES:
                    raise HttpError(
                        400, f"more than {MAX_EMPTY_LINES} empty lines before a request"
                    )
                del buf[:n]
                self._scan = self._checked = 0
                if not buf:
                    return None
        end = buf.find(b"\r\n\r\n", self._scan, self._head_limit)
        if end < 0:
            self._scan = max(0, len(buf) - 3)
            self._checked, self._line_ok = _check_partial(
                buf, self._checked, self._line_ok, self.max_line, self.max_header_bytes
            )
            return None
        head = bytes(buf[: end + 2])
        del buf[: end + 4]
        self._scan = self._checked = 0
        self._line_ok = False
        self._empty_lines = 0
        req, body = _parse_head(head, self.max_line, self.max_header_bytes, self.max_headers,
                                self.max_body)  # fmt: skip
        if body == 0:
            return req
        self._pending = req
        self._body_left = body
        return self._skip_body()

    def _skip_body(self) -> Request | None:
        buf = self._buf
        n = min(self._body_left, len(buf))
        if n:
            del buf[:n]
            self._body_left -= n
        if self._body_left:
            return None
        req, self._pending = self._pending, None
        return req


def request_complete(
    data: bytes | bytearray | memoryview,
    *,
    max_line: int = 8192,
    max_header_bytes: int = 16384,
    max_body: int = 1 << 20,
) -> bool:
    """The accept filter's test (like FreeBSD's accf_http): is there a request to answer?

    True when ``data`` (the first bytes of a connection) holds a whole request head and the
    body its Content-Length announces, or when it is certainly bad or over a limit already (the
    parser will raise, so the server can answer the error at once).  False: wait for more.

    Without the end of the head only the new-request checks of the parser run (no full parse);
    with it, a pattern search for Content-Length and Transfer-Encoding decides.  ``max_body`` is
    an addition to the brief's signature: a body larger than it is not waited for (413).
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    m = _EMPTY_LINES.match(data)
    if m is not None:
        if m.end() > 2 * MAX_EMPTY_LINES:
            return True
        data = data[m.end() :]
    if not data:
        return False
    end = data.find(b"\r\n\r\n", 0, max_line + max_header_bytes + 4)
    if end < 0:
        try:
            _check_partial(data, 0, False, max_line, max_header_bytes)
        except HttpError:
            return True
        return False
    if _TE_FIELD.search(data, 0, end + 2) is not None:
        return True  # refused by the parser
    values = _CL_FIELD.findall(data, 0, end + 2)
    if not values:
        return True
    try:
        n = _content_length([v.decode("latin-1") for v in values], max_body)
    except HttpError:
        return True
    return len(data) >= end + 4 + n


# --- the steps --------------------------------------------------------------------------------


def _check_partial(
    buf: bytes | bytearray, checked: int, line_ok: bool, max_line: int, max_header_bytes: int
) -> tuple[int, bool]:
    """Raise HttpError when ``buf``, the start of a request head without its end, is certainly
    bad already.  ``checked`` bytes were searched for a bare CR or LF before and ``line_ok``
    says the request line was validated; returns both updated."""
    n = len(buf)
    if n == 1 and buf[0] == 13:
        return 0, False  # an empty line's CR, or a bare one: the next byte tells
    # A CR at the very end may be the start of a CRLF: look at it next time.
    upto = n - 1 if buf[-1] == 13 else n
    if _BARE_CR_LF.search(buf, checked, upto) is not None:
        raise HttpError(400, "bare CR or LF in the request head")
    if line_ok:
        nl = buf.find(b"\n")
    else:
        nl = buf.find(b"\n", 0, max_line + 2)
        if nl < 0:
            # The request line is still arriving; it holds n bytes, or n - 1 and a CR.
            if n > max_line + 1 or (n == max_line + 1 and buf[-1] != 13):
                raise HttpError(414, f"request line longer than {max_line} bytes")
            _check_line_prefix(buf)
            return upto, False
        # nl > 0 and buf[nl - 1] is CR: a bare LF was refused above.
        _request_line(buf, nl - 1, max_line)
    if n - nl - 1 > max_header_bytes + 1:
        raise HttpError(431, f"header section larger than {max_header_bytes} bytes")
    return upto, True


def _check_line_prefix(buf: bytes | bytearray) -> None:
    """Raise 400 when ``buf``, a request line without its LF, can no longer become valid: the
    method, the single spaces and the start of the version are checked (the target's bytes are
    checked once the line is whole)."""
    m = _TOKEN_PREFIX.match(buf)
    k = m.end() if m is not None else 0
    n = len(buf)
    if k == n:
        return
    if k == 0 or buf[k] != 0x20:
        raise HttpError(400, f"malformed request line start {bytes(buf[: k + 1])[:40]!r}")
    sp = buf.find(b" ", k + 1)
    if sp == k + 1 or (sp > 0 and _VERSION_PREFIX.fullmatch(buf, sp + 1) is None):
        raise HttpError(400, _line_problem(bytes(buf).rstrip(b"\r")))


def _request_line(buf: bytes | bytearray, line_end: int, max_line: int) -> re.Match[bytes]:
    """Match the request line ``buf[:line_end]`` (CRLF follows) or raise 414/400/505."""
    if line_end > max_line:
        raise HttpError(414, f"request line of {line_end} bytes, more than {max_line}")
    m = _REQUEST_LINE.match(buf)
    if m is None:
        raise HttpError(400, _line_problem(bytes(buf[:line_end])))
    if m[3] != b"1":
        raise HttpError(505, f"HTTP version {m[3].decode()}.{m[4].decode()} is not supported")
    return m


def _line_problem(line: bytes) -> str:
    """Why the request line does not match (for the error detail)."""
    if b"\r" in line or b"\n" in line:
        return "bare CR or LF in the request line"
    parts = line.split(b" ")
    if len(parts) != 3:
        return f"request line {line[:80]!r} is not METHOD SP target SP version"
    method, target, version = parts
    if _TOKEN.fullmatch(method) is None:
        return f"method {method[:40]!r} is not a token"
    if _TARGET.fullmatch(target) is None:
        return f"request-target {target[:80]!r} holds a control, space or non-ASCII byte"
    if _VERSION.fullmatch(version) is None:
        return f"malformed HTTP version {version[:20]!r}"
    return f"malformed request line {line[:80]!r}"


def _parse_head(
    head: bytes, max_line: int, max_header_bytes: int, max_headers: int, max_body: int
) -> tuple[Request, int]:
    """The request in ``head`` (request line and field lines, each with CRLF) and the length of
    its body."""
    line_end = head.find(b"\r\n")
    m = _request_line(head, line_end, max_line)
    fields_at = line_end + 2
    if len(head) - fields_at > max_header_bytes:
        raise HttpError(431, f"header section larger than {max_header_bytes} bytes")
    lines = head.count(b"\n", fields_at)
    if lines > max_headers:
        raise HttpError(431, f"more than {max_headers} header fields")
    text = head.decode("latin-1")
    fields = _FIELD.findall(text, line_end + 1)
    if len(fields) != lines:
        raise HttpError(400, _field_problem(head, fields_at))
    headers = tuple([(n.lower(), v.rstrip(" \t")) for n, v in fields])

    method = m[1].decode("ascii")
    target = m[2].decode("ascii")
    version = (1, 0) if m[4] == b"0" else (1, 1)
    path, query = _split_target(method, target)
    hosts = 0
    lengths: list[str] | None = None
    chunked = False
    conn: list[str] | None = None
    for name, value in headers:
        if name in _SPECIAL:
            if name == "host":
                hosts += 1
                if _HOST.fullmatch(value) is None:
                    raise HttpError(400, f"invalid Host {value[:80]!r}")
            elif name == "content-length":
                lengths = [value] if lengths is None else [*lengths, value]
            elif name == "transfer-encoding":
                chunked = True
            else:
                tokens = [t.strip(" \t").lower() for t in value.split(",")]
                conn = tokens if conn is None else conn + tokens
    if hosts > 1:
        raise HttpError(400, f"{hosts} Host header fields")
    if hosts == 0 and version == (1, 1):
        raise HttpError(400, "HTTP/1.1 request without Host")
    if chunked:
        if lengths is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if method == "GET" or method == "HEAD":
            raise HttpError(400, f"Transfer-Encoding on {method}")
        raise HttpError(501, "Transfer-Encoding is not supported")
    body = 0 if lengths is None else _content_length(lengths, max_body)
    if version == (1, 1):
        keep_alive = conn is None or "close" not in conn
    else:
        keep_alive = conn is not None and "keep-alive" in conn and "close" not in conn
    return Request(method, target, path, query, version, headers, keep_alive), body


def _field_problem(head: bytes, at: int) -> str:
    """Why a field line from ``at`` on is refused (for the error detail)."""
    for line in head[at:-2].split(b"\r\n"):
        if _FIELD_LINE.fullmatch(line) is not None:
            continue
        if line[:1] in (b" ", b"\t"):
            return "obs-fold (a field line starting with whitespace)"
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in a header field"
        name, colon, _ = line.partition(b":")
        if not colon:
            return f"header line {line[:80]!r} without a colon"
        if name[-1:] in (b" ", b"\t"):
            return f"whitespace between header name {name.rstrip()[:40]!r} and its colon"
        if _TOKEN.fullmatch(name) is None:
            return f"header name {name[:40]!r} is not a token"
        return f"control character in the value of {name[:40]!r}"
    return "malformed header section"


def _split_target(method: str, target: str) -> tuple[str, str]:
    """(path, query) of a request-target (RFC 9112 3.2)."""
    if target[0] != "/":
        if target == "*":
            if method != "OPTIONS":
                raise HttpError(400, f"request-target * with {method}")
            return "*", ""
        m = _ABSOLUTE.fullmatch(target)
        if m is None:
            raise HttpError(400, f"request-target {target[:80]!r} is not a path or an http URL")
        target = m[2] or "/"
        if target[0] == "?":
            target = "/" + target
    path, _, query = target.partition("?")
    return path, query


def _content_length(values: list[str], max_body: int) -> int:
    """The body length from every Content-Length value (RFC 9112 6.3), or raise 400/413."""
    norm = ""
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t")
            # str.isdigit() alone also accepts "²" and "٣"; int() also "+5", " 5", "1_0".
            if not (part.isascii() and part.isdigit()):
                raise HttpError(400, f"Content-Length {value[:40]!r} is not a number")
            part = part.lstrip("0") or "0"
            if norm and part != norm:
                raise HttpError(400, "conflicting Content-Length values")
            norm = part
    if len(norm) > 18 or int(norm) > max_body:
        raise HttpError(413, f"body of {norm[:40]} bytes, more than {max_body}")
    return int(norm)
