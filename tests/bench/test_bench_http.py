"""``netfast bench http``: the wrk report parser on real wrk 4.1 output, the argument checks,
and one tiny run of every section whose rows must be well-formed.  Rates are printed, never
asserted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from netfast.bench import http as hb
from netfast.bench.http import figure18_tap, loopback, retrieval
from netfast.bench.netns import tap_environment
from netfast.cli import CliError, main
from netfast.cli.bench_http import parse_counts, parse_sections

# Captured here from wrk debian/4.1.0-3+b2 against nginx 1.22.1 on loopback (1 KiB file).
WRK_NGINX = """\
Running 1s test @ http://127.0.0.1:32947/1k.bin
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.56ms  336.04us   5.38ms   77.02%
    Req/Sec    32.22k     1.97k   34.92k    72.73%
  Latency Distribution
     50%    1.53ms
     75%    1.71ms
     90%    1.93ms
     99%    2.44ms
  35148 requests in 1.10s, 42.84MB read
Requests/sec:  31881.95
Transfer/sec:     38.86MB
"""

# The same nginx asked for a file it does not have, with Connection: close.
WRK_404 = """\
Running 1s test @ http://127.0.0.1:32947/missing.bin
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms    1.19ms   8.99ms   71.37%
    Req/Sec    11.51k     1.51k   13.92k    50.00%
  Latency Distribution
     50%    1.82ms
     75%    2.66ms
     90%    3.52ms
     99%    5.63ms
  11500 requests in 1.01s, 3.32MB read
  Non-2xx or 3xx responses: 11500
Requests/sec:  11424.65
Transfer/sec:      3.30MB
"""

# A toy server that resets every connection after at most one response.
WRK_RESETS = """\
Running 1s test @ http://127.0.0.1:43379/1k.bin
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  682.88us   7.42ms   94.14%
    Req/Sec     3.31k     0.86k    4.16k    81.82%
  Latency Distribution
     50%    1.02ms
     75%    1.17ms
     90%    1.63ms
     99%    5.16ms
  3621 requests in 1.10s, 152.05KB read
  Socket errors: connect 0, read 7242, write 0, timeout 0
Requests/sec:   3290.27
Transfer/sec:    138.17KB
"""

# A listener that never accepts.
WRK_SILENT = """\
Running 2s test @ http://127.0.0.1:42693/1k.bin
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.01s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_parse_wrk_reads_every_figure() -> None:
    r = hb.parse_wrk(WRK_NGINX)
    assert r.requests == 35148
    assert r.seconds == pytest.approx(1.10)
    assert r.bytes_read == pytest.approx(42.84 * 2**20)
    assert r.requests_per_s == pytest.approx(31881.95)
    assert r.bytes_per_s == pytest.approx(38.86 * 2**20)
    assert r.latency_us == pytest.approx(
        {"avg": 1560, "stdev": 336.04, "max": 5380, "p50": 1530, "p75": 1710, "p90": 1930,
         "p99": 2440}
    )  # fmt: skip
    assert r.socket_errors == {} and r.non_2xx_3xx == 0
    assert r.problems() is None


def test_parse_wrk_flags_errors_and_bad_statuses() -> None:
    bad = hb.parse_wrk(WRK_404)
    assert bad.non_2xx_3xx == 11500 and bad.problems() == "non-2xx/3xx 11500"
    resets = hb.parse_wrk(WRK_RESETS)
    assert resets.socket_errors == {"connect": 0, "read": 7242, "write": 0, "timeout": 0}
    assert resets.bytes_read == pytest.approx(152.05 * 1024)
    assert resets.problems() == "read 7242"
    silent = hb.parse_wrk(WRK_SILENT)
    assert silent.requests == 0 and silent.bytes_per_s == 0 and silent.seconds == 2.01


def test_parse_wrk_refuses_what_is_not_a_report() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        hb.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    with pytest.raises(ValueError, match="not a wrk report"):
        hb.parse_wrk(WRK_NGINX.replace("Requests/sec:", "Requests:"))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert hb._percentile(values, 50) == 50
    assert hb._percentile(values, 99) == 99
    assert hb._percentile([7.0], 99) == 7.0


def test_arguments() -> None:
    assert parse_sections(None) == list(hb.SECTIONS)
    assert parse_sections("figure18, keepalive") == ["keepalive", "figure18"]
    with pytest.raises(CliError, match="choose from"):
        parse_sections("bogus")
    assert parse_counts("--workers", "2,1,2", 1, 64) == [2, 1]
    for text in ("0", "x", "1,,2", "-1"):
        with pytest.raises(CliError, match="--workers"):
            parse_counts("--workers", text, 1, 64)


