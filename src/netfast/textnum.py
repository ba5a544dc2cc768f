"""Numbers and lines in hand-written text: ASCII digits only, bounded, no surprises.

Python's ``int()`` and ``str.isdigit()`` accept every Unicode digit (``'²'``, Arabic-Indic
``'٣'``), leading ``+``/``_``/spaces, and ``str.splitlines()`` breaks lines at form feeds, NEL
and other separators an editor shows inside one line.  Config and rule files are ASCII in their
syntax, so everything here accepts exactly what a person typing such a file means:

- :func:`ascii_int`: a decimal of ASCII digits ``0-9`` only, in ``lo..hi``, else None (never
  ``ValueError``, never the interpreter's digit limit: the length is checked first).
- :func:`parse_quad`: a dotted quad of four such decimals 0..255.  A leading zero (``010``) is
  refused: ``inet_aton`` and ipfw read it as octal (8), ``ipaddress`` refuses it, so no reading
  of it is safe; :func:`has_leading_zero` tells the caller that was the problem.
- :func:`file_lines`: ``(line number, line)`` split on ``"\\n"`` only, one trailing ``"\\r"``
  dropped, so the numbers are those an editor and ``grep -n`` show.
- :func:`shown`: a value quoted for an error message, cut to a bounded length and with control
  characters escaped, so a hostile token neither floods nor drives the terminal.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "ascii_int",
    "file_lines",
    "has_leading_zero",
    "is_ascii_digits",
    "parse_quad",
    "shown",
]

#: Longest value :func:`shown` quotes whole.
SHOWN_MAX = 60


def is_ascii_digits(text: str) -> bool:
    """True when ``text`` is one or more of ``0-9`` and nothing else."""
    return text.isascii() and text.isdigit()


def ascii_int(text: str, lo: int, hi: int) -> int | None:
    """``text`` as a decimal integer in ``lo..hi`` (ASCII digits only; leading zeros allowed),
    or None."""
    if not is_ascii_digits(text):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(hi)):
        return None
    value = int(significant)
    return value if lo <= value <= hi else None


def _octets(text: str) -> list[str] | None:
    parts = text.split(".")
    if len(parts) != 4 or not all(is_ascii_digits(p) and len(p) <= 3 for p in parts):
        return None
    return parts


def parse_quad(text: str) -> int | None:
    """``A.B.C.D`` (each 0..255, ASCII digits, no leading zero) as a 32-bit int, or None."""
    parts = _octets(text)
    if parts is None or any(len(p) > 1 and p[0] == "0" for p in parts):
        return None
    octets = [int(p) for p in parts]
    if max(octets) > 255:
        return None
    return (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]


def has_leading_zero(text: str) -> bool:
    """True when ``text`` is a dotted quad but for a leading zero in an octet (``010.0.0.1``)."""
    parts = _octets(text)
    return parts is not None and any(len(p) > 1 and p[0] == "0" for p in parts)


def file_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` for each line of ``text``, split on ``"\\n"`` only and
    without a trailing ``"\\r"`` (CRLF files).  Form feeds, NEL, U+2028 and lone CRs stay
    inside their line."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line[:-1] if line.endswith("\r") else line


def shown(value: str, limit: int = SHOWN_MAX) -> str:
    """``value`` fit for an error message: control characters escaped, cut to ``limit``
    characters (``...`` and the full length added)."""
    cut = value if len(value) <= limit else value[:limit]
    if not cut.isprintable():
        cut = "".join(
            c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut
        )
    if len(value) > limit:
        cut += f"... ({len(value):,} characters)"
    return cut
