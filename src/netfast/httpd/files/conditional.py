"""The answer for a regular file: conditionals (304), one byte range (206 or 416), If-Range,
else the whole file (200)."""

from __future__ import annotations

import re

from netfast.httpd.files.dates import parse_http_date
from netfast.httpd.files.meta import FileInfo
from netfast.httpd.files.response import Response, error_response
from netfast.httpd.proto import Request

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
