"""The response decision: the method, then path to file or directory -- index file, redirect,
generated listing -- with :mod:`~netfast.httpd.files.conditional` answering for a file."""

from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Callable

from netfast.httpd.files.conditional import _plan_file
from netfast.httpd.files.meta import _UTF8, FileInfo
from netfast.httpd.files.paths import _inside, resolve
from netfast.httpd.files.response import Response, error_response
from netfast.httpd.proto import HttpError, Request

__all__ = ["InfoFor", "plan_response"]

_NOT_ALLOWED = frozenset(("OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"))


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
