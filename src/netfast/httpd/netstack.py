"""The netfast backend of ``netfast httpd``: the same static-file application on netfast's own
TCP/IP host stack, its BSD-style sockets and its kqueue-style event queue.

Contract
--------
:class:`NetfastHttpd` is an :class:`~netfast.stack.hostrun.App` -- :func:`run_host` calls its
``step(now)`` once per round -- so the server runs inside netfast's one loop with no thread per
connection.  The paper's techniques, in netfast's terms:

- **accept filter**: the listener holds each new connection until
  :func:`~netfast.httpd.proto.request_complete` passes the bytes it received
  (:meth:`TcpSocket.set_accept_filter`, counters ``tcp.accf.*``): ``accept`` only ever returns
  connections with a whole first request waiting;
- **event queue**: one :class:`~netfast.stack.kqueue.EventQueue` holds the listener and every
  connection; a round costs the active connections, not the registered ones;
- **stat off the loop**: look-ups the caches cannot answer go to a thread pool, as in the kernel
  backend, and their connections wait while the others are served;
- **no copy into application buffers**: a file's bytes go from a read-only memory map of the
  file straight into the connection's send buffer (``send(memoryview(map)[a:b])``); the only copy
  is the one into the socket buffer that any TCP makes for data it may have to resend.

The connection handling (pipelining, 408 on a slow request head, idle close, the connection
cap, the lingering close) follows the kernel backend's; :func:`serve_on_tap` builds a host stack
on a TAP and runs the server until a duration, a signal or Ctrl-C.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeAlias

from netfast.httpd.app import HttpdConfig
from netfast.httpd.loop import LINGER, PIPELINE, PIPELINE_BYTES, SWEEP, Conn, ServerCore
from netfast.httpd.proto import request_complete
from netfast.stack.kqueue import READ, WRITE, EventQueue
from netfast.tcp.socket import TcpSocket

_RECV = 65536

#: A connection of this backend: a netfast TcpSocket, which is also its key.
_Conn: TypeAlias = Conn[TcpSocket, TcpSocket]


class TcpStack(Protocol):
    """What the server needs of a host stack: listening sockets on its addresses."""

    def tcp_socket(self) -> TcpSocket: ...


class NetfastHttpd(ServerCore[TcpSocket, TcpSocket]):
    """The HTTP server as an app of a netfast host stack (see the module docstring).

    Parameters
    ----------
    stack:
        A :class:`~netfast.stack.host.Stack` with TCP.
    cfg:
        The server configuration (``port`` is the TCP port on the stack's addresses).
    clock:
        Wall-clock time for Date headers and cache lifetimes (``time.time``).
    """

    def __init__(
        self, stack: TcpStack, cfg: HttpdConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(cfg, collections.Counter())
        self.clock = clock
        self.queue = EventQueue()
        self.listener = stack.tcp_socket()
        self.listener.bind(("", cfg.port))
        self.listener.listen(1024)
        if cfg.accept_filter:
            self.listener.set_accept_filter(self._request_complete)
        self.queue.register(self.listener, READ, None)
        # Memory maps by descriptor; the app's descriptor cache tells when one closes, so a
        # number reused for another file never finds the old map.
        self._maps: dict[int, mmap.mmap] = {}
        self.app.fds.on_close = self._unmap
        self._next_sweep = 0.0
        self._closed = False

    def _request_complete(self, buf: bytearray) -> bool:
        cfg = self.cfg
        return request_complete(buf, max_line=cfg.max_line, max_header_bytes=cfg.max_header_bytes)

    # --- the App interface ------------------------------------------------------------------
    def step(self, now: float) -> None:
        wall = self.clock()
        self._mono = now
        if self._done:
            self._finish_lookups(wall)
        for ev in self.queue.events():
            conn: _Conn | None = ev.udata  # type: ignore[assignment]
            if conn is None:
                self._accept(wall)
            elif self._is_open(conn):
                if ev.filter == READ:
                    self._readable(conn, wall)
                else:
                    self._process(conn, wall)
        if now >= self._next_sweep:
            self._sweep(wall)
            self.app.flush_log()
            self._next_sweep = now + SWEEP

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self.conns.values()):
            self._drop(conn, abort=True)
        self.queue.unregister_all(self.listener)
        self.listener.close()
        self._release_lookups()
        for m in self._maps.values():
            m.close()
        self._maps.clear()
        self.app.close()

    # --- connections ------------------------------------------------------------------------
    def _accept(self, wall: float) -> None:
        for _ in range(64):
            if len(self.conns) >= self.cfg.max_connections and not self._evict_idle():
                self.counters["conn.at_cap"] += 1
                return
            try:
                sock, peer = self.listener.accept()
            except BlockingIOError:
                return
            # The listener's own accept filter already held it until its request was whole.
            conn = self.new_conn(sock, sock, _ip(peer[0]), gate=False)
            self.queue.register(sock, READ, conn)
            self.counters["conn.accepted"] += 1
            self._readable(conn, wall)

    def _readable(self, conn: _Conn, wall: float) -> None:
        while True:
            try:
                data = conn.sock.recv(_RECV)
            except BlockingIOError:
                return
            except OSError:
                self.counters["conn.reset"] += 1
                self._drop(conn, abort=True)
                return
            if conn.lingering:
                if not data:
                    self._drop(conn)
                    return
                continue
            if not data:
                conn.eof = True
                self._set_read(conn, False)
                self._process(conn, wall)
                return
            if conn.request_started < 0:
                conn.request_started = self._mono
                conn.deadline = self._mono + self.cfg.header_timeout
            conn.parser.feed(data)
            self._process(conn, wall)
            if not self._is_open(conn) or not conn.reading:
                return

    # --- writing ----------------------------------------------------------------------------
    def _send_now(self, conn: _Conn, data: bytes) -> int:
        return int(conn.sock.send(data))

    def _wants_flush(self, conn: _Conn) -> bool:
        return conn.writing or not conn.reading

    def _file_view(self, fd: int) -> memoryview:
        m = self._maps.get(fd)
        if m is None:
            size = os.fstat(fd).st_size
            m = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            self._maps[fd] = m
        return memoryview(m)

    def _flush(self, conn: _Conn) -> None:
        budget = self.cfg.chunk
        sock = conn.sock
        try:
            while budget > 0:
                if conn.pending is not None:
                    n = sock.send(conn.pending)
                    conn.last_write = self._mono
                    budget -= n
                    if n < len(conn.pending):
                        conn.pending = conn.pending[n:]
                        break
                    conn.pending = None
                    if not conn.out[0].length:
                        self.app.done(conn.out.popleft())
                    continue
                if not conn.out:
                    break
                reply = conn.out[0]
                if not reply.started:
                    reply.started = True
                    conn.pending = memoryview(reply.head + reply.body if reply.body else reply.head)
                    continue
                # The file part: from the memory map straight into the send buffer.
                want = min(reply.length, budget)
                # The view is released before the reply may end: a map with views cannot close.
                with self._file_view(reply.fd) as view:
                    if reply.offset + want > len(view):  # the file shrank: cannot be completed
                        self.counters["file.short"] += 1
                        short = True
                    else:
                        short = False
                        with view[reply.offset : reply.offset + want] as piece:
                            n = sock.send(piece)
                if short:
                    self._drop(conn, abort=True)
                    return
                conn.last_write = self._mono
                self.counters["file.bytes"] += n
                budget -= n
                reply.offset += n
                reply.length -= n
                if reply.length == 0:
                    self.app.done(conn.out.popleft())
                elif n < want:
                    break  # the send buffer is full
        except BlockingIOError:
            pass
        except OSError:
            self.counters["conn.reset"] += 1
            self._drop(conn, abort=True)
            return
        writing = bool(conn.out) or conn.pending is not None
        if (
            not writing
            and not conn.busy
            and (conn.closing or (conn.eof and not conn.parser.buffered))
        ):
            self._finish(conn)
            return
        self._set_write(conn, writing)
        room = len(conn.out) < PIPELINE and conn.parser.buffered < PIPELINE_BYTES
        self._set_read(conn, not conn.eof and not conn.closing and room)

    def _unmap(self, fd: int) -> None:
        m = self._maps.pop(fd, None)
        if m is not None:
            m.close()

    def _set_read(self, conn: _Conn, on: bool) -> None:
        if on != conn.reading:
            conn.reading = on
            if on:
                self.queue.register(conn.sock, READ, conn)
            else:
                self.queue.unregister(conn.sock, READ)

    def _set_write(self, conn: _Conn, on: bool) -> None:
        if on != conn.writing:
            conn.writing = on
            if on:
                self.queue.register(conn.sock, WRITE, conn)
            else:
                self.queue.unregister(conn.sock, WRITE)

    def _finish(self, conn: _Conn) -> None:
        """Everything answered and the connection is to end: send our FIN, then drain."""
        with contextlib.suppress(OSError):
            conn.sock.shutdown()
        conn.lingering = True
        conn.deadline = self._mono + LINGER
        self._set_write(conn, False)
        self._set_read(conn, True)

    def _drop(self, conn: _Conn, *, abort: bool = False) -> None:
        if self.conns.pop(conn.key, None) is None:
            return
        self.queue.unregister_all(conn.sock)
        for reply in conn.out:
            self.app.done(reply)
        conn.out.clear()
        with contextlib.suppress(OSError):
            if abort:
                conn.sock.abort()
            else:
                conn.sock.close()
        self.counters["conn.closed"] += 1


def _ip(addr: int) -> str:
    return ".".join(str((addr >> s) & 0xFF) for s in (24, 16, 8, 0))


def serve_on_tap(
    cfg: HttpdConfig,
    tap: str,
    addr: str,
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve ``cfg.root`` from a netfast host stack on TAP ``tap`` with address ``addr``
    (``IP/LEN``) until ``duration`` passes, ``stop`` is set, SIGTERM or Ctrl-C; returns 0."""
    from netfast.cli import CliError
    from netfast.ip.iface import Interface, parse_if_addr
    from netfast.link.tap import TapLink
    from netfast.stack.host import Stack
    from netfast.stack.hostrun import run_host

    try:
        ifaddr = parse_if_addr(addr)
    except ValueError as exc:
        raise CliError(f"--addr {exc}") from None
    try:
        link = TapLink(tap, mtu=1500)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot open TAP {tap!r}: {exc}") from None
    mac = bytes([0x02]) + os.urandom(5)
    stack = Stack([Interface(0, tap, mac, (ifaddr,), mtu=1500)], rng=random.Random())
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = NetfastHttpd(stack, cfg)
    print(f"netfast httpd: serving {cfg.root} on http://{addr.split('/')[0]}:{cfg.port}/ "
          f"(netfast backend on {tap})", flush=True)  # fmt: skip
    try:
        run_host(stack, {0: link}, duration=duration, stop=stop, apps=[server])
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        link.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
