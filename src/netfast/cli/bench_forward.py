"""``netfast bench forward``: the router's vector path from memory, next to the scalar path and a
calibration pass.  See :mod:`netfast.bench.forward` for what is measured."""

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
    p = sub.add_parser("forward", help="vector path Mpps (0/10/100 rules) vs scalar path pps")
    p.add_argument("--rules", action="append", type=int, help="firewall sizes (default 0, 10, 100)")
    p.add_argument("--batch", action="append", type=int, help="batch sizes (default 4096..65536)")
    p.add_argument("--seconds", type=float, help="time per measurement (default 0.5; 0.15 quick)")
    p.add_argument("--rounds", type=int, help="interleaved rounds, best kept (default 3; 1 quick)")
    p.add_argument("--scalar-frames", type=int, help="frames per scalar run (default 20000)")
    p.add_argument("--quick", action="store_true", help="short measurements, small batches")
    p.add_argument(
        "--matcher",
        choices=("auto", "walk", "bitmap"),
        default="auto",
        help="the firewall's batch matcher (default auto; netfast bench firewall compares them)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_forward)


def _table(rows: Sequence[object]) -> Table:
    from netfast.bench import forward as fb

    calib = {r.batch: r.pps for r in rows if isinstance(r, fb.Row) and r.kind == "calibration"}
    table = Table(title="forwarding from memory, one core, 64-byte frames, 2026 table")
    for col in ("path", "rules", "batch", "rate", "target", "of target", "punted", "calib/this"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in rows:
        assert isinstance(r, fb.Row)
        if r.kind == "scalar":
            rate, target, batch = f"{r.pps / 1e3:,.1f} kpps", "100 kpps", "1"
        else:
            rate, target, batch = f"{r.pps / 1e6:.2f} Mpps", "14.88 Mpps", str(r.batch)
        if r.kind == "calibration":
            target = "-"
        met = r.target_pps and r.pps >= r.target_pps
        share = f"{r.ratio:.2f}x" if r.target_pps else "-"
        table.add_row(
            r.kind,
            str(r.rules) if r.kind != "calibration" else "-",
            batch,
            rate,
            target,
            f"[green]{share}[/]" if met else share,
            str(r.punted) if r.kind == "vector" else "-",
            f"{calib[r.batch] / r.pps:.1f}x" if r.kind == "vector" and r.batch in calib else "-",
        )
    return table


def cmd_forward(args: argparse.Namespace) -> int:
    from netfast.bench import forward as fb
    from netfast.route.loaders import default_table_path, load_default_table

    seconds = args.seconds if args.seconds is not None else (0.15 if args.quick else 0.5)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    scalar_frames = args.scalar_frames or (5000 if args.quick else 20000)
    rules = args.rules or list(fb.RULE_COUNTS)
    batches = args.batch or ([4096, 16384] if args.quick else list(fb.BATCH_SIZES))
    if seconds <= 0 or rounds < 1 or scalar_frames < 1:
        raise CliError("--seconds must be positive, --rounds and --scalar-frames at least 1")
    if any(n < 0 for n in rules) or any(b < 1 for b in batches):
        raise CliError("--rules must be >= 0 and --batch >= 1")
    console = Console(width=max(Console().width, 120))
    with console.status("loading the 2026 table") as status:
        rib = load_default_table().rib
        rows = fb.measure(
            rib,
            rule_counts=rules,
            batch_sizes=batches,
            scalar_frames=scalar_frames,
            seconds=seconds,
            rounds=rounds,
            matcher=args.matcher,
            progress=lambda msg: status.update(msg),
        )
    console.print(_table(rows))
    best = {
        n: max((r.pps for r in rows if r.kind == "vector" and r.rules == n), default=0.0)
        for n in rules
    }
    console.print(
        "vector path, best batch: "
        + ", ".join(f"{n} rules {pps / 1e6:.2f} Mpps" for n, pps in best.items())
        + f"  (10GbE 64-byte line rate {fb.LINE_RATE_10G_64B / 1e6:.2f} Mpps)"
    )
    _write_json(
        args.json,
        fb.to_json(
            rows,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            table=str(default_table_path().name),
            routes=len(rib),
            seconds_per_measurement=seconds,
            rounds=rounds,
            scalar_frames=scalar_frames,
            matcher=args.matcher,
        ),
    )
    return 0
