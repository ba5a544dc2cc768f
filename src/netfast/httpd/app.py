"""The static-file application shared by both backends: configuration, the caches that keep
stat(2) and open(2) off the event loop, the response for a parsed request, the access log.

Contract
--------
:class:`HttpApp` turns a :class:`~netfast.httpd.proto.Request` into a :class:`Reply` -- the
serialized response head, an in-memory body and an optional file range to send -- without
touching a socket.  It never blocks on the file system inside the loop:

- :meth:`HttpApp.try_reply` answers from the caches only and returns ``None`` when a file must
  be looked up (stat, realpath, open);
- :meth:`HttpApp.lookup` does that work and is what a backend runs on a worker thread (the
  paper's "perform the stat(2) outside of the main loop"); it returns a :class:`Lookup` that the
  loop hands to :meth:`HttpApp.finish`, which fills the caches and builds the reply.

The hot cache maps a request path to its 200 response for ``stat_ttl`` seconds (default 1 s, as
nginx's ``open_file_cache_valid`` works): a request without conditional or range headers for a
recently served file costs a dictionary look-up.  Open file descriptors are cached with the same
validity so ``sendfile`` needs no ``open`` per request; every descriptor is closed on expiry or on
:meth:`HttpApp.close`.

Time is an argument everywhere (``now``, seconds since the epoch, for Date and the TTLs).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from netfast.httpd.files.dates import http_date
from netfast.httpd.files.meta import FileInfo, StatCache, file_info
from netfast.httpd.files.plan import plan_response
from netfast.httpd.files.response import Response, error_response, serialize_head
from netfast.httpd.proto import Request

#: Server header value.
SERVER = "netfast"
#: Files up to this size are kept in memory and sent with their head in one write: for them the
#: second system call (sendfile after the head) costs more than the copy it saves.
INLINE_MAX = 16384
#: Bytes of small-file contents kept at most.
SMALL_CACHE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class HttpdConfig:
    """What the server is told on its command line (values checked by :meth:`validate`)."""

    root: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    index: bool = False
    #: Seconds a client has to send a whole request head once it started one (-> 408).
    header_timeout: float = 10.0
    #: Seconds a keep-alive connection may sit idle between requests (closed quietly).
    idle_timeout: float = 30.0
    #: Open client connections at most; beyond it the oldest idle one is closed, or accepting
    #: pauses when none is idle.
    max_connections: int = 4096
    max_line: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    #: Bytes sent to one connection per turn of the loop (large files do not starve others).
    chunk: int = 1 << 20
    #: The accept filter: TCP_DEFER_ACCEPT plus the full-request gate.
    accept_filter: bool = True
    #: Worker threads for stat/open off the loop.
    stat_threads: int = 4
    #: How long a stat result, an open descriptor and a cached response stay valid (seconds).
    stat_ttl: float = 1.0
    #: "epoll" (the default on Linux: one aggregated queue), "poll" or "select" (Figure 18).
    poller: str = "epoll"
    #: Where access log lines go (None: no log).
    access_log: TextIO | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first unusable value."""
        if not os.path.isdir(self.root):
            raise ValueError(f"root {self.root!r} is not a directory")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 0..65535")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers {self.workers} is not in 1..64")
        for name in ("header_timeout", "idle_timeout", "stat_ttl"):
            v = getattr(self, name)
            if not (v == v and 0 < v < 86400 * 365):  # v == v refuses nan
                raise ValueError(f"{name} {v} must be a positive number of seconds")
        for name in ("max_connections", "max_line", "max_header_bytes", "max_headers", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.stat_threads <= 256:
            raise ValueError(f"stat_threads {self.stat_threads} is not in 1..256")
        if self.poller not in ("epoll", "poll", "select"):
            raise ValueError(f"poller {self.poller!r} is not epoll, poll or select")


@dataclass(slots=True)
class Reply:
    """What to write for one request: ``head``, then ``body``, then ``length`` bytes of ``fd``
    from ``offset`` (``fd`` -1: no file part).  ``keep_alive`` False closes after it."""

    head: bytes
    body: bytes
    fd: int
    offset: int
    length: int
    keep_alive: bool
    status: int
    #: The descriptor is this reply's alone (not in the cache): the backend closes it after use.
    owns_fd: bool = False
    #: Set by the backend once it began writing this reply.
    started: bool = False
    #: Body bytes for the access log when ``head`` already holds the body (small files).
    nbytes: int = -1


@dataclass(slots=True)
class Lookup:
    """The result of :meth:`HttpApp.lookup` (made on a worker thread, used on the loop)."""

    request: Request
    response: Response
    infos: dict[str, FileInfo | None] = field(default_factory=dict)
    fd: int = -1  # opened for the response's file, or -1
    data: bytes | None = None  # the contents of a small file (at most INLINE_MAX + 1 bytes)


class _FdCache:
    """Open descriptors by (path, size, mtime_ns), valid for ``ttl`` seconds, at most ``size``.

    Every descriptor handed out is held (:meth:`acquire`, :meth:`put`) until :meth:`release`:
    one that expires or is evicted while held is closed only at its last release, so a reply
    still being sent never loses its file, and a reused descriptor number never sends another
    file's bytes."""

    def __init__(self, ttl: float, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._fds: OrderedDict[tuple[str, int, int], tuple[int, float]] = OrderedDict()
        self._refs: dict[int, int] = {}
        self._retired: set[int] = set()
        #: Called with each descriptor right before it is closed.
        self.on_close: Callable[[int], None] | None = None

    def _retire(self, fd: int) -> None:
        if self._refs.get(fd, 0) > 0:
            self._retired.add(fd)
            return
        self._refs.pop(fd, None)
        if self.on_close is not None:
            self.on_close(fd)
        os.close(fd)

    def acquire(self, key: tuple[str, int, int], now: float) -> int:
        """The cached descriptor for ``key``, held for the caller, or -1."""
        hit = self._fds.get(key)
        if hit is None:
            return -1
        fd, expires = hit
        if now >= expires:
            del self._fds[key]
            self._retire(fd)
            return -1
        self._refs[fd] = self._refs.get(fd, 0) + 1
        return fd

    def put(self, key: tuple[str, int, int], fd: int, now: float) -> int:
        """Cache ``fd`` for ``key`` and hold it for the caller; when ``key`` already has a valid
        one, ``fd`` is closed and that one is held and returned instead."""
        held = self.acquire(key, now)
        if held >= 0:
            os.close(fd)  # never handed out: nothing maps it
            return held
        self._fds[key] = (fd, now + self.ttl)
        self._refs[fd] = 1
        while len(self._fds) > self.size:
            _, (victim, _) = self._fds.popitem(last=False)
            self._retire(victim)
        return fd

    def release(self, fd: int) -> None:
        n = self._refs.get(fd, 0) - 1
        if n > 0:
            self._refs[fd] = n
            return
        self._refs[fd] = 0
        if fd in self._retired:
            self._retired.discard(fd)
            self._retire(fd)

    def close(self) -> None:
        """Close every descriptor (the server stops: nothing is sent any more)."""
        for fd in [f for f, _ in self._fds.values()] + list(self._retired):
            self._refs.pop(fd, None)
            if self.on_close is not None:
                self.on_close(fd)
            os.close(fd)
        self._fds.clear()
        self._retired.clear()


_CLOSING = frozenset((400, 408, 413, 414, 431, 500, 501, 505))

# Request headers that make a response depend on more than the path.
_VARYING = frozenset(("range", "if-none-match", "if-modified-since", "if-range"))


class HttpApp:
    """The application: see the module docstring.

    Attributes
    ----------
    counters:
        ``req.total``, ``req.<status>``, ``cache.hot_hit``, ``cache.lookup`` (stat work handed
        out), ``log.lines``.
    """

    def __init__(self, cfg: HttpdConfig) -> None:
        self.cfg = cfg
        self.root = os.path.realpath(cfg.root)
        self.stats = StatCache(ttl=cfg.stat_ttl)
        self.fds = _FdCache(cfg.stat_ttl)
        self.counters: dict[str, int] = {"req.total": 0, "cache.hot_hit": 0, "cache.lookup": 0}
        # target -> (expires, info, descriptor cache key, head for keep-alive, head for close,
        # and for a small file head + body for keep-alive and for close)
        self._hot: dict[str, _Hot] = {}
        # Contents of small files by descriptor cache key (see INLINE_MAX), bounded in bytes.
        self._small: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._small_bytes = 0
        self._date_second = -1
        self._date = ""
        self._log: list[str] = []

    # --- time -------------------------------------------------------------------------------
    def date(self, now: float) -> str:
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = http_date(second)
            self._hot.clear()  # heads carry the Date; rebuilt lazily
        return self._date

    # --- the hot path -----------------------------------------------------------------------
    def try_reply(self, req: Request, peer: str, now: float) -> Reply | None:
        """The reply from the caches alone, or None when :meth:`lookup` must run first."""
        self.date(now)
        keep = req.keep_alive
        if req.method == "GET" or req.method == "HEAD":
            hot = self._hot.get(req.target) if not _varies(req) else None
            if hot is not None and now < hot[0]:
                _, info, key, head_ka, head_close, full_ka, full_close = hot
                if full_ka is not None and full_close is not None:  # small: one buffer
                    self.counters["cache.hot_hit"] += 1
                    if req.method == "GET":
                        full = full_ka if keep else full_close
                    else:
                        full = head_ka if keep else head_close
                    reply = Reply(full, b"", -1, 0, 0, keep, 200)
                    reply.nbytes = info.size if req.method == "GET" else 0
                    self._account(req, peer, reply, now)
                    return reply
                fd = self.fds.acquire(key, now) if req.method == "GET" and info.size else -1
                if fd >= 0 or req.method == "HEAD" or not info.size:
                    self.counters["cache.hot_hit"] += 1
                    length = info.size if fd >= 0 else 0
                    reply = Reply(head_ka if keep else head_close, b"", fd, 0, length, keep, 200)
                    self._account(req, peer, reply, now)
                    return reply
            try:
                response = plan_response(
                    req, self.root, lambda p: self._cached_info(p, now), index=self.cfg.index
                )
            except _NeedLookup:
                return None
            return self._reply(req, peer, response, now, -1)
        return self._reply(req, peer, plan_response(req, self.root, _no_files), now, -1)

    def _cached_info(self, path: str, now: float) -> FileInfo | None:
        hit = self.stats.get(path, now)
        if hit is StatCache.MISS:
            raise _NeedLookup(path)
        return hit  # type: ignore[return-value]

    # --- off the loop -----------------------------------------------------------------------
    def lookup(self, req: Request) -> Lookup:
        """Plan ``req`` with real stat calls and open its file: the work for a worker thread.

        Touches no shared state of the app (the loop applies the result in :meth:`finish`)."""
        infos: dict[str, FileInfo | None] = {}

        def info_for(path: str) -> FileInfo | None:
            info = file_info(path)
            infos[path] = info
            return info

        try:
            response = plan_response(req, self.root, info_for, index=self.cfg.index)
        except OSError as exc:
            response = error_response(500, f"file system: {exc.strerror}")
        fd = -1
        data = None
        if response.file_path is not None and not response.head_only and response.length:
            try:
                fd = os.open(response.file_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                # Gone or unreadable between stat and open.
                response = error_response(404)
            info = infos.get(response.file_path or "")
            if fd >= 0 and info is not None and info.size <= INLINE_MAX:
                with contextlib.suppress(OSError):
                    data = os.pread(fd, info.size + 1, 0)  # +1: a file that grew shows it
        return Lookup(req, response, infos, fd, data)

    def finish(self, result: Lookup, peer: str, now: float) -> Reply:
        """Apply a :meth:`lookup` result on the loop: fill the caches and build the reply."""
        for path, info in result.infos.items():
            self.stats.put(path, info, now)
        return self._reply(result.request, peer, result.response, now, result.fd, result.data)

    # --- building replies -------------------------------------------------------------------
    def _reply(
        self, req: Request, peer: str, response: Response, now: float, fd: int,
        data: bytes | None = None,
    ) -> Reply:  # fmt: skip
        """The reply for a planned response; ``fd`` is a descriptor a look-up opened for it and
        ``data`` the contents it read of a small file."""
        date = self.date(now)
        # A well-formed request keeps its connection whatever the status; only the statuses
        # that mean "this request could not be read" (the parser's, and 500) close it.
        keep = req.keep_alive and response.status not in _CLOSING
        owns = False
        inline = b""
        path = response.file_path
        if path is None or response.head_only or not response.length:
            if fd >= 0:
                os.close(fd)
            fd = -1
        else:
            info = self.stats.get(path, now)
            small = None
            if isinstance(info, FileInfo) and info.size <= INLINE_MAX:
                key = (info.path, info.size, info.mtime_ns)
                small = self._small.get(key)
                if small is None and data is not None and len(data) == info.size:
                    small = data
                    self._keep_small(key, data)
            if small is not None and isinstance(info, FileInfo):
                # Small enough to send with its head in one write: no descriptor needed.
                if fd >= 0:
                    os.close(fd)
                fd = -1
                inline = small[response.offset : response.offset + response.length]
                if response.status == 200 and not _varies(req):
                    ka = serialize_head(response, keep_alive=True, date=date, server=SERVER)
                    close = serialize_head(response, keep_alive=False, date=date, server=SERVER)
                    self._hot[req.target] = (
                        now + self.cfg.stat_ttl, info, key, ka, close, ka + small, close + small,
                    )  # fmt: skip
            elif isinstance(info, FileInfo):
                key = (info.path, info.size, info.mtime_ns)
                fd = self.fds.put(key, fd, now) if fd >= 0 else self.fds.acquire(key, now)
                if fd < 0:
                    fd = self._open(path)
                    if fd >= 0:
                        fd = self.fds.put(key, fd, now)
                if fd >= 0 and response.status == 200 and not _varies(req):
                    self._hot[req.target] = (
                        now + self.cfg.stat_ttl, info, key,
                        serialize_head(response, keep_alive=True, date=date, server=SERVER),
                        serialize_head(response, keep_alive=False, date=date, server=SERVER),
                        None, None,
                    )  # fmt: skip
            else:  # no stat information to key a cache entry: this reply's own descriptor
                fd = fd if fd >= 0 else self._open(path)
                owns = True
            if fd < 0 and small is None:
                response = error_response(404)
                owns = False
        head = serialize_head(response, keep_alive=keep, date=date, server=SERVER)
        body = b"" if response.head_only else response.body + inline
        length = response.length if fd >= 0 else 0
        reply = Reply(head, body, fd, response.offset, length, keep, response.status, owns)
        self._account(req, peer, reply, now)
        return reply

    def _keep_small(self, key: tuple[str, int, int], data: bytes) -> None:
        self._small[key] = data
        self._small_bytes += len(data)
        while self._small_bytes > SMALL_CACHE_BYTES:
            _, victim = self._small.popitem(last=False)
            self._small_bytes -= len(victim)

    @staticmethod
    def _open(path: str) -> int:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone or unreadable since its stat
            return -1

    def done(self, reply: Reply) -> None:
        """The backend is finished with ``reply`` (sent, or its connection went): let go of its
        descriptor."""
        fd = reply.fd
        if fd < 0:
            return
        reply.fd = -1
        if reply.owns_fd:
            if self.fds.on_close is not None:
                self.fds.on_close(fd)
            os.close(fd)
        else:
            self.fds.release(fd)

    def error_reply(self, status: int, detail: str, peer: str, now: float) -> Reply:
        """The reply to a request that could not be parsed (the connection closes after it)."""
        response = error_response(status, detail)
        head = serialize_head(response, keep_alive=False, date=self.date(now), server=SERVER)
        reply = Reply(head, response.body, -1, 0, 0, False, status)
        self._count(status)
        self._log_line(peer, f"- {status} bad request: {detail}", len(response.body), now)
        return reply

    # --- accounting -------------------------------------------------------------------------
    def _count(self, status: int) -> None:
        c = self.counters
        c["req.total"] += 1
        key = f"req.{status}"
        c[key] = c.get(key, 0) + 1

    def _account(self, req: Request, peer: str, reply: Reply, now: float) -> None:
        self._count(reply.status)
        if self.cfg.access_log is not None:
            line = f'"{req.method} {_printable(req.target)} HTTP/{req.version[0]}.{req.version[1]}"'
            nbytes = reply.nbytes if reply.nbytes >= 0 else len(reply.body) + reply.length
            self._log_line(peer, f"{line} {reply.status}", nbytes, now)

    def _log_line(self, peer: str, what: str, nbytes: int, now: float) -> None:
        if self.cfg.access_log is None:
            return
        self._log.append(f"{peer} [{self.date(now)}] {what} {nbytes}\n")
        self.counters["log.lines"] = self.counters.get("log.lines", 0) + 1
        if len(self._log) >= 256:
            self.flush_log()

    def flush_log(self) -> None:
        """Write buffered access log lines (the loop calls this at least every half second)."""
        if self._log and self.cfg.access_log is not None:
            lines, self._log = self._log, []
            try:
                self.cfg.access_log.write("".join(lines))
                self.cfg.access_log.flush()
            except (OSError, ValueError):
                self.counters["log.write_error"] = self.counters.get("log.write_error", 0) + 1

    def close(self) -> None:
        self.flush_log()
        self._hot.clear()
        self.fds.close()


_Hot = tuple[float, FileInfo, tuple[str, int, int], bytes, bytes, bytes | None, bytes | None]


class _NeedLookup(Exception):
    pass


def _no_files(path: str) -> FileInfo | None:
    return None


def _varies(req: Request) -> bool:
    for name, _ in req.headers:  # a plain loop: this runs once per request
        if name in _VARYING:
            break
    else:
        return False
    return True


def _printable(text: str) -> str:
    """A request target as one safe log token (no spaces, quotes or control characters)."""
    if text.isprintable() and '"' not in text and " " not in text and len(text) <= 2048:
        return text
    return repr(text[:2048])[1:-1].replace('"', "%22").replace(" ", "%20")
