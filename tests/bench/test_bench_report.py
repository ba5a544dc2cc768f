"""``netfast bench`` without a sub-command: every stage runs (or says why not), REPORT.md is
rendered from run.json alone, every plot is a real PNG, and the README's blocks come from the
committed report."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from netfast.bench.report import readme
from netfast.bench.report.render import REPORT, load_run, render, write_report
from netfast.bench.report.run import STAGES, Stage, run_stage, why_not
from netfast.bench.report.sections import SECTIONS
from netfast.cli import main
from netfast.route.loaders import default_table_path

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_every_stage_ran_or_says_why(quick_report: Path) -> None:
    run = load_run(quick_report)
    assert sorted(run["stages"]) == sorted(s.name for s in STAGES)
    for stage in STAGES:
        entry = run["stages"][stage.name]
        # A stage that fails is a defect of the project; one that cannot run here names why.
        assert entry["status"] != "failed", (stage.name, entry["reason"])
        if entry["status"] == "skipped":
            assert entry["reason"] == why_not(stage)
        else:
            assert entry["data"], stage.name


@pytest.mark.slow
def test_every_section_is_written_or_gives_its_reason(quick_report: Path) -> None:
    text = (quick_report / REPORT).read_text()
    for i, sec in enumerate(SECTIONS, 1):
        heading = f"## {i}. {sec.title}"
        assert heading in text
        part = text.split(heading, 1)[1].split("\n## ", 1)[0]
        assert ("**Verdict:**" in part) != ("**Not measured in this run:**" in part), sec.key
        assert f"**The paper:** {sec.claim}" in part
    run = load_run(quick_report)
    if all(e["status"] == "ok" for e in run["stages"].values()):
        assert "**Not measured in this run:**" not in text


@pytest.mark.slow
def test_report_is_rendered_from_run_json_alone(quick_report: Path) -> None:
    run = load_run(quick_report)
    text, _ = render(run)
    assert text == (quick_report / REPORT).read_text()
    # Change the numbers a stage measured and its sections change with them.
    for sec in SECTIONS:
        if any(run["stages"][n]["status"] != "ok" for n in sec.needs):
            continue
        moved = copy.deepcopy(run)
        for name in sec.needs:
            moved["stages"][name]["data"] = _scaled(moved["stages"][name]["data"], 1.37)
        before = text.split(f". {sec.title}\n", 1)[1].split("\n## ", 1)[0]
        after = render(moved)[0].split(f". {sec.title}\n", 1)[1].split("\n## ", 1)[0]
        assert before != after, f"section {sec.key} does not read its stage's figures"


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value * factor
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: _scaled(v, factor) for k, v in value.items()}
    return value


@pytest.mark.slow
def test_every_plot_is_a_valid_png(quick_report: Path) -> None:
    text = (quick_report / REPORT).read_text()
    names = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert names, "the report has no plots"
    for name in names:
        path = quick_report / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        img = matplotlib.image.imread(str(path))
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, name


@pytest.mark.slow
def test_header_makes_the_run_reproducible(quick_report: Path) -> None:
    h = load_run(quick_report)["header"]
    assert h["command"] == f"netfast bench --quick --out {quick_report}"
    assert re.fullmatch(r"[0-9a-f]{40}", h["commit"] or "")
    for key in ("cpu", "cores", "kernel", "python", "numpy", "numba"):
        assert h["machine"][key], key
    bundled = default_table_path()
    entry = next(d for d in h["data"] if d["file"] == bundled.name)
    assert entry["sha256"] == hashlib.sha256(bundled.read_bytes()).hexdigest()
    ip = load_run(quick_report)["stages"]["ipinput"]
    if ip["status"] == "ok" and ip["data"]["traffic"]["source"] == "capture":
        # The captures the IP input stage replayed are data of the run too.
        assert set(ip["data"]["traffic"]["captures"]) <= {d["file"] for d in h["data"]}
    text = (quick_report / REPORT).read_text()
    assert entry["sha256"] in text and h["commit"] in text


def test_a_stage_past_its_time_limit_is_stopped_and_named(tmp_path: Path) -> None:
    stage = next(s for s in STAGES if s.name == "ethernet")
    entry = run_stage(stage, True, tmp_path, timeout=0.05)
    assert entry["status"] == "failed"
    assert "did not finish within" in entry["reason"]


def test_a_stage_without_its_tool_is_skipped_with_the_reason(tmp_path: Path) -> None:
    stage = Stage("ethernet", "x", (), (), 10, 10, tools=("netfast-no-such-tool",))
    entry = run_stage(stage, True, tmp_path)
    assert entry["status"] == "skipped"
    assert "netfast-no-such-tool not installed" in entry["reason"]


def test_a_failing_stage_records_its_error(tmp_path: Path) -> None:
    # checksum refuses a zero measurement time: the child's own message ends up in the run.
    stage = Stage("checksum", "x", ("--seconds", "0"), (), 60, 60)
    entry = run_stage(stage, True, tmp_path)
    assert entry["status"] == "failed"
    assert "--seconds must be positive" in entry["reason"]


def test_render_and_readme_errors_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--render", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path / 'run.json'}: cannot read" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{not json")
    assert main(["bench", "--render", "--out", str(tmp_path)]) == 2
    assert "run.json: line 1: not JSON" in capsys.readouterr().err
    assert main(["bench", "--only", "ethernet,bogus"]) == 2
    assert "unknown stage" in capsys.readouterr().err


def _committed_run() -> dict[str, Any]:
    return load_run(REPO / "report")


def test_readme_blocks_come_from_the_committed_report() -> None:
    run = _committed_run()
    text = (REPO / "README.md").read_text()
    regenerated, keys = readme.render_readme(text, run)
    assert keys, "the README has no generated blocks"
    assert regenerated == text, "README.md is stale: run `netfast bench --readme README.md`"


def test_committed_report_is_rendered_from_its_run() -> None:
    run = _committed_run()
    assert render(run)[0] == (REPO / "report" / REPORT).read_text()
    assert not run["header"]["quick"], "the committed report must be a full run"


def test_readme_rewrite_is_all_or_nothing(tmp_path: Path) -> None:
    run = _committed_run()
    key = SECTIONS[0].key
    good = f"intro\n<!-- report:{key} -->\nold\n<!-- /report:{key} -->\noutro\n"
    path = tmp_path / "R.md"
    path.write_text(good + "<!-- report:nosuch -->\n<!-- /report:nosuch -->\n")
    with pytest.raises(ValueError, match=r"R.md:6: unknown section 'nosuch'"):
        readme.update(path, run)
    assert "old" in path.read_text()  # untouched
    path.write_text(good + f"<!-- report:{key} -->\n")
    with pytest.raises(ValueError, match="is not closed"):
        readme.update(path, run)
    path.write_text(good)
    assert readme.update(path, run) == [key]
    new = path.read_text()
    assert new.startswith("intro\n") and new.endswith("outro\n") and "old" not in new
    assert run["header"]["date"][:10] in new


def test_write_report_replaces_files_whole(tmp_path: Path) -> None:
    run = _committed_run()
    files = write_report(run, tmp_path)
    assert (tmp_path / REPORT).read_text() == render(run)[0]
    assert json.loads((tmp_path / "run.json").read_text()) == run
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert all(os.path.getsize(f) > 0 for f in files)
