"""What a response needs to know about a file: its Content-Type, its :class:`FileInfo` (size,
modification time, ETag, Last-Modified), and the :class:`StatCache` of recent answers."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import ClassVar, Final

from netfast.httpd.files.dates import http_date

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_CONTENT_TYPE",
    "MISS",
    "FileInfo",
    "StatCache",
    "content_type",
    "file_info",
]

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
