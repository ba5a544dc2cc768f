"""``netfast bench``: reproductions of the paper's figures and measurements of netfast's hot paths.

Each benchmark measures its competitors in the same run and reports ratios, because the machines
it runs on are shared and noisy; absolute figures are printed for the record.  Results go to the
terminal as a table and, with ``--json FILE``, to a JSON file.

- ``netfast bench ethernet``: the paper's Figure 1 (maximal packet and payload rates at Ethernet
  speeds) computed from first principles, plus jumbo frames.
- ``netfast bench checksum``: the RFC 1071 checksum (the CPU fallback the paper says broken
  offload needs) against scapy's and a plain Python loop, and the batch kernel in headers/s.
- ``netfast bench route``: every FIB algorithm against pytricia and py-radix on real BGP tables
  and update streams, with the routing issue's targets checked (see :mod:`netfast.bench.route`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import struct
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from netfast.bench import shared_data_dir
from netfast.cli import CliError
from netfast.wire import checksum as ck
from netfast.wire.ethernet import (
    EXTENDED_SPEEDS,
    FCS_LEN,
    FIGURE1_SPEEDS,
    HEADER_LEN,
    figure1_table,
    max_rates,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="reproduce the paper's figures; measure hot paths")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH")
    # Without a sub-command: every benchmark and one report (netfast.cli.bench_report).
    importlib.import_module("netfast.cli.bench_report").add_arguments(bench)
    eth = bench_sub.add_parser("ethernet", help="the paper's Figure 1: Ethernet packet rates")
    eth.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    eth.set_defaults(func=cmd_ethernet)
    cks = bench_sub.add_parser("checksum", help="Internet checksum throughput vs competitors")
    cks.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    cks.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    cks.set_defaults(func=cmd_checksum)
    rt = bench_sub.add_parser("route", help="FIB algorithms vs pytricia and py-radix")
    rt.add_argument(
        "--table",
        action="append",
        type=Path,
        metavar="FILE",
        help="route table(s) to measure (default: the bundled 2026 table)",
    )
    rt.add_argument(
        "--trend",
        action="store_true",
        help="also the 2002 and 2016 tables from the shared data folder",
    )
    rt.add_argument("--algo", action="append", help="algorithm(s) (default: all)")
    rt.add_argument(
        "--updates",
        type=Path,
        metavar="DIR",
        help="folder of the BGP update streams (default: the shared data folder's bgp-updates)",
    )
    rt.add_argument("--quick", action="store_true", help="fewer addresses and rounds")
    rt.add_argument(
        "--update-seconds",
        type=float,
        metavar="S",
        help="time budget per algorithm of the update replay (default 5; 1 quick)",
    )
    rt.add_argument("--no-competitors", action="store_true", help="skip pytricia and py-radix")
    rt.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="folder for JSON + markdown"
    )
    rt.set_defaults(func=cmd_route)
    for name in (
        "bench_annotate",
        "bench_bdp",
        "bench_firewall",
        "bench_forward",
        "bench_http",
        "bench_ipinput",
        "bench_live",
        "bench_pcb",
        "bench_pfil",
        "bench_tcp",
        "bench_ttcp",
    ):
        importlib.import_module(f"netfast.cli.{name}").register(bench_sub)


def _write_json(path: Path | None, payload: Any) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)  # never leave a half-written file where the user asked for one
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None


def ethernet_rows() -> dict[str, list[dict[str, Any]]]:
    """Figure 1 at the paper's speeds and at 25/100/400 Gb/s, with the time budget per packet
    (``budget_ns_64`` / ``budget_ns_1500``: nanoseconds between two frames at line rate), and
    jumbo frames at 10 Gb/s."""
    figure1 = []
    for in_paper, speeds in ((True, FIGURE1_SPEEDS), (False, EXTENDED_SPEEDS)):
        for r in figure1_table(speeds):
            row = r._asdict()
            row.update(
                in_paper=in_paper, budget_ns_64=1e9 / r.pps_64, budget_ns_1500=1e9 / r.pps_1500
            )
            figure1.append(row)
    figure1.sort(key=lambda row: float(row["bits_per_second"]))
    jumbo = []
    for payload in (1500, 4000, 9000, 16384 - HEADER_LEN - FCS_LEN):
        frame = payload + HEADER_LEN + FCS_LEN
        pps, payload_rate = max_rates(10e9, frame)
        jumbo.append(
            {
                "payload": payload,
                "frame": frame,
                "pps": pps,
                "payload_bps": payload_rate * 8,
                "payload_share": payload_rate * 8 / 10e9,
            }
        )
    return {"figure1": figure1, "jumbo": jumbo}


def cmd_ethernet(args: argparse.Namespace) -> int:
    data = ethernet_rows()
    table = Table(title="Figure 1: maximal packet and payload rate at Ethernet speeds")
    cols = ("speed", "pps @64", "ns/packet @64", "pps @1500", "payload bit/s @1500")
    for col in cols:
        table.add_column(col, justify="right")
    for r in data["figure1"]:
        table.add_row(
            r["speed"] + ("" if r["in_paper"] else " *"),
            f"{r['pps_64']:,.0f}",
            f"{r['budget_ns_64']:,.1f}",
            f"{r['pps_1500']:,.0f}",
            f"{r['payload_bps_1500']:,.0f}",
        )
    console = Console()
    console.print(table)
    console.print("* not in the paper's figure; computed the same way")
    jumbo = Table(title="Jumbo frames at 10 Gb/s")
    for col in ("payload bytes", "frame bytes", "pps", "payload bit/s", "payload share"):
        jumbo.add_column(col, justify="right")
    for j in data["jumbo"]:
        jumbo.add_row(
            f"{j['payload']:,}",
            f"{j['frame']:,}",
            f"{j['pps']:,.0f}",
            f"{j['payload_bps']:,.0f}",
            f"{100 * j['payload_share']:.2f}%",
        )
    console.print(jumbo)
    console.print(
        "Per frame on the wire: 8 bytes preamble+SFD, 14 header, payload padded to 46, "
        "4 FCS, 12 inter-frame gap."
    )
    _write_json(args.json, data)
    return 0


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``: best of 3 timed rounds after a warm-up."""
    fn()
    n = 1
    while True:  # find a call count that takes about seconds/3
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= seconds / 3 or n >= 1 << 24:
            break
        n *= 4
    best = dt
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def _python_loop_checksum(data: bytes) -> int:
    """RFC 1071 as a per-word Python loop: what "no per-byte loop" is measured against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def cmd_checksum(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise CliError(f"--seconds must be positive, got {args.seconds}")
    scapy_checksum: Callable[[bytes], int] | None
    try:
        from scapy.utils import checksum as scapy_checksum
    except ImportError:  # scapy is a test extra
        scapy_checksum = None
    rng = np.random.default_rng(1)
    results: list[dict[str, Any]] = []
    table = Table(title="RFC 1071 checksum, one buffer per call (calls/s; ratio = netfast/other)")
    for col in (
        "bytes",
        "netfast",
        "scapy",
        "python loop",
        "vs scapy",
        "vs loop",
        "netfast Gbit/s",
    ):
        table.add_column(col, justify="right")
    for size in (20, 64, 576, 1500, 9000, 65535):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        ours = _rate(partial(ck.internet_checksum, data), args.seconds)
        loop = _rate(partial(_python_loop_checksum, data), args.seconds)
        theirs = None
        if scapy_checksum is not None:
            theirs = _rate(partial(scapy_checksum, data), args.seconds)
        results.append({"bytes": size, "netfast": ours, "scapy": theirs, "python_loop": loop})
        table.add_row(
            f"{size:,}",
            f"{ours:,.0f}",
            "-" if theirs is None else f"{theirs:,.0f}",
            f"{loop:,.0f}",
            "-" if theirs is None else f"{ours / theirs:.1f}x",
            f"{ours / loop:.1f}x",
            f"{ours * size * 8 / 1e9:.2f}",
        )
    console = Console()
    console.print(table)
    # The vector path: IPv4 header checksums of a whole batch in one kernel call.
    n = 1 << 20
    headers = rng.integers(0, 256, (n, 20), dtype=np.uint8)
    batch_rate = n * _rate(lambda: ck.batch_checksum(headers, 0, 20), args.seconds * 3)
    numpy_rate = n * _rate(lambda: ck.batch_ipv4_header_checksum(headers), args.seconds * 3)
    one_header = headers[0].tobytes()
    scalar_rate = _rate(lambda: ck.internet_checksum(one_header), args.seconds)
    batch = Table(title="IPv4 header checksums over a batch of 1M headers (headers/s)")
    for col in ("numba kernel", "numpy columns", "scalar calls", "kernel vs scalar"):
        batch.add_column(col, justify="right")
    batch.add_row(
        f"{batch_rate:,.0f}",
        f"{numpy_rate:,.0f}",
        f"{scalar_rate:,.0f}",
        f"{batch_rate / scalar_rate:.1f}x",
    )
    console.print(batch)
    _write_json(
        args.json,
        {
            "per_buffer": results,
            "batch_headers_per_s": {
                "numba": batch_rate,
                "numpy": numpy_rate,
                "scalar": scalar_rate,
            },
        },
    )
    return 0


TREND_TABLES = ("ipv4-historic-20020722-ris-rrc05.txt.gz", "ipv4-dfz-20160202-caida-pfx2as.txt.gz")


def cmd_route(args: argparse.Namespace) -> int:
    from netfast.bench import route as rb
    from netfast.route.loaders import default_table_path
    from netfast.route.table import algorithms

    known = algorithms()
    algos = args.algo or list(known)
    for a in algos:
        if a not in known:
            raise CliError(f"unknown FIB algorithm {a!r}; choose from {sorted(known)}")
    data = shared_data_dir()
    tables = list(args.table or [default_table_path()])
    if args.trend:
        if data is None:
            raise CliError("--trend needs the shared data folder (set NETFAST_SHARED_DATA)")
        tables = [data / "routes" / t for t in TREND_TABLES] + tables
    for t in tables:
        if not t.exists():
            raise CliError(f"{t}: no such file")
    updates = args.updates or (data / "bgp-updates" if data is not None else None)
    console = Console(width=max(Console().width, 180))
    if updates is None or not updates.is_dir():
        console.print("[yellow]no BGP update streams found: update rates are not measured[/]")
        updates = None
    update_s = args.update_seconds
    if update_s is None:
        update_s = 1.0 if args.quick else 5.0
    if not update_s > 0:
        raise CliError("--update-seconds must be positive")
    results = []
    with console.status("measuring") as status:
        for t in tables:
            results.append(
                rb.measure_table(
                    t,
                    updates,
                    algos,
                    n_addrs=(1 << 18) if args.quick else (1 << 20),
                    rounds=2 if args.quick else 5,
                    update_budget_s=update_s,
                    scalar_n=50_000 if args.quick else 200_000,
                    max_updates=150_000 if args.quick else None,
                    competitors=not args.no_competitors,
                    progress=lambda msg: status.update(f"measuring {msg}"),
                )
            )
    md: list[str] = ["# netfast bench route", ""]
    for res in results:
        table, lines = _route_table(res)
        console.print(table)
        md += lines
        checks = rb.check_targets(res)
        if checks:
            tt = Table(title=f"{res.table}: targets")
            for col in ("target", "measured", "met"):
                tt.add_column(col)
            md += ["", "| target | measured | met |", "|---|---|---|"]
            for target, measured, _, met in checks:
                tt.add_row(target, measured, "[green]yes[/]" if met else "[red]no[/]")
                md.append(f"| {target} | {measured} | {'yes' if met else 'no'} |")
            console.print(tt)
        md.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    _write_json(args.out / "route.json", rb.to_json(results))
    md_path = args.out / "route.md"
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text("\n".join(md) + "\n")
    os.replace(tmp, md_path)
    console.print(f"wrote {args.out / 'route.json'} and {md_path}")
    return 0


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:,.2f}M"


def _route_table(res: Any) -> tuple[Table, list[str]]:
    cols = (
        "algorithm", "build s", "MiB", "B/prefix", "scalar/s", "batch/s inside",
        "batch/s skewed", "batch/s uniform", "updates/s", "batch/s during updates",
        "longest reader batch ms",
    )  # fmt: skip
    title = (
        f"{res.table}: {res.prefixes:,} prefixes, loaded in {res.load_s:.2f} s "
        f"(calibration: numpy gather {res.calibration_gather_lps / 1e6:,.0f}M/s)"
    )
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c == "algorithm" else "right")
    lines = [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for a in res.algorithms:
        row = [
            a.name,
            f"{a.build_s:.2f}",
            "-" if a.memory_bytes is None else f"{a.memory_bytes / 2**20:.2f}",
            "-" if a.bytes_per_prefix is None else f"{a.bytes_per_prefix:.1f}",
            _fmt_rate(a.scalar_lps),
            _fmt_rate(a.batch_lps_inside),
            _fmt_rate(a.batch_lps_skewed) if a.batch_lps_skewed else "-",
            _fmt_rate(a.batch_lps_uniform) if a.batch_lps_uniform else "-",
            "-" if a.updates_per_s is None else f"{a.updates_per_s:,.0f}",
            _fmt_rate(a.batch_lps_during_updates),
            "-" if a.max_reader_pause_ms is None else f"{a.max_reader_pause_ms:.1f}",
        ]
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    return table, lines
