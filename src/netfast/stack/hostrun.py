"""Run a host :class:`~netfast.stack.host.Stack` on real links, with services driven by the event
queue (the paper's kqueue section: one loop, aggregated events, no thread per connection).

Contract
--------
:func:`run_host` is the only place of the host stack that reads the clock (``time.monotonic``).
Each round it receives a batch from every link, feeds the frames to ``stack.input``, lets every
:class:`App` take a ``step(now)``, then calls ``stack.poll(now)`` and sends each frame on the
link of its ifindex.  When a round received nothing it waits in ``select`` on the links'
descriptors until the stack's next timer, at most 50 ms (links without ``fileno`` are slept
on for at most 1 ms).  It stops when ``duration`` has passed, when ``stop`` is set, or after
``max_frames`` received frames -- whichever comes first.

:class:`EchoService` (RFC 862) and :class:`DiscardService` (RFC 863) are written against the BSD
socket calls only (``bind``/``recvfrom``/``sendto`` for UDP; ``bind``/``listen``/``accept``/
``recv``/``send``/``close`` for TCP, raising ``BlockingIOError`` when they would block) and an
:class:`~netfast.stack.kqueue.EventQueue`.  They serve UDP always and TCP when the stack has
one (``tcp_socket()`` raises ``OSError`` on a stack built with ``tcp=False``).
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from netfast.link.base import Link, WaitableLink
from netfast.stack.host import Stack
from netfast.stack.kqueue import READ, WRITE, EventQueue, KEvent

#: Longest wait for frames in one round (seconds).
MAX_WAIT = 0.05
#: Datagrams or reads one service handles per socket per step (fairness between sockets).
STEP_BUDGET = 64
_RECV_SIZE = 65536


class App(Protocol):
    """A service :func:`run_host` drives: ``step(now)`` once per round, ``close()`` at the end."""

    def step(self, now: float) -> None: ...

    def close(self) -> None: ...


class _StreamService:
    """Shared skeleton of echo and discard: a UDP socket and, when the stack has TCP, a listener
    and its connections, all on one event queue."""

    echo = False

    def __init__(
        self, stack: Stack, port: int, *, backlog: int = 64, fastopen: bool = False
    ) -> None:
        self.stack = stack
        self.port = port
        self.queue = EventQueue()
        self.udp = stack.udp_socket()
        self.udp.bind(("", port))
        self.queue.register(self.udp, READ, "udp")
        self.listener: Any = None
        # TCP connection -> bytes still to send back (echo only).
        self.conns: dict[Any, bytearray] = {}
        # Connections whose peer finished while echoed bytes were still pending.
        self.closing: set[Any] = set()
        self.datagrams = 0
        self.bytes = 0
        try:
            listener = stack.tcp_socket()
        except OSError:  # a stack built without TCP
            listener = None
        if listener is not None:
            if fastopen:
                # Data on SYN with a valid cookie, in T/TCPv2's form or TCP Fast Open's.
                listener.setsockopt(fastopen=True, ttcp=True)
            listener.bind(("", port))
            listener.listen(backlog)
            self.listener = listener
            self.queue.register(listener, READ, "listen")

    def step(self, now: float) -> None:
        for ev in self.queue.events():
            if ev.udata == "udp":
                self._udp_ready()
            elif ev.udata == "listen":
                self._accept()
            elif ev.filter == READ:
                self._conn_read(ev)
            else:
                self._conn_write(ev.ident)

    def _udp_ready(self) -> None:
        sock = self.udp
        for _ in range(STEP_BUDGET):
            try:
                data, peer = sock.recvfrom(_RECV_SIZE)
            except BlockingIOError:
                break
            self.datagrams += 1
            self.bytes += len(data)
            if self.echo:
                # No route back: UDP drops, as the kernel would.
                with contextlib.suppress(OSError):
                    sock.sendto(data, peer)
        sock.take_error()

    def _accept(self) -> None:
        assert self.listener is not None
        for _ in range(STEP_BUDGET):
            try:
                conn, _peer = self.listener.accept()
            except BlockingIOError:
                break
            self.conns[conn] = bytearray()
            self.queue.register(conn, READ, "conn")

    def _conn_read(self, ev: KEvent) -> None:
        conn: Any = ev.ident
        if conn not in self.conns:
            return
        for _ in range(STEP_BUDGET):
            try:
                data = conn.recv(_RECV_SIZE)
            except BlockingIOError:
                break
            except OSError:
                self._drop(conn)
                return
            if not data:
                # EOF: echo what is still pending, then close (RFC 862 ends with the client).
                if not self.conns[conn]:
                    self._drop(conn)
                else:
                    self.closing.add(conn)
                    self.queue.unregister(conn, READ)
                return
            self.bytes += len(data)
            if self.echo:
                self.conns[conn] += data
                self._conn_write(conn)
                if conn not in self.conns:
                    return  # the write failed and dropped it
        # End of stream and errors come out of recv (b"" or an exception) above; what the
        # budget left unread is read on the next step.

    def _conn_write(self, conn: Any) -> None:
        pending = self.conns.get(conn)
        if pending is None:
            return
        while pending:
            try:
                sent = conn.send(bytes(pending))
            except BlockingIOError:
                break
            except OSError:
                self._drop(conn)
                return
            if sent <= 0:
                break
            del pending[:sent]
        if pending:
            self.queue.register(conn, WRITE, "conn")
        elif conn in self.closing:
            self._drop(conn)
        else:
            with contextlib.suppress(ValueError):  # WRITE was not registered
                self.queue.unregister(conn, WRITE)

    def _drop(self, conn: Any) -> None:
        self.conns.pop(conn, None)
        self.closing.discard(conn)
        self.queue.unregister_all(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def close(self) -> None:
        for conn in list(self.conns):
            self._drop(conn)
        self.queue.unregister_all(self.udp)
        self.udp.close()
        if self.listener is not None:
            self.queue.unregister_all(self.listener)
            self.listener.close()


class EchoService(_StreamService):
    """The echo service (RFC 862) on ``port`` (default 7): UDP datagrams are sent back to their
    sender; TCP bytes back on their connection (when the stack has TCP)."""

    echo = True

    def __init__(self, stack: Stack, port: int = 7, *, fastopen: bool = False) -> None:
        super().__init__(stack, port, fastopen=fastopen)


class DiscardService(_StreamService):
    """The discard service (RFC 863) on ``port`` (default 9): reads and throws away."""

    def __init__(self, stack: Stack, port: int = 9, *, fastopen: bool = False) -> None:
        super().__init__(stack, port, fastopen=fastopen)


def _group(frames: list[tuple[int, bytes]]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for ifindex, frame in frames:
        out.setdefault(ifindex, []).append(frame)
    return out


def run_host(
    stack: Stack,
    links: Mapping[int, Link],
    *,
    duration: float | None,
    stop: threading.Event | None,
    apps: Sequence[App],
    max_frames: int | None = None,
    batch: int = 64,
) -> None:
    """Drive ``stack`` on ``links`` (ifindex -> link) until ``duration`` seconds have passed,
    ``stop`` is set or ``max_frames`` frames were received (see the module docstring).

    Raises
    ------
    ValueError
        When a link's ifindex is not one of the stack's interfaces, or ``duration`` is negative.
    """
    for ifindex in links:
        if ifindex not in stack.interfaces:
            raise ValueError(f"link for ifindex {ifindex}: the stack has no such interface")
    for ifindex in stack.interfaces:
        if ifindex not in links:
            raise ValueError(
                f"interface {ifindex} has no link: its frames would have nowhere to go"
            )
    if duration is not None and duration < 0:
        raise ValueError("duration must be >= 0")
    fds = [link.fileno() for link in links.values() if isinstance(link, WaitableLink)]
    start = time.monotonic()
    end = float("inf") if duration is None else start + duration
    received = 0
    while True:
        now = time.monotonic()
        if now >= end or (stop is not None and stop.is_set()):
            break
        if max_frames is not None and received >= max_frames:
            break
        got = 0
        for ifindex, link in links.items():
            frames = link.recv_batch(batch)
            if frames:
                stack.input_batch(ifindex, frames, now)
                got += len(frames)
        received += got
        for app in apps:
            app.step(now)
        for ifindex, frames in _group(stack.poll(now)).items():
            links[ifindex].send(frames)
        if got:
            continue
        wait = min(MAX_WAIT, end - now)
        due = stack.poll_at()
        if due is not None:
            wait = min(wait, due - now)
        if wait <= 0:
            continue
        if fds:
            select.select(fds, [], [], wait)
        else:
            time.sleep(min(wait, 0.001))
