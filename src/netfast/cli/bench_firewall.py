"""``netfast bench firewall``: the firewall's two batch matchers (rule-major walk, per-field
bitmaps) and its scalar path from 1 to 1,000 rules.  See :mod:`netfast.bench.firewall`."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("firewall", help="ipfw matchers: walk vs bitmaps vs scalar, 1-1000 rules")
    p.add_argument("--rules", action="append", type=int, help="rule counts (default 1..1000)")
    p.add_argument("--workload", action="append", help="walk-through, border (default both)")
    p.add_argument("--seconds", type=float, help="time per measurement (default 0.6; 0.15 quick)")
    p.add_argument("--rounds", type=int, help="interleaved rounds, best kept (default 3; 1 quick)")
    p.add_argument("--quick", action="store_true", help="short measurements, 1/10/100 rules")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_firewall)


def _table(cells: Sequence[object]) -> Table:
    from netfast.bench import firewall as fw

    table = Table(title=f"ipfw batch matchers, batches of {fw.BATCH}, packets/s (best of rounds)")
    for col in ("workload", "rules", "walk", "bitmaps", "bitmaps/walk", "scalar", "decided",
                "bitmap build", "bitmap size"):  # fmt: skip
        table.add_column(col, justify="left" if col == "workload" else "right")
    for c in cells:
        assert isinstance(c, fw.Cell)
        ratio = f"{c.ratio:.2f}x"
        table.add_row(
            c.workload,
            str(c.rules),
            f"{c.walk_pps / 1e6:.2f} M",
            f"{c.bitmap_pps / 1e6:.2f} M",
            f"[green]{ratio}[/]" if c.ratio >= 1 else ratio,
            f"{c.scalar_pps / 1e3:.0f} k",
            f"{100 * c.decided:.1f}%",
            f"{c.build_ms:.1f} ms",
            f"{c.bitmap_bytes / 1024:.0f} KiB",
        )
    return table


def cmd_firewall(args: argparse.Namespace) -> int:
    from netfast.bench import firewall as fw
    from netfast.route.loaders import default_table_path, load_default_table

    seconds = args.seconds if args.seconds is not None else (0.15 if args.quick else 0.6)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    rules = args.rules or ([1, 10, 100] if args.quick else list(fw.RULE_COUNTS))
    workloads = list(dict.fromkeys(args.workload or fw.WORKLOADS))
    if seconds <= 0 or rounds < 1:
        raise CliError("--seconds must be positive and --rounds at least 1")
    if any(n < 1 for n in rules):
        raise CliError("--rules must be at least 1 (the default rule)")
    bad = [w for w in workloads if w not in fw.WORKLOADS]
    if bad:
        raise CliError(f"unknown workload {bad[0]!r} (known: {', '.join(fw.WORKLOADS)})")
    console = Console(width=max(Console().width, 130))
    with console.status("loading the 2026 table") as status:
        rib = load_default_table().rib
        cells = fw.measure(
            rib,
            workloads,
            sorted(set(rules)),
            seconds=seconds,
            rounds=rounds,
            progress=lambda msg: status.update(f"measuring {msg}"),
        )
    console.print(_table(cells))
    console.print("verdicts and counters of both matchers compared on every batch: equal")
    for w in workloads:
        g = fw.growth(cells, w)
        if g:
            console.print(
                f"{w}: {g['rules']:.0f}x the rules cost the walk {g['walk']:.1f}x per packet, "
                f"the bitmaps {g['bitmap']:.1f}x"
            )
    _write_json(
        args.json,
        fw.to_json(
            cells,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            table=str(default_table_path().name),
            seconds_per_measurement=seconds,
            rounds=rounds,
        ),
    )
    return 0
