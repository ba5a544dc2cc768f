"""``netfast bench live`` smoke tests: a short real measurement of both modes (root only), the
figures checked for sanity and the namespaces checked gone; the CLI's JSON and its argument
errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from netfast.bench import live
from netfast.cli import main

SKIP_REASON = live.check_environment()
needs_root = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def _our_namespaces() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"nfl{os.getpid()}x")]


@needs_root
@pytest.mark.netns
@pytest.mark.slow
def test_measure_both_modes_sane_figures() -> None:
    res = live.measure(packets=20_000, seconds=2.0, rounds=1)
    assert [r.mode for r in res.runs] == ["kernel", "netfast"]
    kernel, nf = res.best("kernel"), res.best("netfast")
    assert kernel is not None and nf is not None
    for r in (kernel, nf):
        assert 0 < r.sent <= 20_000 and r.send_seconds > 0
        # Nothing duplicated, nothing from elsewhere: B got at most what A sent.
        assert 0 < r.delivered <= r.entered <= r.sent, r
        assert r.offered_pps > 0 and 0 < r.delivered_pps <= r.offered_pps
    # The kernel forwards in the sender's softirq: it delivers (about) everything.
    assert kernel.delivered >= 0.95 * kernel.sent, kernel
    figures = nf.netfast
    assert figures is not None and kernel.netfast is None
    # netfast's own counts agree with the interfaces': it read no more than entered the middle,
    # every frame read went through one path, and B received no more than it forwarded.
    assert 0 < figures.frames_in <= nf.entered
    assert figures.vector_frames + figures.scalar_frames == figures.frames_in
    assert figures.vector_frames > 0  # plain UDP is the vector path's fast case
    assert nf.delivered <= figures.forwarded <= figures.frames_in
    assert res.ratio is not None and res.ratio > 0
    assert _our_namespaces() == []


@needs_root
@pytest.mark.netns
@pytest.mark.slow
def test_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    status = main(["bench", "live", "--quick", "--packets", "5000", "--json", str(out)])
    assert status == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["frame_len"] == 60 and doc["meta"]["packets"] == 5000
    assert {r["mode"] for r in doc["runs"]} == {"kernel", "netfast"}
    for mode in ("kernel", "netfast"):
        assert doc["best"][mode]["delivered"] > 0
    assert doc["best"]["netfast"]["netfast"]["frames_in"] > 0
    assert doc["netfast_over_kernel"] > 0
    # The RFC 2544 search ran for both modes (quick: at most 3 paced trials each).
    assert set(doc["throughput"]) == {"kernel", "netfast"}
    for mode in ("kernel", "netfast"):
        assert doc["throughput"][mode]["bound"] is not None
        assert len(doc["throughput"][mode]["trials"]) <= 3
    assert _our_namespaces() == []


@pytest.mark.parametrize(
    "args", [["--packets", "0"], ["--seconds", "0"], ["--rounds", "0"], ["--batch", "0"]]
)
def test_cli_rejects_bad_bounds(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "live", *args]) == 2
    assert "must be" in capsys.readouterr().err


def test_measure_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        live.measure(packets=0)
    with pytest.raises(ValueError, match="positive"):
        live.measure(seconds=0.0)
