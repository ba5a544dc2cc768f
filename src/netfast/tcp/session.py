"""The session layer: T/TCPv2's client and server cookies, and TCP Fast Open (RFC 7413).

Contract
--------
A repeat connection between two hosts carries its request in the SYN and is answered without
waiting for a three-way handshake -- safely, because the SYN must show a *server cookie* that
the server gave this client host in an earlier handshake.  This module holds the pieces the
TCP layer uses for that; it reads no clock and draws no randomness of its own.

- :class:`ServerCookies` (the server's side): a cookie is a keyed hash of the client's address
  under a secret that rotates every ``rotate`` seconds.  It is random to an outsider and
  unique per client host; a cookie made under the current or the previous secret is accepted,
  so a cookie lives between one and two rotation periods.  One cookie, two wire forms: the
  48-bit server cookie of netfast's T/TCPv2 option (:class:`~netfast.wire.tcp_options.TtcpCookies`)
  and the 8-byte cookie of TCP Fast Open (kind 34, or kind 254 with ExID 0xF989 for peers
  that still use the experimental form), so that netfast and Linux interoperate.
- :class:`CookieCache` (the client's side): what each server gave us, bounded (least
  recently used evicted) and expiring.
- :func:`session_options` reads what a SYN or SYN-ACK carries: the T/TCPv2 option and/or the
  Fast Open cookie with the kind it came in (a server answers in the client's form).
- :func:`with_option` adds an option to built options, aligned with NOPs.

The paper's design, as the TCP applies it (:mod:`netfast.tcp.layer`, ``input``, ``output``):
the client cookie -- 48 random bits chosen by the client for each connection -- goes in the SYN;
a server that speaks T/TCPv2 echoes it in its SYN-ACK, and from then on it rides on every
segment in both directions; a segment whose client cookie is missing or wrong is dropped and
counted (``tcp.in.client_cookie_bad``, ``tcp.in.client_cookie_missing``).  The server cookie
is sent in the SYN-ACK of a normal handshake; a later SYN carrying it and data creates the
connection at once, hands the data to the application and answers with a SYN-ACK that
acknowledges it.  A bad, stale or missing cookie falls back to the normal handshake through
the SYN cache, the data not acknowledged (the client sends it again after the handshake) and
a fresh cookie in the SYN-ACK (``tcp.fastopen.passive_fail``, as Linux counts
``TCPFastOpenPassiveFail``).  A retransmitted SYN carries no data.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from netfast.wire.tcp_options import (
    NOP,
    OPT_EXP2,
    OPT_FAST_OPEN,
    TFO_EXPERIMENTAL_EXID,
    ExperimentalOption,
    FastOpenOption,
    TcpOption,
    TcpOptions,
    TtcpCookies,
)

#: Bytes of a Fast Open cookie netfast gives out (Linux's size too).
TFO_COOKIE_LEN = 8
#: Bytes the client cookie adds to every segment of a connection that uses it (the option's
#: 10 and two NOPs that align it).
CLIENT_COOKIE_LEN = 12


class ServerCookies:
    """Server cookies: a keyed hash of the client address, the key rotating every ``rotate``
    seconds (see the module docstring).  ``secret`` gives a fresh 16-byte key when asked."""

    def __init__(self, secret: Callable[[], bytes], now: float = 0.0, rotate: float = 3600.0):
        if not rotate > 0:
            raise ValueError(f"rotate = {rotate}: must be positive")
        self._secret = secret
        self.rotate = rotate
        self._keys = [secret(), secret()]  # current, previous
        self._epoch = int(now // rotate)
        self.rotations = 0

    def _tick(self, now: float) -> None:
        epoch = int(now // self.rotate)
        if epoch <= self._epoch:
            return
        # One step moves the current key to previous; two or more leave none of the old ones.
        steps = min(epoch - self._epoch, 2)
        for _ in range(steps):
            self._keys = [self._secret(), self._keys[0]]
        self._epoch = epoch
        self.rotations += steps

    @staticmethod
    def _hash(key: bytes, client: int) -> int:
        h = hashlib.blake2b(client.to_bytes(16, "big"), digest_size=8, key=key)
        return int.from_bytes(h.digest(), "big")

    def value(self, client: int, now: float) -> int:
        """The 64-bit cookie of ``client`` (an address as an integer) under the current key."""
        self._tick(now)
        return self._hash(self._keys[0], client)

    def ttcp(self, client: int, now: float) -> int:
        """The 48-bit T/TCPv2 form."""
        return self.value(client, now) >> 16

    def tfo(self, client: int, now: float) -> bytes:
        """The 8-byte Fast Open form."""
        return self.value(client, now).to_bytes(TFO_COOKIE_LEN, "big")

    def generation(self, client: int, cookie: int | bytes, now: float) -> int | None:
        """Which secret made ``cookie`` for ``client``: 0 the current one, 1 the previous one,
        None neither (forged, stale, or another host's).  An ``int`` is T/TCPv2's 48-bit form,
        ``bytes`` the Fast Open form."""
        self._tick(now)
        if isinstance(cookie, bytes):
            if len(cookie) != TFO_COOKIE_LEN:
                return None
            value, shift = int.from_bytes(cookie, "big"), 0
        else:
            value, shift = cookie, 16
        for age, key in enumerate(self._keys):
            if self._hash(key, client) >> shift == value:
                return age
        return None


@dataclass(slots=True)
class CachedCookie:
    """What a server gave us: its cookie in the form it came in, and its MSS."""

    ttcp: int | None = None
    """The 48-bit T/TCPv2 server cookie (the server speaks T/TCPv2)."""
    tfo: bytes | None = None
    """The Fast Open cookie (the server speaks RFC 7413 only)."""
    tfo_kind: int = OPT_FAST_OPEN
    mss: int = 536
    learned: float = 0.0


class CookieCache:
    """The client's cookies per server address: at most ``limit`` (least recently used goes
    first), each for ``ttl`` seconds."""

    def __init__(self, limit: int = 1024, ttl: float = 86400.0) -> None:
        if limit < 1:
            raise ValueError(f"limit = {limit}: must be at least 1")
        self.limit = limit
        self.ttl = ttl
        self._entries: OrderedDict[int, CachedCookie] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, server: int, now: float) -> CachedCookie | None:
        entry = self._entries.get(server)
        if entry is None:
            return None
        if now - entry.learned > self.ttl:
            del self._entries[server]
            return None
        self._entries.move_to_end(server)
        return entry

    def put(self, server: int, entry: CachedCookie) -> None:
        self._entries[server] = entry
        self._entries.move_to_end(server)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def forget(self, server: int) -> None:
        self._entries.pop(server, None)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The session options of a SYN or SYN-ACK."""

    ttcp: TtcpCookies | None = None
    tfo: bytes | None = None
    """The Fast Open cookie (``b""``: a request), None when absent."""
    tfo_kind: int = OPT_FAST_OPEN


