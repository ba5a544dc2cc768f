"""UDP (RFC 768; RFC 1122 section 4.1): BSD-style non-blocking sockets and the demultiplexing
layer behind them, a transport core beside :mod:`netfast.tcp`.

Contract
--------
:class:`UdpLayer` sits on an IP layer (:class:`netfast.ip.api.IpOutput`; the host
:class:`~netfast.stack.host.Stack` provides one and hands it every UDP datagram addressed to it); it
never sees the stack itself. :meth:`UdpLayer.input` checks the datagram -- length
(``udp.in.too_short``, ``udp.in.bad_len``), checksum over the pseudo-header unless zero, which RFC
768 allows (``udp.in.bad_checksum``) -- then finds the socket bound to (destination address, port),
else to (wildcard, port), and queues the payload on it (``udp.in.delivered``) unless its receive
buffer is full (``udp.in.rcvbuf_full``). No socket: ``udp.in.no_port`` and the stack answers with
port unreachable (rate limited, never about a broadcast). It returns the outcome counter, exactly
one per datagram.

:class:`UdpSocket` follows the BSD socket calls: ``bind``, ``sendto``, ``recvfrom`` (raises
``BlockingIOError`` when nothing is queued), ``close``.  Addresses are ``(host, port)`` with the
host a dotted string (as Python's ``socket`` module gives them) or a 32-bit integer; ``""`` and
``"0.0.0.0"`` are the wildcard.  A socket sending before ``bind`` is bound to the wildcard and an
ephemeral port (49152-65535, RFC 6335), as BSD does.  It is :class:`~netfast.stack.kqueue.Pollable`:
readable while a datagram is queued, writable while open.  An ICMP port unreachable about a
datagram it sent sets its pending error (``EV_ERROR``; read and cleared by
:meth:`UdpSocket.take_error`).
"""

from __future__ import annotations

import errno
import random
from collections import Counter, deque
from typing import TYPE_CHECKING

from netfast.watch import EV_EOF, EV_ERROR, Watchable
from netfast.wire import checksum
from netfast.wire.ipv4 import IpProtocol, ip_from_str, ip_to_str
from netfast.wire.udp import FIXED_HEADER, HEADER_LEN

if TYPE_CHECKING:
    from netfast.ip.api import IpOutput

IN_TOO_SHORT = "udp.in.too_short"
IN_BAD_LEN = "udp.in.bad_len"
IN_BAD_CHECKSUM = "udp.in.bad_checksum"
IN_DELIVERED = "udp.in.delivered"
IN_RCVBUF_FULL = "udp.in.rcvbuf_full"
IN_NO_PORT = "udp.in.no_port"
#: Exactly one of these counts each datagram given to :meth:`UdpLayer.input`.
UDP_OUTCOMES: tuple[str, ...] = (
    IN_TOO_SHORT,
    IN_BAD_LEN,
    IN_BAD_CHECKSUM,
    IN_DELIVERED,
    IN_RCVBUF_FULL,
    IN_NO_PORT,
)
OUT_DATAGRAMS = "udp.out.datagrams"
OUT_DROPPED = "udp.out.dropped"

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65535
#: The largest UDP payload in one IPv4 datagram: 65535 - 20 (IP) - 8 (UDP).
MAX_PAYLOAD = 65507
WILDCARD = 0


Address = tuple[str, int]


def parse_host(host: str | int) -> int:
    """A host as given to ``bind``/``sendto`` -> 32-bit address (``""`` is the wildcard)."""
    if isinstance(host, int):
        if not 0 <= host <= 0xFFFFFFFF:
            raise ValueError(f"address {host} is outside 0..2**32-1")
        return host
    if host == "":
        return WILDCARD
    return ip_from_str(host)


def _port(port: int) -> int:
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port!r} is outside 0..65535")
    return port


#: What one queued datagram costs at least against the receive buffer, whatever its payload.
DATAGRAM_COST = 64


