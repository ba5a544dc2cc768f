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

Modules: :mod:`~netfast.httpd.files.paths` (:func:`resolve`), :mod:`~netfast.httpd.files.dates`
(HTTP-dates), :mod:`~netfast.httpd.files.meta` (Content-Type, :class:`FileInfo`,
:class:`StatCache`), :mod:`~netfast.httpd.files.response` (:class:`Response`, error responses,
the head), :mod:`~netfast.httpd.files.conditional` (304, 206, 416 and 200 for a file) and
:mod:`~netfast.httpd.files.plan` (:func:`plan_response`).  Their public names are re-exported
here.
"""

from netfast.httpd.files.dates import http_date, parse_http_date
from netfast.httpd.files.meta import (
    CONTENT_TYPES,
    DEFAULT_CONTENT_TYPE,
    MISS,
    FileInfo,
    StatCache,
    content_type,
    file_info,
)
from netfast.httpd.files.paths import resolve
from netfast.httpd.files.plan import InfoFor, plan_response
from netfast.httpd.files.response import REASONS, Response, error_response, serialize_head

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_CONTENT_TYPE",
    "MISS",
    "REASONS",
    "FileInfo",
    "InfoFor",
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
