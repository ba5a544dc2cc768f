"""32-bit TCP sequence-number arithmetic (RFC 9293 section 3.4, RFC 1982 serial numbers).

Sequence numbers live on a circle of 2**32 values, so "less than" only makes sense between
numbers that are less than 2**31 apart.  As in gVisor's ``seqnum`` package, ``a < b`` is decided
by the sign of the 32-bit difference: ``seq_lt(a, b) == (int32(a - b) < 0)``.  Exactly 2**31
apart, both ``seq_lt(a, b)`` and ``seq_lt(b, a)`` hold; windows are at most 2**30 (RFC 7323), so
a correct TCP never asks that question.

Every function takes and returns plain ``int``\\ s in ``0 .. 2**32 - 1`` (``seq_diff`` returns a
signed distance).  Inputs outside that range are reduced modulo 2**32.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
_SIGN = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` on the sequence circle (``n`` may be negative)."""
    return (a + n) & SEQ_MASK


def seq_sub(a: int, n: int) -> int:
    """``a - n`` on the sequence circle."""
    return (a - n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` as an int32, in ``-2**31 .. 2**31 - 1``."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MOD if d & _SIGN else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b``: ``int32(a - b) < 0``."""
    return bool((a - b) & _SIGN)


def seq_le(a: int, b: int) -> bool:
    """``a`` comes before ``b`` or equals it."""
    return (a - b) & SEQ_MASK == 0 or bool((a - b) & _SIGN)


def seq_gt(a: int, b: int) -> bool:
    """``a`` comes after ``b``."""
    return bool((b - a) & _SIGN)


def seq_ge(a: int, b: int) -> bool:
    """``a`` comes after ``b`` or equals it."""
    return (a - b) & SEQ_MASK == 0 or bool((b - a) & _SIGN)


def seq_max(a: int, b: int) -> int:
    """The later of ``a`` and ``b``."""
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    """The earlier of ``a`` and ``b``."""
    return a if seq_lt(a, b) else b


def in_range(x: int, start: int, end: int) -> bool:
    """``start <= x < end`` on the circle (half-open; empty when ``start == end``)."""
    return (x - start) & SEQ_MASK < (end - start) & SEQ_MASK


def in_window(x: int, start: int, size: int) -> bool:
    """``x`` lies in the window of ``size`` bytes beginning at ``start``: ``start <= x < start +
    size``.  A zero-size window contains nothing (RFC 9293's acceptability test treats that case
    on its own)."""
    return (x - start) & SEQ_MASK < size
