"""``netfast forward``: run the router over a capture, live interfaces, or the built-in demo.

- ``netfast forward`` (no arguments): the demo -- the default router (three ports, the bundled
  2026 Internet table, the sample firewall) forwards a generated, seeded trace; prints packets
  per verdict, drops per reason, ICMP sent, per-egress counts and the packet rate of the vector
  and the scalar path.
- ``netfast forward --config router.toml --in capture.pcap --out-dir DIR``: forward a capture as
  received on one port (``--ingress``, default the first) and write one capture per port,
  ``DIR/<port>.pcap``.  Files appear only when the run completes; existing ones are kept unless
  ``--force``.  A port name must be a plain file name (no ``/``, not ``..``), and no two may
  name one file (names equal but for case are refused).  Ctrl-C, SIGTERM or SIGHUP end the run
  with no file written and none changed.
- ``netfast forward --config router.toml --live [--duration S]``: forward between the configured
  AF_PACKET/TAP interfaces until Ctrl-C, SIGTERM or SIGHUP (or for S seconds).

The router description format is documented in :mod:`netfast.router.config` and by the bundled
``router-default.toml``.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.outfiles import OutputExistsError, OutputPathError, PortNameError, stop_on_signals
from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import ConfigError, load_config
from netfast.router.engine import ForwardStats
from netfast.router.run import CaptureStopped


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "forward",
        help="forward a capture or live interfaces through the router (no arguments: demo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="router description (TOML)")
    p.add_argument("--in", dest="in_pcap", type=Path, metavar="PCAP", help="capture to forward")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="where per-port captures go")
    p.add_argument("--ingress", metavar="NAME", help="port the capture arrives on (default: first)")
    p.add_argument("--force", action="store_true", help="replace existing output captures")
    p.add_argument("--live", action="store_true", help="forward between the configured links")
    p.add_argument("--duration", type=float, metavar="S", help="--live: stop after S seconds")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="--live: N forwarding processes sharing the ports by flow (PACKET_FANOUT)",
    )
    p.add_argument(
        "--scalar-only", action="store_true", help="do not use the vector path (for comparison)"
    )
    p.add_argument("--packets", type=int, default=50_000, metavar="N", help="demo: trace size")
    p.add_argument("--seed", type=int, default=1, help="demo: trace seed")
    p.set_defaults(func=cmd_forward)


def cmd_forward(args: argparse.Namespace) -> int:
    console = Console()
    if args.config is None:
        if args.in_pcap or args.out_dir or args.live:
            raise CliError("--in, --out-dir and --live need --config FILE")
        if args.packets < 1:
            raise CliError(f"--packets must be at least 1, got {args.packets}")
        return demo(args, console)
    if args.live and (args.in_pcap or args.out_dir):
        raise CliError("--live forwards between interfaces: it takes no --in/--out-dir")
    if not args.live and (args.in_pcap is None or args.out_dir is None):
        raise CliError("give --in PCAP --out-dir DIR (forward a capture) or --live")
    if args.duration is not None and (not args.live or args.duration <= 0):
        raise CliError("--duration needs --live and a positive number of seconds")
    built = _build(args)
    if args.live:
        return live(built, args, console)
    return capture(built, args, console)


def _build(args: argparse.Namespace) -> BuiltRouter:
    from netfast.pfil.ipfw import FirewallError
    from netfast.route.loaders.base import RouteFileError

    try:
        return build_router(load_config(args.config), vector=not args.scalar_only)
    except (ConfigError, FirewallError, RouteFileError) as exc:
        raise CliError(str(exc)) from None


def capture(built: BuiltRouter, args: argparse.Namespace, console: Console) -> int:
    from netfast.wire.capture import PcapError

    names = built.names
    if args.ingress is None:
        ingress = 0
    else:
        by_name = {name: i for i, name in names.items()}
        if args.ingress not in by_name:
            raise CliError(f"--ingress {args.ingress!r}: no such port (have {', '.join(by_name)})")
        ingress = by_name[args.ingress]
    stop = threading.Event()
    try:
        with stop_on_signals(stop) as signalled:
            summary = built.run_capture(
                args.in_pcap, ingress, args.out_dir, overwrite=args.force, stop=stop
            )
    except CaptureStopped:
        print(
            f"netfast: stopped by {signalled.signal_name} before the end of {args.in_pcap}; "
            f"nothing written to {args.out_dir} (its files are as they were)",
            file=sys.stderr,
        )
        return signalled.exit_status
    except OutputExistsError as exc:
        raise CliError(f"{exc}; pass --force to replace it") from None
    except PortNameError as exc:
        raise CliError(f"{args.config}: interface[{exc.ifindex}].name: {exc}") from None
    except OutputPathError as exc:
        raise CliError(str(exc)) from None
    except PcapError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(_os_error(exc, args)) from None
    console.print(
        f"[bold]{args.in_pcap}[/] on {names[ingress]}: {summary.stats.frames_in} frames "
        f"in {summary.seconds:.2f} s -> {args.out_dir}/"
    )
    print_report(console, summary.stats, summary.counters, names)
    return 0


def live(built: BuiltRouter, args: argparse.Namespace, console: Console) -> int:
    if args.workers != 1:
        return live_workers(built, args, console)
    try:
        links = built.open_links()
    except OSError as exc:
        raise CliError(str(exc)) from None
    with built:
        if not links:
            raise CliError(
                f"{args.config}: no interface has an afpacket or tap link to run live on"
            )
        stop = threading.Event()
        names = built.names
        console.print(
            "forwarding between "
            + ", ".join(f"{names[i]} ({link.name})" for i, link in links.items())
            + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C stops")
        )
        with stop_on_signals(stop):
            summary = built.run_live(stop, duration=args.duration)
    console.print(f"stopped ({summary.stopped_by}) after {summary.seconds:.1f} s")
    print_report(console, summary.stats, summary.counters, names)
    return 0


def live_workers(built: BuiltRouter, args: argparse.Namespace, console: Console) -> int:
    """``--live --workers N``: N processes on the same ports (netfast.router.workers)."""
    from netfast.router.workers import run_workers

    if not 1 <= args.workers <= 64:
        raise CliError(f"--workers {args.workers}: must be 1..64")
    if not any(
        ic.link is not None and ic.link.type == "afpacket" for ic in built.config.interfaces
    ):
        raise CliError(f"{args.config}: --workers needs afpacket links (PACKET_FANOUT)")
    stop = threading.Event()
    console.print(
        f"forwarding with {args.workers} workers"
        + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C stops")
    )
    with stop_on_signals(stop):
        try:
            summary = run_workers(built, args.workers, stop=stop, duration=args.duration)
        except OSError as exc:
            raise CliError(str(exc)) from None
    per = ", ".join(f"{w.stats.frames_in:,}" for w in summary.workers)
    console.print(f"stopped after {summary.seconds:.1f} s; frames read per worker: {per}")
    print_report(console, summary.stats, summary.counters, built.names)
    return 0


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    """An operating-system error as one line naming the file (never Python's ``[Errno n]``)."""
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {what}"
    return f"forwarding {args.in_pcap} into {args.out_dir}: {what}"


def demo(args: argparse.Namespace, console: Console) -> int:
    from netfast.router.demo import MIX, run_demo

    with console.status("loading the 2026 table and generating the trace ..."):
        result = run_demo(args.packets, args.seed)
    built = result.built
    cfg = built.config
    rules = len(built.ruleset.rules) if built.ruleset is not None else 0
    console.print(
        f"[bold]netfast forward[/] demo: {len(cfg.interfaces)} ports, "
        f"{built.route_stats['table']:,} table routes ({built.table.algorithm}), "
        f"{rules} firewall rules ({cfg.rules_file.name if cfg.rules_file else 'none'}); "
        f"trace of {len(result.trace.frames):,} frames, seed {result.trace.seed} "
        f"(setup {result.setup_seconds:.1f} s)"
    )
    console.print(
        f"warm-up (compiled kernels loaded or compiled, not timed below): "
        f"{result.warmup_seconds:.1f} s; the rates below are steady state"
    )
    mix = Table(title="Trace (received on eth0)")
    mix.add_column("kind")
    mix.add_column("packets", justify="right")
    for kind in MIX:
        mix.add_row(kind.replace("_", " "), f"{result.trace.kinds[kind]:,}")
    console.print(mix)
    print_report(console, result.stats, result.counters, result.names)
    perf = Table(title="Paths")
    for col in ("path", "packets", "seconds", "Mpps"):
        perf.add_column(col, justify="left" if col == "path" else "right")
    s, sc = result.stats, result.scalar_stats
    if built.vector is not None:
        # The vector stage reads every frame (it decides which to punt), so its rate is over all
        # frames in; the packets it finished itself are shown apart.
        perf.add_row(
            f"vector stage (all frames; {s.vector_frames:,} finished there)",
            f"{s.frames_in:,}",
            f"{s.vector_seconds:.3f}",
            f"{s.frames_in / s.vector_seconds / 1e6 if s.vector_seconds else 0:.3f}",
        )
        perf.add_row(
            "  punted to scalar",
            f"{s.scalar_frames:,}",
            f"{s.scalar_seconds:.3f}",
            f"{s.scalar_mpps:.3f}",
        )
        both = s.vector_seconds + s.scalar_seconds
        perf.add_row(
            "router (vector + punts)",
            f"{s.frames_in:,}",
            f"{both:.3f}",
            f"{s.frames_in / both / 1e6 if both else 0:.3f}",
        )
    perf.add_row(
        "scalar only", f"{sc.scalar_frames:,}", f"{sc.scalar_seconds:.3f}", f"{sc.scalar_mpps:.3f}"
    )
    console.print(perf)
    if built.vector is not None and s.vector_seconds + s.scalar_seconds and sc.scalar_seconds:
        both = s.vector_seconds + s.scalar_seconds
        console.print(
            f"router: {sc.scalar_seconds / both:.1f}x the scalar path alone; "
            f"{100 * s.scalar_frames / max(1, s.frames_in):.1f}% of frames punted to it"
        )
    if built.vector is None:
        console.print("[yellow]vector path not available: scalar path only[/]")
    else:
        same = _comparable(result.counters) == _comparable(result.scalar_counters)
        console.print(
            "vector + scalar and scalar alone: "
            + ("[green]same counters[/]" if same else "[red]counters differ[/]")
        )
        if not same:
            _print_diff(console, result.counters, result.scalar_counters)
    return 0


def _comparable(counters: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in counters.items() if v})


