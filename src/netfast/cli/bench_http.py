"""``netfast bench http``: ``netfast httpd`` against nginx and ``http.server`` (1 KiB keep-alive,
a new connection per request, a large file), the netfast backend over a TAP, and the paper's
Figure 18 (response time against idle connections per poller, the netfast backend's event queue
over a TAP among them; and, in process, netfast's event queue against a poll-style scan).

Targets are printed next to the figures; a missed target is reported, not an error.  See
:mod:`netfast.bench.http` for what is measured."""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from netfast.cli import CliError
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "http", help="HTTP: netfast httpd vs nginx and http.server; Figure 18 (idle connections)"
    )
    p.add_argument(
        "--only",
        metavar="SECTIONS",
        help="comma-separated sections among keepalive, close, large, tap, figure18 (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="10 MB large file (1 MB over the TAP), idle counts 0,100,500 (in process "
        "0,100,1000), 2 s runs",
    )
    p.add_argument("--seconds", type=int, help="seconds per wrk run (default 5; quick 2)")
    p.add_argument(
        "--workers", metavar="N,N", help="worker counts of the wrk sections (default 1,2)"
    )
    p.add_argument(
        "--idle",
        metavar="K,K",
        help="Figure 18's idle-connection counts (default 0,100,500,900,2000,5000; "
        "quick 0,100,500)",
    )
    p.add_argument(
        "--probes", type=int, help="timed requests per Figure 18 point (default 300; quick 100)"
    )
    p.add_argument(
        "--queue-idle",
        metavar="K,K",
        help="idle-connection counts of the in-process event-queue measurement "
        "(default 0,100,1000,5000,10000; quick 0,100,1000)",
    )
    p.add_argument(
        "--queue-rounds",
        type=int,
        help="timed rounds per in-process event-queue point (default 100; quick 50)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="Figure 18 as a PNG (default: figure18.png beside --json; none without either)",
    )
    p.set_defaults(func=cmd_http)


def parse_sections(only: str | None) -> list[str]:
    """The sections named by ``--only`` (all when None), in the benchmark's order."""
    from netfast.bench.http.common import SECTIONS

    if only is None:
        return list(SECTIONS)
    names = {s.strip() for s in only.split(",") if s.strip()}
    unknown = sorted(names - set(SECTIONS))
    if unknown or not names:
        raise CliError(f"--only {only!r}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def parse_counts(flag: str, text: str, lo: int, hi: int) -> list[int]:
    """A comma-separated list of whole numbers in ``lo..hi``, without repeats, in order."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isascii() or not part.isdigit() or not lo <= int(part) <= hi:
            raise CliError(f"{flag} {text!r}: give whole numbers in {lo}..{hi}, comma-separated")
        if int(part) not in out:
            out.append(int(part))
    return out


def cmd_http(args: argparse.Namespace) -> int:
    from netfast.bench.http.common import (
        FIG18_COUNTS,
        FIG18_PROBES,
        FIG18_QUEUE_COUNTS,
        FIG18_QUEUE_QUICK_COUNTS,
        FIG18_QUEUE_QUICK_ROUNDS,
        FIG18_QUEUE_ROUNDS,
        FIG18_QUICK_COUNTS,
        FIG18_TAP_LIMIT,
        LARGE_BYTES,
        QUICK_LARGE_BYTES,
        QUICK_TAP_LARGE_BYTES,
        SELECT_LIMIT,
        TAP_LARGE_BYTES,
        TARGETS,
        WORKERS,
    )
    from netfast.bench.http.figure18 import measure_figure18
    from netfast.bench.http.figure18_tap import measure_figure18_tap
    from netfast.bench.http.loopback import measure_wrk
    from netfast.bench.http.report import environment, plot_figure18, targets
    from netfast.bench.http.retrieval import measure_retrieval
    from netfast.bench.http.servers import make_root
    from netfast.bench.http.tables import (
        figure18_answer,
        figure18_table,
        retrieval_table,
        tap_table,
        targets_table,
        wrk_table,
    )
    from netfast.bench.http.tap import measure_tap

    sections = parse_sections(args.only)
    seconds = args.seconds if args.seconds is not None else (2 if args.quick else 5)
    if seconds < 1:
        raise CliError(f"--seconds must be at least 1, got {seconds}")
    workers = parse_counts("--workers", args.workers, 1, 64) if args.workers else list(WORKERS)
    if args.idle:
        counts = parse_counts("--idle", args.idle, 0, 100_000)
    else:
        counts = list(FIG18_QUICK_COUNTS if args.quick else FIG18_COUNTS)
    probes = args.probes if args.probes is not None else (100 if args.quick else FIG18_PROBES)
    if probes < 1:
        raise CliError(f"--probes must be at least 1, got {probes}")
    if args.queue_idle:
        queue_counts = parse_counts("--queue-idle", args.queue_idle, 0, 40_000)
    else:
        queue_counts = list(FIG18_QUEUE_QUICK_COUNTS if args.quick else FIG18_QUEUE_COUNTS)
    queue_rounds = args.queue_rounds
    if queue_rounds is None:
        queue_rounds = FIG18_QUEUE_QUICK_ROUNDS if args.quick else FIG18_QUEUE_ROUNDS
    if queue_rounds < 1:
        raise CliError(f"--queue-rounds must be at least 1, got {queue_rounds}")
    plot = args.plot
    if plot is None and args.json is not None:
        plot = args.json.with_name("figure18.png")
    large = QUICK_LARGE_BYTES if args.quick else LARGE_BYTES
    console = Console(width=max(Console().width, 170))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="netfast-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        tap_large = QUICK_TAP_LARGE_BYTES if args.quick else TAP_LARGE_BYTES
        sizes = ([large] if "large" in sections else []) + (
            [tap_large] if "tap" in sections else []
        )
        with console.status("writing the files") as status:
            files = make_root(root, sizes)

            def progress(msg: str) -> None:
                status.update(f"measuring {msg}")

            rows += measure_wrk(
                sections,
                root,
                tmp,
                seconds=seconds,
                workers=workers,
                large_bytes=large,
                progress=progress,
            )
            if "tap" in sections:
                rows += measure_tap(
                    root, tmp, seconds=seconds, large_bytes=tap_large, progress=progress
                )
            if "figure18" in sections:
                rows += measure_figure18(root, tmp, counts=counts, probes=probes, progress=progress)
                rows += measure_figure18_tap(
                    root, tmp, counts=counts, probes=probes, progress=progress
                )
                rows += measure_retrieval(queue_counts, rounds=queue_rounds, progress=progress)
    for section in ("keepalive", "close", "large"):
        if section in sections:
            console.print(wrk_table(rows, section))
    tgts = targets(rows)
    if tgts:
        console.print(targets_table(tgts))
    if "tap" in sections:
        console.print(tap_table(rows))
    plot_note = None
    if "figure18" in sections:
        console.print(figure18_table(rows))
        console.print(retrieval_table(rows))
        for line in figure18_answer(rows):
            console.print(f"  {line}")
        if plot is not None:
            plot_note = plot_figure18(rows, plot)
            console.print(f"plot: {plot_note}" if plot_note else f"wrote {plot}")
    _write_json(
        args.json,
        {
            "meta": {
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                **environment(),
                "sections": sections,
                "seconds": seconds,
                "workers": workers,
                "files": files,
                "idle_counts": counts,
                "probes": probes,
                "select_limit": SELECT_LIMIT,
                "tap_idle_limit": FIG18_TAP_LIMIT,
                "queue_idle_counts": queue_counts,
                "queue_rounds": queue_rounds,
                "targets": TARGETS,
                "plot": None if plot is None or plot_note else str(plot),
            },
            "rows": rows,
            "targets": tgts,
        },
    )
    if args.json is not None:
        console.print(f"wrote {args.json}")
    return 0
