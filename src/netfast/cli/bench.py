"""``netfast bench``: reproductions of the paper's figures and measurements of netfast's hot paths.

Each benchmark measures its competitors in the same run and reports ratios, because the machines
it runs on are shared and noisy; absolute figures are printed for the record.  Results go to the
terminal as a table and, with ``--json FILE``, to a JSON file.

- ``netfast bench ethernet``: the paper's Figure 1 (maximal packet and payload rates at Ethernet
  speeds) computed from first principles, plus jumbo frames.
- ``netfast bench checksum``: the RFC 1071 checksum (the CPU fallback the paper says broken
  offload needs) against scapy's and a plain Python loop, and the batch kernel in headers/s.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.wire import checksum as ck
from netfast.wire.ethernet import FCS_LEN, HEADER_LEN, figure1_table, max_rates


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="reproduce the paper's figures; measure hot paths")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH")
    bench_sub.required = True
    eth = bench_sub.add_parser("ethernet", help="the paper's Figure 1: Ethernet packet rates")
    eth.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    eth.set_defaults(func=cmd_ethernet)
    cks = bench_sub.add_parser("checksum", help="Internet checksum throughput vs competitors")
    cks.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    cks.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    cks.set_defaults(func=cmd_checksum)


def _write_json(path: Path | None, payload: Any) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)  # never leave a half-written file where the user asked for one
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None


def cmd_ethernet(args: argparse.Namespace) -> int:
    rows = figure1_table()
    table = Table(title="Figure 1: maximal packet and payload rate at Ethernet speeds")
    for col in ("speed", "pps @64", "pps @1500", "payload bit/s @1500"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.speed, f"{r.pps_64:,.0f}", f"{r.pps_1500:,.0f}", f"{r.payload_bps_1500:,.0f}"
        )
    console = Console()
    console.print(table)
    jumbo = Table(title="Jumbo frames at 10 Gb/s")
    for col in ("payload bytes", "frame bytes", "pps", "payload bit/s", "payload share"):
        jumbo.add_column(col, justify="right")
    for payload in (1500, 4000, 9000, 16384 - HEADER_LEN - FCS_LEN):
        frame = payload + HEADER_LEN + FCS_LEN
        pps, payload_rate = max_rates(10e9, frame)
        jumbo.add_row(
            f"{payload:,}",
            f"{frame:,}",
            f"{pps:,.0f}",
            f"{payload_rate * 8:,.0f}",
            f"{100 * payload_rate * 8 / 10e9:.2f}%",
        )
    console.print(jumbo)
    console.print(
        "Per frame on the wire: 8 bytes preamble+SFD, 14 header, payload padded to 46, "
        "4 FCS, 12 inter-frame gap."
    )
    _write_json(args.json, [r._asdict() for r in rows])
    return 0


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``: best of 3 timed rounds after a warm-up."""
    fn()
    n = 1
    while True:  # find a call count that takes about seconds/3
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= seconds / 3 or n >= 1 << 24:
            break
        n *= 4
    best = dt
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def _python_loop_checksum(data: bytes) -> int:
    """RFC 1071 as a per-word Python loop: what "no per-byte loop" is measured against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def cmd_checksum(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise CliError(f"--seconds must be positive, got {args.seconds}")
    scapy_checksum: Callable[[bytes], int] | None
    try:
        from scapy.utils import checksum as scapy_checksum
    except ImportError:  # scapy is a test extra
        scapy_checksum = None
    rng = np.random.default_rng(1)
    results: list[dict[str, Any]] = []
    table = Table(title="RFC 1071 checksum, one buffer per call (calls/s; ratio = netfast/other)")
    for col in (
        "bytes",
        "netfast",
        "scapy",
        "python loop",
        "vs scapy",
        "vs loop",
        "netfast Gbit/s",
    ):
        table.add_column(col, justify="right")
    for size in (20, 64, 576, 1500, 9000, 65535):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        ours = _rate(partial(ck.internet_checksum, data), args.seconds)
        loop = _rate(partial(_python_loop_checksum, data), args.seconds)
        theirs = None
        if scapy_checksum is not None:
            theirs = _rate(partial(scapy_checksum, data), args.seconds)
        results.append({"bytes": size, "netfast": ours, "scapy": theirs, "python_loop": loop})
        table.add_row(
            f"{size:,}",
            f"{ours:,.0f}",
            "-" if theirs is None else f"{theirs:,.0f}",
            f"{loop:,.0f}",
            "-" if theirs is None else f"{ours / theirs:.1f}x",
            f"{ours / loop:.1f}x",
            f"{ours * size * 8 / 1e9:.2f}",
        )
    console = Console()
    console.print(table)
    # The vector path: IPv4 header checksums of a whole batch in one kernel call.
    n = 1 << 20
    headers = rng.integers(0, 256, (n, 20), dtype=np.uint8)
    batch_rate = n * _rate(lambda: ck.batch_checksum(headers, 0, 20), args.seconds * 3)
    numpy_rate = n * _rate(lambda: ck.batch_ipv4_header_checksum(headers), args.seconds * 3)
    one_header = headers[0].tobytes()
    scalar_rate = _rate(lambda: ck.internet_checksum(one_header), args.seconds)
    batch = Table(title="IPv4 header checksums over a batch of 1M headers (headers/s)")
    for col in ("numba kernel", "numpy columns", "scalar calls", "kernel vs scalar"):
        batch.add_column(col, justify="right")
    batch.add_row(
        f"{batch_rate:,.0f}",
        f"{numpy_rate:,.0f}",
        f"{scalar_rate:,.0f}",
        f"{batch_rate / scalar_rate:.1f}x",
    )
    console.print(batch)
    _write_json(
        args.json,
        {
            "per_buffer": results,
            "batch_headers_per_s": {
                "numba": batch_rate,
                "numpy": numpy_rate,
                "scalar": scalar_rate,
            },
        },
    )
    return 0