def _print_diff(console: Console, a: Counter[str], b: Counter[str]) -> None:
    t = Table(title="Counters that differ")
    for col in ("counter", "vector + scalar", "scalar only"):
        t.add_column(col, justify="left" if col == "counter" else "right")
    for k in sorted(set(a) | set(b)):
        if a[k] != b[k]:
            t.add_row(k, str(a[k]), str(b[k]))
    console.print(t)


def verdicts(counters: Counter[str], stats: ForwardStats) -> dict[str, int]:
    """Packets per verdict.  The router counts exactly one outcome per received frame and per
    IPv4 packet (``netfast.ip.router.FRAME_OUTCOMES`` and ``IP_OUTCOMES``); this groups them."""
    from netfast.ip.router import FRAME_OUTCOMES, IP_OUTCOMES

    order = (
        "forwarded",
        "held for ARP resolution",
        "delivered to the router",
        "refused by the firewall",
        "dropped by the router",
        "ARP frames",
    )
    groups: Counter[str] = Counter(dict.fromkeys(order, 0))
    for name in IP_OUTCOMES:
        n = counters[name]
        if name in ("ip.fwd.forwarded", "ip.fwd.fragmented"):
            groups["forwarded"] += n
        elif name.startswith("arp.hold."):
            groups["held for ARP resolution"] += n
        elif name.startswith("ip.local."):
            groups["delivered to the router"] += n
        elif name.startswith("pfil."):
            groups["refused by the firewall"] += n
        else:
            groups["dropped by the router"] += n
    for name in FRAME_OUTCOMES:
        if name.startswith("arp."):
            groups["ARP frames"] += counters[name]
        elif name != "ip.in.received":
            groups["dropped by the router"] += counters[name]
    groups["ICMP errors and replies sent"] = stats.icmp_sent
    return groups


def print_report(
    console: Console, stats: ForwardStats, counters: Counter[str], names: Mapping[int, str]
) -> None:
    """Verdicts, every counter (drops by reason), and frames per egress port."""
    v = Table(title="Verdicts")
    v.add_column("verdict")
    v.add_column("packets", justify="right")
    for k, n in verdicts(counters, stats).items():
        if n or k in ("forwarded", "dropped by the router"):
            v.add_row(k, f"{n:,}")
    console.print(v)

    c = Table(title="Counters (drops by reason)")
    c.add_column("counter")
    c.add_column("packets", justify="right")
    for k in sorted(counters):
        if counters[k]:
            c.add_row(k, f"{counters[k]:,}")
    for k in sorted(stats.emitted):
        c.add_row(f"[dim]sent: {k}[/]", f"{stats.emitted[k]:,}")
    console.print(c)

    e = Table(title="Egress")
    e.add_column("port")
    e.add_column("frames out", justify="right")
    for i in sorted(set(names) | set(stats.out)):
        e.add_row(names.get(i, f"if{i}"), f"{stats.out[i]:,}")
    console.print(e)
    sys.stdout.flush()
