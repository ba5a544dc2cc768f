"""The RFC 6298 estimator alone: its first and later samples, the clamps and the backoff."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.tcp.rtt import RttEstimator


def test_before_any_sample_the_rto_is_the_initial_one() -> None:
    est = RttEstimator(1.0, 0.2, 60.0)
    assert est.srtt is None and est.rto == 1.0


def test_first_sample_sets_srtt_and_half_of_it_as_rttvar() -> None:
    est = RttEstimator(1.0, 0.0, 60.0)
    est.sample(0.1)
    assert est.srtt == pytest.approx(0.1)
    assert est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.1 + 4 * 0.05)


def test_later_samples_smooth_by_one_eighth_and_one_quarter() -> None:
    est = RttEstimator(1.0, 0.0, 60.0)
    est.sample(0.1)
    est.sample(0.3)
    # RTTVAR first (with the old SRTT), then SRTT (RFC 6298 2.3's order).
    rttvar = 0.75 * 0.05 + 0.25 * abs(0.1 - 0.3)
    srtt = 0.875 * 0.1 + 0.125 * 0.3
    assert est.rttvar == pytest.approx(rttvar)
    assert est.srtt == pytest.approx(srtt)
    assert est.rto == pytest.approx(srtt + 4 * rttvar)


def test_a_steady_rtt_is_floored_by_the_clock_granularity_and_rto_min() -> None:
    est = RttEstimator(1.0, 0.0, 60.0)
    for _ in range(200):
        est.sample(0.05)
    assert est.rto == pytest.approx(0.05 + 0.001, rel=1e-3)  # 4 RTTVAR decayed below G
    floored = RttEstimator(1.0, 0.2, 60.0)
    floored.sample(0.001)
    assert floored.rto == 0.2


def test_negative_samples_count_as_zero_and_backoff_doubles_up_to_the_cap() -> None:
    est = RttEstimator(1.0, 0.2, 3.0)
    est.sample(-5.0)
    assert est.srtt == 0.0 and est.rto == 0.2
    rtos = []
    for _ in range(6):
        est.back_off()
        rtos.append(est.rto)
    assert rtos == [0.4, 0.8, 1.6, 3.0, 3.0, 3.0]


@given(st.lists(st.floats(min_value=-1.0, max_value=100.0), min_size=1, max_size=50))
def test_rto_stays_within_its_bounds(samples: list[float]) -> None:
    est = RttEstimator(1.0, 0.2, 60.0)
    for r in samples:
        est.sample(r)
        assert est.srtt is not None and est.srtt >= 0.0 and math.isfinite(est.srtt)
        assert 0.2 <= est.rto <= 60.0
