"""``netfast bench`` without a sub-command: every benchmark, one report with plots.

- ``netfast bench [--quick] [--out DIR] [--only A,B]`` runs the stages
  (:data:`netfast.bench.report.run.STAGES`) one after another, each as its own
  ``netfast bench NAME`` child with a time limit, shows a progress bar per stage, and writes
  ``DIR/REPORT.md``, ``DIR/run.json`` (the header and every stage's raw JSON) and the PNG plots.
- ``netfast bench --render [--out DIR]`` writes REPORT.md and the plots again from
  ``DIR/run.json``, measuring nothing.
- ``netfast bench --readme README.md [--out DIR]`` replaces the README's measured blocks with
  the tables of ``DIR/run.json`` (:mod:`netfast.bench.report.readme`).

A run that fails part-way writes nothing over an earlier report: the files are written only once
every stage has ended, each through a temporary file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from netfast.cli import CliError


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--quick",
        action="store_true",
        help="short stages (the report's header gives the time taken)",
    )
    bench.add_argument(
        "--out", type=Path, default=Path("report"), help="report folder (default ./report)"
    )
    bench.add_argument("--only", metavar="STAGES", help="comma-separated stages (default: all)")
    bench.add_argument(
        "--render", action="store_true", help="write REPORT.md again from OUT/run.json"
    )
    bench.add_argument(
        "--readme",
        type=Path,
        metavar="FILE",
        help="update FILE's measured blocks from OUT/run.json",
    )
    bench.set_defaults(func=cmd_report)


def _names(only: str | None) -> list[str]:
    from netfast.bench.report.run import stage_names

    known = stage_names()
    if only is None:
        return known
    names = [n.strip() for n in only.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise CliError(f"--only: unknown stage(s) {bad or only!r}; choose from {', '.join(known)}")
    return names


def cmd_report(args: argparse.Namespace) -> int:
    from netfast.bench.report import readme
    from netfast.bench.report.render import load_run, write_report
    from netfast.bench.report.run import run_all

    console = Console()
    if args.readme is not None:
        try:
            changed = readme.update(args.readme, load_run(args.out))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        console.print(f"{args.readme}: {len(changed)} block(s) written: {', '.join(changed)}")
        return 0
    if args.render:
        try:
            run = load_run(args.out)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        write_report(run, args.out)
        console.print(f"wrote {args.out / 'REPORT.md'} from {args.out / 'run.json'}")
        return 0
    names = _names(args.only)
    argv = getattr(args, "command_line", None) or ["bench"]
    with Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_stage(stage: Any, index: int) -> Any:
            limit = stage.quick_timeout if args.quick else stage.full_timeout
            task = progress.add_task(
                f"{index + 1}/{len(names)} {stage.name}: {stage.title}", total=limit, status=""
            )
            tasks[stage.name] = task
            return lambda elapsed: progress.update(task, completed=elapsed)

        def on_done(stage: Any, entry: dict[str, Any]) -> None:
            task = tasks[stage.name]
            status = entry["status"] + ("" if entry["status"] == "ok" else f": {entry['reason']}")
            progress.update(task, completed=progress.tasks[task].total, status=status[:60])

        run = run_all(
            args.out, quick=args.quick, names=names, argv=argv, on_stage=on_stage, on_done=on_done
        )
    files = write_report(run, args.out)
    bad = [n for n, e in run["stages"].items() if e["status"] != "ok"]
    console.print(f"wrote {', '.join(str(f) for f in files)}")
    if bad:
        console.print(f"[yellow]not measured: {', '.join(bad)} (reasons in REPORT.md)[/]")
    return 0