def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "http", "--only", "bogus"]) == 2
    assert "--only 'bogus': choose from keepalive" in capsys.readouterr().err
    assert main(["bench", "http", "--seconds", "0"]) == 2
    assert "--seconds must be at least 1" in capsys.readouterr().err
    assert main(["bench", "http", "--workers", "1,zero"]) == 2
    assert "--workers '1,zero'" in capsys.readouterr().err
    assert main(["bench", "http", "--probes", "0"]) == 2
    assert "--probes must be at least 1" in capsys.readouterr().err


def test_nginx_conf_has_the_fair_settings(tmp_path: Path) -> None:
    conf = hb.nginx_conf(tmp_path, tmp_path / "root", 18080, workers=2)
    for line in ("daemon off;", "master_process on;", "worker_processes 2;", "sendfile on;",
                 "tcp_nopush on;", "keepalive_requests 1000000;", "keepalive_timeout 60;",
                 "access_log off;", "listen 127.0.0.1:18080 reuseport;",
                 "worker_connections 4096;", f"root {tmp_path / 'root'};"):  # fmt: skip
        assert line in conf
    assert f"pid {tmp_path}/nginx.pid;" in conf and f"error_log {tmp_path}/" in conf


def test_select_counts_past_fd_setsize_are_skipped_rows(tmp_path: Path) -> None:
    rows = hb.measure_figure18(
        tmp_path, tmp_path, counts=[1000, 5000], servers=[("netfast", "select")]
    )
    assert [r["idle"] for r in rows] == [1000, 5000]
    assert all("FD_SETSIZE" in r["skipped"] for r in rows)


def test_missing_wrk_gives_skipped_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(
        loopback.shutil, "which", lambda n, *a, **k: None if n == "wrk" else real(n)
    )
    rows = hb.measure_wrk(["keepalive", "large"], tmp_path, tmp_path, seconds=1, workers=[1])
    assert {(r["section"], r["server"]) for r in rows} == {
        ("keepalive", "netfast"), ("keepalive", "nginx"), ("keepalive", "http.server"),
        ("large", "netfast"), ("large", "nginx"),
    }  # fmt: skip
    assert all(r["skipped"] == "wrk is not installed" for r in rows)
    with pytest.raises(hb.BenchError, match="wrk is not installed"):
        hb.run_wrk("http://127.0.0.1:1/", seconds=1, connections=1)


def test_netfast_serves_the_small_file_byte_for_byte(tmp_path: Path) -> None:
    root = tmp_path / "root"
    hb.make_root(root, [])
    want = (root / hb.SMALL_FILE).read_bytes()
    assert len(want) == hb.SMALL_BYTES
    with hb.running("netfast", root, tmp_path, workers=1) as srv:
        assert srv.content_ok
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{srv.url}/{hb.SMALL_FILE}", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read() == want
    assert not srv.alive()


# -- one tiny run of everything -------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/system-deps.sh installs it)")
    out = tmp_path_factory.mktemp("bench-http")
    argv = ["bench", "http", "--quick", "--seconds", "1", "--workers", "1", "--idle", "0,20",
            "--probes", "20", "--queue-idle", "0,20", "--queue-rounds", "5",
            "--json", str(out / "http.json")]  # fmt: skip
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    doc = json.loads((out / "http.json").read_text())
    return doc, out, buf.getvalue()


def _ran(row: dict[str, Any]) -> bool:
    return "error" not in row and "skipped" not in row


def test_run_writes_json_with_the_machine_and_versions(
    run: tuple[dict[str, Any], Path, str],
) -> None:
    doc, _, _ = run
    meta = doc["meta"]
    for key in ("date", "cpu", "nproc", "kernel", "python", "nginx", "wrk", "targets"):
        assert key in meta
    assert meta["sections"] == list(hb.SECTIONS)
    assert meta["wrk"].startswith("wrk ")
    assert meta["files"][hb.SMALL_FILE] == 1024


