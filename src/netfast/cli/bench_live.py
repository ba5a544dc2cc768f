"""``netfast bench live``: packets/s through netfast between two veths next to the Linux kernel
forwarding between the same namespaces, in the same run with the same generator.  See
:mod:`netfast.bench.live` for the topology and what is measured."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.cli.bench import _write_json

#: (packets, seconds, rounds) by default and with --quick: about 30 s and 10 s in all.
DEFAULTS = (1_000_000, 5.0, 2)
QUICK = (200_000, 2.0, 1)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "live", help="packets/s through netfast between veths vs kernel forwarding (root)"
    )
    p.add_argument("--packets", type=int, help="datagrams per run (default 1000000; quick 200000)")
    p.add_argument("--seconds", type=float, help="longest run, seconds (default 5; quick 2)")
    p.add_argument("--rounds", type=int, help="runs per mode, best kept (default 2; quick 1)")
    p.add_argument("--batch", type=int, default=64, help="frames netfast reads per port at once")
    p.add_argument("--quick", action="store_true", help="one short run per mode")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_live)


def _pps(x: float) -> str:
    return f"{x / 1e3:,.1f} kpps"


def _results_table(res: object) -> Table:
    from netfast.bench import live as lb

    assert isinstance(res, lb.LiveResult)
    table = Table(
        title=f"live forwarding, A -> router -> B over veths, {lb.FRAME_LEN}-byte frames "
        f"({lb.FRAME_LEN + 4} with FCS, UDP payload {lb.UDP_PAYLOAD}), best of {res.rounds}"
    )
    for col in ("router", "sent", "offered", "delivered", "delivered/s", "loss", "vs kernel"):
        table.add_column(col, justify="left" if col == "router" else "right")
    kernel = res.best("kernel")
    for mode in lb.MODES:
        r = res.best(mode)
        if r is None:
            continue
        ratio = "-"
        if kernel is not None and kernel.delivered_pps > 0:
            ratio = f"{r.delivered_pps / kernel.delivered_pps:.2f}x"
        table.add_row(
            "Linux (ip_forward=1)" if mode == "kernel" else "netfast",
            f"{r.sent:,}",
            _pps(r.offered_pps),
            f"{r.delivered:,}",
            _pps(r.delivered_pps),
            f"{100 * r.loss:.1f}%",
            ratio,
        )
    return table


def _netfast_table(res: object) -> Table | None:
    from netfast.bench import live as lb

    assert isinstance(res, lb.LiveResult)
    runs = [r for r in res.runs if r.mode == "netfast" and r.netfast is not None]
    if not runs:
        return None
    table = Table(title="netfast's own counters, per run")
    for col in (
        "round", "entered", "read", "lost before netfast", "vector", "punted (scalar)",
        "forwarded", "vector path alone", "link drops",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in runs:
        nf = r.netfast
        assert nf is not None
        alone = nf.vector_frames / nf.vector_seconds if nf.vector_seconds > 0 else 0.0
        table.add_row(
            str(r.round + 1),
            f"{r.entered:,}",
            f"{nf.frames_in:,}",
            f"{r.entered - nf.frames_in:,}",
            f"{nf.vector_frames:,}",
            f"{nf.punted:,}",
            f"{nf.forwarded:,}",
            _pps(alone),
            ", ".join(f"{k} {v:,}" for k, v in nf.link_drops.items()) or "0",
        )
    return table


def cmd_live(args: argparse.Namespace) -> int:
    from netfast.bench import live as lb

    packets, seconds, rounds = QUICK if args.quick else DEFAULTS
    packets = args.packets if args.packets is not None else packets
    seconds = args.seconds if args.seconds is not None else seconds
    rounds = args.rounds if args.rounds is not None else rounds
    if packets < 1 or rounds < 1 or args.batch < 1 or not seconds > 0:
        raise CliError("--packets, --rounds and --batch must be at least 1, --seconds positive")
    reason = lb.check_environment()
    if reason is not None:
        raise CliError(f"bench live {reason}")
    console = Console(width=max(Console().width, 120))
    with console.status("building namespaces") as status:
        try:
            res = lb.measure(
                packets=packets,
                seconds=seconds,
                rounds=rounds,
                batch_size=args.batch,
                progress=lambda msg: status.update(msg),
            )
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
    console.print(_results_table(res))
    nf_table = _netfast_table(res)
    if nf_table is not None:
        console.print(nf_table)
    ratio = res.ratio
    console.print(
        "netfast / kernel, delivered packets/s: "
        + ("-" if ratio is None else f"{ratio:.2f}x")
        + f"  (one Python generator in A; {os.cpu_count()} CPUs; netfast batch {args.batch})"
    )
    kernel = res.best("kernel")
    if kernel is not None and kernel.loss < 0.01:
        console.print(
            "The kernel delivered what the generator offered: its figure is the generator's "
            "ceiling, a lower bound on the kernel's capacity (over a veth the kernel forwards "
            "in the sender's softirq)."
        )
    _write_json(
        args.json,
        res.to_json(
            date=datetime.date.today().isoformat(),
            python=sys.version.split()[0],
            machine=platform.machine(),
            kernel=platform.release(),
            cpus=os.cpu_count(),
        ),
    )
    return 0
