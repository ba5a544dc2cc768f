"""Smoke tests of the congestion-control bench: small transfers, both algorithms, real losses."""

from __future__ import annotations

import pytest

from netfast.bench.tcp_cc import cc_table, goodput, run_cc_bench


def test_rows_for_every_path_and_algorithm() -> None:
    rows = run_cc_bench(nbytes=200_000, seeds=(1,), paths=((0.02, 0.001), (0.0, 0.01)))
    assert [(r["loss"], r["cc"]) for r in rows] == [
        (0.02, "newreno"), (0.02, "cubic"), (0.0, "newreno"), (0.0, "cubic")
    ]  # fmt: skip
    assert all(r["median_mbit_s"] > 0 for r in rows)
    # The loss-free path loses and resends nothing; the lossy one resends at least the losses.
    assert all(r["lost"] == r["retransmits"] == r["timeouts"] == 0 for r in rows[2:])
    assert all(r["retransmits"] >= r["lost"] > 0 for r in rows[:2])
    assert cc_table(rows).row_count == 4


def test_loss_costs_goodput() -> None:
    clean = goodput("newreno", 0.0, 0.01, 300_000, seed=1)
    lossy = goodput("newreno", 0.05, 0.01, 300_000, seed=1)
    assert lossy < clean


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="cc"):
        goodput("bbr", 0.0, 0.001, 1000, seed=1)
