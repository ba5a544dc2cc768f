"""``netfast bench annotate``: addresses in Parquet to prefix and origin AS -- netfast, DuckDB
(a range join, and calling netfast's SQL functions) and a pytricia loop on one file.  See
:mod:`netfast.bench.annotate` for what is measured."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("annotate", help="Parquet address annotation: netfast vs DuckDB, pytricia")
    p.add_argument("--rows", type=int, help="rows in the generated file (default 4M; 400k quick)")
    p.add_argument("--rounds", type=int, help="timed runs each, best kept (default 2; 1 quick)")
    p.add_argument("--quick", action="store_true", help="a small file, one round")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_annotate)


def cmd_annotate(args: argparse.Namespace) -> int:
    from netfast.bench import annotate as ab
    from netfast.route.loaders import default_table_path, load_default_table

    rows = args.rows if args.rows is not None else (400_000 if args.quick else 4_000_000)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    if rows < 1000 or rounds < 1:
        raise CliError("--rows must be at least 1000 and --rounds at least 1")
    console = Console(width=max(Console().width, 120))
    with console.status("loading the 2026 table") as status:
        rib = load_default_table().rib
        results, facts = ab.measure(rib, rows, rounds, progress=lambda m: status.update(m))
    table = Table(title=f"annotating {rows:,} Parquet rows with prefix and origin AS, one process")
    for col in ("who", "rows/s", "target", "of target", "vs DuckDB join"):
        table.add_column(col, justify="left" if col == "who" else "right")
    join = next(r.rows_per_s for r in results if r.name.startswith("DuckDB, ASOF"))
    for r in results:
        share = f"{r.rows_per_s / r.target:.2f}x" if r.target else "-"
        table.add_row(
            r.name + (f" ({r.note})" if r.note else ""),
            f"{r.rows_per_s / 1e6:.2f} M",
            f"{r.target / 1e6:.0f} M" if r.target else "-",
            f"[green]{share}[/]" if r.target and r.rows_per_s >= r.target else share,
            f"{r.rows_per_s / join:.2f}x",
        )
    console.print(table)
    single = next(
        r.rows_per_s for r in results if r.name.startswith("netfast, Parquet -> Parquet, text")
    )
    dask = next(r.rows_per_s for r in results if r.name.startswith("Dask"))
    console.print(
        f"Dask with 2 workers: {dask / single:.2f}x the single process (target 1.6x); start-up "
        f"(a {facts['dask_image_bytes'] / 1e6:.1f} MB table image shipped, each worker's "
        f"annotator built: {', '.join(f'{b:.1f}' for b in facts['dask_worker_build_seconds'])}"
        f" s) {facts['dask_ship_seconds']:.2f} s, not in the figure; rows per worker "
        f"{facts['dask_rows_per_worker']}"
    )
    console.print(
        f"file: {facts['file_bytes'] / 1e6:.1f} MB; netfast's annotator built in "
        f"{facts['annotator_build_s']:.2f} s; DuckDB's {facts['duckdb_ranges']:,} ranges built in "
        f"{facts['duckdb_ranges_build_s']:.2f} s (not in its figure).  netfast = DuckDB's join "
        f"row by row: {facts['netfast_equals_duckdb_join']}; = pytricia on its sample: "
        f"{facts['netfast_equals_pytricia_sample']}"
    )
    _write_json(
        args.json,
        ab.to_json(
            results,
            facts,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            table=str(default_table_path().name),
        ),
    )
    return (
        0 if facts["netfast_equals_duckdb_join"] and facts["netfast_equals_pytricia_sample"] else 1
    )
