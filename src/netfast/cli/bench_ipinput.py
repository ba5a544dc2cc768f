"""``netfast bench ipinput``: the cost of the IPv4 integrity checks, and local-or-not by hash
against a walk over every interface address.

See :mod:`netfast.bench.ipinput` for what is measured and the JSON it writes.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.bench import ipinput as ib
from netfast.cli import CliError
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ipinput", help="IPv4 integrity checks' cost, hostile packets; local address hash vs loop"
    )
    p.add_argument(
        "--seconds",
        type=float,
        help="time per measurement, split over the rounds (default 1.0; 0.1 quick)",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    p.add_argument("--quick", action="store_true", help="short measurements (under 10 s in all)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_ipinput)


def _rate(x: float) -> str:
    return f"{x / 1e6:,.2f}M"


def _traffic_line(t: ib.Traffic) -> str:
    s = t.summary()
    if t.source != "capture":
        return f"traffic: {s['valid_packets']} valid IPv4 packets, {t.note}"
    rejected = sum(t.rejected.values())
    why = ", ".join(f"{k} {v}" for k, v in t.rejected.items()) or "none"
    return (
        f"traffic: {s['valid_packets']} valid IPv4 packets from {len(t.captures)} real captures; "
        f"the checks rejected {rejected} of their {t.ipv4_frames} IPv4 frames "
        f"({s['rejected_share']:.2%}: {why}); {t.ttl_expiring} with TTL <= 1 left out"
    )


def _scalar_table(res: ib.Results) -> Table:
    s = res.scalar
    table = Table(title=f"Integrity checks, scalar path: ns per packet ({s.packets} valid packets)")
    table.add_column("what")
    table.add_column("ns/pkt", justify="right")
    table.add_column("of Router.input", justify="right")
    rows = (
        ("ip_input_check alone", s.check_ns),
        ("bare header unpack alone (no checks)", s.parse_ns),
        ("Router.input, valid", s.input_ns),
        ("Router.input, valid, checks skipped", s.input_nocheck_ns),
        ("  the checks inside Router.input (paired passes)", s.checks_ns),
        ("Router.input, hostile mix", s.hostile_input_ns),
    )
    for what, ns in rows:
        table.add_row(what, f"{ns:,.0f}", f"{ns / s.input_ns:.1%}")
    return table


def _vector_table(res: ib.Results) -> Table:
    v = res.vector
    table = Table(title=f"Integrity checks, vector path: ns per packet (batches of {v.batch:,})")
    table.add_column("what")
    table.add_column("valid", justify="right")
    table.add_column("hostile mix", justify="right")
    table.add_row("classify kernel (the batch checks)", f"{v.classify_ns:.1f}",
                  f"{v.hostile_classify_ns:.1f}")  # fmt: skip
    table.add_row("vector step (forward + punted rows)", f"{v.step_ns:.1f}",
                  f"{v.hostile_step_ns:.1f}")  # fmt: skip
    table.add_row("kernel's share of the step", f"{v.classify_share:.1%}",
                  f"{v.hostile_classify_ns / v.hostile_step_ns:.1%}")  # fmt: skip
    table.add_row("rows punted to the scalar path", str(v.punted), "")
    return table


def _hostile_table(res: ib.Results) -> Table:
    table = Table(
        title="Hostile packets: each broken one way, through Router.input and the vector step"
    )
    for col, justify in (
        ("kind", "left"), ("counter", "left"), ("sent", "right"), ("scalar counted", "right"),
        ("vector", "left"), ("vector counted", "right"), ("ns/pkt", "right"),
        ("x valid", "right"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in res.hostile:
        mark = "" if r.ok else "[red]"
        table.add_row(
            r.kind,
            r.counter,
            str(r.sent),
            f"{mark}{r.scalar_counted}",
            r.vector,
            f"{mark}{r.vector_counted}",
            f"{r.scalar_ns:,.0f}",
            f"{r.over_valid:.2f}x",
        )
    return table


def _local_table(res: ib.Results) -> Table:
    table = Table(
        title=f"Local or not: hash vs a loop over interfaces and addresses "
        f"({ib.LOCAL_SHARE:.0%} local destinations)"
    )
    for col in (
        "addrs", "ifaces", "hash lookups/s", "loop lookups/s", "hash/loop",
        "local_mask addrs/s", "batch loop addrs/s", "hash/loop", "agree",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in res.local:
        table.add_row(
            str(r.addrs),
            str(r.interfaces),
            _rate(r.hash_per_s),
            _rate(r.loop_per_s),
            f"{r.hash_over_loop:.2f}x",
            _rate(r.batch_hash_per_s),
            _rate(r.batch_loop_per_s),
            f"{r.batch_hash_over_loop:.2f}x",
            "yes" if r.agree else "[red]NO",
        )
    return table


def cmd_ipinput(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.seconds is not None else (0.1 if args.quick else 1.0)
    if seconds <= 0:
        raise CliError(f"--seconds must be positive, got {seconds}")
    if args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")
    console = Console(width=max(Console().width, 140))
    traffic = ib.load_traffic(ib.find_captures())
    with console.status("measuring") as status:
        res = ib.measure(
            traffic,
            seconds=seconds,
            rounds=args.rounds,
            progress=lambda msg: status.update(f"measuring {msg}"),
        )
    console.print(_traffic_line(traffic))
    console.print(_scalar_table(res))
    console.print(_vector_table(res))
    console.print(_hostile_table(res))
    console.print(_local_table(res))
    console.print(f"[bold]integrity checks:[/] {ib.integrity_verdict(res)}")
    console.print(f"[bold]local or not:[/] {ib.local_verdict(res.local)}")
    _write_json(
        args.json,
        ib.to_json(
            res,
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            seconds_per_measurement=seconds,
            rounds=args.rounds,
        ),
    )
    if not res.all_counted or not all(r.agree for r in res.local):
        console.print("[red]a hostile packet was not counted under its counter, or the local "
                      "tests disagreed[/]")  # fmt: skip
        return 1
    return 0
