"""``netfast bench tcp``: each section runs at tiny sizes and reports well-formed rows whose
transfers are checked end to end by SHA-256.  Rates are printed, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import have_netns

from netfast.bench import tcp as tb
from netfast.bench import tcp_report as tr
from netfast.bench.tcp_reass import run_reass_bench
from netfast.cli import CliError, main
from netfast.cli.bench_tcp import parse_sections


@pytest.mark.parametrize("offloads", tb.MEMORY_OFFLOADS)
def test_memory_transfer_arrives_whole(offloads: str) -> None:
    for mtu in tb.MEMORY_MTUS:
        row = tb.measure_memory(200_000, mtu, offloads=offloads)
        print(row)
        assert row["impl"] == "netfast" and row["path"] == "memory" and row["mtu"] == mtu
        assert row["offloads"] == offloads
        assert row["bytes"] == 200_000
        assert row["sha256_ok"] is True
        assert row["seconds"] > 0 and row["mbit_s"] > 0


def test_memory_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="nbytes"):
        tb.measure_memory(0)
    with pytest.raises(ValueError, match="mtu"):
        tb.measure_memory(1000, 200)
    with pytest.raises(ValueError, match="offloads"):
        tb.measure_memory(1000, offloads="tap")  # no TAP in memory


def test_payload_is_deterministic_and_seeded() -> None:
    assert tb.payload(1000, 3) == tb.payload(1000, 3)
    assert tb.payload(1000, 3) != tb.payload(1000, 4)
    assert len(tb.payload(12345)) == 12345


def test_reass_section_and_answer() -> None:
    rows = run_reass_bench(200, rounds=1)
    ans = tr.answers(rows, [])
    adv = {r["impl"]: r for r in rows if r["pattern"] == "adversarial"}
    expected = adv["netfast"]["segments_per_s"] / adv["linked_list"]["segments_per_s"]
    assert ans["reass_adversarial_ratio"] == pytest.approx(expected)
    assert ans["reass_peak_bytes"]["linked_list"] == adv["linked_list"]["peak_bytes_held"]
    assert isinstance(ans["reass_target_met"], bool)
    assert any("reassembly under attack" in line for line in tr.answer_lines(ans))


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {"bytes": 1000, "seconds": 1.0, "sha256_ok": True, "mtu": 1500}
    row.update(kw)
    return row


def test_answers_and_ratios_pair_rows_by_path_and_direction() -> None:
    rows = [
        _row(impl="netfast", path="linux-tap", direction="netfast_to_linux", offloads="none",
             mbit_s=100.0),
        _row(impl="netfast", path="linux-tap", direction="netfast_to_linux", offloads="tap",
             mbit_s=300.0),
        _row(impl="netfast", path="linux-tap", direction="linux_to_netfast", offloads="software",
             mbit_s=50.0),
        _row(impl="pytcp", path="linux-tap", direction="pytcp_to_linux", offloads=None,
             mbit_s=4.0),
        _row(impl="pytcp", path="linux-tap", direction="linux_to_pytcp", offloads=None,
             mbit_s=5.0),
        _row(impl="netfast", path="memory", direction="netfast_to_netfast", offloads="none",
             mbit_s=400.0),
        _row(impl="netfast", path="memory", direction="netfast_to_netfast", offloads="software",
             mbit_s=1200.0),
        {"impl": "pytcp", "path": "memory", "direction": "pytcp_to_pytcp", "skipped": "no"},
    ]  # fmt: skip
    assert tr.vs_pytcp(rows[0], rows) == pytest.approx(25.0)
    assert tr.vs_pytcp(rows[2], rows) == pytest.approx(10.0)
    assert tr.vs_pytcp(rows[6], rows) is None  # PyTCP skipped on that path
    assert tr.vs_pytcp(rows[3], rows) is None  # only netfast rows carry the ratio
    ans = tr.answers(None, rows)
    # Only transfers measured with offloads "none" as well get a ratio.
    assert ans["offload_ratio"] == {
        "tap/netfast_to_linux": {"tap": pytest.approx(3.0)},
        "memory/1500": {"software": pytest.approx(3.0)},
    }
    assert ans["memory_mbit"] == {"1500/none": 400.0, "1500/software": 1200.0}
    assert ans["memory_best_mbit"] == 1200.0 and ans["memory_target_met"] is True
    assert ans["tap_mbit"] == {
        "netfast_to_linux/none": 100.0,
        "netfast_to_linux/tap": 300.0,
        "linux_to_netfast/software": 50.0,
    }
    # The TAP target must hold both ways: the weaker direction's best decides.
    assert ans["tap_best_mbit"] == 50.0 and ans["tap_target_met"] is False
    lines = tr.answer_lines(ans)
    assert sum(line.startswith("tap, ") for line in lines) == 3
    assert sum(line.startswith("offloads ") for line in lines) == 2
    assert "reass_adversarial_ratio" not in ans
    # A transfer whose bytes did not check out counts for nothing.
    bad = [dict(rows[6], sha256_ok=False)]
    assert "memory_best_mbit" not in tr.answers(None, bad)
    table = tr.transfer_table(rows)
    assert table.row_count == len(rows)


def test_parse_sections() -> None:
    assert parse_sections(None) == list(tb.SECTIONS)
    assert parse_sections("tap, reass") == ["reass", "tap"]
    with pytest.raises(CliError, match="choose from"):
        parse_sections("reass,bogus")
    with pytest.raises(CliError):
        parse_sections(",")


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "tcp", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--only", "--quick", "--json", "--bytes"):
        assert word in out


def test_cli_quick_memory_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tcp.json"
    status = main(["bench", "tcp", "--quick", "--only", "memory", "--bytes", "500000",
                   "--json", str(out)])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "memory" in printed and "Answers" in printed
    doc = json.loads(out.read_text())
    assert doc["meta"]["sections"] == ["memory"] and doc["meta"]["bytes"] == 500_000
    assert doc["reass"] is None
    assert [(r["mtu"], r["offloads"]) for r in doc["transfers"]] == [
        (mtu, offloads) for mtu in tb.MEMORY_MTUS for offloads in tb.MEMORY_OFFLOADS
    ]
    assert all(r["sha256_ok"] and r["bytes"] == 500_000 for r in doc["transfers"])
    assert "memory_best_mbit" in doc["answers"]


def test_cli_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "tcp", "--only", "memory", "--bytes", "0"]) == 2
    assert "--bytes" in capsys.readouterr().err


def test_tap_skips_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tb.os, "geteuid", lambda: 1000)
    row = tb.measure_tap(1000, "netfast_to_linux")
    assert row["path"] == "linux-tap" and "root" in row["skipped"]
    # The table shows it as a row of its own.
    assert tr.transfer_table([row]).row_count == 1


def test_tap_rejects_bad_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        tb.measure_tap(1000, "sideways")
    with pytest.raises(ValueError, match="offloads"):
        tb.measure_tap(1000, offloads="on")


def _our_namespaces() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    prefix = f"nftcp{os.getpid()}x"
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("offloads", tb.OFFLOADS)
@pytest.mark.parametrize("direction", tb.DIRECTIONS)
def test_tap_transfer(direction: str, offloads: str) -> None:
    if reason := have_netns():
        pytest.skip(reason)
    row = tb.measure_tap(1_000_000, direction, offloads=offloads, timeout=60.0)
    print({k: v for k, v in row.items() if k != "counters"})
    assert "error" not in row and "skipped" not in row, row
    assert row["direction"] == direction and row["offloads"] == offloads
    assert row["bytes"] == 1_000_000
    assert row["sha256_ok"] is True
    tso = row["tap_counters"].get("tx.tso_frames", 0)
    cut = row["counters"].get("ip.out.gso_software", 0)
    if direction == "netfast_to_linux":
        # Segments larger than the MTU were cut by the kernel (tap), by netfast's compiled
        # pass (software), or never built (none).
        assert (tso > 0, cut > 0) == {
            "tap": (True, False),
            "software": (False, True),
            "none": (False, False),
        }[offloads], row["counters"]
    merged = row["counters"].get("tcp.in.coalesced", 0)
    if direction == "linux_to_netfast" and offloads != "tap":  # the kernel's own GSO merges
        assert (merged > 0) == (offloads == "software"), row["counters"]
    # The run's namespace (with the TAP inside) is gone again.
    assert _our_namespaces() == []
