"""Errors raised while reading or writing wire formats.

Parsing is done in two phases (as PyTCP does):

1. *integrity*: is it safe to read?  Failures raise :class:`TruncatedError` -- the buffer is
   shorter than a length the header needs or claims.
2. *sanity*: are the values legal?  Failures raise :class:`MalformedError` (or its subclass
   :class:`ChecksumError`), naming the field and the actual value.

Both derive from :class:`WireError`, a ``ValueError``: a packet from the network is never a
programming error, so the stack catches ``WireError``, drops the packet and counts it.
Misuse of the API (emitting into a buffer that is too small, a field value out of range when
building a packet) raises ``ValueError``/``TypeError`` that are *not* ``WireError``.
"""

from __future__ import annotations


class WireError(ValueError):
    """A header could not be parsed.

    Attributes
    ----------
    header:
        The header kind, e.g. ``"ipv4"``, ``"tcp"``.
    field:
        The offending field (``None`` when the whole header is at fault).
    value:
        The actual value found (``None`` when not applicable).
    """

    def __init__(
        self, header: str, problem: str, *, field: str | None = None, value: object = None
    ) -> None:
        self.header = header
        self.field = field
        self.value = value
        self.problem = problem
        where = header if field is None else f"{header}.{field}"
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"{where}{shown}: {problem}")


class TruncatedError(WireError):
    """The buffer is shorter than the header needs (integrity failure)."""

    def __init__(self, header: str, need: int, have: int, *, field: str | None = None) -> None:
        super().__init__(
            header, f"truncated: need {need} bytes, have {have}", field=field, value=None
        )
        self.need = need
        self.have = have


class MalformedError(WireError):
    """A field holds an illegal value (sanity failure)."""


class ChecksumError(MalformedError):
    """A checksum does not verify."""

    def __init__(self, header: str, found: int, expected: int) -> None:
        super().__init__(
            header,
            f"bad checksum: found 0x{found:04x}, expected 0x{expected:04x}",
            field="checksum",
            value=None,
        )
        self.found = found
        self.expected = expected
