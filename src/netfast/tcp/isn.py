"""Initial sequence numbers for new connections (RFC 6528, "Defending against Sequence Number
Attacks"; RFC 9293 section 3.4.1).

Contract
--------
RFC 6528 section 3 picks an initial sequence number as ::

    ISN = M + F(localip, localport, remoteip, remoteport, secretkey)   (mod 2**32)

- ``M`` is a timer that ticks every 4 microseconds (RFC 9293's clock-driven ISN): here
  ``int(now * 250_000)``, so for one 4-tuple successive incarnations of a connection get
  increasing sequence numbers (old duplicates of an earlier incarnation fall behind the new
  window);
- ``F`` is a keyed hash of the 4-tuple, here BLAKE2b with the secret as its key, truncated to
  32 bits.  Different 4-tuples therefore live in unrelated sequence spaces, and an off-path host
  that does not know the secret cannot predict the ISN of someone else's connection.

:class:`IsnGenerator` reads no clock and draws no randomness: the caller passes ``now`` (seconds)
on each call and draws the secret (16 to 64 bytes) from its RNG once, at boot.  RFC 6528 allows
the secret to be changed from time to time; a caller does that by building a new generator.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["MIN_SECRET_LEN", "MAX_SECRET_LEN", "TICKS_PER_SECOND", "IsnGenerator"]

MIN_SECRET_LEN = 16
"""Shortest accepted secret: 128 bits, as RFC 6528 section 3 recommends."""
MAX_SECRET_LEN = 64
"""Longest accepted secret: BLAKE2b's maximum key length."""
TICKS_PER_SECOND = 250_000
"""``M`` advances once every 4 microseconds (RFC 9293 section 3.4.1)."""

_TUPLE = struct.Struct(">IHIH")
_MASK32 = 0xFFFFFFFF


class IsnGenerator:
    """RFC 6528 initial sequence numbers from a secret.

    Parameters
    ----------
    secret
        The key of ``F``, 16 to 64 random bytes drawn by the caller.

    Raises
    ------
    ValueError
        If the secret's length is outside 16..64 bytes.
    """

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes) -> None:
        if not MIN_SECRET_LEN <= len(secret) <= MAX_SECRET_LEN:
            raise ValueError(
                f"isn secret is {len(secret)} bytes: must be {MIN_SECRET_LEN}..{MAX_SECRET_LEN}"
            )
        # Keying BLAKE2b costs more than hashing 12 bytes; copy a keyed state instead.
        self._keyed = hashlib.blake2b(key=bytes(secret), digest_size=4)

    def offset(self, laddr: int, lport: int, faddr: int, fport: int) -> int:
        """``F(localip, localport, remoteip, remoteport, secretkey)``: the 4-tuple's 32-bit offset.

        Addresses are 32-bit ints, ports 16-bit ints (values beyond are reduced to their width).
        """
        h = self._keyed.copy()
        h.update(_TUPLE.pack(laddr & _MASK32, lport & 0xFFFF, faddr & _MASK32, fport & 0xFFFF))
        return int.from_bytes(h.digest(), "big")

    def isn(self, laddr: int, lport: int, faddr: int, fport: int, now: float) -> int:
        """The initial sequence number for a connection opened at time ``now``.

        Parameters
        ----------
        laddr, lport, faddr, fport
            The connection's local and foreign address and port.
        now
            The current time in seconds (any epoch, the same for every call).

        Returns
        -------
        int
            ``(int(now * 250_000) + F(4-tuple)) mod 2**32``.
        """
        return (int(now * TICKS_PER_SECOND) + self.offset(laddr, lport, faddr, fport)) & _MASK32
