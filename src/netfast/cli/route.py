"""``netfast route``: longest-prefix match against a real BGP table.

- ``route lookup ADDR...``: the matched prefix and value (origin AS, next hop, ...) of each address.
- ``route annotate [FILE]``: every address of a file (one per line, or a CSV column) with its
  matched prefix and value; the batch path, millions of addresses per second.
- ``route stats``: the table's prefix-length histogram and the memory and build time of every FIB
  algorithm on it.

Every command uses the bundled 2026 IPv4 table unless given ``--table FILE`` (text
``prefix<TAB>value``, CAIDA pfx2as, bgpdump ``-m`` or MRT; gzip or not).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from netfast.cli import CliError
from netfast.route.annotate import LINE_ADDRESS, Annotator, line_text
from netfast.route.loaders import default_table_path, load_table
from netfast.route.loaders.base import LoadResult, RouteFileError, shown
from netfast.route.parquet import is_parquet
from netfast.route.table import DEFAULT_ALGORITHM, RoutingTable, algorithm, algorithms

T = TypeVar("T")

#: Addresses looked up per batch by ``annotate`` (bounded memory on any input size).
CHUNK = 1 << 20


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table", type=Path, metavar="FILE", help="route file (default: the bundled 2026 table)"
    )
    p.add_argument(
        "--value",
        choices=("origin", "nexthop", "aspath"),
        default="origin",
        help="for BGP update/RIB files: what a route's value is (default: origin AS)",
    )
    p.add_argument(
        "--skip-bad", action="store_true", help="skip and count malformed table lines/records"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    route = sub.add_parser("route", help="longest-prefix match against a BGP table")
    route_sub = route.add_subparsers(dest="route_command", metavar="COMMAND")
    route_sub.required = True

    lookup = route_sub.add_parser("lookup", help="matched prefix and value of addresses")
    lookup.add_argument("addresses", nargs="+", metavar="ADDR")
    _add_table_args(lookup)
    lookup.add_argument("--algo", default=DEFAULT_ALGORITHM, help="FIB algorithm")
    lookup.set_defaults(func=cmd_lookup)

    annotate = route_sub.add_parser(
        "annotate", help="annotate a file of addresses with prefix and value"
    )
    annotate.add_argument("input", nargs="?", default="-", help="input file (default: stdin)")
    annotate.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    annotate.add_argument(
        "--column",
        help="CSV input: the address column, by 1-based number or header name; Parquet input "
        "(detected by content, written as Parquet to -o): the column's name",
    )
    annotate.add_argument(
        "--skip-bad-addresses",
        action="store_true",
        help="pass malformed addresses through unannotated (counted) instead of failing",
    )
    annotate.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="Parquet input: run on the Dask cluster at ADDR (tcp://host:port), -o a new folder",
    )
    _add_table_args(annotate)
    annotate.add_argument("--algo", default=DEFAULT_ALGORITHM, help="FIB algorithm")
    annotate.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )
    annotate.set_defaults(func=cmd_annotate)

    stats = route_sub.add_parser("stats", help="prefix-length histogram, memory per algorithm")
    _add_table_args(stats)
    stats.add_argument(
        "--algo",
        action="append",
        help="algorithm(s) to build and measure (default: all)",
    )
    stats.set_defaults(func=cmd_stats)


def load(args: argparse.Namespace) -> LoadResult:
    path = args.table if args.table is not None else default_table_path()
    try:
        result = load_table(path, value=args.value, skip_bad=args.skip_bad)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a route file") from None
    except RouteFileError as exc:
        # Advise --skip-bad only for what it can skip (a line or record, not a broken stream).
        hint = (
            ""
            if args.skip_bad or not exc.skippable
            else " (--skip-bad skips and counts such lines)"
        )
        raise CliError(f"{exc}{hint}") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if result.stats.skipped_total:
        print(
            f"netfast: warning: {path}: skipped {result.stats.skipped_total} bad "
            f"lines/records; first: {result.stats.first_errors[0]}",
            file=sys.stderr,
        )
    if len(result.rib) == 0:
        raise CliError(f"{path}: no IPv4 routes in the file")
    return result


def _table(args: argparse.Namespace) -> RoutingTable:
    try:
        cls = algorithm(args.algo)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return RoutingTable(load(args).rib, cls)


def parse_address(text: str) -> int:
    """A strict dotted quad as an int; ``ValueError`` otherwise."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, UnicodeError):
        raise ValueError(f"{shown(text)} is not an IPv4 address") from None


def cmd_lookup(args: argparse.Namespace) -> int:
    addrs = []
    for text in args.addresses:
        try:
            addrs.append(parse_address(text.strip()))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    table = _table(args)
    out = Table(title=f"longest-prefix match ({table.algorithm}, {len(table.rib):,} prefixes)")
    for col in ("address", "prefix", "value"):
        out.add_column(col)
    for text, addr in zip(args.addresses, addrs, strict=True):
        found = table.describe(table.lookup(addr))
        prefix, value = found if found is not None else ("-", "no route")
        out.add_row(text.strip(), prefix, str(value))
    Console().print(out)
    return 0


