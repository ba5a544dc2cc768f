"""RFC 6528 initial sequence numbers (netfast.tcp.isn)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.tcp.isn import IsnGenerator
from netfast.wire.seq import seq_diff

SECRET = bytes(range(16))
TUPLE = (0xC6120001, 49152, 0xC6120002, 80)

addr = st.integers(0, 2**32 - 1)
port = st.integers(0, 2**16 - 1)


def test_deterministic_for_same_inputs() -> None:
    a = IsnGenerator(SECRET)
    b = IsnGenerator(SECRET)
    assert a.isn(*TUPLE, 12.5) == a.isn(*TUPLE, 12.5) == b.isn(*TUPLE, 12.5)


@given(addr, port, addr, port, st.floats(0, 1e6, allow_nan=False))
def test_result_is_32_bits(laddr: int, lport: int, faddr: int, fport: int, now: float) -> None:
    assert 0 <= IsnGenerator(SECRET).isn(laddr, lport, faddr, fport, now) < 2**32


def test_differs_across_four_tuples() -> None:
    gen = IsnGenerator(SECRET)
    rng = random.Random(1)
    tuples = {
        (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16))
        for _ in range(2000)
    }
    # Neighbouring tuples (one port apart) must not map to neighbouring ISNs either.
    tuples |= {(TUPLE[0], TUPLE[1] + i, TUPLE[2], TUPLE[3]) for i in range(2000)}
    isns = {gen.isn(*t, 100.0) for t in tuples}
    # 4000 values out of 2**32: a collision is possible but rare (birthday ~ 0.2 %); allow one.
    assert len(isns) >= len(tuples) - 1
    deltas = {
        seq_diff(gen.isn(TUPLE[0], TUPLE[1] + i + 1, *TUPLE[2:], 0.0), gen.isn(*TUPLE, 0.0))
        for i in range(50)
    }
    assert len(deltas) == 50


def test_each_field_of_the_tuple_matters() -> None:
    gen = IsnGenerator(SECRET)
    base = gen.isn(*TUPLE, 1.0)
    for i in range(4):
        changed = list(TUPLE)
        changed[i] ^= 1
        assert gen.isn(*changed, 1.0) != base


def test_advances_at_250k_per_second_for_a_fixed_tuple() -> None:
    gen = IsnGenerator(SECRET)
    t0 = 1000.0
    prev = gen.isn(*TUPLE, t0)
    for step in (4e-6, 1e-3, 0.5, 1.0, 60.0):
        now = t0 + step
        cur = gen.isn(*TUPLE, now)
        assert seq_diff(cur, prev) == int(now * 250_000) - int(t0 * 250_000)
        assert seq_diff(cur, prev) > 0
        prev = cur
        t0 = now


def test_wraps_modulo_2_32() -> None:
    gen = IsnGenerator(SECRET)
    period = 2**32 / 250_000  # seconds for M to wrap: about 4.77 hours
    assert gen.isn(*TUPLE, 3.0) == gen.isn(*TUPLE, 3.0 + period)


def test_time_offset_independent_of_tuple() -> None:
    # ISN - M is F(tuple): the same at every time.
    gen = IsnGenerator(SECRET)
    offsets = {(gen.isn(*TUPLE, t) - int(t * 250_000)) % 2**32 for t in (0.0, 1.0, 7.25, 9999.0)}
    assert offsets == {gen.offset(*TUPLE)}


def test_different_secrets_differ() -> None:
    a = IsnGenerator(SECRET)
    b = IsnGenerator(bytes(range(1, 17)))
    rng = random.Random(2)
    same = 0
    for _ in range(200):
        t = (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16))
        same += a.isn(*t, 5.0) == b.isn(*t, 5.0)
    assert same == 0


@pytest.mark.parametrize("n", [0, 8, 15, 65, 100])
def test_secret_length_checked(n: int) -> None:
    with pytest.raises(ValueError, match="secret"):
        IsnGenerator(bytes(n))


@pytest.mark.parametrize("n", [16, 32, 64])
def test_secret_lengths_accepted(n: int) -> None:
    IsnGenerator(bytes(n)).isn(*TUPLE, 0.0)
