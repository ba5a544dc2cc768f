"""``netfast bench ttcp``: short connections -- plain TCP against data on SYN (T/TCPv2, TCP
Fast Open), simulated and with a Linux client; see :mod:`netfast.bench.ttcp`."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ttcp", help="short connections: plain TCP vs T/TCPv2 vs TCP Fast Open (sim and Linux)"
    )
    p.add_argument(
        "--connections", type=int, help="connections per mode and RTT (default 200; 40 quick)"
    )
    p.add_argument(
        "--requests",
        type=int,
        help="requests per mode and RTT from the Linux client (default: half the connections, "
        "at least 10)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        help="seconds per connections/s and ping run (default 8; 1 quick)",
    )
    p.add_argument("--quick", action="store_true", help="fewer connections, shorter runs")
    p.add_argument("--no-linux", action="store_true", help="only the simulated part")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_ttcp)


def _fmt_rtts(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def cmd_ttcp(args: argparse.Namespace) -> int:
    from netfast.bench import ttcp

    n = args.connections if args.connections is not None else (40 if args.quick else 200)
    if n < 2:
        raise CliError("--connections must be at least 2")
    requests = args.requests if args.requests is not None else max(10, n // 2)
    if requests < 2:
        raise CliError("--requests must be at least 2")
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 8.0)
    if not seconds > 0:
        raise CliError("--seconds must be positive")
    console = Console(width=max(Console().width, 120))
    with console.status("simulated hosts: plain TCP, T/TCPv2, TCP Fast Open's form"):
        sim = ttcp.measure_simulated(connections=n)
    table = Table(
        title=f"request-response over a fresh connection, two netfast hosts on a simulated "
        f"wire, {n} connections each (latency in simulated time)"
    )
    for col in ("RTT", "mode", "first", "repeat (median)", "repeat in RTTs", "requests/s",
                "CPU per conn", "data on SYN"):  # fmt: skip
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in sim:
        table.add_row(
            f"{r.rtt_ms:.0f} ms",
            r.mode,
            f"{r.first_ms:.1f} ms",
            f"{r.repeat_ms:.1f} ms",
            _fmt_rtts(r.repeat_rtts),
            f"{r.requests_per_s:,.0f}" + (" (CPU)" if r.rtt_ms == 0 else ""),
            f"{r.cpu_us_per_conn:,.0f} µs",
            f"{r.syn_data_taken:,}",
        )
    console.print(table)
    for rtt in sorted({r.rtt_ms for r in sim if r.rtt_ms > 0}):
        plain = next(r for r in sim if r.rtt_ms == rtt and r.mode == "plain TCP")
        t2 = next(r for r in sim if r.rtt_ms == rtt and r.mode == "T/TCPv2")
        saved = (plain.repeat_ms - t2.repeat_ms) / rtt
        verdict = "met" if saved >= 0.95 else "missed"
        console.print(
            f"RTT {rtt:.0f} ms: T/TCPv2 saves {saved:.2f} RTT per repeat connection "
            f"(target: one) -- {verdict}"
        )
    linux: list[ttcp.LinuxResult] | str = "not run (--no-linux)"
    if not args.no_linux:
        with console.status("a Linux client against netfast host, through the bridge"):
            linux = ttcp.measure_linux(requests=requests, budget=15 if args.quick else 30)
        _print_linux(console, linux)
    conns: list[ttcp.ConnRate] | str = "not run (--no-linux)"
    ping: ttcp.EchoRate | str = "not run (--no-linux)"
    if not args.no_linux:
        with console.status("Linux clients: connections/s to netfast host"):
            conns = ttcp.measure_connections(seconds=seconds)
        with console.status("ping -f to netfast host"):
            ping = ttcp.measure_ping(seconds=seconds)
        _print_rates(console, conns, ping)
    _write_json(
        args.json,
        ttcp.to_json(
            sim,
            linux,
            conns,
            ping,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            command=" ".join(["netfast", "bench", "ttcp", *sys.argv[3:]]),
        ),
    )
    return 0


def _print_linux(console: Console, linux: Any) -> None:
    if isinstance(linux, str):
        console.print(f"with Linux: not run here ({linux})")
        return
    table = Table(
        title="a Linux client -> netfast host's echo over a TAP and netfast's delay bridge "
        "(wall clock)"
    )
    for col in ("RTT", "client", "requests", "first", "repeat (median)", "repeat in RTTs",
                "requests/s", "in SYN (Linux)", "TCPFastOpenActive"):  # fmt: skip
        table.add_column(col, justify="left" if col == "client" else "right")
    for r in linux:
        if r.error:
            table.add_row(f"{r.rtt_ms:.0f} ms", r.mode, f"[red]{r.error}[/]")
            continue
        table.add_row(
            f"{r.rtt_ms:.0f} ms",
            r.mode,
            f"{r.requests:,}",
            f"{r.first_ms:.1f} ms",
            f"{r.repeat_ms:.2f} ms",
            _fmt_rtts(r.repeat_rtts),
            f"{r.requests_per_s:,.0f}",
            f"{r.syn_data:,}",
            f"{r.linux_counters.get('TCPFastOpenActive', 0):,}",
        )
    console.print(table)


def _print_rates(console: Console, conns: Any, ping: Any) -> None:
    if isinstance(conns, str):
        console.print(f"connections/s: not run here ({conns})")
    else:
        table = Table(
            title="connect + 1-byte echo + close, Linux clients -> netfast host over a TAP"
        )
        for col in ("close", "parallel", "connections", "failed", "per second", "target"):
            table.add_column(col, justify="left" if col == "close" else "right")
        one = {r.close: r.per_s for r in conns if r.parallel == 1 and not r.error}
        for r in conns:
            if r.error:
                table.add_row(r.close, str(r.parallel), f"[red]{r.error}[/]")
                continue
            target = "-"
            if r.parallel == 64:
                ok = r.per_s >= 10_000 and r.per_s >= one.get(r.close, 0.0)
                target = f">= 10,000 and >= 1 parallel: {'met' if ok else 'missed'}"
            table.add_row(r.close, str(r.parallel), f"{r.completed:,}", f"{r.failed:,}",
                          f"{r.per_s:,.0f}", target)  # fmt: skip
        console.print(table)
    if isinstance(ping, str):
        console.print(f"ICMP echo: not run here ({ping})")
    elif ping.error:
        console.print(f"ICMP echo: [red]{ping.error}[/]")
    else:
        verdict = "met" if ping.per_s >= 50_000 else "missed"
        console.print(
            f"ICMP echo (ping -f): {ping.received:,} of {ping.sent:,} answered in "
            f"{ping.seconds:.1f} s = {ping.per_s:,.0f} replies/s (target 50,000: {verdict})"
        )
