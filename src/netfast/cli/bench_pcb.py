"""``netfast bench pcb``: PCB lookup (hash table vs list vs dict) and input serialization (global
lock vs per-connection lock vs per-connection input queue).

See :mod:`netfast.bench.pcb` for what is measured and what CPython's GIL lets it show.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netfast.bench import pcb
from netfast.cli import CliError
from netfast.cli.bench import _write_json

#: Most producer threads accepted (the machines this runs on have a few cores).
MAX_THREADS = 64


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pcb", help="PCB lookup and the input queue vs a global lock")
    p.add_argument("--quick", action="store_true", help="fewer sizes, short runs (under 10 s)")
    p.add_argument(
        "--seconds",
        type=float,
        help="time per structure/design and size, split over the rounds "
        "(default 0.6 lookup and 1.5 locking; quick 0.12 and 0.16)",
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds, best kept (default 3; quick 2)")
    p.add_argument(
        "--n",
        action="append",
        type=int,
        metavar="N",
        help="lookup: connection count(s) (default 100, 1000, 10000, 100000; quick up to 10000)",
    )
    p.add_argument(
        "--connections",
        action="append",
        type=int,
        metavar="M",
        help="locking: connection count(s) (default 1, 16, 256, 4096; quick up to 256)",
    )
    p.add_argument(
        "--threads", action="append", type=int, metavar="T", help="producer threads (default 1, 2)"
    )
    p.add_argument(
        "--passes",
        type=int,
        default=1,
        help="checksum passes over the 1460-byte payload per segment (default 1)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the 4-tuples and the wire order")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_pcb)


def _lookup_table(doc: dict[str, Any]) -> Table:
    look = doc["lookup"]
    impls = list(dict.fromkeys(r["impl"] for r in look["rows"]))
    table = Table(title="PCB demux: ns/lookup (lookups/s) -- 90 % established, 10 % to a listener")
    table.add_column("N", justify="right")
    for impl in impls:
        table.add_column(impl, justify="right")
    table.add_column("list lookups", justify="right")
    table.add_column("table/list", justify="right")
    table.add_column("table/dict", justify="right")
    table.add_column("max chain", justify="right")
    table.add_column("mean chain", justify="right")
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    for r in look["rows"]:
        rows.setdefault(r["n"], {})[r["impl"]] = r
    ratios = {r["n"]: r for r in look["ratios"]}
    chains = {b["n"]: b for b in look["buckets"]}

    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:,.2f}x"

    for n, by in rows.items():
        cells = [f"{n:,}"]
        for impl in impls:
            r = by[impl]
            cells.append(f"{r['ns_per_lookup']:,.0f} ({r['lookups_per_s'] / 1e6:.3f}M)")
        cells.append(f"{by['list']['lookups']:,}" if "list" in by else "-")
        cells += [ratio(ratios[n]["table_over_list"]), ratio(ratios[n]["table_over_dict"])]
        chain = chains.get(n)
        cells += [str(chain["max_chain"]), f"{chain['mean_chain']:.2f}"] if chain else ["-", "-"]
        table.add_row(*cells)
    return table


def _locking_table(doc: dict[str, Any]) -> Table:
    lock = doc["locking"]
    designs = list(dict.fromkeys(r["design"] for r in lock["rows"]))
    table = Table(title=f"TCP input: segments/s ({lock['work']['description']})")
    table.add_column("connections", justify="right")
    table.add_column("threads", justify="right")
    for d in designs:
        table.add_column(d, justify="right")
    others = [d for d in designs if d != "global"] if "global" in designs else []
    for d in others:
        table.add_column(f"{d}/global", justify="right")
    table.add_column("once, in order", justify="center")
    table.add_column("drops", justify="right")
    cells: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in lock["rows"]:
        cells.setdefault((r["connections"], r["threads"]), {})[r["design"]] = r
    over = {(r["connections"], r["threads"], r["design"]): r["over_global"] for r in lock["ratios"]}
    for (m, t), by in cells.items():
        best = max(r["segments_per_s"] for r in by.values())
        row = [f"{m:,}", str(t)]
        for d in designs:
            text = f"{by[d]['segments_per_s'] / 1e3:,.0f}k"
            row.append(f"[bold]{text}[/]" if by[d]["segments_per_s"] == best else text)
        row += [f"{over[(m, t, d)]:.2f}x" for d in others]
        ok = all(r["exactly_once"] and r["in_order"] for r in by.values())
        row.append("yes" if ok else "[red]NO[/]")
        row.append(f"{sum(r['drops'] for r in by.values()):,}")
        table.add_row(*row)
    return table


def _positive(name: str, values: Sequence[int] | None, top: int | None = None) -> None:
    if values is None:
        return
    for v in values:
        if v < 1 or (top is not None and v > top):
            limit = f" and at most {top}" if top is not None else ""
            raise CliError(f"{name} must be at least 1{limit}, got {v}")


def cmd_pcb(args: argparse.Namespace) -> int:
    if args.seconds is not None and not args.seconds > 0:
        raise CliError(f"--seconds must be positive, got {args.seconds}")
    if args.rounds is not None and args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")
    if args.passes < 1:
        raise CliError(f"--passes must be at least 1, got {args.passes}")
    _positive("--n", args.n, 1_000_000)
    _positive("--connections", args.connections, 1_000_000)
    _positive("--threads", args.threads, MAX_THREADS)
    console = Console(width=max(Console().width, 160))
    with console.status("measuring") as status:
        result = pcb.measure(
            quick=args.quick,
            seconds=args.seconds,
            rounds=args.rounds,
            ns=list(dict.fromkeys(args.n)) if args.n else None,
            conn_counts=list(dict.fromkeys(args.connections)) if args.connections else None,
            thread_counts=list(dict.fromkeys(args.threads)) if args.threads else pcb.THREADS,
            passes=args.passes,
            seed=args.seed,
            progress=lambda msg: status.update(f"measuring {msg}"),
        )
    doc = pcb.to_json(
        result,
        date=datetime.date.today().isoformat(),
        python=sys.version.split()[0],
        machine=platform.machine(),
        cpus=os.cpu_count(),
        switch_interval_s=sys.getswitchinterval(),
        quick=args.quick,
        seed=args.seed,
    )
    console.print(_lookup_table(doc))
    console.print(f"lookup: {doc['lookup']['verdict']}")
    console.print(_locking_table(doc))
    console.print(f"locking: {doc['locking']['verdict']}")
    console.print(f"verdict: [bold]{doc['verdict']}[/]")
    _write_json(args.json, doc)
    return 0
