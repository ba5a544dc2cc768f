"""``netfast pcap show``: read a capture (classic pcap or pcapng, gzip or not) and print one line
per packet -- time, addresses, protocol summary, flags, lengths, checksum status -- as
``tcpdump -r`` does, and with ``--stats`` a per-protocol summary table.

With no file it reads the real capture bundled with netfast (see ``netfast/data/SOURCES.md``).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.link.pcap import open_capture
from netfast.wire.capture import PcapError
from netfast.wire.dissect import CaptureStats, dissect, summary

BUNDLED_SAMPLE = "sample-http.pcap"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pcap = sub.add_parser("pcap", help="read and inspect capture files")
    pcap_sub = pcap.add_subparsers(dest="pcap_command", metavar="COMMAND")
    pcap_sub.required = True
    show = pcap_sub.add_parser(
        "show",
        help="print one line per packet, like tcpdump -r",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="capture file (pcap or pcapng, optionally gzip); default: the bundled sample",
    )
    show.add_argument("--stats", action="store_true", help="print a per-protocol summary table")
    show.add_argument(
        "-q", "--quiet", action="store_true", help="no per-packet lines (use with --stats)"
    )
    show.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    show.add_argument(
        "--tolerate-truncation",
        action="store_true",
        help="show the whole records of a cut-off capture and warn, instead of failing",
    )
    show.set_defaults(func=cmd_show)


def format_time(timestamp_ns: int) -> str:
    """UTC date and time; microseconds, or nanoseconds when the capture has them.

    Any integer formats, far outside the years ``datetime`` knows (1 to 9999) included: the
    proleptic Gregorian calendar is computed here, with astronomical year numbers (year 0 is
    1 BC), so showing a packet's time can never fail.
    """
    seconds, frac = divmod(timestamp_ns, 1_000_000_000)
    days, rest = divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    base = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    if frac % 1000:
        return f"{base}.{frac:09d}"
    return f"{base}.{frac // 1000:06d}"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """``(year, month, day)`` of ``days`` after 1970-01-01, in the proleptic Gregorian calendar.

    The calendar repeats every 400 years (146097 days); within an era, counting years from
    March puts the leap day last, so month lengths follow a linear formula (H. Hinnant,
    "chrono-compatible low-level date algorithms").
    """
    z = days + 719468  # days since 0000-03-01
    era, doe = divmod(z, 146097)
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def cmd_show(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 0:
        raise CliError(f"--count must be >= 0, got {args.count}")
    if args.file is None:
        with resources.as_file(resources.files("netfast.data") / BUNDLED_SAMPLE) as path:
            return show(path, args, sys.stdout)
    return show(args.file, args, sys.stdout)


def show(path: Path, args: argparse.Namespace, out: TextIO) -> int:
    stats = CaptureStats()
    shown = 0
    try:
        with open_capture(path, tolerate_truncation=args.tolerate_truncation) as capture:
            for record in capture:
                if args.count is not None and shown >= args.count:
                    break
                d = dissect(record.data, record.linktype, record.orig_len)
                stats.add(d, record.timestamp_ns)
                if not args.quiet:
                    line = f"{format_time(record.timestamp_ns)} {summary(d)}"
                    if record.orig_len > len(record.data):
                        line += f" (captured {len(record.data)} of {record.orig_len})"
                    out.write(line + "\n")
                shown += 1
            truncation = capture.truncation
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a capture file") from None
    except PermissionError:
        raise CliError(f"{path}: permission denied") from None
    except PcapError as exc:
        out.flush()
        raise CliError(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader of our output went away: netfast.cli.main handles it
    except OSError as exc:  # any other reason the file cannot be read (EIO, ELOOP, ...)
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    if truncation is not None:
        print(
            f"netfast: warning: {truncation} (showing the whole records before it)", file=sys.stderr
        )
    if args.stats:
        print_stats(stats, path.name, out)
    return 0


def print_stats(stats: CaptureStats, title: str, out: TextIO) -> None:
    table = Table(title=f"{title}: per-protocol summary")
    columns = ("protocol", "packets", "%", "bytes", "bad cksum", "cksum unverified", "malformed")
    for col in (*columns, "truncated"):
        table.add_column(col, justify="left" if col == "protocol" else "right")
    total = stats.total
    for name, s in stats.rows():
        share = 100.0 * s.packets / total.packets if total.packets else 0.0
        table.add_row(
            name,
            f"{s.packets:,}",
            f"{share:.1f}",
            f"{s.bytes:,}",
            f"{s.bad_checksum:,}",
            f"{s.unverified:,}",
            f"{s.malformed:,}",
            f"{s.truncated:,}",
        )
    table.add_section()
    table.add_row(
        "total",
        f"{total.packets:,}",
        "100.0" if total.packets else "0.0",
        f"{total.bytes:,}",
        f"{total.bad_checksum:,}",
        f"{total.unverified:,}",
        f"{total.malformed:,}",
        f"{total.truncated:,}",
    )
    if stats.first_ns is not None and stats.last_ns is not None:
        span = (stats.last_ns - stats.first_ns) / 1e9
        table.caption = f"{format_time(stats.first_ns)} UTC + {span:.3f} s"
    Console(file=out, width=max(100, Console(file=out).width)).print(table)
