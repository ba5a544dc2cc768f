"""Sequence-number arithmetic, checked against a reference built on struct's int32 conversion."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from netfast.wire.seq import (
    in_range,
    in_window,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
    seq_sub,
)

M = 2**32
u32 = st.integers(0, M - 1)
# Numbers clustered around the wrap point, where naive comparisons go wrong.
near_wrap = st.one_of(st.integers(M - 1000, M - 1), st.integers(0, 1000), u32)
offset = st.integers(-(2**31) + 1, 2**31 - 1)


def int32(v: int) -> int:
    return struct.unpack("<i", struct.pack("<I", v % M))[0]


def test_wraparound_examples() -> None:
    assert seq_lt(M - 1, 0)
    assert seq_lt(M - 10, 5)
    assert not seq_lt(5, M - 10)
    assert seq_gt(3, M - 3)
    assert seq_le(7, 7) and seq_ge(7, 7) and not seq_lt(7, 7) and not seq_gt(7, 7)
    assert seq_add(M - 1, 1) == 0
    assert seq_add(0, -1) == M - 1
    assert seq_sub(2, 5) == M - 3
    assert seq_diff(2, M - 3) == 5
    assert seq_diff(M - 3, 2) == -5
    assert seq_max(M - 2, 1) == 1
    assert seq_min(M - 2, 1) == M - 2
    # gVisor semantics: exactly 2**31 apart, each is "less than" the other.
    assert seq_lt(0, 2**31) and seq_lt(2**31, 0)


def test_window_examples() -> None:
    assert in_window(M - 1, M - 2, 2)
    assert in_window(0, M - 2, 3)
    assert not in_window(1, M - 2, 3)
    assert not in_window(M - 3, M - 2, 3)
    assert not in_window(5, 5, 0)
    assert in_range(0, M - 1, 1)
    assert not in_range(1, M - 1, 1)
    assert not in_range(4, 4, 4)


@given(near_wrap, near_wrap)
def test_comparisons_match_int32_reference(a: int, b: int) -> None:
    d = int32(a - b)
    assert seq_lt(a, b) == (d < 0)
    assert seq_le(a, b) == (d <= 0)
    assert seq_gt(a, b) == (int32(b - a) < 0)
    assert seq_ge(a, b) == (int32(b - a) <= 0)
    assert seq_diff(a, b) == d


@given(near_wrap, offset)
def test_add_sub_and_order(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert 0 <= b < M
    assert b == (a + n) % M
    assert seq_sub(b, n) == a
    assert seq_diff(b, a) == n
    if n > 0:
        assert seq_lt(a, b) and seq_gt(b, a) and seq_max(a, b) == b and seq_min(a, b) == a
    elif n < 0:
        assert seq_gt(a, b) and seq_lt(b, a)
    else:
        assert seq_le(a, b) and seq_ge(a, b)


@given(near_wrap, st.integers(0, 2**30), st.integers(-(2**31), 2**31))
def test_in_window_matches_linear_reference(start: int, size: int, k: int) -> None:
    x = (start + k) % M
    assert in_window(x, start, size) == (0 <= k < size)
    assert in_range(x, start, (start + size) % M) == (0 <= k < size)
