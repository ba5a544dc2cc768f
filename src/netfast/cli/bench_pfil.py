"""``netfast bench pfil``: the three pfil hook-list designs measured against each other.

See :mod:`netfast.bench.pfil` for what is measured and what CPython's GIL lets it show.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.bench import pfil as pb
from netfast.cli import CliError
from netfast.cli.bench import _write_json
from netfast.pfil.heads import DEFAULT_IMPL, IMPLS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pfil", help="pfil hook lists: tuple vs linked vs rwlock, with churn")
    p.add_argument(
        "--seconds",
        type=float,
        help="time per design and configuration, split over the rounds (default 1.5; 0.3 quick)",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    p.add_argument("--quick", action="store_true", help="short measurements (about 10 s in all)")
    p.add_argument(
        "--churn-us",
        type=float,
        default=pb.CHURN_US,
        metavar="US",
        help=f"writer period under churn, microseconds (default {pb.CHURN_US:g})",
    )
    p.add_argument("--impl", action="append", choices=IMPLS, help="design(s) (default: all)")
    p.add_argument("--hooks", action="append", type=int, help="hook count(s) (default 1, 3, 10)")
    p.add_argument("--readers", action="append", type=int, help="reader threads (default 1, 2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_pfil)


def _fmt(x: float) -> str:
    return f"{x / 1e6:.3f}M"


def _table(cells: Sequence[pb.Cell], impls: Sequence[str], churn: float | None) -> Table:
    title = "no churn" if churn is None else f"churn: a hook added/removed every {churn:g} us"
    table = Table(title=f"pfil reader throughput, runs/s summed over readers ({title})")
    table.add_column("hooks", justify="right")
    table.add_column("readers", justify="right")
    for impl in impls:
        table.add_column(impl, justify="right")
    ratio_to = [i for i in impls if i != "rwlock"] if "rwlock" in impls else []
    for impl in ratio_to:
        table.add_column(f"{impl}/rwlock", justify="right")
    if churn is not None:
        for impl in impls:
            table.add_column(f"{impl} chg/s", justify="right")
    rows: dict[tuple[int, int], dict[str, pb.Cell]] = {}
    for c in cells:
        if c.churn_us == churn:
            rows.setdefault((c.hooks, c.readers), {})[c.impl] = c
    for (hooks, readers), by_impl in rows.items():
        best = max(c.runs_per_s for c in by_impl.values())
        row = [str(hooks), str(readers)]
        for impl in impls:
            text = _fmt(by_impl[impl].runs_per_s)
            row.append(f"[bold]{text}[/]" if by_impl[impl].runs_per_s == best else text)
        for impl in ratio_to:
            row.append(f"{by_impl[impl].runs_per_s / by_impl['rwlock'].runs_per_s:.2f}x")
        if churn is not None:
            row += [f"{by_impl[impl].changes_per_s:,.0f}" for impl in impls]
        table.add_row(*row)
    return table


def cmd_pfil(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 1.5)
    if seconds <= 0:
        raise CliError(f"--seconds must be positive, got {seconds}")
    if args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")
    if args.churn_us <= 0:
        raise CliError(f"--churn-us must be positive, got {args.churn_us}")
    hooks = args.hooks or list(pb.HOOK_COUNTS)
    readers = args.readers or list(pb.READER_COUNTS)
    if any(h < 0 for h in hooks) or any(r < 1 for r in readers):
        raise CliError("--hooks must be >= 0 and --readers >= 1")
    impls = list(dict.fromkeys(args.impl or IMPLS))
    console = Console(width=max(Console().width, 160))
    with console.status("measuring") as status:
        cells = pb.measure(
            impls,
            hooks,
            readers,
            churn_us=args.churn_us,
            seconds=seconds,
            rounds=args.rounds,
            progress=lambda msg: status.update(f"measuring {msg}"),
        )
    console.print(_table(cells, impls, None))
    console.print(_table(cells, impls, args.churn_us))
    scores = pb.scores(cells)
    win = pb.winner(cells)
    console.print(
        "score (geometric mean of throughput relative to the best design per configuration): "
        + ", ".join(f"{impl} {scores[impl]:.3f}" for impl in impls)
    )
    if "rwlock" in impls:
        vs = pb.ratio_vs(cells, "rwlock")
        console.print(
            "vs the rwlock design (geometric mean): "
            + ", ".join(f"{impl} {vs[impl]:.2f}x" for impl in impls if impl != "rwlock")
        )
    note = "" if win == DEFAULT_IMPL else f" (the default is still {DEFAULT_IMPL!r})"
    console.print(f"winner: [bold]{win}[/]{note}")
    _write_json(
        args.json,
        pb.to_json(
            cells,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            switch_interval_s=sys.getswitchinterval(),
            seconds_per_measurement=seconds,
            rounds=args.rounds,
            churn_us=args.churn_us,
            default_impl=DEFAULT_IMPL,
        ),
    )
    return 0
