"""``netfast bench ttcp``: the simulated part's round trips are exact (two for plain TCP, one
for a repeat connection with data on SYN), the Linux part proves the SYN data by Linux's own
flag, and the command prints both tables and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import have_netns

from netfast.bench import ttcp
from netfast.cli import main


def test_simulated_round_trips() -> None:
    rows = ttcp.measure_simulated(connections=5, rtts=(0.0, 0.02))
    assert {(r.mode, r.rtt_ms) for r in rows} == {
        (m, rtt) for m in ttcp.MODES for rtt in (0.0, 20.0)
    }
    for r in rows:
        assert r.cpu_us_per_conn > 0 and r.requests_per_s > 0
        if r.rtt_ms == 0:
            assert r.repeat_rtts is None
            continue
        assert r.first_ms == pytest.approx(2 * r.rtt_ms, abs=0.5)
        want = 2.0 if r.mode == "plain TCP" else 1.0
        assert r.repeat_rtts == pytest.approx(want, abs=0.02)
        assert r.syn_data_taken == (0 if r.mode == "plain TCP" else 4)
    with pytest.raises(ValueError, match="at least 2"):
        ttcp.measure_simulated(connections=1)


@pytest.mark.netns
@pytest.mark.slow
def test_linux_client_saves_a_round_trip_with_fast_open() -> None:
    if reason := have_netns():
        pytest.skip(reason)
    rows = ttcp.measure_linux(requests=6, rtts=(0.05,), budget=20)
    assert not isinstance(rows, str)
    plain, tfo = rows
    assert plain.error is None and tfo.error is None, (plain.error, tfo.error)
    assert plain.requests == tfo.requests == 6
    assert plain.syn_data == 0 and tfo.syn_data == 5  # every repeat, by Linux's TCP_INFO
    assert tfo.linux_counters["TCPFastOpenActive"] == 5
    # Round trips: the bridge's delay dominates, so the counts are clear even on a busy machine.
    assert plain.repeat_rtts is not None and tfo.repeat_rtts is not None
    assert 1.9 <= plain.repeat_rtts < 3.0
    assert 0.9 <= tfo.repeat_rtts < 1.6


@pytest.mark.netns
@pytest.mark.slow
def test_command_prints_tables_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if reason := have_netns():
        pytest.skip(reason)
    out_json = tmp_path / "ttcp.json"
    argv = ["bench", "ttcp", "--quick", "--connections", "4", "--requests", "3", "--seconds", "0.5"]
    assert main([*argv, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "saves 1.00 RTT per repeat connection (target: one) -- met" in out
    assert "TFO (Linux" in out
    data = json.loads(out_json.read_text())
    assert len(data["simulated"]) == 9 and len(data["linux"]) == 6
    assert all(r["error"] is None and r["requests"] == 3 for r in data["linux"])
    rates = data["connections"]
    assert {(r["close"], r["parallel"]) for r in rates} == {
        (c, n) for c in ("fin", "rst") for n in (1, 64)
    }
    for r in rates:
        assert r["error"] is None and r["completed"] > 0 and r["failed"] == 0
        # Every connection a Linux client completed was accepted by netfast.
        assert r["netfast"]["tcp.conn.accepted"] >= r["completed"]
    ping = data["ping"]
    assert ping["error"] is None and 0 < ping["received"] <= ping["sent"]
    # Half a second rounds up to ping's whole-second deadline, never down to none at all.
    assert 0.9 <= ping["seconds"] <= 2.0
    assert "replies/s (target 50,000" in out