def test_run_rows_are_well_formed(run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, text = run
    rows = doc["rows"]
    print(json.dumps(rows, indent=1))
    have_nginx = shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    wrk_rows = [r for r in rows if r["section"] in ("keepalive", "close", "large")]
    assert {(r["section"], r["server"]) for r in wrk_rows} == {
        (s, k) for s in ("keepalive", "close", "large")
        for k in ("netfast", "nginx", "http.server") if (s, k) != ("large", "http.server")
    }  # fmt: skip
    for r in wrk_rows:
        if r["server"] == "netfast" or (r["server"] == "nginx" and have_nginx):
            assert _ran(r), (r["server"], r.get("error"), r.get("skipped"))
        if _ran(r):
            assert not r.get("server_died"), r["flagged"]
            assert r["requests_per_s"] > 0 and r["bytes_per_s"] > 0 and r["requests"] > 0
            assert r["content_ok"] is True
            assert 0 < r["latency_us"]["p50"] <= r["latency_us"]["p99"]
        else:
            assert r.get("error") or r.get("skipped")
    assert all("no worker option" in r["note"] for r in wrk_rows if r["server"] == "http.server")
    for t in doc["targets"]:
        assert t["met"] in (True, False, None) and t["goal"] > 0
        if t["met"] is not None:
            assert t["ratio"] > 0
    assert "targets" in text and "Figure 18" in text


def test_run_tap_rows(run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, _ = run
    rows = [r for r in doc["rows"] if r["section"] == "tap"]
    assert [r["load"] for r in rows] == ["tap-keepalive", "tap-large"]
    if (reason := tap_environment()) is not None:
        assert all(r["skipped"] == reason for r in rows)
        return
    for r in rows:
        assert _ran(r) and not r.get("server_died"), (r.get("error"), r.get("flagged"))
        assert r["bytes_per_s"] > 0 and r["content_ok"] is True
        if r["load"] == "tap-keepalive":
            # (a one-second run of the large file may end before its first response does)
            assert r["requests_per_s"] > 0
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith(f"nfh{os.getpid()}x")]


def test_run_figure18_rows_and_plot(run: tuple[dict[str, Any], Path, str]) -> None:
    doc, out, text = run
    rows = [r for r in doc["rows"] if r["section"] == "figure18"]
    lines = {(r["server"], r["poller"]) for r in rows}
    assert lines == {*hb.FIG18_SERVERS, ("netfast-tap", "kqueue")}
    have_nginx = shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    tap_reason = tap_environment()
    for r in rows:
        assert r["idle"] in (0, 20)
        if r["server"] == "netfast-tap" and tap_reason is not None:
            assert r["skipped"] == tap_reason
        elif r["server"] in ("netfast", "netfast-tap") or have_nginx:
            assert _ran(r), (r["server"], r.get("error"), r.get("skipped"))
            assert 0 < r["median_us"] <= r["p99_us"] and r["probes"] == 20
            assert r["idle_open"] == r["idle"]
    queue = [r for r in doc["rows"] if r["section"] == "figure18-queue"]
    assert sorted((r["idle"], r["line"]) for r in queue) == sorted(
        (k, f"netfast-{m}") for k in (0, 20) for m in ("eventqueue", "scan", "stackpoll")
    )
    assert all(_ran(r) and r["rounds"] == 5 for r in queue)
    assert doc["meta"]["queue_idle_counts"] == [0, 20] and doc["meta"]["queue_rounds"] == 5
    assert "netfast-kqueue" in text and "netfast-eventqueue" in text and "netfast-scan" in text
    png = out / "figure18.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert doc["meta"]["plot"] == str(png)


# -- the netfast lines of Figure 18 ---------------------------------------------------------


def _check_queue_rows(rows: list[dict[str, Any]], counts: list[int], active: int) -> None:
    assert [(r["idle"], r["poller"]) for r in rows] == [
        (k, m) for k in counts for m in ("eventqueue", "scan", "stackpoll")
    ]
    for r in rows:
        assert _ran(r), r.get("error")
        assert r["section"] == "figure18-queue" and r["line"] == f"netfast-{r['poller']}"
        assert r["registered"] == r["idle"] + active + 1  # the listener too
        assert r["active"] == active and r["rounds"] == 6
        assert 0 < r["median_us"] <= r["p99_us"] and r["mean_us"] > 0
        assert ("checks_per_round" in r) == (r["poller"] != "stackpoll")


def test_retrieval_queue_checks_follow_active_scan_follows_registered() -> None:
    counts = [0, 40]
    rows = hb.measure_retrieval(counts, rounds=6, active=1)
    _check_queue_rows(rows, counts, 1)
    checks = {(r["idle"], r["poller"]): r.get("checks_per_round") for r in rows}
    # The queue looks at the one active connection each round, however many idle ones there are.
    assert checks[(0, "eventqueue")] == checks[(40, "eventqueue")] == 1
    # The scan looks at every registered socket.
    assert checks[(0, "scan")] == 2 and checks[(40, "scan")] == 42
    # More active connections: the queue's checks grow with them.
    busy = hb.measure_retrieval([40], rounds=6, active=3)
    _check_queue_rows(busy, [40], 3)
    by = {r["poller"]: r for r in busy}
    assert by["eventqueue"]["checks_per_round"] == 3
    assert by["scan"]["checks_per_round"] == 44


def test_retrieval_failure_is_error_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieval, "QUEUE_SETUP_TIMEOUT", -1.0)
    rows = hb.measure_retrieval([0, 10], rounds=2)
    assert [(r["idle"], r["poller"]) for r in rows] == [
        (k, m) for k in (0, 10) for m in ("eventqueue", "scan", "stackpoll")
    ]
    assert all("set up only 0 connections" in r["error"] for r in rows)


