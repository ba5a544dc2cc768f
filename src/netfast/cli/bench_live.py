"""``netfast bench live``: packets/s through netfast between two veths next to the Linux kernel
forwarding between the same namespaces, in the same run with the same generator (trafgen when
installed), and the RFC 2544 throughput of each, with the live-router issue's targets.  See
:mod:`netfast.bench.live` for the topology and what is measured."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.cli.bench import _write_json

if TYPE_CHECKING:
    from netfast.bench.live import LiveResult, SearchSettings

#: (packets, seconds, rounds) of the flat-out trials by default and with --quick.
DEFAULTS = (1_000_000, 3.0, 2)
QUICK = (200_000, 1.0, 1)
#: (trial seconds, paced trials per mode, search budget in seconds): with the flat-out trials
#: about a minute and a half at most by default, about 15 s with --quick.
SEARCH_DEFAULTS = (1.0, 6, 60.0)
SEARCH_QUICK = (0.5, 3, 10.0)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "live",
        help="packets/s and RFC 2544 throughput through netfast between veths vs kernel "
        "forwarding (root)",
    )
    p.add_argument(
        "--packets", type=int, help="frames per flat-out trial (default 1000000; quick 200000)"
    )
    p.add_argument("--seconds", type=float, help="longest flat-out trial (default 3; quick 1)")
    p.add_argument("--rounds", type=int, help="flat-out trials per mode (default 2; quick 1)")
    p.add_argument("--batch", type=int, default=256, help="frames netfast reads per port at once")
    p.add_argument(
        "--generator",
        choices=("auto", "trafgen", "python"),
        default="auto",
        help="what sends in A (default: trafgen when installed, else Python)",
    )
    p.add_argument("--flows", type=int, default=16, help="UDP source ports trafgen cycles through")
    p.add_argument(
        "--trial-seconds", type=float, help="length of a search trial (default 1; quick 0.5)"
    )
    p.add_argument("--trials", type=int, help="paced search trials per mode (default 6; quick 3)")
    p.add_argument(
        "--budget", type=float, help="most seconds the search may take (default 60; quick 10)"
    )
    p.add_argument(
        "--loss", type=float, default=0.001, help="loss a passing trial stays below (0.001)"
    )
    p.add_argument("--no-search", action="store_true", help="flat-out trials only")
    p.add_argument("--link", default="afpacket", help="netfast's link type (router config)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="netfast forwarding processes on the ports (PACKET_FANOUT; default 1, a thread)",
    )
    p.add_argument("--quick", action="store_true", help="one short flat-out trial, short search")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_live)


def _pps(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e3:,.1f} kpps"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _mode_name(mode: str) -> str:
    return "Linux (ip_forward=1)" if mode == "kernel" else "netfast"


def _results_table(res: LiveResult) -> Table:
    from netfast.bench import live as lb
    from netfast.bench.live.report import loss_summary

    table = Table(
        title=f"flat out: A -> router -> B over veths, {lb.FRAME_LEN}-byte frames "
        f"({lb.FRAME_LEN + 4} with FCS, UDP payload {lb.UDP_PAYLOAD}), generator "
        f"{res.generator}, best of {res.rounds}"
    )
    for col in ("router", "sent", "offered", "delivered", "delivered/s", "loss", "vs kernel"):
        table.add_column(col, justify="left" if col == "router" else "right")
    table.add_column("lost where", justify="left")
    kernel = res.best("kernel")
    for mode in lb.MODES:
        r = res.best(mode)
        if r is None:
            continue
        ratio = "-"
        if kernel is not None and kernel.delivered_pps > 0:
            ratio = f"{r.delivered_pps / kernel.delivered_pps:.2f}x"
        table.add_row(
            _mode_name(mode),
            f"{r.sent:,}",
            _pps(r.offered_pps),
            f"{r.delivered:,}",
            _pps(r.delivered_pps),
            f"{100 * r.loss:.1f}%",
            ratio,
            loss_summary(r),
        )
    return table


def _throughput_table(res: LiveResult) -> Table | None:
    from netfast.bench import live as lb

    if not res.throughput:
        return None
    assert res.search is not None
    limit, trial = 100 * res.search.loss_limit, res.search.trial_seconds
    table = Table(
        title=f"RFC 2544 throughput: fastest offered rate with < {limit:g} % loss "
        f"(bisection, {trial:g} s trials; RFC 2544 asks for 60 s)"
    )
    for col in ("router", "throughput", "search ended by", "interval", "trials"):
        table.add_column(col, justify="left" if col in ("router", "search ended by") else "right")
    ended = {
        "generator": "generator's limit (a lower bound)",
        "resolution": "resolution reached",
        "trials": "trial limit",
        "time": "time budget",
        "floor": "failed at the floor rate",
    }
    for mode in lb.MODES:
        s = res.throughput.get(mode)
        if s is None:
            continue
        table.add_row(
            _mode_name(mode),
            _pps(s.throughput),
            ended.get(s.bound or "", str(s.bound)),
            f"{_pps(s.lo)} .. {_pps(s.hi)}",
            str(len(s.steps)),
        )
    return table


def _trials_table(res: LiveResult) -> Table | None:
    from netfast.bench.live.report import loss_summary

    steps = [(mode, rate, t) for mode, s in res.throughput.items() for rate, t in s.steps]
    if not steps:
        return None
    assert res.search is not None
    table = Table(title="search trials (alternating modes)")
    for col in ("router", "asked", "offered", "delivered/s", "loss", "pass"):
        table.add_column(col, justify="left" if col == "router" else "right")
    table.add_column("lost where", justify="left")
    for mode, rate, t in sorted(steps, key=lambda x: (x[2].round, x[0])):
        table.add_row(
            _mode_name(mode),
            _pps(rate),
            _pps(t.offered_pps),
            _pps(t.delivered_pps),
            f"{100 * t.loss:.2f}%",
            "yes" if t.loss < res.search.loss_limit else "no",
            loss_summary(t),
        )
    return table


def _netfast_table(res: LiveResult) -> Table | None:
    runs = [r for r in res.runs if r.mode == "netfast" and r.netfast is not None]
    if not runs:
        return None
    table = Table(title="netfast's own counters, flat-out trials")
    for col in (
        "round", "entered", "read", "not read", "vector", "punted (scalar)",
        "forwarded", "vector path alone", "router drops", "link counters",
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
            ", ".join(f"{k} {v:,}" for k, v in nf.router_drops.items()) or "0",
            ", ".join(f"{k} {v:,}" for k, v in nf.links.items() if "bytes" not in k) or "-",
        )
    return table


def _targets_table(res: LiveResult) -> Table:
    from netfast.bench.live.report import targets

    table = Table(title="the live-router issue's targets")
    # One line per target (the note wraps if it must): the rows are read and grepped as lines.
    for col in ("target", "Linux", "netfast", "netfast / Linux", "goal", "status"):
        left = col in ("target", "goal", "status")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    table.add_column("note", justify="left")
    for row in targets(res):
        table.add_row(
            row.name,
            _pps(row.kernel_pps),
            _pps(row.netfast_pps),
            _ratio(row.ratio),
            row.goal,
            row.status,
            row.note,
        )
    return table


def _settings(args: argparse.Namespace) -> tuple[int, float, int, SearchSettings | None]:
    from netfast.bench.live import SearchSettings

    packets, seconds, rounds = QUICK if args.quick else DEFAULTS
    packets = args.packets if args.packets is not None else packets
    seconds = args.seconds if args.seconds is not None else seconds
    rounds = args.rounds if args.rounds is not None else rounds
    if packets < 1 or rounds < 1 or args.batch < 1 or not seconds > 0:
        raise CliError("--packets, --rounds and --batch must be at least 1, --seconds positive")
    if not 1 <= args.flows <= 4096:
        raise CliError("--flows must be 1..4096")
    if not 1 <= args.workers <= 64:
        raise CliError("--workers must be 1..64")
    trial_seconds, trials, budget = SEARCH_QUICK if args.quick else SEARCH_DEFAULTS
    trial_seconds = args.trial_seconds if args.trial_seconds is not None else trial_seconds
    trials = args.trials if args.trials is not None else trials
    budget = args.budget if args.budget is not None else budget
    if not (trial_seconds > 0 and budget > 0) or trials < 0 or not 0 < args.loss < 1:
        raise CliError(
            "--trial-seconds and --budget must be positive, --trials at least 0, --loss in (0, 1)"
        )
    search = None
    if not args.no_search:
        search = SearchSettings(
            trial_seconds=trial_seconds, max_trials=trials, loss_limit=args.loss, budget=budget
        )
    return packets, seconds, rounds, search


def cmd_live(args: argparse.Namespace) -> int:
    from netfast.bench import live as lb

    packets, seconds, rounds, search = _settings(args)
    reason = lb.check_environment()
    if reason is not None:
        raise CliError(f"bench live {reason}")
    console = Console(width=max(Console().width, 140))
    with console.status("building namespaces") as status:
        try:
            res = lb.measure(
                packets=packets,
                seconds=seconds,
                rounds=rounds,
                batch_size=args.batch,
                generator=args.generator,
                flows=args.flows,
                search=search,
                link_type=args.link,
                workers=args.workers,
                progress=lambda msg: status.update(msg),
            )
        except (RuntimeError, ValueError) as exc:
            raise CliError(str(exc)) from None
    console.print(_results_table(res))
    for table in (_throughput_table(res), _trials_table(res), _netfast_table(res)):
        if table is not None:
            console.print(table)
    console.print(_targets_table(res))
    pin = "unpinned" if res.netfast_cpu is None else f"on CPU {res.netfast_cpu}"
    who = "one thread" if res.workers == 1 else f"{res.workers} worker processes"
    console.print(
        f"generator: {res.generator}"
        + (f" ({res.flows} flows, one process on CPU 0)" if res.generator == "trafgen" else "")
        + f"; netfast: {who} {pin}, batch {args.batch}; {os.cpu_count()} CPUs.  "
        "Over a veth the kernel forwards in the sender's softirq, on the generator's CPU."
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
