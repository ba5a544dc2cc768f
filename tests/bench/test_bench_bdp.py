"""``netfast bench bdp``: Figure 16's arithmetic against hand-computed cells, the measured windows
against what was sent, the attack against the queue's bounds, and the CLI's JSON.  No timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netfast.bench import bdp
from netfast.cli import main

_TINY = bdp.Caps(
    netfast_window=130_000,
    linked_list_window=70_000,
    attack_socket_buffer=1_250,
    attack_segments=2_000,
    attack_segments_linked_list=60,
)


def _cell(speed: str, rtt_ms: int) -> dict[str, Any]:
    (cell,) = [c for c in bdp.figure16() if c["speed"] == speed and c["rtt_ms"] == rtt_ms]
    return cell


def test_figure16_by_hand() -> None:
    cells = bdp.figure16()
    assert len(cells) == len(bdp.SPEEDS) * len(bdp.RTTS_MS) == 42
    # 10**9 bit/s * 0.1 s / 8 = 12,500,000 bytes = 12,500 kB (1 kB = 1000 B).
    c = _cell("1 Gb/s", 100)
    assert c["bdp_bytes"] == 12_500_000 and c["bdp_kB"] == 12_500
    assert _cell("10 Mb/s", 1)["bdp_kB"] == 1.25
    assert _cell("100 Mb/s", 300)["bdp_kB"] == 3_750  # Europe - Japan at 100 Mb/s
    assert _cell("10 Gb/s", 300)["bdp_kB"] == 375_000
    assert _cell("400 Gb/s", 300)["bdp_kB"] == 15_000_000
    # 12,500,000 / 1460 = 8561.6: 8562 segments, 8561 waiting, each an mbuf and a cluster.
    assert c["segments"] == 8562
    assert c["waiting_bytes"] == 12_500_000 - 1460
    assert c["bsd_bytes"] == 8561 * (256 + 2048)
    assert c["bsd_attack_bytes"] == 12_499_999 * 2304
    # netfast: the payload plus a few percent; the bound is the window plus slack and overheads.
    assert c["waiting_bytes"] < c["netfast_bytes"] < 1.05 * c["waiting_bytes"]
    assert c["window_bytes"] < c["netfast_bound_bytes"] < 1.2 * c["window_bytes"]
    assert not c["window_limited"]


def test_windows_beyond_tcp_are_flagged_and_capped() -> None:
    big = _cell("100 Gb/s", 100)  # 1.25 GB > 65,535 * 2**14
    assert big["window_limited"] and big["window_bytes"] == bdp.MAX_WINDOW == 1_073_725_440
    assert not _cell("10 Gb/s", 300)["window_limited"]  # 375 MB fits
    assert big["bsd_bytes"] == (-(-bdp.MAX_WINDOW // 1460) - 1) * 2304


@pytest.mark.parametrize("impl", ["netfast", "linked_list"])
@pytest.mark.parametrize("window", [1_000, 62_500, 100_001])
def test_in_order_holds_the_window_minus_the_lost_segment(impl: str, window: int) -> None:
    row = bdp.measure_window(impl, window, "in_order")
    lost = min(window, 1460)
    assert row["lost_bytes"] == lost
    assert row["bytes_held"] == window - lost
    assert row["retransmitted_bytes"] == 0
    assert row["delivered_ok"] and row["delivered_bytes"] == window
    if window > lost:
        assert row["traced_bytes"] > row["bytes_held"]
        assert row["model_bytes"] == pytest.approx(row["traced_bytes"], rel=0.02)
    if impl == "netfast":
        assert row["blocks"] == (1 if window > lost else 0)
        assert row["mbuf_bytes"] is None
    else:
        assert row["blocks"] == -(-window // 1460) - 1
        assert row["mbuf_bytes"] == row["blocks"] * 2304


@pytest.mark.parametrize("order", ["reordered", "shuffled"])
def test_other_orders_deliver_everything(order: str) -> None:
    window = 120_000
    nf = bdp.measure_window("netfast", window, order, max_holes=4)
    ll = bdp.measure_window("linked_list", window, order)
    for row in (nf, ll):
        assert row["delivered_ok"] and row["delivered_bytes"] == window
    assert ll["bytes_held"] == window - 1460 and ll["retransmitted_bytes"] == 0
    assert nf["blocks"] <= 4
    # The sender resends exactly what the queue did not keep.
    assert nf["retransmitted_bytes"] == window - nf["lost_bytes"] - nf["bytes_held"]
    if order == "shuffled":
        assert nf["counters"]["tcp.reass.hole_limit"] > 0 and nf["retransmitted_bytes"] > 0


def test_attack_is_bounded_for_netfast_not_for_the_linked_list() -> None:
    buf, n = 1_000, 3_000
    contig = bdp.measure_attack("netfast", "contiguous", buf, n, max_holes=8)
    assert contig["bytes_held"] == buf and contig["blocks"] == 1
    assert contig["counters"]["tcp.reass.byte_limit"] == n - buf
    gapped = bdp.measure_attack("netfast", "gapped", buf, n, max_holes=8)
    assert gapped["blocks"] <= 8 and gapped["bytes_held"] <= 3 * 8
    assert gapped["counters"]["tcp.reass.hole_limit"] > n // 2
    for row in (contig, gapped):
        assert row["traced_bytes"] <= bdp.netfast_bound_bytes(buf, 8)
        # Flat after the bound is reached: the last quarter adds (almost) nothing.
        assert row["growth"][-1][2] - row["growth"][-2][2] < 200
    ll = bdp.measure_attack("linked_list", "contiguous", buf, 200)
    assert ll["bytes_held"] == ll["blocks"] == 200
    assert ll["mbuf_bytes"] == 200 * 2304
    traced = [g[2] for g in ll["growth"]]
    assert traced == sorted(traced) and traced[-1] > 3 * traced[0]


def test_bench_rows_and_verdict() -> None:
    res = bdp.run_bdp_bench(_TINY)
    assert set(res) == {"kB", "constants", "caps", "figure16", "measured", "attack", "verdict"}
    windows = {r["window_bytes"] for r in res["measured"]}
    assert windows == {c["window_bytes"] for c in res["figure16"] if c["measured"]}
    assert max(windows) <= _TINY.netfast_window
    assert all(r["delivered_ok"] for r in res["measured"])
    ll = [r for r in res["measured"] if r["impl"] == "linked_list"]
    assert ll and max(r["window_bytes"] for r in ll) <= _TINY.linked_list_window
    twelve = [r for r in res["measured"] if r["window_bytes"] == 12_500]
    assert ["1 Gb/s", 100] not in twelve[0]["cells"] and ["100 Mb/s", 1] in twelve[0]["cells"]
    assert res["verdict"].startswith("With the first segment of a 125,000-byte window lost")
    assert "netfast holds 123,540 bytes in 1 block" in res["verdict"]


def test_cli_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bdp.json"
    assert main(["bench", "bdp", "--quick", "--json", str(out)]) == 0
    assert "Figure 16" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert set(doc) == {
        "benchmark",
        "date",
        "python",
        "machine",
        "quick",
        "seed",
        "kB",
        "constants",
        "caps",
        "figure16",
        "measured",
        "attack",
        "verdict",
    }
    assert doc["benchmark"] == "bdp" and doc["quick"] is True and doc["kB"] == 1000
    assert doc["caps"] == bdp.QUICK._asdict()
    assert set(doc["constants"]) == {
        "mss",
        "msize",
        "mclbytes",
        "mbuf_per_segment",
        "max_window",
        "max_holes",
        "chunk_merge",
        "chunk_overhead",
        "block_overhead",
        "queue_overhead",
        "node_overhead",
        "bytearray_slack",
    }
    assert set(doc["figure16"][0]) == {
        "speed",
        "bits_per_second",
        "rtt_ms",
        "bdp_bytes",
        "bdp_kB",
        "window_bytes",
        "window_limited",
        "segments",
        "waiting_bytes",
        "bsd_bytes",
        "bsd_attack_bytes",
        "netfast_bytes",
        "netfast_bound_bytes",
        "measured",
    }
    assert set(doc["measured"][0]) == {
        "impl",
        "order",
        "window_bytes",
        "cells",
        "segments",
        "lost_bytes",
        "bytes_held",
        "blocks",
        "chunks",
        "traced_bytes",
        "model_bytes",
        "mbuf_bytes",
        "counters",
        "retransmitted_bytes",
        "delivered_bytes",
        "delivered_ok",
    }
    assert set(doc["attack"][0]) == {
        "impl",
        "shape",
        "socket_buffer",
        "max_holes",
        "segments_sent",
        "payload_sent",
        "bytes_held",
        "blocks",
        "chunks",
        "traced_bytes",
        "traced_per_segment",
        "mbuf_bytes",
        "counters",
        "growth",
    }
    assert {(a["impl"], a["shape"]) for a in doc["attack"]} == {
        (i, s) for i in ("netfast", "linked_list") for s in bdp.SHAPES
    }
    in_order = [r for r in doc["measured"] if r["order"] == "in_order"]
    assert all(r["bytes_held"] == max(0, r["window_bytes"] - 1460) for r in in_order)
