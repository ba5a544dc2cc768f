"""`netfast bench ethernet` and `netfast bench checksum` run and write what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netfast.cli import main


def test_ethernet_figure1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fig1.json"
    assert main(["bench", "ethernet", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {r["speed"]: r for r in data["figure1"]}
    assert [r["speed"] for r in data["figure1"] if not r["in_paper"]] == [
        "25 Gb/s",
        "100 Gb/s",
        "400 Gb/s",
    ]
    # 84 byte times at 400 Gb/s: 1.68 ns between two minimum-size frames.
    assert rows["400 Gb/s"]["budget_ns_64"] == pytest.approx(84 * 8 / 400)
    assert [j["payload"] for j in data["jumbo"]][:3] == [1500, 4000, 9000]
    # A 64-byte frame takes 84 byte times on the wire (8 preamble+SFD, 12 inter-frame gap).
    assert round(rows["1 Gb/s"]["pps_64"]) == round(1e9 / (8 * 84)) == 1_488_095
    # A 1500-byte payload rides in a 1518-byte frame: 1538 byte times.
    assert round(rows["10 Gb/s"]["pps_1500"]) == round(10e9 / (8 * 1538))
    assert "Figure 1" in capsys.readouterr().out


def test_checksum_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ck.json"
    assert main(["bench", "checksum", "--seconds", "0.01", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["bytes"] for r in data["per_buffer"]] == [20, 64, 576, 1500, 9000, 65535]
    assert all(r["netfast"] > 0 and r["python_loop"] > 0 for r in data["per_buffer"])
    assert data["batch_headers_per_s"]["numba"] > 0


def test_bad_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "checksum", "--seconds", "0"]) == 2
    assert "--seconds must be positive" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "route", "--update-seconds", "0"], "--update-seconds must be positive"),
        (["bench", "ttcp", "--requests", "1"], "--requests must be at least 2"),
        (["bench", "ttcp", "--seconds", "0"], "--seconds must be positive"),
    ],
)
def test_bad_budgets_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_update_limit_keeps_the_first_events_in_order(shared_data: Path) -> None:
    from netfast.bench.route import UPDATE_STREAMS, load_updates
    from netfast.route.loaders import iter_updates

    folder = shared_data / "bgp-updates"
    first = sum(1 for _ in iter_updates(folder / UPDATE_STREAMS[0]))
    full = load_updates(folder)
    assert len(full) > first + 100  # both streams are read
    for limit in (1, first - 1, first, first + 100):
        assert load_updates(folder, limit) == full[:limit]
