"""``netfast bench bdp``: the paper's Figure 16, the reassembly memory it implies, and what
netfast's queue and the 4.4BSD linked list really hold.

See :mod:`netfast.bench.bdp` for what is computed and measured and for the JSON schema.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netfast.bench import bdp
from netfast.cli.bench import _write_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bdp", help="the paper's Figure 16: BDP and the reassembly memory it takes")
    p.add_argument(
        "--quick",
        action="store_true",
        help="windows up to 4 MiB and a small attack (a few seconds; full: up to 64 MiB)",
    )
    p.add_argument("--seed", type=int, default=1, help="seeds payloads and arrival orders")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_bdp)


_UNITS = ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))


def _size(n: float) -> str:
    """Bytes in decimal units, three significant figures."""
    for scale, unit in _UNITS:
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _grid(
    cells: Sequence[dict[str, Any]], title: str, value: Callable[[dict[str, Any]], str]
) -> Table:
    """Speeds down, RTTs across, as Figure 16 is laid out."""
    table = Table(title=title)
    table.add_column("speed", justify="left")
    for rtt in bdp.RTTS_MS:
        table.add_column(f"{rtt} ms", justify="right")
    for speed, _ in bdp.SPEEDS:
        row = {c["rtt_ms"]: c for c in cells if c["speed"] == speed}
        table.add_row(speed, *(value(row[rtt]) for rtt in bdp.RTTS_MS))
    return table


def _flag(c: dict[str, Any]) -> str:
    return "*" if c["window_limited"] else ""


def _table(title: str, columns: Sequence[str], left: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def _measured_table(rows: Sequence[dict[str, Any]]) -> Table:
    columns = (
        "order",
        "window",
        "netfast held",
        "blocks/chunks",
        "traced",
        "x held",
        "resent",
        "linked list held",
        "nodes",
        "traced",
        "x held",
        "4.4BSD mbufs",
        "data",
    )
    table = _table(
        "Measured: first segment lost, the rest of the window waiting", columns, ("order", "data")
    )
    by = {(r["order"], r["window_bytes"], r["impl"]): r for r in rows}
    for order in bdp.ORDERS:
        windows = sorted({w for (o, w, _) in by if o == order})
        for w in windows:
            nf = by[(order, w, "netfast")]
            ll = by.get((order, w, "linked_list"))
            ok = nf["delivered_ok"] and (ll is None or ll["delivered_ok"])
            cells = [
                order,
                f"{w:,}",
                f"{nf['bytes_held']:,}",
                f"{nf['blocks']}/{nf['chunks']:,}",
                _size(nf["traced_bytes"]),
                _ratio(nf["traced_bytes"], nf["bytes_held"]),
                f"{nf['retransmitted_bytes']:,}",
            ]
            if ll is None:
                cells += ["-"] * 5
            else:
                cells += [
                    f"{ll['bytes_held']:,}",
                    f"{ll['blocks']:,}",
                    _size(ll["traced_bytes"]),
                    _ratio(ll["traced_bytes"], ll["bytes_held"]),
                    _size(ll["mbuf_bytes"]),
                ]
            cells.append("sha256 ok" if ok else "[red]MISMATCH[/]")
            table.add_row(*cells)
        table.add_section()
    return table


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}x" if b else "-"


def _attack_table(rows: Sequence[dict[str, Any]]) -> Table:
    columns = (
        "shape",
        "design",
        "segments sent",
        "bytes held",
        "blocks",
        "traced",
        "traced/segment",
        "refused (holes/bytes)",
        "4.4BSD mbufs",
        "traced after each quarter",
    )
    table = _table(
        "Measured: the 1-byte-segment attack on one connection", columns, ("shape", "design")
    )
    for r in rows:
        c = r["counters"]
        refused = "-"
        if r["impl"] == "netfast":
            refused = f"{c.get('tcp.reass.hole_limit', 0):,}/{c.get('tcp.reass.byte_limit', 0):,}"
        table.add_row(
            r["shape"],
            r["impl"],
            f"{r['segments_sent']:,}",
            f"{r['bytes_held']:,}",
            f"{r['blocks']:,}",
            _size(r["traced_bytes"]),
            f"{r['traced_per_segment']:.1f} B",
            refused,
            "-" if r["mbuf_bytes"] is None else _size(r["mbuf_bytes"]),
            "/".join(f"{g[2] / 1000:.1f}" for g in r["growth"]) + " kB",
        )
    return table


def cmd_bdp(args: argparse.Namespace) -> int:
    caps = bdp.QUICK if args.quick else bdp.FULL
    console = Console(width=max(Console().width, 160))
    with console.status("measuring") as status:
        result = bdp.run_bdp_bench(
            caps, args.seed, progress=lambda msg: status.update(f"measuring {msg}")
        )
    cells = result["figure16"]
    console.print(
        _grid(
            cells,
            "Figure 16: bandwidth x delay product in kB (1 kB = 1000 B); 300 ms is Europe - Japan",
            lambda c: f"{c['bdp_kB']:,.2f}".rstrip("0").rstrip("."),
        )
    )
    console.print(
        f"* beyond TCP's largest window ({bdp.MAX_WINDOW:,} bytes): one connection cannot fill "
        "the path, so the memory below is for that window."
    )
    console.print(
        _grid(
            cells,
            f"4.4BSD: mbuf + cluster ({bdp.MBUF_PER_SEGMENT:,} B) per waiting {bdp.MSS}-byte "
            "segment when the first is lost",
            lambda c: _size(c["bsd_bytes"]) + _flag(c),
        )
    )
    console.print(
        _grid(
            cells,
            "4.4BSD under the attack: the window filled with 1-byte segments, "
            f"{bdp.MBUF_PER_SEGMENT:,} B each, per connection",
            lambda c: _size(c["bsd_attack_bytes"]) + _flag(c),
        )
    )
    console.print(
        _grid(
            cells,
            "netfast: the waiting bytes in one block, CPython overheads included "
            "(bound for any arrivals, max_bytes = window)",
            lambda c: f"{_size(c['netfast_bytes'])} ({_size(c['netfast_bound_bytes'])})" + _flag(c),
        )
    )
    console.print(_measured_table(result["measured"]))
    held = [r for r in result["measured"] if r["bytes_held"]]
    if held:
        worst = max(held, key=lambda r: abs(r["traced_bytes"] / r["model_bytes"] - 1))
        console.print(
            "traced vs the first-principles model of the same counts: at most "
            f"{100 * abs(worst['traced_bytes'] / worst['model_bytes'] - 1):.2f}% apart "
            f"({worst['impl']}, {worst['order']}, {worst['window_bytes']:,}-byte window)"
        )
    console.print(_attack_table(result["attack"]))
    console.print(f"verdict: {result['verdict']}")
    payload: dict[str, Any] = {
        "benchmark": "bdp",
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "quick": bool(args.quick),
        "seed": args.seed,
    }
    payload.update(result)
    _write_json(args.json, payload)
    return 0
