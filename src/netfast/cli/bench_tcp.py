"""``netfast bench tcp``: the TCP issue's benchmark -- reassembly, bulk transfers in memory and
against the Linux kernel over a TAP (offloads none, software and tap), with PyTCP measured in
the same run.
Targets are printed next to the figures; a missed target is reported, not an error.  See
:mod:`netfast.bench.tcp` for what is measured."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from netfast.cli import CliError
from netfast.cli.bench import _write_json

#: (netfast bytes, PyTCP bytes, reassembly segments, reassembly rounds): default and --quick.
DEFAULTS = (50_000_000, 4_000_000, 20_000, 3)
QUICK = (10_000_000, 1_000_000, 5_000, 1)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tcp", help="TCP: reassembly, bulk transfers in memory and over a TAP, vs PyTCP"
    )
    p.add_argument(
        "--only",
        metavar="SECTIONS",
        help="comma-separated sections among reass, memory, tap, pytcp, cc (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="smaller transfers, one reassembly round")
    for flag, what, i in (
        ("--bytes", "bytes per netfast transfer", 0),
        ("--pytcp-bytes", "bytes per PyTCP transfer", 1),
        ("--segments", "segments per reassembly pattern", 2),
    ):
        p.add_argument(flag, type=int, help=f"{what} (default {DEFAULTS[i]}; quick {QUICK[i]})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_tcp)


def parse_sections(only: str | None) -> list[str]:
    """The sections named by ``--only`` (all when None), in the benchmark's order."""
    from netfast.bench.tcp import SECTIONS

    if only is None:
        return list(SECTIONS)
    names = {s.strip() for s in only.split(",") if s.strip()}
    unknown = sorted(names - set(SECTIONS))
    if unknown or not names:
        raise CliError(f"--only {only!r}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def cmd_tcp(args: argparse.Namespace) -> int:
    from netfast.bench import tcp as tb
    from netfast.bench.pytcp_anchor import pytcp_version
    from netfast.bench.tcp_cc import cc_table, run_cc_bench
    from netfast.bench.tcp_reass import reass_table, run_reass_bench
    from netfast.bench.tcp_report import answer_lines, answers, transfer_table

    sections = parse_sections(args.only)
    nbytes, pytcp_bytes, segments, rounds = QUICK if args.quick else DEFAULTS
    nbytes = args.bytes if args.bytes is not None else nbytes
    pytcp_bytes = args.pytcp_bytes if args.pytcp_bytes is not None else pytcp_bytes
    segments = args.segments if args.segments is not None else segments
    if nbytes < 1 or pytcp_bytes < 1:
        raise CliError("--bytes and --pytcp-bytes must be at least 1")
    if segments < 2:
        raise CliError("--segments must be at least 2")
    console = Console(width=max(Console().width, 160))
    reass_rows: list[dict[str, Any]] | None = None
    cc_rows: list[dict[str, Any]] | None = None
    rows: list[dict[str, Any]] = []
    with console.status("measuring") as status:
        if "reass" in sections:
            reass_rows = run_reass_bench(
                segments,
                rounds=rounds,
                progress=lambda msg: status.update(f"reassembly: {msg}"),
            )
        rows = tb.run_transfers(
            sections,
            nbytes=nbytes,
            pytcp_bytes=pytcp_bytes,
            progress=lambda msg: status.update(f"transfer: {msg}"),
        )
        if "cc" in sections:
            # Loss makes single runs noisy: medians of eight seeds (two when quick).
            cc_rows = run_cc_bench(
                nbytes=min(nbytes, 10_000_000),
                seeds=(1, 2) if args.quick else tuple(range(1, 9)),
                progress=lambda msg: status.update(f"congestion control: {msg}"),
            )
    if reass_rows is not None:
        console.print(reass_table(reass_rows))
    if rows:
        console.print(transfer_table(rows))
    if cc_rows is not None:
        console.print(cc_table(cc_rows))
    ans = answers(reass_rows, rows)
    lines = answer_lines(ans)
    if lines:
        console.print("[bold]Answers[/]")
        for line in lines:
            console.print(f"  {line}")
    _write_json(
        args.json,
        {
            "meta": {
                "date": datetime.date.today().isoformat(),
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "pytcp": pytcp_version(),
                "sections": sections,
                "bytes": nbytes,
                "pytcp_bytes": pytcp_bytes,
                "reass_segments": segments,
                "reass_rounds": rounds,
                "targets": {
                    "reass_adversarial_ratio": tb.REASS_TARGET,
                    "memory_mbit_s": tb.MEMORY_TARGET_MBIT,
                    "tap_mbit_s": tb.TAP_TARGET_MBIT,
                },
            },
            "reass": reass_rows,
            "transfers": rows,
            "congestion_control": cc_rows,
            "answers": ans,
        },
    )
    return 0
