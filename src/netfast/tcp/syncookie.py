"""Stateless SYN cookies carrying MSS, window scale and SACK-permitted (RFC 4987 section 3.6;
FreeBSD's ``tcp_syncache.c`` syncookies).

When a listener's SYN cache is full it still answers a SYN, but keeps no state: the SYN-ACK's
initial send sequence number (ISS) *is* the state.  It encodes the peer's options under a MAC
keyed with a secret only this host knows.  The peer's ACK acknowledges ``iss + 1``; from it the
listener recomputes the MAC, and if it matches, recovers the options and builds the connection
as if the SYN had been cached.  Anything else is dropped and counted.

Cookie layout (the 32-bit ISS)
------------------------------
::

    31                                 10  9   8   7     4  3     0
    +------------------------------------+---+---+--------+--------+
    |              MAC (22 bits)         | G | S | wscale |  mss   |   low 10 bits XOR MAC's low 10
    +------------------------------------+---+---+--------+--------+

- ``mss``: index into :data:`MSS_TABLE`.  The peer's MSS is rounded *down* to the largest table
  entry not above it, so the listener never sends more than the peer offered.  (A peer offering
  less than the smallest entry, 216, gets 216: that is FreeBSD's ``net.inet.tcp.minmss`` floor,
  which a connection built from the SYN cache would apply too.)
- ``wscale``: the peer's window-scale shift, 0..14 (larger offers are taken as 14, RFC 7323
  section 2.3); 15 means the peer sent no window-scale option.
- ``S``: the peer sent SACK-permitted.
- ``G``: the parity of the secret generation the cookie was made under.
- ``MAC``: 22 bits of BLAKE2b keyed with that generation's secret, over the 4-tuple, the peer's
  initial sequence number ``irs``, the 10 low bits above and the generation number.

The low 10 bits are XORed with the MAC's low 10 bits so that the ISS looks uniformly random on
the wire (as FreeBSD does); that is obfuscation, not secrecy -- the decoder undoes it before
knowing the secret.  The options themselves are authenticated because the MAC covers them.

Secret rotation and time slots
------------------------------
Time is cut into slots of ``rotate_every`` seconds counted from the ``now`` given to the
constructor; slot ``g`` (the *generation*) has its own secret, drawn from ``secret_source()``
when the first call with a ``now`` inside slot ``g`` is made (rotation is lazy: there is no
timer, every :meth:`SynCookies.encode` / :meth:`SynCookies.decode` first moves to the slot of
its ``now``).  Two secrets are live: the current slot's and the previous one's.  A cookie made in
slot ``g`` is therefore valid until slot ``g + 2`` begins: a lifetime between ``rotate_every``
and ``2 * rotate_every`` seconds (15 to 30 s by default; a handshake's ACK comes one RTT after
the SYN-ACK).  The generation number is inside the MAC, so the time slot is authenticated too.

Secrets of the two slots before the live ones are kept only to tell ``tcp.syncookie.expired``
(a genuine but late cookie) from ``tcp.syncookie.bad`` (a forgery or a corrupted ACK); they never
validate a cookie.  Older cookies (or any after a jump of more than three slots) count as bad.
A ``now`` earlier than the current slot does not turn the clock back.

Forgery resistance: a blind attacker must guess 22 MAC bits for a given 4-tuple and ``irs``, so
a random ACK is accepted with probability at most ``2**-22`` (lower still since 7 of the 16
``mss`` codes are invalid and fail before any MAC).

Counters: ``tcp.syncookie.sent`` (each encode), and exactly one of ``tcp.syncookie.ok``,
``tcp.syncookie.bad``, ``tcp.syncookie.expired`` per decode.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "MAC_BITS",
    "MSS_TABLE",
    "WSCALE_MAX",
    "CookieOptions",
    "SynCookies",
]

MSS_TABLE: tuple[int, ...] = (216, 536, 1200, 1360, 1400, 1440, 1452, 1460, 8960)
"""The MSS values a cookie can carry, ascending: the minimum MSS, the RFC 9293 default, common
tunnel/PPPoE/VPN-reduced Ethernet values, plain Ethernet, and a 9000-byte jumbo frame."""
WSCALE_MAX = 14
"""The largest window-scale shift (RFC 7323 section 2.3)."""
MAC_BITS = 22
"""MAC bits in a cookie; a random guess validates with probability at most ``2**-MAC_BITS``."""

_MSS_BITS = 4
_WSCALE_SHIFT = 4
_WSCALE_NONE = 15
_SACK_BIT = 1 << 8
_GEN_SHIFT = 9
_FLAG_BITS = 10
_FLAG_MASK = (1 << _FLAG_BITS) - 1
_MASK32 = 0xFFFFFFFF
_MIN_SECRET, _MAX_SECRET = 16, 64  # BLAKE2b keys are at most 64 bytes
_RETIRED_KEPT = 2  # expired generations kept only to classify late cookies

_MAC_INPUT = struct.Struct(">IHIHIHQ")

SENT = "tcp.syncookie.sent"
OK = "tcp.syncookie.ok"
BAD = "tcp.syncookie.bad"
EXPIRED = "tcp.syncookie.expired"

assert len(MSS_TABLE) <= 1 << _MSS_BITS


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """The SYN options a cookie carries.

    Attributes
    ----------
    mss
        The peer's MSS.  :meth:`SynCookies.decode` returns one of :data:`MSS_TABLE`.
    wscale
        The peer's window-scale shift (0..14), or ``None`` if the peer did not offer the option.
    sack_permitted
        The peer sent SACK-permitted (RFC 2018).
    """

    mss: int
    wscale: int | None
    sack_permitted: bool


def mss_index(mss: int) -> int:
    """Index of the largest :data:`MSS_TABLE` entry ``<= mss`` (0 if ``mss`` is below them all)."""
    return max(bisect.bisect_right(MSS_TABLE, mss) - 1, 0)


class SynCookies:
    """Encoder and validator of SYN cookies under rotating secrets.

    Parameters
    ----------
    secret_source
        Returns a fresh random secret of 16 to 64 bytes each time it is called (for example
        ``lambda: rng.randbytes(16)``); called once per time slot.
    rotate_every
        Length of a time slot (the secret's rotation period) in seconds.
    now
        The current time; slot 0 starts here.

    Raises
    ------
    ValueError
        If ``rotate_every`` is not positive or a secret has a bad length.
    """

    __slots__ = ("_gen", "_keyed", "_rotate_every", "_secret_source", "_t0", "counters")

    counters: Counter[str]

    def __init__(
        self,
        secret_source: Callable[[], bytes],
        *,
        rotate_every: float = 15.0,
        now: float = 0.0,
    ) -> None:
        if not rotate_every > 0:
            raise ValueError(f"rotate_every = {rotate_every}: must be positive")
        self._secret_source = secret_source
        self._rotate_every = float(rotate_every)
        self._t0 = float(now)
        self._gen = 0
        self._keyed: dict[int, hashlib.blake2b] = {0: self._draw()}
        self.counters = Counter()

    @property
    def generation(self) -> int:
        """The current time slot's number (0 at construction)."""
        return self._gen

    def _draw(self) -> hashlib.blake2b:
        secret = bytes(self._secret_source())
        if not _MIN_SECRET <= len(secret) <= _MAX_SECRET:
            raise ValueError(
                f"syncookie secret is {len(secret)} bytes: must be {_MIN_SECRET}..{_MAX_SECRET}"
            )
        return hashlib.blake2b(key=secret, digest_size=4)

    def _advance(self, now: float) -> None:
        gen = int((now - self._t0) // self._rotate_every)
        if gen <= self._gen:
            return
        oldest = gen - 1 - _RETIRED_KEPT
        # After a long jump only the slots still worth a secret are drawn.
        for g in range(max(self._gen + 1, oldest), gen + 1):
            self._keyed[g] = self._draw()
        for g in [g for g in self._keyed if g < oldest]:
            del self._keyed[g]
        self._gen = gen

    def _mac(
        self, gen: int, laddr: int, lport: int, faddr: int, fport: int, irs: int, flags: int
    ) -> int:
        h = self._keyed[gen].copy()
        h.update(_MAC_INPUT.pack(laddr, lport, faddr, fport, irs, flags, gen))
        return int.from_bytes(h.digest(), "big") >> (32 - MAC_BITS)

    def encode(
        self,
        laddr: int,
        lport: int,
        faddr: int,
        fport: int,
        irs: int,
        opts: CookieOptions,
        now: float,
    ) -> int:
        """The ISS of a stateless SYN-ACK answering a SYN.

        Parameters
        ----------
        laddr, lport, faddr, fport
            The connection's 4-tuple as the listener sees it.
        irs
            The peer's initial sequence number (the SYN's sequence number).
        opts
            The options of the SYN.  The MSS is rounded down to :data:`MSS_TABLE`, a window
            scale above 14 is taken as 14.
        now
            The current time in seconds.

        Returns
        -------
        int
            The 32-bit ISS to put in the SYN-ACK.
        """
        self._advance(now)
        gen = self._gen
        if opts.wscale is None:
            wscale = _WSCALE_NONE
        else:
            wscale = min(max(opts.wscale, 0), WSCALE_MAX)
        flags = mss_index(opts.mss) | wscale << _WSCALE_SHIFT | (gen & 1) << _GEN_SHIFT
        if opts.sack_permitted:
            flags |= _SACK_BIT
        args = (laddr & _MASK32, lport & 0xFFFF, faddr & _MASK32, fport & 0xFFFF, irs & _MASK32)
        mac = self._mac(gen, *args, flags)
        self.counters[SENT] += 1
        return (mac << _FLAG_BITS) | (flags ^ (mac & _FLAG_MASK))

    def decode(
        self,
        laddr: int,
        lport: int,
        faddr: int,
        fport: int,
        irs: int,
        iss: int,
        now: float,
    ) -> CookieOptions | None:
        """Validate the cookie an ACK returns and recover the SYN's options.

        Parameters
        ----------
        laddr, lport, faddr, fport
            The 4-tuple of the ACK as the listener sees it.
        irs
            The peer's initial sequence number: the ACK's sequence number minus 1.
        iss
            The cookie: the ACK's acknowledgment number minus 1.
        now
            The current time in seconds.

        Returns
        -------
        CookieOptions or None
            The options, or ``None`` when the MAC does not match (counted
            ``tcp.syncookie.bad``) or the cookie's secret has expired
            (``tcp.syncookie.expired``).  Never raises on any input.
        """
        self._advance(now)
        iss &= _MASK32
        mac = iss >> _FLAG_BITS
        flags = (iss ^ mac) & _FLAG_MASK
        index = flags & ((1 << _MSS_BITS) - 1)
        if index >= len(MSS_TABLE):
            self.counters[BAD] += 1
            return None
        gen = self._gen
        if (flags >> _GEN_SHIFT) & 1 != gen & 1:
            gen -= 1
        args = (laddr & _MASK32, lport & 0xFFFF, faddr & _MASK32, fport & 0xFFFF, irs & _MASK32)
        if gen in self._keyed and self._mac(gen, *args, flags) == mac:
            self.counters[OK] += 1
            wscale = (flags >> _WSCALE_SHIFT) & 0xF
            return CookieOptions(
                mss=MSS_TABLE[index],
                wscale=None if wscale == _WSCALE_NONE else wscale,
                sack_permitted=bool(flags & _SACK_BIT),
            )
        # Only a cookie that fails under the live secrets costs the retired ones a look.
        # The retired generation with the cookie's parity is two slots back.
        old = gen - 2
        if old in self._keyed and self._mac(old, *args, flags) == mac:
            self.counters[EXPIRED] += 1
            return None
        self.counters[BAD] += 1
        return None