class UdpLayer:
    """Bindings, ephemeral ports and the input path (see the module docstring)."""

    def __init__(self, ip: IpOutput, counters: Counter[str], rng: random.Random) -> None:
        self.ip = ip
        self.counters = counters
        self.rng = rng
        self.bindings: dict[tuple[int, int], UdpSocket] = {}

    def ephemeral_port(self, addr: int) -> int:
        """A free port for ``addr``, starting from a random point (RFC 6056 algorithm 1)."""
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = EPHEMERAL_LOW + (start + i) % span
            if not self._in_use(addr, port):
                return port
        raise OSError(errno.EADDRINUSE, "no ephemeral UDP port left")

    def _in_use(self, addr: int, port: int) -> bool:
        if addr == WILDCARD:
            return any(p == port for (_a, p) in self.bindings)
        return (addr, port) in self.bindings or (WILDCARD, port) in self.bindings

    def bind(self, sock: UdpSocket, addr: int, port: int) -> int:
        if addr != WILDCARD and not self.ip.is_local(addr):
            raise OSError(errno.EADDRNOTAVAIL, f"{ip_to_str(addr)} is not a local address")
        if port == 0:
            port = self.ephemeral_port(addr)
        elif self._in_use(addr, port):
            raise OSError(errno.EADDRINUSE, f"{ip_to_str(addr)}:{port} is in use")
        self.bindings[(addr, port)] = sock
        return port

    def unbind(self, addr: int, port: int) -> None:
        self.bindings.pop((addr, port), None)

    def lookup(self, addr: int, port: int) -> UdpSocket | None:
        sock = self.bindings.get((addr, port))
        if sock is None:
            sock = self.bindings.get((WILDCARD, port))
        return sock

    def input(self, src: int, dst: int, l4: memoryview | bytes) -> str:
        """One datagram (the IP payload) from ``src`` to ``dst``; returns its outcome."""
        counters = self.counters
        if len(l4) < HEADER_LEN:
            counters[IN_TOO_SHORT] += 1
            return IN_TOO_SHORT
        sport, dport, length, found = FIXED_HEADER.unpack_from(l4)
        if length < HEADER_LEN or length > len(l4):
            counters[IN_BAD_LEN] += 1
            return IN_BAD_LEN
        segment = l4[:length]
        if found and not checksum.l4_verify(src, dst, IpProtocol.UDP, segment):
            counters[IN_BAD_CHECKSUM] += 1
            return IN_BAD_CHECKSUM
        sock = self.lookup(dst, dport)
        if sock is None:
            counters[IN_NO_PORT] += 1
            return IN_NO_PORT
        outcome = sock._deliver(bytes(segment[HEADER_LEN:]), src, sport)
        counters[outcome] += 1
        return outcome

    def port_unreachable(self, src: int, sport: int) -> bool:
        """An ICMP port unreachable quoted a datagram we sent from ``(src, sport)``: flag the
        socket (True when one was found)."""
        sock = self.lookup(src, sport)
        if sock is None:
            return False
        sock._set_error(errno.ECONNREFUSED)
        return True


