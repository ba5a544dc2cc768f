"""TCP sockets and listening queues: the BSD calls over :class:`netfast.tcp.conn.TcpConnection`
(tcp_usrreq and the ``so_comp`` queue).

Contract
--------
:class:`TcpSocket` follows the BSD calls (``bind``, ``listen``, ``accept``, ``connect``,
``send``, ``recv``, ``shutdown``, ``close``) and is non-blocking: a call that would block raises
``BlockingIOError``; misuse (``listen`` unbound, ``send`` unconnected) raises ``OSError``.  It is
:class:`~netfast.watch.Watchable`, so an event queue reports it readable (data, a connection to
accept, end of stream), writable (send-buffer space) and its errors.  Every call that may give a
connection something to send kicks the owning :class:`~netfast.tcp.layer.TcpLayer`, which owns
demultiplexing, timers and output; a socket never sends itself.

:class:`Listener` is a listening socket's queue of completed connections, with FreeBSD's accept
filters (``SO_ACCEPTFILTER``, ``accf_http``): see its docstring for how held connections count
against the backlog.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netfast.tcp.config import TcpConfig
from netfast.tcp.conn import TcpConnection
from netfast.tcp.state import TcpState
from netfast.watch import EV_EOF, EV_ERROR, Watchable
from netfast.wire.ipv4 import ip_from_str

if TYPE_CHECKING:
    from netfast.tcp.layer import TcpLayer

Address = tuple[int, int]


def _addr(address: tuple[int | str, int]) -> Address:
    host, port = address
    if isinstance(host, str):
        host = ip_from_str(host) if host else 0
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is outside 0..65535")
    return int(host), int(port)


#: An accept filter: given the bytes a new connection has received so far, whether the
#: application should see it now (FreeBSD's accf_http: once a whole request is there).
AcceptFilter = Callable[[bytearray], bool]


class Listener:
    """A listening socket's queue of completed connections (the BSD ``so_comp`` queue).

    With an accept filter, an established connection is first *held*: it waits, unseen by
    ``accept``, until the filter passes its received bytes, the peer closes, or it fails; then it
    joins ``ready``.  Held connections count against the backlog like ready ones; when the
    backlog is full the oldest held one is passed on as it is (the application's own timeouts
    then apply), so a flood of silent connections cannot lock the listener."""

    def __init__(self, sock: TcpSocket, local: Address, backlog: int, config: TcpConfig) -> None:
        self.sock = sock
        self.local = local
        self.backlog = max(1, backlog)
        self.config = config
        self.ready: deque[TcpConnection] = deque()
        self.accept_filter: AcceptFilter | None = None
        # Insertion-ordered: the oldest held connection first.
        self.held: dict[TcpConnection, Callable[[TcpConnection], None]] = {}
        self.counters: Counter[str] | None = None
        #: Connections opened by data on SYN whose handshake may not have completed yet (the
        #: TCP layer bounds them by ``TcpConfig.fastopen_queue``).
        self.fast_open_pending: dict[TcpConnection, None] = {}

    def hold(self, conn: TcpConnection) -> None:
        """Keep ``conn`` from ``accept`` until the filter passes it (see the class docstring)."""
        if len(self.ready) + len(self.held) >= self.backlog and self.held:
            oldest = next(iter(self.held))
            self._pass(oldest, "tcp.accf.passed_full")
        watcher = self._check
        self.held[conn] = watcher
        conn.watchers.append(watcher)
        self._check(conn)

    def _check(self, conn: TcpConnection) -> None:
        if conn not in self.held or self.accept_filter is None:
            return
        readable, _writable, eof, err = conn.readiness()
        if err or eof:
            self._pass(conn, "tcp.accf.passed_eof")
        elif readable and self.accept_filter(conn.rcvbuf):
            self._pass(conn, "tcp.accf.passed")
        elif readable and self.counters is not None:
            self.counters["tcp.accf.held_wakeups"] += 1  # data that woke nobody

    def _pass(self, conn: TcpConnection, counter: str) -> None:
        watcher = self.held.pop(conn)
        with contextlib.suppress(ValueError):
            conn.watchers.remove(watcher)
        if self.counters is not None:
            self.counters[counter] += 1
        self.ready.append(conn)
        self.sock._notify()

    def drop_held(self) -> list[TcpConnection]:
        """Forget every held connection (the listener closes); returns them."""
        conns = list(self.held)
        for conn in conns:
            with contextlib.suppress(ValueError):
                conn.watchers.remove(self.held[conn])
        self.held.clear()
        return conns


class TcpSocket(Watchable):
    """A BSD-style, non-blocking TCP socket of a :class:`TcpLayer`."""

    def __init__(self, layer: TcpLayer, conn: TcpConnection | None = None) -> None:
        self.layer = layer
        self.conn = conn
        self.listener: Listener | None = None
        self.local: Address | None = conn.local if conn is not None else None
        self.closed = False
        self.config: TcpConfig | None = None
        if conn is not None:
            layer.sockets[conn] = self

    # -- set-up --

    def setsockopt(self, **options: Any) -> None:
        """Change connection settings before connect/listen (e.g. ``nagle=False``,
        ``rcv_buf=...``, ``keepalive=True``): the fields of :class:`TcpConfig`."""
        base = self.config or self.layer.config
        self.config = dataclasses.replace(base, **options)
        if self.conn is not None:
            self.conn.config = dataclasses.replace(self.conn.config, **options)

    def set_accept_filter(self, accept_filter: AcceptFilter | None) -> None:
        """Hand connections to :meth:`accept` only once ``accept_filter`` passes the bytes they
        received (FreeBSD's ``SO_ACCEPTFILTER``; None turns it off).  Call on a listening
        socket; counters ``tcp.accf.*`` tell what it held and passed."""
        if self.listener is None:
            raise OSError("socket is not listening")
        self.listener.accept_filter = accept_filter
        self.listener.counters = self.layer.counters
        if accept_filter is None:
            for conn in list(self.listener.held):
                self.listener._pass(conn, "tcp.accf.passed_off")

    def bind(self, address: tuple[int | str, int]) -> None:
        addr, port = _addr(address)
        if self.local is not None:
            raise OSError("socket already bound")
        if addr and not self.layer.ip.is_local(addr):
            raise OSError(f"cannot bind {addr:#x}: not a local address")
        if port and self.layer.pcbs.port_in_use(addr, port):
            raise OSError(f"address in use: port {port}")
        self.local = (addr, port)

    def listen(self, backlog: int = 128) -> None:
        if self.conn is not None:
            raise OSError("socket is connected")
        if self.local is None or self.local[1] == 0:
            raise OSError("listen needs a bound port")
        cfg = self.config or self.layer.config
        self.listener = Listener(self, self.local, backlog, cfg)
        self.layer.pcbs.listen(self.local[0], self.local[1], self.listener)
        self.layer.counters["tcp.listen"] += 1

    def accept(self) -> tuple[TcpSocket, Address]:
        if self.listener is None:
            raise OSError("socket is not listening")
        if not self.listener.ready:
            raise BlockingIOError("no connection to accept")
        conn = self.listener.ready.popleft()
        sock = TcpSocket(self.layer, conn)
        return sock, conn.remote

    def connect(self, address: tuple[int | str, int], now: float, data: bytes | None = None) -> int:
        """Start an active open (non-blocking: the socket turns writable when established,
        or reports the error).  ``data`` is queued with it (``sendto`` with ``MSG_FASTOPEN``):
        with ``fastopen=True`` and a cookie of that server in hand, its first segment's worth
        rides in the SYN; otherwise it goes once the handshake is done.  Returns the bytes
        of ``data`` taken."""
        if self.conn is not None or self.listener is not None:
            raise OSError("socket already in use")
        remote = _addr(address)
        local = self.local or (0, 0)
        layer = self.layer
        conn = layer.connect(local, remote, now, self.config)
        self.conn = conn
        self.local = conn.local
        layer.sockets[conn] = self
        return conn.send(data) if data else 0

    # -- the session layer (netfast.tcp.session) --

    @property
    def syn_data_sent(self) -> bool:
        """Our SYN carried data."""
        return self.conn is not None and self.conn.syn_data_sent

    @property
    def syn_data_acked(self) -> bool:
        """The server took the data of our SYN (Linux's TCPI_OPT_SYN_DATA)."""
        return self.conn is not None and self.conn.syn_data_acked

    @property
    def syn_data_accepted(self) -> bool:
        """Passive open: the client's SYN carried data that was taken before the handshake."""
        return self.conn is not None and self.conn.syn_data_accepted

    @property
    def client_cookie(self) -> bool:
        """Every segment of this connection carries T/TCPv2's client cookie."""
        return self.conn is not None and self.conn.client_cookie is not None

    # -- data --

    def _need_conn(self) -> TcpConnection:
        if self.conn is None:
            raise OSError("socket is not connected")
        return self.conn

    def send(self, data: bytes | bytearray | memoryview) -> int:
        conn = self._need_conn()
        if conn.state == TcpState.SYN_SENT and not (conn.config.fastopen and conn.snd_nxt == 0):
            # With fastopen, what is written before the SYN leaves may ride in it (Linux's
            # TCP_FASTOPEN_CONNECT).
            raise BlockingIOError("connection in progress")
        n = conn.send(data)
        if n == 0 and len(data):
            raise BlockingIOError("send buffer full")
        self.layer.kick(conn)
        return n

    def recv(self, bufsize: int) -> bytes:
        conn = self._need_conn()
        data = conn.recv(bufsize)
        self.layer.kick(conn)
        return data

    def shutdown(self) -> None:
        conn = self._need_conn()
        conn.shutdown()
        self.layer.kick(conn)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        layer = self.layer
        if self.listener is not None:
            layer.pcbs.unlisten(self.listener.local[0], self.listener.local[1])
            layer.syncache.drop_listener(self.listener)
            for conn in [*self.listener.ready, *self.listener.drop_held()]:
                conn.abort()
                layer.kick(conn)
            self.listener.ready.clear()
        if self.conn is not None:
            self.conn.close()
            layer.sockets.pop(self.conn, None)
            layer.kick(self.conn)
        self._notify()

    def abort(self) -> None:
        """Close with an RST (SO_LINGER 0)."""
        conn = self._need_conn()
        conn.abort()
        self.layer.sockets.pop(conn, None)
        self.layer.kick(conn)
        self.closed = True

    # -- state --

    @property
    def state(self) -> TcpState:
        if self.listener is not None:
            return TcpState.LISTEN
        return self.conn.state if self.conn is not None else TcpState.CLOSED

    @property
    def error(self) -> str | None:
        return self.conn.error if self.conn is not None else None

    def getpeername(self) -> Address:
        return self._need_conn().remote

    def getsockname(self) -> Address:
        if self.local is None:
            raise OSError("socket is not bound")
        return self.local

    def readiness(self) -> tuple[int, int, int]:
        if self.listener is not None:
            return len(self.listener.ready), 0, EV_EOF if self.closed else 0
        if self.conn is None:
            return 0, 0, 0
        readable, writable, eof, err = self.conn.readiness()
        flags = (EV_EOF if eof else 0) | (EV_ERROR if err else 0)
        return readable, writable, flags

    def fileno(self) -> int:
        return id(self)
