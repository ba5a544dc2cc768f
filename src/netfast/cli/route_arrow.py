"""``netfast route annotate`` on Parquet: one file to another in this process, or a file or
folder to a folder of parts on a Dask cluster (``--scheduler``).  The text and CSV forms, the
argument parsing and the shared helpers are in :mod:`netfast.cli.route`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netfast.cli import CliError
from netfast.cli.route import BLOCK, _commit_output, _progress, _table, _temp_output
from netfast.route.parquet import is_parquet


def annotate_on_dask(args: argparse.Namespace) -> int:
    """Parquet in, a folder of Parquet parts out, on a Dask cluster."""
    from netfast.route.cluster import annotate_parquet_dask

    source = Path(args.input)
    if args.input == "-" or not (source.is_dir() or is_parquet(source)):
        raise CliError(f"{args.input}: --scheduler takes a Parquet file or folder")
    if args.column is None:
        raise CliError("--scheduler needs --column NAME (the address column)")
    if args.output is None:
        raise CliError("--scheduler needs -o FOLDER for the Parquet parts")
    if args.output.exists():
        raise CliError(f"{args.output}: exists (the cluster writes a new folder there)")
    if not args.output.parent.is_dir():
        raise CliError(
            f"{args.output}: cannot write: the directory {args.output.parent} is missing"
        )
    table = _table(args)
    try:
        done = annotate_parquet_dask(source, args.output, args.column, table, args.scheduler)
    except OSError as exc:
        raise CliError(f"{args.scheduler}: {exc}") from None
    builds = [s["build_seconds"] for per in done["workers"].values() for s in per.values()]
    rate = done["rows"] / done["seconds"] if done["seconds"] > 0 else 0.0
    print(
        f"netfast: annotated {done['rows']:,} rows on {len(done['workers'])} workers in "
        f"{done['seconds']:.2f} s ({rate:,.0f}/s); table image {done['image_bytes'] / 1e6:.1f} "
        f"MB shipped in {done['ship_seconds']:.2f} s, built on the workers in "
        + ", ".join(f"{b:.2f}" for b in builds if b is not None)
        + " s",
        file=sys.stderr,
    )
    return 0


def annotate_parquet_file(args: argparse.Namespace) -> int:
    """Parquet in, Parquet out (every input column and the three new ones), streamed."""
    import pyarrow.parquet as pq

    from netfast.route.arrow import ArrowAnnotator
    from netfast.route.parquet import ParquetInputError, annotate_parquet

    source = Path(args.input)
    if args.output is None:
        raise CliError(f"{source}: Parquet input needs -o FILE for the Parquet output")
    try:
        total_rows = pq.ParquetFile(source).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CliError(f"{source}: not a readable Parquet file: {exc}") from None
    annotator = ArrowAnnotator(_table(args))
    outfile, tmp = _temp_output(args.output)
    done = False
    t0 = time.perf_counter()
    try:
        show = not args.no_progress and sys.stderr.isatty() and total_rows > 4 * BLOCK
        with _progress(show, total_rows) as advance:
            try:
                rows = annotate_parquet(source, outfile, args.column, annotator, progress=advance)
            except ParquetInputError as exc:
                raise CliError(str(exc)) from None
        _commit_output(outfile, tmp, args.output)
        done = True
    finally:
        if not done:
            outfile.close()
            tmp.unlink(missing_ok=True)
    dt = time.perf_counter() - t0
    st = annotator.stats
    rate = rows / dt if dt > 0 else 0.0
    print(
        f"netfast: annotated {rows:,} rows in {dt:.2f} s ({rate:,.0f}/s): {st.annotated:,} "
        f"matched, {st.no_route:,} no route, {st.malformed:,} malformed, {st.null:,} null",
        file=sys.stderr,
    )
    return 0