NO_SESSION = SessionOptions()


def session_options(options: TcpOptions) -> SessionOptions:
    """The T/TCPv2 option and the Fast Open cookie (either form) that ``options`` carry."""
    ttcp: TtcpCookies | None = None
    tfo: bytes | None = None
    kind = OPT_FAST_OPEN
    for o in options.items:
        if isinstance(o, TtcpCookies):
            if ttcp is None:
                ttcp = o
        elif isinstance(o, FastOpenOption):
            if tfo is None:
                tfo, kind = o.cookie, OPT_FAST_OPEN
        elif (
            isinstance(o, ExperimentalOption)
            and o.exid == TFO_EXPERIMENTAL_EXID
            and o.kind == OPT_EXP2
            and tfo is None
            and (not o.data or 4 <= len(o.data) <= 16)
        ):
            tfo, kind = o.data, OPT_EXP2
    if ttcp is None and tfo is None:
        return NO_SESSION
    return SessionOptions(ttcp, tfo, kind)


def tfo_option(cookie: bytes, kind: int) -> TcpOption:
    """A Fast Open cookie (or request, ``b""``) in the given form."""
    if kind == OPT_EXP2:
        return ExperimentalOption(OPT_EXP2, TFO_EXPERIMENTAL_EXID, cookie)
    return FastOpenOption(cookie)


def with_option(options: TcpOptions, option: TcpOption) -> TcpOptions:
    """``options`` with ``option`` appended, NOPs before it so that it ends 4-byte aligned."""
    size = len(option.to_bytes())
    pad = -size % 4
    return TcpOptions((*options.items, *([NOP] * pad), option))


def client_cookie_ok(options: TcpOptions, cookie: int) -> bool | None:
    """Whether a segment carries the connection's client cookie: True, False (a wrong one),
    or None (none at all)."""
    for o in options.items:
        if isinstance(o, TtcpCookies):
            return o.client == cookie
    return None


def new_client_cookie(draw: Callable[[int], int]) -> int:
    """48 random bits, never zero (``draw`` is ``random.getrandbits``)."""
    return draw(48) or 1


__all__ = [
    "CLIENT_COOKIE_LEN",
    "NO_SESSION",
    "TFO_COOKIE_LEN",
    "CachedCookie",
    "CookieCache",
    "ServerCookies",
    "SessionOptions",
    "client_cookie_ok",
    "new_client_cookie",
    "session_options",
    "tfo_option",
    "with_option",
]
