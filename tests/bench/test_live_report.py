"""What ``netfast bench live`` reports, from synthetic trials (no namespaces needed): the loss
accounting of a trial, the issue's targets and their verdicts, and the CLI's tables, target
lines and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netfast.bench import live
from netfast.bench.live.measure import LiveResult, ModeRun, SearchSettings
from netfast.bench.live.middle import NetfastFigures
from netfast.bench.live.report import loss_summary, targets
from netfast.bench.live.search import ThroughputSearch
from netfast.bench.live.topology import Counters, EndCounters
from netfast.cli import main


def _kernel_run(sent: int, delivered: int, seconds: float, rate: float | None = None) -> ModeRun:
    ends = {
        "a0": EndCounters(tx_packets=sent),
        "am": EndCounters(rx_packets=sent),
        "bm": EndCounters(tx_packets=delivered),
        "b0": EndCounters(rx_packets=delivered),
    }
    mib = {"InReceives": sent, "ForwDatagrams": delivered, "InDiscards": sent - delivered}
    return ModeRun("kernel", 0, "trafgen", rate, sent, 0, seconds, Counters(ends, mib))


def _netfast_run(
    sent: int, read: int, forwarded: int, delivered: int, seconds: float, rate: float | None = None
) -> ModeRun:
    ends = {
        "a0": EndCounters(tx_packets=sent),
        "am": EndCounters(rx_packets=sent),
        "bm": EndCounters(tx_packets=delivered),
        "b0": EndCounters(rx_packets=delivered),
    }
    nf = NetfastFigures(
        frames_in=read,
        vector_frames=read,
        scalar_frames=0,
        forwarded=forwarded,
        vector_seconds=0.1,
        scalar_seconds=0.0,
        counters={"ip.fwd.forwarded": forwarded, "ip.in.bad_checksum": read - forwarded},
        links={"rx.frames": read, "tx.frames": delivered, "rx.ring_drops": sent - read},
    )
    return ModeRun(
        "netfast", 0, "trafgen", rate, sent, 0, seconds, Counters(ends, {"InReceives": sent}), nf
    )


def _result(kernel_tp: tuple[float, float], netfast_tp: tuple[float, float]) -> LiveResult:
    """A run whose flat-out trials lose as given, each search done after one paced trial
    ((capacity, flat-out offered) per mode)."""
    res = LiveResult(packets=1000, seconds=1.0, rounds=1, batch_size=64, generator="trafgen")
    res.search = SearchSettings(trial_seconds=1.0, max_trials=1)
    kcap, koff = kernel_tp
    ncap, noff = netfast_tp
    k_top = _kernel_run(int(koff), int(min(kcap, koff)), 1.0)
    n_top = _netfast_run(int(noff), int(ncap), int(ncap), int(ncap), 1.0)
    res.runs += [k_top, n_top]
    for mode, top, cap in (("kernel", k_top, kcap), ("netfast", n_top, ncap)):
        search: ThroughputSearch[ModeRun] = ThroughputSearch(top, max_trials=1)
        rate = search.next_rate()
        if rate is not None:
            n = int(rate)
            if mode == "kernel":
                search.record(rate, _kernel_run(n, min(n, int(cap)), 1.0, rate))
            else:
                d = min(n, int(cap))
                search.record(rate, _netfast_run(n, d, d, d, 1.0, rate))
        res.throughput[mode] = search
    return res


def test_losses_place_every_frame() -> None:
    run = _netfast_run(sent=1000, read=700, forwarded=690, delivered=690, seconds=1.0)
    losses = run.losses()
    assert losses["not read by netfast"] == 300
    assert losses["netfast router drops"] == 10
    assert losses["not sent by netfast's links"] == 0
    assert run.unaccounted == 0 and run.a_sent == 1000
    assert run.netfast is not None and run.netfast.router_drops == {"ip.in.bad_checksum": 10}
    assert loss_summary(run) == "not read by netfast 300; netfast router drops 10"
    # B short of what bm sent, and no counter saying why: unaccounted.
    short = ModeRun(
        run.mode, 0, "trafgen", None, 1000, 0, 1.0,
        Counters({**run.kernel.ends, "b0": EndCounters(rx_packets=680)}, run.kernel.ip_mib),
        run.netfast,
    )  # fmt: skip
    assert short.unaccounted == 10 and "unaccounted 10" in loss_summary(short)
    kernel = _kernel_run(sent=1000, delivered=950, seconds=1.0)
    assert kernel.losses()["M Ip InDiscards"] == 50 and kernel.unaccounted == 0


def test_targets_not_met_when_netfast_is_below_the_kernel() -> None:
    rows = {r.name: r for r in targets(_result((50_000, 60_000), (10_000, 80_000)))}
    tp = rows["RFC 2544 throughput (loss < 0.1 %)"]
    assert tp.kernel_pps is not None and tp.netfast_pps is not None
    assert tp.status == "not met" and tp.ratio == pytest.approx(tp.netfast_pps / tp.kernel_pps)
    delivered = rows["delivered at the maximum offered rate"]
    assert delivered.status == "not met" and delivered.netfast_pps == pytest.approx(10_000)
    assert "offered 80 kpps" in delivered.note
    assert rows["two workers, delivered"].status == "not measured"


@pytest.mark.parametrize(("netfast_pps", "status"), [(80_000, "met"), (70_000, "not met")])
def test_two_worker_target_from_a_workers_run(netfast_pps: float, status: str) -> None:
    res = _result((50_000, 60_000), (10_000, 80_000))
    res.workers = 2
    res.runs = [r for r in res.runs if r.mode == "kernel"] + [
        _netfast_run(sent=100_000, read=100_000, forwarded=100_000, delivered=int(netfast_pps),
                     seconds=1.0)
    ]  # fmt: skip
    kernel = res.best("kernel")
    assert kernel is not None
    row = {r.name: r for r in targets(res)}["two workers, delivered"]
    assert row.netfast_pps == pytest.approx(netfast_pps)
    assert row.ratio == pytest.approx(netfast_pps / kernel.delivered_pps)
    assert row.status == ("met" if netfast_pps >= 1.5 * kernel.delivered_pps else "not met")
    assert row.status == status


def test_targets_open_when_the_kernel_is_bound_by_the_generator() -> None:
    # The kernel loses nothing flat out: its throughput is only a lower bound.
    res = _result((1e9, 60_000), (2e6, 2e6))
    k = res.throughput["kernel"]
    assert k.bound == "generator" and not k.steps
    rows = {r.name: r for r in targets(res)}
    assert rows["RFC 2544 throughput (loss < 0.1 %)"].status == "open"
    assert rows["delivered at the maximum offered rate"].status == "met"


def test_targets_met() -> None:
    res = _result((50_000, 60_000), (1.2e6, 1.5e6))
    rows = {r.name: r for r in targets(res)}
    tp = rows["RFC 2544 throughput (loss < 0.1 %)"]
    assert res.throughput["kernel"].bound != "generator"
    assert tp.status == "met" and tp.ratio is not None and tp.ratio > 1


def test_cli_prints_the_tables_and_target_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    res = _result((50_000, 60_000), (10_000, 80_000))
    seen: dict[str, Any] = {}

    def fake_measure(**kw: Any) -> LiveResult:
        seen.update(kw)
        return res

    monkeypatch.setattr(live, "check_environment", lambda: None)
    monkeypatch.setattr(live, "measure", fake_measure)
    out_json = tmp_path / "live.json"
    assert main(["bench", "live", "--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    for line in (
        "the live-router issue's targets",
        "RFC 2544 throughput (loss < 0.1 %)",
        ">= 1.00x kernel",
        ">= 1 Mpps",
        ">= 1.5x kernel",
        "netfast / Linux",
        "not measured",
        "search trials",
        "not read by netfast",
    ):
        assert line in out, line
    tp = res.throughput["netfast"].throughput / res.throughput["kernel"].throughput
    assert f"{tp:.2f}x" in out
    # --quick's search settings reached measure().
    assert seen["search"].trial_seconds == 0.5 and seen["search"].max_trials == 3
    doc = json.loads(out_json.read_text())
    assert doc["meta"]["generator"] == "trafgen"
    assert doc["throughput_netfast_over_kernel"] == pytest.approx(tp)
    assert doc["throughput"]["netfast"]["trials"][0]["losses"]["not read by netfast"] >= 0


@pytest.mark.parametrize(
    "args",
    [
        ["--trial-seconds", "0"],
        ["--trials", "-1"],
        ["--budget", "0"],
        ["--loss", "0"],
        ["--loss", "1"],
        ["--flows", "0"],
    ],
)
def test_cli_rejects_bad_search_settings(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "live", *args]) == 2
    assert "must be" in capsys.readouterr().err
