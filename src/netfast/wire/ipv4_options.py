"""IPv4 options (RFC 791 3.1): their type numbers, a walk over the option bytes of a header that
checks every length, and the encoding of a list of options.  :mod:`netfast.wire.ipv4` is the
header around them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import IntEnum
from typing import NamedTuple

from netfast.wire.buffer import Buffer
from netfast.wire.errors import MalformedError

_HEADER = "ipv4"
#: Option bytes a header can carry (60-byte header minus the fixed 20).
MAX_OPTIONS_LEN = 40


class Ipv4OptionType(IntEnum):
    """IPv4 option types (the whole type octet: copied flag, class, number)."""

    EOL = 0
    NOP = 1
    RECORD_ROUTE = 7
    TIMESTAMP = 68
    LSRR = 131
    SSRR = 137
    ROUTER_ALERT = 148


# Smallest legal length of the known TLV options: RR/LSRR/SSRR carry a pointer (RFC 791), the
# timestamp a pointer and an overflow/flags octet, the router alert exactly 2 value octets
# (RFC 2113).
_MIN_OPTION_LEN: dict[int, int] = {
    Ipv4OptionType.RECORD_ROUTE: 3,
    Ipv4OptionType.LSRR: 3,
    Ipv4OptionType.SSRR: 3,
    Ipv4OptionType.TIMESTAMP: 4,
    Ipv4OptionType.ROUTER_ALERT: 4,
}
_EXACT_OPTION_LEN: dict[int, int] = {Ipv4OptionType.ROUTER_ALERT: 4}


# --- the walk ------------------------------------------------------------------------------------


class Ipv4Option(NamedTuple):
    """One option: its type octet, its length (1 for EOL and NOP) and its value octets."""

    type: int
    length: int
    data: bytes

    @property
    def copied(self) -> bool:
        """True when fragmentation copies this option into every fragment."""
        return bool(self.type & 0x80)

    def to_bytes(self) -> bytes:
        """The option as it appears on the wire."""
        if self.type in (Ipv4OptionType.EOL, Ipv4OptionType.NOP):
            return bytes((self.type,))
        return bytes((self.type, self.length)) + self.data


def iter_options(raw: Buffer) -> Iterator[Ipv4Option]:
    """Walk the options field of a header.

    EOL ends the list (what follows it is padding and is not walked); NOP is a single octet;
    every other option is type, length (counting type and length) and value.

    Raises
    ------
    MalformedError
        When an option's length is below 2, below the minimum of a known option, or runs past the
        end of ``raw`` (``field="options"``).
    """
    data = bytes(raw)
    end = len(data)
    pos = 0
    while pos < end:
        kind = data[pos]
        if kind == Ipv4OptionType.EOL:
            yield Ipv4Option(kind, 1, b"")
            return
        if kind == Ipv4OptionType.NOP:
            yield Ipv4Option(kind, 1, b"")
            pos += 1
            continue
        if pos + 1 >= end:
            raise MalformedError(
                _HEADER, f"option {kind} at offset {pos} has no length octet", field="options"
            )
        length = data[pos + 1]
        minimum = _MIN_OPTION_LEN.get(kind, 2)
        if length < minimum:
            raise MalformedError(
                _HEADER,
                f"option {kind} at offset {pos} has length {length}, below the minimum {minimum}",
                field="options",
            )
        exact = _EXACT_OPTION_LEN.get(kind)
        if exact is not None and length != exact:
            raise MalformedError(
                _HEADER,
                f"option {kind} at offset {pos} has length {length}, must be {exact}",
                field="options",
            )
        if pos + length > end:
            raise MalformedError(
                _HEADER,
                f"option {kind} at offset {pos} has length {length}, "
                f"past the end of {end} option bytes",
                field="options",
            )
        yield Ipv4Option(kind, length, data[pos + 2 : pos + length])
        pos += length


def encode_options(options: Iterable[Ipv4Option]) -> bytes:
    """The options field for ``options``, padded with zero (EOL) octets to a 4-byte multiple.

    Raises
    ------
    ValueError
        When the result exceeds the 40 bytes a header can hold.
    """
    raw = b"".join(option.to_bytes() for option in options)
    raw += bytes(-len(raw) % 4)
    if len(raw) > MAX_OPTIONS_LEN:
        raise ValueError(f"options take {len(raw)} bytes, more than {MAX_OPTIONS_LEN}")
    return raw