# --- annotate ----------------------------------------------------------------------------------

#: Bytes of input annotated per block (bounded memory on any input size).
BLOCK = 8 << 20


def _check_output(output: Path) -> None:
    """Refuse an ``-o`` the run could only fail on at the end, before any work is done."""
    if output.is_dir():
        raise CliError(f"{output}: is a directory (-o names the output file)")
    parent = output.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise CliError(f"{output}: cannot write: the directory {parent} {what}")


def _temp_output(output: Path) -> tuple[BinaryIO, Path]:
    """A new, uniquely named temporary file beside ``output``: it never collides with a file
    of the user's, and renaming it over ``output`` at the end is atomic."""
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{output.name}.", suffix=".netfast-tmp", dir=output.parent
        )
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None
    # mkstemp makes the file private (0600); give it the mode the output would have had.
    try:
        mode = output.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.fchmod(fd, mode)
    return os.fdopen(fd, "wb"), Path(name)


def _commit_output(outfile: BinaryIO, tmp: Path, output: Path) -> None:
    """Close the temporary file of :func:`_temp_output` and rename it over ``output``."""
    outfile.close()
    try:
        tmp.replace(output)
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.scheduler is not None:
        from netfast.cli.route_arrow import annotate_on_dask

        return annotate_on_dask(args)
    if args.output is not None:
        _check_output(args.output)
    if args.input != "-" and is_parquet(Path(args.input)):
        from netfast.cli.route_arrow import annotate_parquet_file

        return annotate_parquet_file(args)
    table = _table(args)
    source = "<stdin>" if args.input == "-" else args.input
    annotator = Annotator(table.lookup_batch, table.rib, args.skip_bad_addresses)
    if args.input == "-":
        infile: BinaryIO = sys.stdin.buffer
        size = 0
    else:
        try:
            infile = open(args.input, "rb")  # noqa: SIM115 - closed in the finally below
        except FileNotFoundError:
            raise CliError(f"{args.input}: no such file") from None
        except IsADirectoryError:
            raise CliError(f"{args.input}: is a directory") from None
        except OSError as exc:
            raise CliError(f"{args.input}: cannot read: {exc.strerror or exc}") from None
        size = os.fstat(infile.fileno()).st_size
    # Write to a temporary file beside the target and rename at the end: a failure half way
    # never leaves a user's file partially overwritten, and leaves nothing behind.
    tmp: Path | None = None
    try:
        if args.output is not None:
            outfile, tmp = _temp_output(args.output)
        else:
            outfile = sys.stdout.buffer
        show = not args.no_progress and sys.stderr.isatty() and size > 4 * BLOCK
        t0 = time.perf_counter()
        with _progress(show, size) as advance:
            if args.column is None:
                total = _annotate_lines(annotator, source, infile, outfile, advance)
            else:
                total = _annotate_csv(annotator, source, infile, outfile, args.column, advance)
        outfile.flush()
        if tmp is not None:
            _commit_output(outfile, tmp, args.output)
            tmp = None
    finally:
        if tmp is not None:
            outfile.close()
            tmp.unlink(missing_ok=True)
        if infile is not sys.stdin.buffer:
            infile.close()
    dt = time.perf_counter() - t0
    if args.output is not None or annotator.invalid:
        rate = total / dt if dt > 0 else 0.0
        msg = f"netfast: annotated {total:,} addresses in {dt:.2f} s ({rate:,.0f}/s)"
        if annotator.invalid:
            msg += f"; {annotator.invalid:,} malformed passed through as 'invalid'"
        print(msg, file=sys.stderr)
    return 0