class UdpSocket(Watchable):
    """A non-blocking UDP socket on a :class:`~netfast.stack.host.Stack` (see the module
    docstring).  Made by :meth:`Stack.udp_socket <netfast.stack.host.Stack.udp_socket>`.

    Parameters
    ----------
    layer:
        The stack's UDP layer.
    rcvbuf:
        Receive-buffer bound in payload bytes; datagrams that would pass it are dropped.  The
        number of queued datagrams is bounded too, one per :data:`DATAGRAM_COST` bytes of it
        (BSD charges every datagram at least an mbuf), so empty datagrams cannot pile up.
    """

    def __init__(self, layer: UdpLayer, rcvbuf: int = 256 * 1024) -> None:
        if rcvbuf < 1:
            raise ValueError("rcvbuf must be >= 1")
        self._layer = layer
        self.rcvbuf = rcvbuf
        self._queue: deque[tuple[bytes, int, int]] = deque()
        self._queued_bytes = 0
        self._local: tuple[int, int] | None = None
        self._closed = False
        self._error = 0

    # --- BSD calls -----------------------------------------------------------------------------

    def bind(self, address: tuple[str | int, int]) -> None:
        """Bind to ``(host, port)``; port 0 picks an ephemeral port.

        Raises ``OSError`` (EADDRINUSE, EADDRNOTAVAIL, EINVAL when already bound, EBADF when
        closed)."""
        host, port = address
        addr, port = parse_host(host), _port(port)
        self._check_open()
        if self._local is not None:
            raise OSError(errno.EINVAL, "the socket is already bound")
        port = self._layer.bind(self, addr, port)
        self._local = (addr, port)

    def getsockname(self) -> Address:
        """The bound ``(host, port)`` (``("0.0.0.0", 0)`` before binding)."""
        if self._local is None:
            return ("0.0.0.0", 0)
        return (ip_to_str(self._local[0]), self._local[1])

    def sendto(self, data: bytes | bytearray | memoryview, address: tuple[str | int, int]) -> int:
        """Send one datagram; returns its length.

        Raises ``OSError``: EMSGSIZE (more than 65507 bytes), ENETUNREACH (no route),
        EBADF (closed)."""
        host, port = address
        dst, dport = parse_host(host), _port(port)
        self._check_open()
        if len(data) > MAX_PAYLOAD:
            raise OSError(errno.EMSGSIZE, f"a UDP datagram carries at most {MAX_PAYLOAD} bytes")
        ip = self._layer.ip
        if self._local is None:
            self.bind(("", 0))
        assert self._local is not None
        src = self._local[0]
        if src == WILDCARD:
            found = ip.source_for(dst)
            if found is None:
                raise OSError(errno.ENETUNREACH, f"no route to {ip_to_str(dst)}")
            src = found
        length = HEADER_LEN + len(data)
        segment = bytearray(length)
        FIXED_HEADER.pack_into(segment, 0, self._local[1], dport, length, 0)
        segment[HEADER_LEN:] = data
        FIXED_HEADER.pack_into(
            segment, 0, self._local[1], dport, length, checksum.udp_wire_checksum(src, dst, segment)
        )
        # UDP leaves fragmentation to IP (DF clear), as BSD does by default.
        outcome = ip.ip_output(src, dst, IpProtocol.UDP, bytes(segment), ip.now, df=False)
        if outcome == "ip.out.no_route":
            raise OSError(errno.ENETUNREACH, f"no route to {ip_to_str(dst)}")
        counters = self._layer.counters
        counters[OUT_DROPPED if outcome is not None else OUT_DATAGRAMS] += 1
        return len(data)

    def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        """The oldest queued datagram (cut to ``bufsize``; the rest is discarded, as recvfrom(2)
        does) and its sender.  Raises ``BlockingIOError`` when none is queued."""
        if bufsize < 0:
            raise ValueError("bufsize must be >= 0")
        self._check_open()
        if not self._queue:
            raise BlockingIOError(errno.EAGAIN, "no datagram queued")
        data, src, sport = self._queue.popleft()
        self._queued_bytes -= len(data)
        self._notify()
        return data[:bufsize], (ip_to_str(src), sport)

    def close(self) -> None:
        """Unbind and drop what is queued; further calls raise ``OSError`` (EBADF)."""
        if self._closed:
            return
        self._closed = True
        if self._local is not None:
            self._layer.unbind(*self._local)
        self._queue.clear()
        self._queued_bytes = 0
        self._notify()

    def take_error(self) -> int:
        """The pending error (an errno, 0 for none), cleared (``SO_ERROR``)."""
        err, self._error = self._error, 0
        if err:
            self._notify()
        return err

    @property
    def closed(self) -> bool:
        return self._closed

    # --- Pollable -------------------------------------------------------------------------------

    def readiness(self) -> tuple[int, int, int]:
        """Readable: bytes queued -- at least 1 while any datagram (even an empty one) is
        queued; writable: the largest datagram while open; flags: EOF once closed, ERROR while
        an error is pending."""
        if self._closed:
            return (0, 0, EV_EOF)
        readable = max(self._queued_bytes, 1) if self._queue else 0
        return (readable, MAX_PAYLOAD, EV_ERROR if self._error else 0)

    # --- the layer's side -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "the socket is closed")

    def _deliver(self, data: bytes, src: int, sport: int) -> str:
        if self._queued_bytes + len(data) > self.rcvbuf or (
            len(self._queue) + 1
        ) * DATAGRAM_COST > max(self.rcvbuf, DATAGRAM_COST):
            return IN_RCVBUF_FULL
        self._queue.append((data, src, sport))
        self._queued_bytes += len(data)
        self._notify()
        return IN_DELIVERED

    def _set_error(self, err: int) -> None:
        self._error = err
        self._notify()

    def __repr__(self) -> str:
        host, port = self.getsockname()
        state = "closed" if self._closed else f"{len(self._queue)} queued"
        return f"UdpSocket({host}:{port}, {state})"
