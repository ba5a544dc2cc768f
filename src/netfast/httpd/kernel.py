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
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import TypeAlias

from netfast.httpd.app import HttpdConfig
from netfast.httpd.loop import LINGER, PIPELINE, PIPELINE_BYTES, SWEEP, Conn, ServerCore
from netfast.httpd.proto import request_complete

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_RECV = 65536
_TCP_DEFER_ACCEPT = getattr(socket, "TCP_DEFER_ACCEPT", 9)
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
_SELECTORS: dict[str, type[selectors.BaseSelector]] = {
    "epoll": getattr(selectors, "EpollSelector", selectors.DefaultSelector),
    "poll": getattr(selectors, "PollSelector", selectors.DefaultSelector),
    "select": selectors.SelectSelector,
}


#: A connection of this backend: a kernel socket, keyed by its descriptor.
_Conn: TypeAlias = Conn[socket.socket, int]


class KernelServer(ServerCore[socket.socket, int]):
    """One worker's event loop over a listening socket (see the module docstring).

    Parameters
    ----------
    cfg:
        The configuration (validated here).
    sock:
        A listening socket to serve; None binds ``cfg.host:cfg.port`` with ``SO_REUSEPORT``.
    """

    def __init__(self, cfg: HttpdConfig, sock: socket.socket | None = None) -> None:
        super().__init__(cfg, collections.defaultdict(int))
        self.listener = sock if sock is not None else listen_socket(cfg)
        self.listener.setblocking(False)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._sel = _SELECTORS[cfg.poller]()
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
                            with contextlib.suppress(BlockingIOError, OSError):
                                os.read(self._wake_r, 4096)
                            self._finish_lookups(now)
                        continue
                    if mask & _READ:
                        self._readable(conn, now)
                    if mask & _WRITE and self._is_open(conn):
                        self._process(conn, now)
                if self._mono >= next_sweep:
                    if not self._accepting:
                        # Paused at the cap with no idle connection then; some may be now.
                        self._resume_accept()
                    self._sweep(now)
                    self.app.flush_log()
                    next_sweep = self._mono + SWEEP
        finally:
            self.close()

    def close(self) -> None:
        """Close every connection, the listener, the pool and the caches (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for conn in list(self.conns.values()):
            self._drop(conn)
        self._release_lookups()
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
        for _ in range(64):
            if len(self.conns) >= self.cfg.max_connections and not self._evict_idle():
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
            conn = self.new_conn(sock, sock.fileno(), f"{addr[0]}", gate=self.cfg.accept_filter)
            conn.mask = _READ
            self._sel.register(sock, _READ, conn)
            self.counters["conn.accepted"] += 1
            # With TCP_DEFER_ACCEPT the request is usually there already: read it now.
            self._readable(conn, now)

    def _lookups_applied(self) -> None:
        if not self._accepting:
            self._resume_accept()  # the connections just answered may be idle now

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    # --- reading ----------------------------------------------------------------------------
    def _readable(self, conn: _Conn, now: float) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.counters["conn.reset"] += 1
            self._drop(conn)
            return
        if conn.lingering:
            if not data:
                self._drop(conn)
            return
        if not data:
            # The client sent FIN (maybe only half-closing): answer every whole request it
            # sent, then close; a partial request left at the end can never complete.
            conn.eof = True
            self._process(conn, now)
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

    # --- writing ----------------------------------------------------------------------------
    def _send_now(self, conn: _Conn, data: bytes) -> int:
        return int(conn.sock.send(data))

    def _wants_flush(self, conn: _Conn) -> bool:
        return conn.mask != _READ

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
                        self.app.done(conn.out.popleft())
                    continue
                if not conn.out:
                    break
                reply = conn.out[0]
                if not reply.started:
                    reply.started = True
                    conn.pending = memoryview(reply.head + reply.body if reply.body else reply.head)
                    continue
                # The file part, straight from the page cache.
                n = os.sendfile(conn.key, reply.fd, reply.offset, min(reply.length, budget))
                conn.last_write = self._mono
                self.counters["sendfile.calls"] += 1
                self.counters["sendfile.bytes"] += n
                if n == 0:  # the file shrank under us: the response cannot be completed
                    self.counters["sendfile.short_file"] += 1
                    self._drop(conn)
                    return
                budget -= n
                reply.offset += n
                reply.length -= n
                if reply.length == 0:
                    self.app.done(conn.out.popleft())
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.counters["conn.reset"] += 1
            self._drop(conn)
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
            self._drop(conn)
            return
        conn.lingering = True
        conn.deadline = self._mono + LINGER
        self._set_mask(conn, _READ)

    def _drop(self, conn: _Conn, *, abort: bool = False) -> None:
        if self.conns.pop(conn.key, None) is None:
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
    return replace(cfg, port=port)


def _on_signals(handler: object) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())  # type: ignore[operator]


if __name__ == "__main__":  # pragma: no cover - a debugging entry point
    sys.exit(serve_workers(HttpdConfig(root=sys.argv[1], port=int(sys.argv[2]))))