def test_figure18_tap_without_a_tap_gives_skipped_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        figure18_tap, "tap_environment", lambda: "needs root (network namespace, TAP)"
    )
    rows = hb.measure_figure18_tap(tmp_path, tmp_path, counts=[100, 0, 9000], limit=2000)
    assert [r["idle"] for r in rows] == [0, 100, 9000]
    assert all(r["line"] == "netfast-kqueue" and r["section"] == "figure18" for r in rows)
    assert rows[0]["skipped"] == rows[1]["skipped"] == "needs root (network namespace, TAP)"
    assert "more than 2000 idle connections" in rows[2]["skipped"]


def _leftovers() -> list[str]:
    """This process's TAPs and namespaces still present (netfast_on_tap names them by pid)."""
    pid = os.getpid()
    nets = [n for n in os.listdir("/sys/class/net") if n.startswith(f"nfh{pid}x")]
    run_netns = Path("/run/netns")
    spaces = [n for n in os.listdir(run_netns) if n.startswith(f"nfhttp{pid}x")] if (
        run_netns.is_dir()
    ) else []  # fmt: skip
    return nets + spaces


def test_figure18_tap_tiny_run(tmp_path: Path) -> None:
    if (reason := tap_environment()) is not None:
        pytest.skip(reason)
    root = tmp_path / "root"
    hb.make_root(root, [])
    rows = hb.measure_figure18_tap(root, tmp_path, counts=[0, 5, 12], probes=5, limit=6, warmup=2)
    print(json.dumps(rows, indent=1))
    assert [r["idle"] for r in rows] == [0, 5, 12]
    for r in rows[:2]:
        assert _ran(r), r.get("error")
        assert r["server"] == "netfast-tap" and r["line"] == "netfast-kqueue"
        assert r["probes"] == 5 and 0 < r["median_us"] <= r["p99_us"]
        assert r["idle_open"] == r["idle"] and r["content_ok"] is True
        assert not r.get("flagged")
    assert "more than 6 idle connections" in rows[2]["skipped"]
    assert not _leftovers()


def test_figure18_tables_and_plot_from_rows(tmp_path: Path) -> None:
    base = {"section": "figure18", "workers": 1}
    rows: list[dict[str, Any]] = [
        {**base, "server": "netfast", "poller": "poll", "idle": 0, "median_us": 100.0,
         "p99_us": 150.0},
        {**base, "server": "netfast", "poller": "poll", "idle": 500, "median_us": 300.0,
         "p99_us": 450.0},
        {**base, "server": "netfast-tap", "poller": "kqueue", "line": "netfast-kqueue",
         "idle": 0, "median_us": 400.0, "p99_us": 900.0},
        {**base, "server": "netfast-tap", "poller": "kqueue", "line": "netfast-kqueue",
         "idle": 500, "skipped": "needs root"},
    ]  # fmt: skip
    q = {"section": "figure18-queue", "server": "netfast-sim", "active": 1}
    for k, ev, sc in ((0, 8.0, 4.0), (1000, 20.0, 3000.0)):
        rows.append({**q, "poller": "eventqueue", "line": "netfast-eventqueue", "idle": k,
                     "registered": k + 2, "median_us": ev, "p99_us": ev,
                     "checks_per_round": 1.0})  # fmt: skip
        rows.append({**q, "poller": "scan", "line": "netfast-scan", "idle": k,
                     "registered": k + 2, "median_us": sc, "p99_us": sc,
                     "checks_per_round": k + 2.0})  # fmt: skip
    rows.append({**q, "poller": "stackpoll", "line": "netfast-stackpoll", "idle": 0,
                 "error": "BenchError: boom"})  # fmt: skip
    console = Console(file=io.StringIO(), width=200)
    console.print(hb.figure18_table(rows))
    console.print(hb.retrieval_table(rows))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for want in ("netfast poll", "netfast-kqueue", "needs root", "netfast-eventqueue",
                 "netfast-scan", "1,002.0", "BenchError: boom"):  # fmt: skip
        assert want in text, want
    answer = hb.figure18_answer(rows)
    assert any(a.startswith("netfast-scan: median 4.0 µs/round at 0 idle") for a in answer)
    assert any(a.startswith("netfast poll: median 100.0 µs at 0 idle") for a in answer)
    assert hb.plot_figure18(rows, tmp_path / "f.png") is None
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_SIGNATURE
    only_queue = [r for r in rows if r["section"] == "figure18-queue"]
    assert hb.plot_figure18(only_queue, tmp_path / "q.png") is None
    assert hb.plot_figure18([], tmp_path / "none.png") == "no Figure 18 point was measured"
