"""What both backends of ``netfast httpd`` do with a connection, whatever its sockets are.

Contract
--------
:class:`ServerCore` holds the connection logic shared by the kernel backend
(:mod:`netfast.httpd.kernel`) and the netfast backend (:mod:`netfast.httpd.netstack`): turning
buffered requests into replies in order (pipelining, at most :data:`PIPELINE` queued), writing a
reply that is all in memory at once when nothing is queued before it, handing file-system work
to the thread pool and applying its results, the header (408) and idle timeouts, and choosing
the idle connection to close at the connection cap.  A backend supplies the I/O through a few
methods -- :meth:`~ServerCore._send_now`, :meth:`~ServerCore._flush`,
:meth:`~ServerCore._drop`, :meth:`~ServerCore._wants_flush` -- and keeps ``_mono`` (the
monotonic time of the current round, which every deadline uses) up to date.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from netfast.httpd.app import HttpApp, HttpdConfig, Lookup, Reply
from netfast.httpd.proto import HttpError, RequestParser

#: Replies queued per connection at most (pipelining) before its reading pauses.
PIPELINE = 16
#: Unparsed request bytes buffered per connection at most before its reading pauses.
PIPELINE_BYTES = 65536
#: Seconds a closing connection may keep draining the client before it is closed.
LINGER = 2.0
#: Seconds between timeout sweeps (and access log flushes).
SWEEP = 0.25

#: A backend's socket type: ``socket.socket`` (kernel) or the netfast ``TcpSocket``.
S = TypeVar("S")
#: A backend's key of a connection in ``ServerCore.conns``: the descriptor (kernel) or the
#: ``TcpSocket`` itself (netfast).
K = TypeVar("K", bound=Hashable)


@dataclass(eq=False, slots=True)
class Conn(Generic[S, K]):
    """One client connection, as both backends keep it."""

    sock: S  # socket.socket (kernel) or netfast TcpSocket
    key: K  # the backend's key of it in ``conns``
    peer: str
    parser: RequestParser
    deadline: float  # monotonic: when the header, idle or linger timeout falls due
    gate: bytearray | None = None  # the accept filter's buffer until the first request is whole
    mask: int = 0  # kernel backend: the selector events registered
    reading: bool = True  # netfast backend: READ registered
    writing: bool = False  # netfast backend: WRITE registered
    busy: bool = False  # a look-up is out for this connection's next reply
    out: collections.deque[Reply] = field(default_factory=collections.deque)
    pending: memoryview | None = None  # unsent part of the current head/body
    closing: bool = False  # close once ``out`` is written
    eof: bool = False  # the client sent FIN
    lingering: bool = False  # our side shut; draining until EOF or the deadline
    request_started: float = -1.0  # monotonic time the current request's first byte came
    last_write: float = 0.0  # monotonic time of the last bytes sent


class ServerCore(Generic[S, K]):
    """The shared connection logic (see the module docstring), over a backend's socket type
    ``S`` and connection key type ``K``."""

    def __init__(self, cfg: HttpdConfig, counters: Any) -> None:
        cfg.validate()
        self.cfg = cfg
        self.app = HttpApp(cfg)
        self.counters = counters
        self.conns: dict[K, Conn[S, K]] = {}
        self._pool = ThreadPoolExecutor(cfg.stat_threads, thread_name_prefix="httpd-stat")
        self._done: collections.deque[tuple[Conn[S, K], Future[Lookup]]] = collections.deque()
        self._mono = 0.0

    def new_conn(self, sock: S, key: K, peer: str, *, gate: bool) -> Conn[S, K]:
        cfg = self.cfg
        parser = RequestParser(
            max_line=cfg.max_line, max_header_bytes=cfg.max_header_bytes,
            max_headers=cfg.max_headers,
        )  # fmt: skip
        conn = Conn(sock, key, peer, parser, self._mono + cfg.header_timeout)
        if gate:
            conn.gate = bytearray()
        self.conns[key] = conn
        return conn

    # --- what a backend supplies ------------------------------------------------------------
    def _send_now(self, conn: Conn[S, K], data: bytes) -> int:
        """Write ``data``; the bytes taken (raise BlockingIOError when none, OSError on error)."""
        raise NotImplementedError

    def _flush(self, conn: Conn[S, K]) -> None:
        """Write what is queued, then register what the connection waits for."""
        raise NotImplementedError

    def _drop(self, conn: Conn[S, K], *, abort: bool = False) -> None:
        """Forget and close ``conn`` (with an RST when ``abort``), releasing its replies."""
        raise NotImplementedError

    def _wants_flush(self, conn: Conn[S, K]) -> bool:
        """Whether the registration of an idle, open ``conn`` differs from plain READ."""
        raise NotImplementedError

    def _wake(self) -> None:
        """Called on a pool thread when a look-up is done (the loop may be asleep)."""

    def _lookups_applied(self) -> None:
        """Called after :meth:`_finish_lookups` answered connections."""

    # --- the shared logic -------------------------------------------------------------------
    def _is_open(self, conn: Conn[S, K]) -> bool:
        return self.conns.get(conn.key) is conn

    def _process(self, conn: Conn[S, K], wall: float) -> None:
        """Turn buffered requests into replies, in order, and write them; stops at a request
        that waits for a look-up, and keeps at most :data:`PIPELINE` replies queued."""
        parser = conn.parser
        app = self.app
        while True:
            progressed = False
            while not conn.busy and not conn.closing and len(conn.out) < PIPELINE:
                try:
                    req = parser.next_request()
                except HttpError as exc:
                    conn.out.append(app.error_reply(exc.status, exc.detail, conn.peer, wall))
                    conn.closing = True
                    break
                if req is None:
                    break
                progressed = True
                reply = app.try_reply(req, conn.peer, wall)
                if reply is None:
                    conn.busy = True
                    self.counters["lookup.submitted"] += 1
                    fut = self._pool.submit(app.lookup, req)
                    fut.add_done_callback(functools.partial(self._lookup_done, conn))
                    break
                if not reply.keep_alive:
                    conn.closing = True
                if reply.length or conn.out or conn.pending is not None:
                    conn.out.append(reply)
                    continue
                # The common case: a reply all in memory, nothing queued before it -- write
                # it now, in one call, and queue only what the socket did not take.
                data = reply.head + reply.body if reply.body else reply.head
                try:
                    n = self._send_now(conn, data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    self.counters["conn.reset"] += 1
                    self._drop(conn, abort=True)
                    return
                conn.last_write = self._mono
                if n < len(data):
                    reply.started = True
                    conn.pending = memoryview(data)[n:]
                    conn.out.append(reply)
                else:
                    app.done(reply)
            mono = self._mono
            if parser.in_request:
                if conn.request_started < 0:
                    conn.request_started = mono
                    conn.deadline = mono + self.cfg.header_timeout
            else:
                conn.request_started = -1.0
                conn.deadline = mono + self.cfg.idle_timeout
            idle = not conn.busy and not conn.out and conn.pending is None
            if not idle or conn.closing or conn.eof or self._wants_flush(conn):
                self._flush(conn)
                if not self._is_open(conn):
                    return
                idle = not conn.busy and not conn.out and conn.pending is None
            if conn.eof and idle and not progressed and not conn.lingering:
                self._drop(conn)  # the client is gone and nothing is left to answer
                return
            # Written out and more requests buffered (pipelining): go on with them.
            if not progressed or not idle or conn.closing or not parser.buffered:
                return

    def _lookup_done(self, conn: Conn[S, K], fut: Future[Lookup]) -> None:
        # On a pool thread: hand the result to the loop.
        self._done.append((conn, fut))
        self._wake()

    def _finish_lookups(self, wall: float) -> None:
        while self._done:
            conn, fut = self._done.popleft()
            result: Lookup | None
            try:
                result = fut.result()
            except Exception as exc:  # a bug in planning must not take the server down
                self.counters["lookup.error"] += 1
                reply = self.app.error_reply(500, type(exc).__name__, conn.peer, wall)
                result = None
            if not self._is_open(conn):
                if result is not None and result.fd >= 0:
                    os.close(result.fd)
                continue
            if result is not None:
                reply = self.app.finish(result, conn.peer, wall)
            conn.busy = False
            conn.out.append(reply)
            if not reply.keep_alive:
                conn.closing = True
            self._process(conn, wall)
        self._lookups_applied()

    def _evict_idle(self) -> bool:
        """Close the idle connection closest to its idle timeout; False when none is idle."""
        victim = None
        for conn in self.conns.values():
            if conn.busy or conn.out or conn.pending is not None or conn.parser.in_request:
                continue
            if conn.gate:
                continue
            if victim is None or conn.deadline < victim.deadline:
                victim = conn
        if victim is None:
            return False
        self.counters["conn.evicted_idle"] += 1
        self._drop(victim)
        return True

    def _sweep(self, wall: float) -> None:
        """The timeouts: 408 for a request head not complete in time, a quiet close for an
        idle connection, a close for a client that stopped reading, the end of lingering."""
        mono = self._mono
        idle_timeout = self.cfg.idle_timeout
        for conn in list(self.conns.values()):
            if conn.out or conn.pending is not None:
                # A client that stopped reading: the idle timeout applies to writes too.
                if mono - conn.last_write > idle_timeout:
                    self.counters["timeout.send"] += 1
                    self._drop(conn, abort=True)
            elif conn.busy or conn.deadline > mono:
                continue
            elif conn.lingering:
                self._drop(conn)
            elif conn.request_started >= 0 or conn.gate:
                self.counters["timeout.header"] += 1
                reply = self.app.error_reply(
                    408, "request head not received in time", conn.peer, wall
                )
                conn.out.append(reply)
                conn.closing = True
                conn.gate = None
                self._flush(conn)
            else:
                self.counters["timeout.idle"] += 1
                self._drop(conn)

    def _release_lookups(self) -> None:
        """On close: wait for the pool and close what finished look-ups opened."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        while self._done:
            _, fut = self._done.popleft()
            try:
                res = fut.result()
            except Exception:  # a failed look-up opened nothing
                continue
            if res.fd >= 0:
                os.close(res.fd)
