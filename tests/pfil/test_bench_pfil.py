"""``netfast bench pfil``: the measurement, the choice of the winner, the command and its JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from netfast.bench import pfil as pb
from netfast.cli import main
from netfast.pfil.heads import DEFAULT_IMPL, IMPLS


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("churn_us", [None, 500.0])
def test_measure_once(impl: str, churn_us: float | None) -> None:
    runs, changes = pb.measure_once(impl, hooks=3, readers=2, churn_us=churn_us, seconds=0.05)
    assert runs > 1000
    assert (changes > 0) == (churn_us is not None)


def cell(impl: str, hooks: int, rate: float, churn: float | None = None) -> pb.Cell:
    return pb.Cell(impl, hooks, 1, churn, rate, 0.0)


def test_scores_and_winner() -> None:
    cells = [
        cell("tuple", 1, 8.0), cell("linked", 1, 4.0), cell("rwlock", 1, 2.0),
        cell("tuple", 10, 1.0), cell("linked", 10, 2.0), cell("rwlock", 10, 0.5),
    ]  # fmt: skip
    s = pb.scores(cells)
    assert s["tuple"] == pytest.approx(math.sqrt(1.0 * 0.5))
    assert s["linked"] == pytest.approx(math.sqrt(0.5 * 1.0))
    assert s["rwlock"] == pytest.approx(math.sqrt(0.25 * 0.25))
    cells[0] = cell("tuple", 1, 9.0)  # tuple now best in one cell by more than it loses in other
    assert pb.winner(cells) == "tuple"
    assert pb.ratio_vs(cells, "rwlock")["linked"] == pytest.approx(math.sqrt(2.0 * 4.0))
    doc = pb.to_json(cells, date="2026-01-01")
    assert doc["winner"] == "tuple" and doc["date"] == "2026-01-01" and len(doc["cells"]) == 6


def test_measure_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown pfil implementation"):
        pb.measure(["tailq"], seconds=0.01)
    with pytest.raises(ValueError):
        pb.measure_once("tuple", hooks=1, readers=0, churn_us=None, seconds=0.01)


def test_cli_writes_the_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pfil.json"
    argv = ["bench", "pfil", "--seconds", "0.03", "--rounds", "1", "--hooks", "1", "--hooks", "3"]
    assert main([*argv, "--churn-us", "500", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no churn" in text and "every 500 us" in text and "winner:" in text
    doc = json.loads(out.read_text())
    assert doc["winner"] in IMPLS and doc["default_impl"] == DEFAULT_IMPL
    assert doc["churn_us"] == 500
    configs = {(c["impl"], c["hooks"], c["readers"], c["churn_us"]) for c in doc["cells"]}
    assert configs == {
        (i, h, r, c) for i in IMPLS for h in (1, 3) for r in (1, 2) for c in (None, 500.0)
    }
    assert all(c["runs_per_s"] > 0 for c in doc["cells"])
    scores = doc["scores"]
    assert set(scores) == set(IMPLS) and all(0 < v <= 1 for v in scores.values())
    assert scores[doc["winner"]] == max(scores.values())


def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "pfil", "--seconds", "0"]) == 2
    assert "--seconds must be positive" in capsys.readouterr().err
    assert main(["bench", "pfil", "--readers", "0"]) == 2
    assert "--readers >= 1" in capsys.readouterr().err