class _progress:
    """A rich progress bar over the input's bytes, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Progress | None = None
        self._task = TaskID(0)

    def __enter__(self) -> _progress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("annotating"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
            )
            self._progress.start()
            self._task = self._progress.add_task("annotate", total=self.total)
        return self

    def __call__(self, nbytes: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, nbytes)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bad_address(source: str, line_no: int, text: str) -> CliError:
    return CliError(
        f"{source}: line {line_no}: {shown(text)} is not an IPv4 address "
        "(--skip-bad-addresses passes such lines through)"
    )


#: The longest input line ``annotate`` takes (an address line is a few dozen bytes at most).
MAX_LINE = 64 * 1024


def _too_long(source: str, line_no: int) -> CliError:
    return CliError(f"{source}: line {line_no}: line longer than {MAX_LINE:,} bytes")


def _annotate_lines(
    annotator: Annotator, source: str, infile: BinaryIO, outfile: BinaryIO, advance: _progress
) -> int:
    total = 0
    first_line = 1
    rest = b""
    while True:
        data = infile.read(BLOCK)
        if data:
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:
                    raise _too_long(source, first_line)
                rest = data
                continue
            block, rest = data[: cut + 1], data[cut + 1 :]
            if len(rest) > MAX_LINE:
                # Annotate what comes before the overlong line first: its errors come first.
                rest = b""
                result = annotator.block(block)
                outfile.write(result.output)
                if len(result.invalid_lines) and not annotator.skip_bad:
                    i = int(result.invalid_lines[0])
                    raise _bad_address(source, first_line + i, line_text(block, i))
                raise _too_long(source, first_line + result.lines)
        else:
            block, rest = rest, b""
            if not block:
                break
        result = annotator.block(block)
        outfile.write(result.output)
        if len(result.invalid_lines) and not annotator.skip_bad:
            i = int(result.invalid_lines[0])
            raise _bad_address(source, first_line + i, line_text(block, i))
        advance(len(block))
        total += result.annotated
        first_line += result.lines
    return total


def _annotate_csv(
    annotator: Annotator,
    source: str,
    infile: BinaryIO,
    outfile: BinaryIO,
    column: str,
    advance: _progress,
) -> int:
    text_in = io.TextIOWrapper(infile, encoding="utf-8", errors="replace", newline="")
    text_out = io.TextIOWrapper(outfile, encoding="utf-8", newline="", write_through=True)
    try:
        return _annotate_csv_rows(annotator, source, text_in, text_out, column, advance)
    finally:
        # The wrappers must not close the underlying files (stdin/stdout or our temp file).
        text_out.flush()
        text_in.detach()
        text_out.detach()


def _annotate_csv_rows(
    annotator: Annotator,
    source: str,
    infile: TextIO,
    outfile: TextIO,
    column: str,
    advance: _progress,
) -> int:
    reader = csv.reader(infile)
    writer = csv.writer(outfile, lineterminator="\n")
    try:
        first = next(reader)
    except StopIteration:
        return 0
    except csv.Error as exc:
        raise _csv_error(source, reader.line_num, exc) from None
    if column.isascii() and column.isdigit():
        col = int(column) - 1
        if col < 0:
            raise CliError(f"--column is 1-based, got {column}")
        pending = [first]
        line_no = 1
    else:
        if column not in first:
            header = shown(",".join(first))
            raise CliError(f"{source}: line 1: no column named {shown(column)} in {header}")
        col = first.index(column)
        writer.writerow([*first, "prefix", "value"])
        pending = []
        line_no = 2
    total = 0

    def rows() -> Iterator[list[str]]:
        yield from pending
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _csv_error(source, reader.line_num, exc) from None
            yield row

    for chunk in _chunks(rows(), CHUNK):
        for i, row in enumerate(chunk):
            if len(row) <= col:
                raise CliError(
                    f"{source}: line {line_no + i}: has {len(row)} columns, no column {col + 1}"
                )
        cells = [row[col].replace("\n", " ") for row in chunk]
        parsed = annotator.parse("\n".join(cells).encode())
        out_rows = []
        for i, (row, rid) in enumerate(zip(chunk, parsed.rids.tolist(), strict=True)):
            if parsed.status[i] != LINE_ADDRESS:
                if not annotator.skip_bad:
                    raise _bad_address(source, line_no + i, cells[i])
                annotator.invalid += 1
                rid = -2
            prefix, value = annotator.text(rid).decode().split("\t", 1)
            out_rows.append([*row, prefix, value])
        writer.writerows(out_rows)
        advance(sum(sum(map(len, row)) + len(row) for row in chunk))
        total += len(chunk)
        line_no += len(chunk)
    return total


def _csv_error(source: str, line_no: int, exc: csv.Error) -> CliError:
    text = str(exc)
    if "field larger than field limit" in text:
        text = f"a CSV field longer than {csv.field_size_limit():,} characters"
    else:
        text = f"malformed CSV: {text}"
    return CliError(f"{source}: line {line_no}: {text}")


# --- stats -------------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    names = args.algo or list(algorithms())
    classes = []
    for name in names:
        try:
            classes.append(algorithm(name))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    result = load(args)
    rib = result.rib
    console = Console()
    _, plens, _ = rib.live_arrays()
    hist = np.bincount(plens, minlength=33)
    n = len(plens)
    table = Table(title=f"{result.stats.path}: {n:,} prefixes by length")
    for col in ("length", "prefixes", "%", ""):
        table.add_column(col, justify="right" if col != "" else "left")
    peak = int(hist.max()) or 1
    for plen in range(33):
        if hist[plen]:
            share = 100.0 * hist[plen] / n
            table.add_row(
                f"/{plen}",
                f"{int(hist[plen]):,}",
                f"{share:.1f}",
                "█" * max(1, round(40 * hist[plen] / peak)),
            )
    console.print(table)
    mem = Table(title="FIB algorithms on this table")
    for col in ("algorithm", "build s", "memory bytes", "bytes/prefix", "lock-free updates"):
        mem.add_column(col, justify="right" if col != "algorithm" else "left")
    for cls in classes:
        t0 = time.perf_counter()
        fib = cls.build(rib)
        dt = time.perf_counter() - t0
        size = fib.memory_bytes()
        mem.add_row(
            cls.name,
            f"{dt:.2f}",
            f"{size:,}",
            f"{size / max(n, 1):.1f}",
            "yes" if cls.concurrent_updates else "no",
        )
    console.print(mem)
    return 0
