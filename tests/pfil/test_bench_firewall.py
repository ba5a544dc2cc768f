"""`netfast bench firewall`: both matchers on the same workloads, compared in the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from netfast.bench import firewall as fw
from netfast.cli import main
from netfast.pfil import Direction
from netfast.pfil.ipfw import parse_rules
from netfast.route.loaders import load_default_table


@pytest.fixture(scope="module")
def rib():  # type: ignore[no-untyped-def]
    return load_default_table().rib


@pytest.mark.parametrize("name", fw.WORKLOADS)
def test_workloads_stop_at_every_depth_and_matchers_agree(rib, name: str) -> None:  # type: ignore[no-untyped-def]
    text, batches = fw.workload(name, 700, rib)
    assert len(batches) == fw.N_BATCHES and all(len(b["src"]) == fw.BATCH for b in batches)
    walk, bitmap = parse_rules(text, matcher="walk"), parse_rules(text, matcher="bitmap")
    assert len(walk.rules) == 701  # and the default rule: past automatic numbering's 655
    assert fw.check_equal(walk, bitmap, batches) == 1.0
    hit = np.flatnonzero(bitmap.packets)
    if name == "walk-through":
        assert hit.tolist() == [len(bitmap.rules) - 2]  # only the final allow
    else:
        assert len(hit) > 20 and hit[hit < 699].max() > 300  # early and late rules, the last deny
    # the scalar path agrees on the first batch
    scalar = parse_rules(text)
    got = bitmap.evaluate_batch(batches[0], Direction.IN, 1)
    for p, v in zip(fw._packets(batches[0]), got.tolist(), strict=True):
        assert int(scalar.evaluate(p)) == v


def test_check_equal_raises_on_a_difference(rib) -> None:  # type: ignore[no-untyped-def]
    text, batches = fw.workload("border", 50, rib)
    other = parse_rules("deny ip from any to any\n", matcher="bitmap")
    with pytest.raises(AssertionError, match="different verdicts"):
        fw.check_equal(parse_rules(text, matcher="walk"), other, batches)


def test_cli_table_growth_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.json"
    argv = ["bench", "firewall", "--quick", "--seconds", "0.02", "--rules", "1", "--rules", "70"]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bitmaps/walk" in text and "70x the rules cost the walk" in text
    data = json.loads(out.read_text())
    cells = {(c["workload"], c["rules"]): c for c in data["cells"]}
    assert set(cells) == {(w, n) for w in fw.WORKLOADS for n in (1, 70)}
    for c in cells.values():
        assert c["walk_pps"] > 0 and c["bitmap_pps"] > 0 and c["scalar_pps"] > 0
        assert c["bitmap_over_walk"] == pytest.approx(c["bitmap_pps"] / c["walk_pps"])
        assert c["decided"] == 1.0 and c["bitmap_bytes"] > 0
    assert data["growth"]["border"]["rules"] == 70


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rules", "0"], "--rules must be at least 1"),
        (["--workload", "lan"], "unknown workload 'lan'"),
        (["--seconds", "0"], "--seconds must be positive"),
    ],
)
def test_cli_errors(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "firewall", *extra]) == 2
    assert message in capsys.readouterr().err
