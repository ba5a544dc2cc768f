"""The planned :class:`Response`, the reason phrases, error responses, and the serialized head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from netfast.httpd.files.meta import _UTF8

__all__ = ["REASONS", "Response", "error_response", "serialize_head"]

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
