"""Bulk-transfer applications over a host stack's TCP socket calls (they use nothing else of
:class:`~netfast.stack.host.Stack` than ``tcp_socket``): an HTTP/1.0 server of one fixed body,
an HTTP GET client, a byte source and a byte sink.  Tests and ``netfast bench tcp`` use them
against netfast peers and against Linux programs (curl, Python's http.server, plain sockets).

Every app is an :class:`~netfast.stack.hostrun.App`: ``step(now)`` does what the sockets allow
without blocking (BSD calls raising ``BlockingIOError``), and ``done`` (a ``threading.Event``) is
set when the app's work is over, so a test can wait for it while :func:`run_host` runs the loop
in another thread.  Results (bytes moved, SHA-256, start and end times, errors) are attributes.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netfast.stack.host import Stack
    from netfast.tcp.layer import TcpSocket

_CHUNK = 1 << 18
_HEADER_LIMIT = 16384


class _App:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None
        self.started: float | None = None
        self.finished: float | None = None

    def _finish(self, now: float, error: str | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if self.finished is None:
            self.finished = now
        self.done.set()

    @property
    def seconds(self) -> float:
        if self.started is None or self.finished is None:
            return 0.0
        return self.finished - self.started

    def close(self) -> None:
        self.done.set()


class _Client(_App):
    """An app that opens one connection to ``addr`` on its first step."""

    def __init__(self, stack: Stack, addr: tuple[str, int], opts: dict[str, Any]) -> None:
        super().__init__()
        self.stack = stack
        self.addr = addr
        self.opts = opts
        self.sock: TcpSocket | None = None

    def _connect(self, now: float) -> TcpSocket:
        self.started = now
        self.sock = sock = self.stack.tcp_socket()
        if self.opts:
            sock.setsockopt(**self.opts)
        sock.connect(self.addr, now)
        return sock


class _Sender:
    """Pushes a body into a socket as fast as the send buffer takes it."""

    __slots__ = ("body", "offset", "sock")

    def __init__(self, sock: TcpSocket, body: bytes) -> None:
        self.sock = sock
        self.body = memoryview(body)
        self.offset = 0

    def pump(self) -> bool:
        """Send what fits; True when everything went."""
        body = self.body
        while self.offset < len(body):
            try:
                n = self.sock.send(body[self.offset : self.offset + _CHUNK])
            except BlockingIOError:
                return False
            self.offset += n
            if n == 0:
                return False
        return True


class HttpBodyServer(_App):
    """Serves ``body`` to every HTTP request on ``port`` (HTTP/1.0: the connection closes after
    the body).  ``served`` counts responses sent completely; ``limit`` stops after that many."""

    def __init__(self, stack: Stack, port: int, body: bytes, *, limit: int | None = None) -> None:
        super().__init__()
        self.listener = stack.tcp_socket()
        self.listener.bind(("", port))
        self.listener.listen(128)
        head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        self.response = head + body
        self.limit = limit
        self.served = 0
        self.conns: dict[TcpSocket, tuple[bytearray, _Sender | None]] = {}

    def step(self, now: float) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                break
            if self.started is None:
                self.started = now
            self.conns[sock] = (bytearray(), None)
        for sock, (req, sender) in list(self.conns.items()):
            if sender is None:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    sock.close()
                    del self.conns[sock]
                    continue
                req += data
                if b"\r\n\r\n" in req or not data or len(req) > _HEADER_LIMIT:
                    sender = _Sender(sock, self.response)
                    self.conns[sock] = (req, sender)
            if sender is not None:
                try:
                    complete = sender.pump()
                except OSError:
                    sock.close()
                    del self.conns[sock]
                    continue
                if complete:
                    sock.close()
                    del self.conns[sock]
                    self.served += 1
                    if self.limit is not None and self.served >= self.limit:
                        self._finish(now)

    def close(self) -> None:
        for sock in self.conns:
            sock.close()
        self.listener.close()
        super().close()


class HttpGetClient(_Client):
    """Connects to ``addr``, sends a GET for ``path``, reads to the end of the stream, and checks
    the body against ``Content-Length``.  ``body_sha256`` and ``body_len`` are the results."""

    def __init__(self, stack: Stack, addr: tuple[str, int], path: str = "/", **opts: Any) -> None:
        super().__init__(stack, addr, opts)
        self.request = f"GET {path} HTTP/1.0\r\nHost: {addr[0]}\r\n\r\n".encode()
        self.sent = False
        self.buf = bytearray()
        self.header: bytes | None = None
        self.hash = hashlib.sha256()
        self.body_len = 0
        self.body_sha256 = ""
        self.content_length: int | None = None

    def step(self, now: float) -> None:
        if self.done.is_set():
            return
        if self.sock is None:
            self._connect(now)
            return
        try:
            if not self.sent:
                self.sock.send(self.request)
                self.sent = True
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    self._end(now)
                    return
                self._take(data)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(now, f"{type(exc).__name__}: {exc}")

    def _take(self, data: bytes) -> None:
        if self.header is None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.header = bytes(self.buf[:end])
            for line in self.header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.content_length = int(value.strip())
            data = bytes(self.buf[end + 4 :])
            self.buf = bytearray()
        self.hash.update(data)
        self.body_len += len(data)

    def _end(self, now: float) -> None:
        self.body_sha256 = self.hash.hexdigest()
        assert self.sock is not None  # the end of a transfer that connected
        self.sock.close()
        error = None
        if self.header is None:
            error = "no HTTP header"
        elif self.content_length is not None and self.content_length != self.body_len:
            error = f"body of {self.body_len} bytes, Content-Length {self.content_length}"
        self._finish(now, error)


class SinkServer(_App):
    """Accepts one connection on ``port`` and reads it to the end: ``received``, ``sha256``."""

    def __init__(self, stack: Stack, port: int) -> None:
        super().__init__()
        self.listener = stack.tcp_socket()
        self.listener.bind(("", port))
        self.listener.listen(8)
        self.sock: TcpSocket | None = None
        self.hash = hashlib.sha256()
        self.received = 0
        self.sha256 = ""

    def step(self, now: float) -> None:
        if self.done.is_set():
            return
        if self.sock is None:
            try:
                self.sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            self.started = now
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    self.sha256 = self.hash.hexdigest()
                    self.sock.close()
                    self._finish(now)
                    return
                self.hash.update(data)
                self.received += len(data)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(now, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.listener.close()
        super().close()


class SourceClient(_Client):
    """Connects to ``addr``, sends ``body``, half-closes, and is done when the peer closes too."""

    def __init__(self, stack: Stack, addr: tuple[str, int], body: bytes, **opts: Any) -> None:
        super().__init__(stack, addr, opts)
        self.body = body
        self.sender: _Sender | None = None
        self.shut = False

    def step(self, now: float) -> None:
        if self.done.is_set():
            return
        if self.sock is None:
            self.sender = _Sender(self._connect(now), self.body)
            return
        assert self.sender is not None
        try:
            if not self.shut:
                if not self.sender.pump():
                    return
                self.sock.shutdown()
                self.shut = True
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.sock.close()
                    self._finish(now)
                    return
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(now, f"{type(exc).__name__}: {exc}")
