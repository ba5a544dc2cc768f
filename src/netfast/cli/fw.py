"""``netfast fw``: the ipfw-style firewall (:mod:`netfast.pfil.ipfw`) from the command line.

- ``netfast fw check FILE`` validates a rule file and prints it normalized (numbered, ports as
  numbers, the default rule last); a malformed file exits with status 2 and one line naming the
  file, rule, line and column.
- ``netfast fw show [FILE]`` prints the rules with their packet and byte counters (zero for a
  file on its own).  With ``--pcap CAPTURE`` every IPv4 packet of the capture goes through the
  ruleset first (direction in, the capture's timestamps as the clock), so the counters show what
  the ruleset would have done with that traffic.  With no FILE it reads the sample ruleset of the
  router demo (``netfast/data/sample-rules.fw``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.link.pcap import open_capture
from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.ipfw import FirewallError, Ruleset, parse_rules, read_rules
from netfast.route.loaders import load_table
from netfast.route.loaders.base import RouteFileError
from netfast.wire.capture import PcapError
from netfast.wire.dissect import LINKTYPE_ETHERNET, dissect
from netfast.wire.ethernet import EthernetFrame
from netfast.wire.ipv4 import ip_from_str

SAMPLE_RULES = "sample-rules.fw"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fw = sub.add_parser("fw", help="check and inspect ipfw-style firewall rulesets")
    fw_sub = fw.add_subparsers(dest="fw_command", metavar="COMMAND")
    fw_sub.required = True

    check = fw_sub.add_parser(
        "check",
        help="validate a rule file and print it normalized",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", type=Path, help="rule file")
    _ruleset_options(check)
    check.set_defaults(func=cmd_check)

    show = fw_sub.add_parser(
        "show",
        help="print rules with their packet/byte counters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "file", nargs="?", type=Path, help="rule file; default: the sample ruleset of the demo"
    )
    show.add_argument(
        "--pcap",
        type=Path,
        metavar="CAPTURE",
        help="run the capture's IPv4 packets through the ruleset (direction in) first",
    )
    show.add_argument(
        "--recv",
        metavar="IFNAME",
        default="eth0",
        help="interface name the capture arrived on, for recv/via rules (default: eth0)",
    )
    _ruleset_options(show)
    show.set_defaults(func=cmd_show)


def _ruleset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--default-allow",
        action="store_true",
        help="the default rule 65535 allows (instead of denying)",
    )
    parser.add_argument(
        "--me",
        action="append",
        default=[],
        metavar="ADDR",
        help="an address of this host, matched by 'me' (repeatable)",
    )
    parser.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="NAME=ROUTEFILE",
        help="load named table NAME from a route file (any format route lookup reads)",
    )


def _load(path: Path | None, args: argparse.Namespace, interfaces: dict[str, int]) -> Ruleset:
    me = []
    for text in args.me:
        try:
            me.append(ip_from_str(text))
        except ValueError:
            raise CliError(f"--me {text!r} is not an IPv4 address") from None
    tables = {}
    for spec in args.table:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise CliError(f"--table {spec!r}: expected NAME=ROUTEFILE")
        try:
            tables[name] = load_table(file).rib
        except (OSError, RouteFileError) as exc:
            raise CliError(f"--table {spec}: {exc}") from None
    options: dict[str, Any] = {
        "tables": tables,
        "default_allow": args.default_allow,
        "me": me,
        "interfaces": interfaces,
    }
    if path is None:
        text = (resources.files("netfast.data") / SAMPLE_RULES).read_text()
        name = SAMPLE_RULES
    else:
        name = str(path)
        try:
            text = read_rules(path)
        except FileNotFoundError:
            raise CliError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CliError(f"{path}: is a directory, not a rule file") from None
        except OSError as exc:
            raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except FirewallError as exc:
            raise CliError(str(exc)) from None
    try:
        return parse_rules(text, name, **options)
    except FirewallError as exc:
        raise CliError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    ruleset = _load(args.file, args, {})
    sys.stdout.write(ruleset.text())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ruleset = _load(args.file, args, {args.recv: 0})
    verdicts: Counter[str] | None = None
    if args.pcap is not None:
        verdicts = run_capture(ruleset, args.pcap)
    print_show(ruleset, verdicts, sys.stdout)
    return 0


def capture_packets(path: Path, ifindex: int = 0) -> Iterator[tuple[float, PfilPacket]]:
    """``(time in seconds, packet)`` for every IPv4 packet of a capture, as the IN head sees it."""
    try:
        with open_capture(path) as capture:
            for record in capture:
                pkt = pfil_packet(record.data, record.linktype, ifindex, Direction.IN)
                if pkt is not None:
                    yield record.timestamp_ns / 1e9, pkt
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a capture file") from None
    except PcapError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # permission, I/O error, ...
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None


def pfil_packet(
    frame: bytes, linktype: int, ifindex: int, direction: Direction
) -> PfilPacket | None:
    """The :class:`PfilPacket` of an Ethernet frame holding IPv4, else None."""
    if linktype != LINKTYPE_ETHERNET:
        return None
    d = dissect(frame, linktype)
    ip = d.ipv4
    if ip is None:
        return None
    eth = EthernetFrame(frame)
    data = bytes(eth.payload[: ip.total_length])
    pkt = PfilPacket(
        ifindex=ifindex,
        direction=direction,
        src=ip.src,
        dst=ip.dst,
        proto=int(ip.protocol),
        ttl=ip.ttl,
        length=ip.total_length,
        fragment=ip.more_frags or ip.frag_offset != 0,
        data=data,
    )
    if d.tcp is not None:
        pkt.sport, pkt.dport, pkt.tcp_flags = d.tcp.src_port, d.tcp.dst_port, int(d.tcp.flags)
    elif d.udp is not None:
        pkt.sport, pkt.dport = d.udp.src_port, d.udp.dst_port
    elif d.icmp is not None:
        pkt.icmp_type, pkt.icmp_code = data[ip.header_len], data[ip.header_len + 1]
    return pkt


def run_capture(ruleset: Ruleset, path: Path) -> Counter[str]:
    """Run a capture through the ruleset's hook; verdict names -> packets."""
    verdicts: Counter[str] = Counter()
    for now, pkt in capture_packets(path):
        ruleset.now = now
        verdict = ruleset(pkt)
        verdicts[Verdict(verdict).name.lower()] += 1
        verdicts["replies"] += len(pkt.replies or ())
    return verdicts


def print_show(ruleset: Ruleset, verdicts: Counter[str] | None, out: TextIO) -> None:
    table = Table(title="firewall rules")
    for col in ("rule", "packets", "bytes", "body"):
        table.add_column(col, justify="left" if col == "body" else "right")
    for c in ruleset.counters:
        table.add_row(f"{c.number:05d}", f"{c.packets:,}", f"{c.bytes:,}", str(c.rule)[6:])
    notes = []
    if verdicts is not None:
        total = sum(v for k, v in verdicts.items() if k != "replies")
        notes.append(
            f"{total:,} IPv4 packets: {verdicts['pass']:,} passed, {verdicts['drop']:,} dropped, "
            f"{verdicts['replies']:,} replies"
        )
    if ruleset.states:
        notes.append(f"{len(ruleset.states):,} dynamic states")
    notes += [f"{name} {n:,}" for name, n in sorted(ruleset.stats.items())]
    if notes:
        table.caption = "; ".join(notes)
    console = Console(file=out, width=max(120, Console(file=out).width))
    for name, rib in ruleset.ribs.items():
        console.print(f"table {name}: {len(rib):,} prefixes")
    console.print(table)
    for line in ruleset.log:
        console.print(line, markup=False, highlight=False)
