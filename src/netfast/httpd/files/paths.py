"""URL path to file: :func:`resolve` decodes a request path once and keeps it inside the root."""

from __future__ import annotations

import os
import re
import urllib.parse

from netfast.httpd.proto import HttpError

__all__ = ["resolve"]

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
