"""The congestion controllers alone: the numbers RFC 5681/6582/6928 and RFC 9438 give for each
event of the CongestionControl interface."""

from __future__ import annotations

import pytest

from netfast.tcp.cc import CONTROLLERS, CongestionControl, CubicControl, NewReno, controller_for

MSS = 1000
BIG = 1 << 40


def test_initial_window_rfc_6928() -> None:
    for mss, iw in ((536, 5360), (1000, 10000), (1460, 14600), (4000, 14600), (9000, 18000)):
        cc = controller_for("newreno")
        cc.established(mss)
        assert cc.cwnd == iw


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_slow_start_grows_by_bytes_acked_up_to_ssthresh(name: str) -> None:
    cc: CongestionControl = controller_for(name)
    cc.established(MSS)
    cc.ssthresh = 20 * MSS
    cc.acked(4 * MSS, MSS, 0.0, 0.01, BIG)
    assert cc.cwnd == 14 * MSS
    cc.acked(50 * MSS, MSS, 0.0, 0.01, BIG)  # capped at ssthresh + one MSS
    assert cc.cwnd == 21 * MSS


def test_newreno_avoidance_is_one_mss_per_window() -> None:
    cc = NewReno()
    cc.cwnd, cc.ssthresh = 10 * MSS, 5 * MSS
    for _ in range(9):
        cc.acked(MSS, MSS, 0.0, 0.01, BIG)
    assert cc.cwnd == 10 * MSS
    cc.acked(MSS, MSS, 0.0, 0.01, BIG)
    assert cc.cwnd == 11 * MSS


def test_newreno_recovery_numbers_rfc_6582() -> None:
    cc = NewReno()
    cc.cwnd = 40 * MSS
    cc.enter_recovery(40 * MSS, MSS, sack=False)
    assert cc.ssthresh == 20 * MSS and cc.cwnd == 23 * MSS
    cc.recovery_dupack(MSS)
    assert cc.cwnd == 24 * MSS
    cc.partial_ack(5 * MSS, MSS)
    assert cc.cwnd == 20 * MSS
    cc.exit_recovery()
    assert cc.cwnd == 20 * MSS
    cc.enter_recovery(MSS, MSS, sack=True)  # never below two segments; SACK: cwnd = ssthresh
    assert cc.ssthresh == 2 * MSS and cc.cwnd == 2 * MSS


@pytest.mark.parametrize(("name", "after"), [("newreno", 15), ("cubic", 21)])
def test_timeout_decreases_once_per_series(name: str, after: int) -> None:
    cc = controller_for(name)
    cc.cwnd = 30 * MSS
    cc.timeout(30 * MSS, MSS, first=True)
    assert cc.ssthresh == after * MSS and cc.cwnd == MSS
    cc.timeout(MSS, MSS, first=False)
    assert cc.ssthresh == after * MSS and cc.cwnd == MSS


def test_cubic_decrease_is_beta() -> None:
    cc = CubicControl()
    cc.cwnd = 100 * MSS
    cc.enter_recovery(100 * MSS, MSS, sack=True)
    assert cc.ssthresh == 70 * MSS == cc.cwnd


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_window_never_exceeds_the_limit(name: str) -> None:
    cc = controller_for(name)
    cc.established(MSS)
    for i in range(200):
        cc.acked(10 * MSS, MSS, i * 0.01, 0.01, 50 * MSS)
        assert cc.cwnd <= 50 * MSS
    assert cc.cwnd == 50 * MSS
