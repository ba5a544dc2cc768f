"""What ``netfast bench http`` prints: the rich tables of the wrk sections, the targets, the TAP
section, Figure 18 and the in-process measurement, and the one-line answers of Figure 18."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from netfast.bench.http.common import LARGE_CONNECTIONS, SMALL_CONNECTIONS


def figure18_label(row: dict[str, Any]) -> str:
    """The name of a Figure 18 row's line: ``netfast poll`` (the kernel backend's pollers),
    ``nginx epoll``, or the row's ``line`` (``netfast-kqueue``, ``netfast-eventqueue`` ...)."""
    return str(row.get("line") or f"{row['server']} {row['poller']}")


def _status(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"[yellow]skipped: {row['skipped']}[/]"
    if "error" in row:
        return f"[red]error: {row['error']}[/]"
    if row.get("flagged"):
        return f"[red]flagged: {row['flagged']}[/]"
    if row.get("content_ok") is False:
        return "[red]content differs from the file[/]"
    return "ok"


def _lat(row: dict[str, Any], key: str) -> str:
    v = row.get("latency_us", {}).get(key)
    return "-" if v is None else f"{v / 1000:.2f}"


_TITLES = {
    "keepalive": f"1 KiB file, keep-alive (wrk -t1 -c{SMALL_CONNECTIONS})",
    "close": f"1 KiB file, a new connection per request (wrk -t1 -c{SMALL_CONNECTIONS} "
    "-H 'Connection: close')",
    "large": f"large file (wrk -t1 -c{LARGE_CONNECTIONS})",
}


def wrk_table(rows: Sequence[dict[str, Any]], section: str) -> Table:
    """The rows of one wrk section."""
    table = Table(title=_TITLES[section])
    for col in (
        "workers",
        "server",
        "file",
        "req/s",
        "MB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "status",
        "note",
    ):
        table.add_column(
            col, justify="left" if col in ("server", "file", "status", "note") else "right"
        )
    for r in rows:
        if r["section"] != section:
            continue
        ran = "requests_per_s" in r
        table.add_row(
            str(r["workers"]),
            r["server"],
            r["file"],
            f"{r['requests_per_s']:,.0f}" if ran else "-",
            f"{r['bytes_per_s'] / 1e6:,.1f}" if ran else "-",
            _lat(r, "p50"),
            _lat(r, "p90"),
            _lat(r, "p99"),
            _status(r),
            r.get("note", ""),
        )
    return table


def targets_table(tgts: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="targets: netfast httpd (kernel backend) / competitor, same run")
    for col in ("target", "workers", "netfast", "competitor", "ratio", "goal", "met"):
        table.add_column(col, justify="left" if col in ("target", "met") else "right")
    for t in tgts:
        unit = 1e6 if t["metric"] == "bytes_per_s" else 1.0
        fmt = "{:,.1f} MB/s" if unit > 1 else "{:,.0f} req/s"
        other = next((k for k in ("nginx", "http.server") if k in t), None)
        if t["met"] is None:
            met = f"[yellow]n/a ({t.get('why', '')})[/]"
        else:
            met = "[green]met[/]" if t["met"] else "[red]missed[/]"
            if t.get("flagged"):
                met += f" [red](flagged: {t['flagged']})[/]"
        table.add_row(
            t["target"],
            str(t["workers"]),
            fmt.format(t["netfast"] / unit) if "netfast" in t else "-",
            f"{other} {fmt.format(t[other] / unit)}" if other else "-",
            "-" if t["ratio"] is None else f"{t['ratio']:.2f}x",
            f">= {t['goal']:g}x",
            met,
        )
    return table


def tap_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The netfast backend over the TAP, with nginx's loopback figures of this run."""
    table = Table(title="netfast backend over a TAP (wrk in a namespace; no target)")
    for col in (
        "load",
        "file",
        "conns",
        "req/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "nginx loopback",
        "status",
    ):
        table.add_column(col, justify="left" if col in ("load", "file", "status") else "right")
    ref = {
        r["section"]: r
        for r in rows
        if r["server"] == "nginx" and r.get("workers") == 1 and "requests_per_s" in r
    }
    for r in rows:
        if r["section"] != "tap":
            continue
        ran = "requests_per_s" in r
        other = ref.get("keepalive" if r["load"] == "tap-keepalive" else "large")
        if other is None:
            ref_text = "-"
        elif r["load"] == "tap-keepalive":
            ref_text = f"{other['requests_per_s']:,.0f} req/s"
        else:
            ref_text = f"{other['bytes_per_s'] / 1e6:,.1f} MB/s ({other['file']})"
        table.add_row(
            r["load"],
            r["file"],
            str(r["connections"]),
            f"{r['requests_per_s']:,.0f}" if ran else "-",
            f"{r['bytes_per_s'] / 1e6:,.1f}" if ran else "-",
            _lat(r, "p50"),
            _lat(r, "p99"),
            ref_text,
            _status(r),
        )
    return table


def figure18_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Median / p99 response time (µs) per idle-connection count, one column per line."""
    fig = [r for r in rows if r["section"] == "figure18"]
    lines = list(dict.fromkeys(figure18_label(r) for r in fig))
    table = Table(
        title="Figure 18: response time (median / p99 µs) against idle connections, one worker "
        "(netfast poller: kernel backend on loopback; netfast-kqueue: netfast backend over a TAP)"
    )
    table.add_column("idle", justify="right")
    for label in lines:
        table.add_column(label, justify="right")
    cells: dict[int, dict[str, dict[str, Any]]] = {}
    for r in fig:
        cells.setdefault(r["idle"], {})[figure18_label(r)] = r
    notes: dict[str, int] = {}
    for k in sorted(cells):
        table.add_row(str(k), *(_cell(cells[k].get(label), label, notes) for label in lines))
    if notes:
        table.caption = "\n".join(f"[{n}] {text}" for text, n in notes.items())
    return table


def _cell(cell: dict[str, Any] | None, label: str, notes: dict[str, int]) -> str:
    if cell is None:
        return "-"
    if "median_us" in cell:
        text = f"{cell['median_us']:,.0f} / {cell['p99_us']:,.0f}"
        return text if not cell.get("flagged") else f"[red]{text} ({cell['flagged']})[/]"
    kind = "skipped" if "skipped" in cell else "error"
    reason = cell.get("skipped") or cell.get("error")
    n = notes.setdefault(f"{label}: {reason}", len(notes) + 1)
    colour = "yellow" if kind == "skipped" else "red"
    return f"[{colour}]{kind} [{n}][/]"


def retrieval_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The in-process rows (:func:`measure_retrieval`): µs per round and readiness checks per
    round of the event queue and of the poll-style scan, and the host stack's own pass."""
    queue = [r for r in rows if r["section"] == "figure18-queue"]
    lines = list(dict.fromkeys(figure18_label(r) for r in queue))
    active = next((r["active"] for r in queue), 1)
    table = Table(
        title="Figure 18's mechanism in netfast, in process (two simulated hosts): µs per event "
        f"retrieval round (median / p99), {active} connection(s) active, checks = readiness() "
        "calls per round"
    )
    with_checks = {figure18_label(r) for r in queue if r.get("checks_per_round") is not None}
    table.add_column("idle", justify="right")
    table.add_column("registered", justify="right")
    for label in lines:
        table.add_column(label, justify="right")
        if label in with_checks:
            table.add_column("checks", justify="right")
    cells: dict[int, dict[str, dict[str, Any]]] = {}
    for r in queue:
        cells.setdefault(r["idle"], {})[figure18_label(r)] = r
    notes: dict[str, int] = {}
    for k in sorted(cells):
        registered = next((c["registered"] for c in cells[k].values() if "registered" in c), None)
        out = [str(k), "-" if registered is None else str(registered)]
        for label in lines:
            cell = cells[k].get(label)
            out.append(_cell(cell, label, notes))
            if label in with_checks:
                c = (cell or {}).get("checks_per_round")
                out.append("-" if c is None else f"{c:,.1f}")
        table.add_row(*out)
    if notes:
        table.caption = "\n".join(f"[{n}] {text}" for text, n in notes.items())
    return table


def figure18_answer(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per line of the figure (and of the in-process measurement): its median at the
    smallest and at the largest count measured."""
    out = []
    for section, unit in (("figure18", "µs"), ("figure18-queue", "µs/round")):
        ours = [r for r in rows if r["section"] == section]
        for label in dict.fromkeys(figure18_label(r) for r in ours):
            pts = sorted(
                (r["idle"], r["median_us"])
                for r in ours
                if figure18_label(r) == label and "median_us" in r
            )
            if len(pts) >= 2 and pts[0][1] > 0:
                (k0, m0), (k1, m1) = pts[0], pts[-1]
                out.append(
                    f"{label}: median {m0:,.1f} {unit} at {k0} idle -> {m1:,.1f} {unit} at "
                    f"{k1} idle ({m1 / m0:.2f}x)"
                )
    return out
