"""The kernel backend of ``netfast httpd``: the static-file server on the Linux kernel's sockets,
built as the paper's application section prescribes.

Design (the paper's four techniques, then the rest)
----------------------------------------------------
1. **Accept filter.**  The listening socket has ``TCP_DEFER_ACCEPT``: the kernel completes the
   handshake but wakes the server only when request bytes have arrived.  On top of it the server
   keeps FreeBSD ``accf_http``'s promise itself: the bytes of a new connection are gathered until
   :func:`~netfast.httpd.proto.request_complete` says a whole request is there, and only then
   does the application (parser, planner) see the connection.  Counted:
   ``accept_filter.first_read_complete`` (connections whose first read already held the whole
   request: the accept and the read were one wake-up, not two) and
   ``accept_filter.gated_reads`` (reads of a partial first request that woke nothing but the
   gate).
2. **Event queue.**  One ``selectors`` loop (epoll on Linux: registrations persist in the kernel,
   one call returns the ready set); ``poller="poll"`` or ``"select"`` re-submit every descriptor
   per call, for the paper's Figure 18 comparison.
3. **stat/open off the loop.**  A request answered from the caches costs a dictionary look-up;
   one that needs the file system is handed to a small thread pool
   (:meth:`~netfast.httpd.app.HttpApp.lookup`) and its connection waits while every other
   connection is served; a pipe wakes the loop when the answer is ready.
4. **sendfile.**  The head goes out with ``MSG_MORE`` and the body with ``os.sendfile`` from the
   page cache, so the kernel coalesces them into full segments with no copy through Python; a
   connection gets at most ``chunk`` bytes per turn, so a large download does not starve others.

Connections: persistent (HTTP/1.1 default; 1.0 with keep-alive) and pipelined (requests answered
in order; a request that waits for a look-up holds the ones behind it).  A request head that does
not arrive whole within ``header_timeout`` gets 408; an idle keep-alive connection closes quietly
after ``idle_timeout``.  At ``max_connections`` the oldest idle connection is closed to admit a
new one, and accepting pauses while none is idle.  After the last response of a connection the
server shuts its sending side and drains what the client still sends for a moment before closing,
so a client's unread request bytes do not turn the close into a reset that destroys the response.

Several workers (``workers``) are processes, each with its own listening socket on the same port
(``SO_REUSEPORT``: the kernel spreads connections by flow hash).  This module is the only part of
``netfast.httpd`` that touches sockets and the clock.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import selectors
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from netfast.httpd.app import HttpApp, HttpdConfig, Lookup, Reply
from netfast.httpd.proto import HttpError, RequestParser, request_complete

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_RECV = 65536
#: Seconds a closing connection may keep sending before it is closed hard.
LINGER = 2.0
#: Replies queued per connection at most (pipelining) before its reading pauses.
PIPELINE = 16
#: Unparsed request bytes buffered per connection at most before its reading pauses.
PIPELINE_BYTES = 65536
#: How often timeouts are checked and the access log is flushed (seconds).
SWEEP = 0.25
_TCP_DEFER_ACCEPT = getattr(socket, "TCP_DEFER_ACCEPT", 9)
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
_SELECTORS: dict[str, type[selectors.BaseSelector]] = {
    "epoll": getattr(selectors, "EpollSelector", selectors.DefaultSelector),
    "poll": getattr(selectors, "PollSelector", selectors.DefaultSelector),
    "select": selectors.SelectSelector,
}


@dataclass(eq=False, slots=True)
class _Conn:
    sock: socket.socket
    fd: int
    peer: str
    parser: RequestParser
    deadline: float
    gate: bytearray | None  # the accept filter's buffer until the first request is whole
    mask: int = _READ
    busy: bool = False  # a look-up is out for this connection's next reply
    out: collections.deque[Reply] = field(default_factory=collections.deque)
    pending: memoryview | None = None  # unsent part of the current head/body
    closing: bool = False  # close once ``out`` is written
    eof: bool = False  # the client sent FIN
    lingering: bool = False  # sending side shut; draining until EOF or the deadline
    request_started: float = -1.0  # monotonic time the current request's first byte came
    last_write: float = 0.0  # monotonic time of the last bytes sent


class KernelServer:
    """One worker's event loop over a listening socket (see the module docstring).

    Parameters
    ----------
    cfg:
        The configuration (validated here).
    sock:
        A listening socket to serve; None binds ``cfg.host:cfg.port`` with ``SO_REUSEPORT``.
    """

    def __init__(self, cfg: HttpdConfig, sock: socket.socket | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.app = HttpApp(cfg)
        self.listener = sock if sock is not None else listen_socket(cfg)
        self.listener.setblocking(False)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.counters: dict[str, int] = collections.defaultdict(int)
        self._sel = _SELECTORS[cfg.poller]()
        self._conns: dict[int, _Conn] = {}
        self._pool = ThreadPoolExecutor(cfg.stat_threads, thread_name_prefix="httpd-stat")
        self._done: collections.deque[tuple[_Conn, Future[Lookup]]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._accepting = False
        self._closed = False
        self._mono = time.monotonic()

    # --- the loop ---------------------------------------------------------------------------
    def serve(self, stop: threading.Event | None = None, duration: float | None = None) -> None:
        """Serve until ``stop`` is set or ``duration`` seconds pass (forever when both are None)."""
        sel = self._sel
        sel.register(self._wake_r, _READ, None)
        self._resume_accept()
        end = None if duration is None else time.monotonic() + duration
        next_sweep = time.monotonic() + SWEEP
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                mono = time.monotonic()
                if end is not None and mono >= end:
                    break
                events = sel.select(min(SWEEP, next_sweep - mono) if next_sweep > mono else 0)
                now = time.time()
                # One reading of the clock per round serves every deadline set in it.
                self._mono = time.monotonic()
                for key, mask in events:
                    conn = key.data
                    if conn is None:
                        if key.fileobj is self.listener:
                            self._accept(now)
                        else:
                            self._finish_lookups(now)
                        continue
                    if mask & _READ:
                        self._readable(conn, now)
                    if mask & _WRITE and conn.fd in self._conns:
                        self._process(conn, now)
                mono = time.monotonic()
                if mono >= next_sweep:
                    self._sweep(mono)
                    self.app.flush_log()
                    next_sweep = mono + SWEEP
        finally:
            self.close()

    def close(self) -> None:
        """Close every connection, the listener, the pool and the caches (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for conn in list(self._conns.values()):
            self._close(conn)
        self._pool.shutdown(wait=True, cancel_futures=True)
        while self._done:  # descriptors a finished look-up opened
            _, fut = self._done.popleft()
            with contextlib.suppress(Exception):
                res = fut.result()
                if res.fd >= 0:
                    os.close(res.fd)
        self._sel.close()
        self.listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.app.close()

    # --- accepting --------------------------------------------------------------------------
    def _resume_accept(self) -> None:
        if not self._accepting:
            self._sel.register(self.listener, _READ, None)
            self._accepting = True

    def _pause_accept(self) -> None:
        if self._accepting:
            self._sel.unregister(self.listener)
            self._accepting = False
            self.counters["conn.accept_paused"] += 1

    def _accept(self, now: float) -> None:
        mono = time.monotonic()
        for _ in range(64):
            if len(self._conns) >= self.cfg.max_connections and not self._evict_idle():
                self._pause_accept()
                return
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE ...: counted, the loop goes on
                self.counters["conn.accept_error"] += 1
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cfg = self.cfg
            conn = _Conn(
                sock, sock.fileno(), f"{addr[0]}",
                RequestParser(max_line=cfg.max_line, max_header_bytes=cfg.max_header_bytes,
                              max_headers=cfg.max_headers),
                mono + cfg.header_timeout,
                bytearray() if cfg.accept_filter else None,
            )  # fmt: skip
            self._conns[conn.fd] = conn
            self._sel.register(sock, _READ, conn)
            self.counters["conn.accepted"] += 1
            # With TCP_DEFER_ACCEPT the request is usually there already: read it now.
            self._readable(conn, now)

    def _evict_idle(self) -> bool:
        """Close the idle connection closest to its idle timeout; False when none is idle."""
        victim = None
        for conn in self._conns.values():
            if conn.busy or conn.out or conn.pending is not None or conn.parser.in_request:
                continue
            if conn.gate is not None and conn.gate:
                continue
            if victim is None or conn.deadline < victim.deadline:
                victim = conn
        if victim is None:
            return False
        self.counters["conn.evicted_idle"] += 1
        self._close(victim)
        return True

    # --- reading ----------------------------------------------------------------------------
    def _readable(self, conn: _Conn, now: float) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.counters["conn.reset"] += 1
            self._close(conn)
            return
        if conn.lingering:
            if not data:
                self._close(conn)
            return
        if not data:
            self._peer_closed(conn)
            return
        if conn.request_started < 0:
            conn.request_started = self._mono
            conn.deadline = conn.request_started + self.cfg.header_timeout
        gate = conn.gate
        if gate is not None:
            first = not gate
            gate += data
            if not request_complete(gate, max_line=self.cfg.max_line,
                                    max_header_bytes=self.cfg.max_header_bytes):  # fmt: skip
                self.counters["accept_filter.gated_reads"] += 1
                return
            if first:
                self.counters["accept_filter.first_read_complete"] += 1
            conn.gate = None
            data = bytes(gate)
        conn.parser.feed(data)
        self._process(conn, now)

    def _peer_closed(self, conn: _Conn) -> None:
        # The client sent FIN (maybe only half-closing): answer every whole request it sent,
        # then close; a partial request left at the end can never complete.
        conn.eof = True
        self._process(conn, time.time())

    def _process(self, conn: _Conn, now: float) -> None:
        """Turn buffered requests into replies, in order, and write them; stops at a request
        that waits for a look-up, and keeps at most :data:`PIPELINE` replies queued."""
        parser = conn.parser
        while True:
            progressed = False
            while not conn.busy and not conn.closing and len(conn.out) < PIPELINE:
                try:
                    req = parser.next_request()
                except HttpError as exc:
                    conn.out.append(self.app.error_reply(exc.status, exc.detail, conn.peer, now))
                    conn.closing = True
                    break
                if req is None:
                    break
                progressed = True
                reply = self.app.try_reply(req, conn.peer, now)
                if reply is None:
                    conn.busy = True
                    self.counters["lookup.submitted"] += 1
                    fut = self._pool.submit(self.app.lookup, req)
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
                    n = conn.sock.send(data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    self.counters["conn.reset"] += 1
                    self._close(conn)
                    return
                conn.last_write = self._mono
                if n < len(data):
                    reply.started = True
                    conn.pending = memoryview(data)[n:]
                    conn.out.append(reply)
            mono = self._mono
            if parser.in_request:
                if conn.request_started < 0:
                    conn.request_started = mono
                    conn.deadline = mono + self.cfg.header_timeout
            else:
                conn.request_started = -1.0
                conn.deadline = mono + self.cfg.idle_timeout
            idle = not conn.busy and not conn.out and conn.pending is None
            if not idle or conn.closing or conn.eof or conn.mask != _READ:
                self._flush(conn)
                if conn.fd not in self._conns:
                    return
                idle = not conn.busy and not conn.out and conn.pending is None
            if conn.eof and idle and not progressed and not conn.lingering:
                self._close(conn)  # the client is gone and nothing is left to answer
                return
            # Written out and more requests buffered (pipelining): go on with them.
            if not progressed or not idle or conn.closing or not parser.buffered:
                return

    def _lookup_done(self, conn: _Conn, fut: Future[Lookup]) -> None:
        # On a pool thread: hand the result to the loop and wake it.
        self._done.append((conn, fut))
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _finish_lookups(self, now: float) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._wake_r, 4096)
        while self._done:
            conn, fut = self._done.popleft()
            try:
                result = fut.result()
            except Exception as exc:  # a bug in planning must not take the server down
                self.counters["lookup.error"] += 1
                reply = self.app.error_reply(500, type(exc).__name__, conn.peer, now)
                result = None
            if conn.fd not in self._conns or self._conns[conn.fd] is not conn:
                if result is not None and result.fd >= 0:
                    os.close(result.fd)
                continue
            if result is not None:
                reply = self.app.finish(result, conn.peer, now)
            conn.busy = False
            conn.out.append(reply)
            if not reply.keep_alive:
                conn.closing = True
            self._process(conn, now)
        if not self._accepting:
            self._resume_accept()  # the connections just answered may be idle now

    # --- writing ----------------------------------------------------------------------------
    def _flush(self, conn: _Conn) -> None:
        """Write queued replies until done, the socket is full, or this turn's budget is spent;
        then set what the loop waits for on this connection."""
        budget = self.cfg.chunk
        sock = conn.sock
        try:
            while budget > 0:
                if conn.pending is not None:
                    reply = conn.out[0]
                    n = sock.send(conn.pending, _MSG_MORE if reply.length else 0)
                    conn.last_write = self._mono
                    budget -= n
                    if n < len(conn.pending):
                        conn.pending = conn.pending[n:]
                        break
                    conn.pending = None
                    if not reply.length:
                        self._reply_done(conn)
                    continue
                if not conn.out:
                    break
                reply = conn.out[0]
                if not reply.started:
                    reply.started = True
                    conn.pending = memoryview(reply.head + reply.body if reply.body else reply.head)
                    continue
                # The file part, straight from the page cache.
                n = os.sendfile(conn.fd, reply.fd, reply.offset, min(reply.length, budget))
                conn.last_write = self._mono
                self.counters["sendfile.calls"] += 1
                self.counters["sendfile.bytes"] += n
                if n == 0:  # the file shrank under us: the response cannot be completed
                    self.counters["sendfile.short_file"] += 1
                    self._close(conn)
                    return
                budget -= n
                reply.offset += n
                reply.length -= n
                if reply.length == 0:
                    self._reply_done(conn)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.counters["conn.reset"] += 1
            self._close(conn)
            return
        writing = bool(conn.out) or conn.pending is not None
        if (
            not writing
            and not conn.busy
            and (conn.closing or (conn.eof and not conn.parser.buffered))
        ):
            self._shutdown(conn)
            return
        want = _WRITE if writing else 0
        room = len(conn.out) < PIPELINE and conn.parser.buffered < PIPELINE_BYTES
        if not conn.eof and not conn.closing and room:
            want |= _READ
        self._set_mask(conn, want)

    def _reply_done(self, conn: _Conn) -> None:
        self.app.done(conn.out.popleft())

    def _set_mask(self, conn: _Conn, mask: int) -> None:
        # A mask of 0 (waiting for a look-up only) is "not registered" for selectors.
        if mask == conn.mask:
            return
        if mask == 0:
            self._sel.unregister(conn.sock)
        elif conn.mask == 0:
            self._sel.register(conn.sock, mask, conn)
        else:
            self._sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _shutdown(self, conn: _Conn) -> None:
        """All sent and the connection is to close: shut our side, drain the peer's briefly."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.deadline = time.monotonic() + LINGER
        self._set_mask(conn, _READ)

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.fd, None) is None:
            return
        if conn.mask:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(conn.sock)
        for reply in conn.out:
            self.app.done(reply)
        conn.out.clear()
        conn.sock.close()
        self.counters["conn.closed"] += 1
        if not self._accepting and not self._closed:
            self._resume_accept()

    # --- timeouts ---------------------------------------------------------------------------
    def _sweep(self, mono: float) -> None:
        now = time.time()
        if not self._accepting:
            # Paused at the cap with no idle connection then; some may be idle now.
            self._resume_accept()
        idle_timeout = self.cfg.idle_timeout
        for conn in list(self._conns.values()):
            if conn.out or conn.pending is not None:
                # A client that stopped reading: the idle timeout applies to writes too.
                if mono - conn.last_write > idle_timeout:
                    self.counters["timeout.send"] += 1
                    self._close(conn)
            elif conn.busy or conn.deadline > mono:
                continue
            elif conn.lingering:
                self._close(conn)
            elif conn.request_started >= 0 or conn.gate:
                self.counters["timeout.header"] += 1
                reply = self.app.error_reply(
                    408, "request head not received in time", conn.peer, now
                )
                conn.out.append(reply)
                conn.closing = True
                conn.gate = None
                self._flush(conn)
            else:
                self.counters["timeout.idle"] += 1
                self._close(conn)


def listen_socket(cfg: HttpdConfig, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``cfg.host:cfg.port`` with ``SO_REUSEADDR``, ``SO_REUSEPORT``
    and, with the accept filter on, ``TCP_DEFER_ACCEPT`` (the header timeout, in seconds)."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((cfg.host, cfg.port))
        if cfg.accept_filter:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_DEFER_ACCEPT,
                                max(1, int(cfg.header_timeout)))  # fmt: skip
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def serve_workers(cfg: HttpdConfig, *, ready: object = None, duration: float | None = None) -> int:
    """Run ``cfg.workers`` worker processes on one port until SIGINT/SIGTERM; 0 on a clean stop.

    Every worker's socket is made here, before the fork, so that the port is known (``port`` 0
    picks one) and every worker listens on it; each child keeps its own and closes the others.
    ``ready``, when callable, is called with the bound ``(host, port)`` once all are listening.
    ``duration``: stop by itself after that many seconds.
    """
    cfg.validate()
    first = listen_socket(cfg)
    port = first.getsockname()[1]
    socks = [first]
    try:
        for _ in range(cfg.workers - 1):
            socks.append(listen_socket(_with_port(cfg, port)))
    except BaseException:
        for s in socks:
            s.close()
        raise
    if cfg.workers == 1:
        stop = threading.Event()
        _on_signals(stop.set)
        server = KernelServer(cfg, socks[0])
        if callable(ready):
            ready(server.address)
        server.serve(stop, duration)
        return 0
    children: list[int] = []
    for i, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for j, other in enumerate(socks):
                    if j != i:
                        other.close()
                worker_stop = threading.Event()
                _on_signals(worker_stop.set)
                KernelServer(cfg, sock).serve(worker_stop, duration)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    for sock in socks:
        sock.close()
    if callable(ready):
        ready((cfg.host, port))
    stopping = threading.Event()

    def stop_all() -> None:
        stopping.set()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    _on_signals(stop_all)
    if duration is not None:
        timer = threading.Timer(duration + 1.0, stop_all)
        timer.daemon = True
        timer.start()
    status = 0
    for pid in children:
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                st = 0
                break
        if os.waitstatus_to_exitcode(st) not in (0, -signal.SIGTERM):
            status = 1
    return status


def _with_port(cfg: HttpdConfig, port: int) -> HttpdConfig:
    from dataclasses import replace

    return replace(cfg, port=port)


def _on_signals(handler: object) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())  # type: ignore[operator]


if __name__ == "__main__":  # pragma: no cover - a debugging entry point
    sys.exit(serve_workers(HttpdConfig(root=sys.argv[1], port=int(sys.argv[2]))))
