"""The report's plots (matplotlib, Agg backend, PNG), each drawn from the run's JSON alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DPI = 100


@dataclass(frozen=True)
class Plot:
    file: str
    draw: Callable[..., None]
    """Called as ``draw(fig, *args)``, or ``draw(path, *args)`` when ``writes``."""
    args: tuple[Any, ...]
    writes: bool = False
    """``draw`` writes the PNG itself."""

    def write(self, folder: Path) -> Path:
        path = folder / self.file
        if self.writes:
            self.draw(path, *self.args)
            return path
        fig = plt.figure(figsize=(7.5, 4.2), dpi=DPI)
        try:
            self.draw(fig, *self.args)
            fig.tight_layout()
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
            tmp.replace(path)
        finally:
            plt.close(fig)
        return path


def figure1(
    fig: Figure, rows: Sequence[dict[str, Any]], costs: Sequence[tuple[str, float]]
) -> None:
    ax = fig.add_subplot()
    x = [r["bits_per_second"] / 1e9 for r in rows]
    ax.plot(x, [r["budget_ns_64"] for r in rows], "o-", label="budget per 64-byte frame")
    ax.plot(x, [r["budget_ns_1500"] for r in rows], "s-", label="budget per 1518-byte frame")
    for (path, pps), style in zip(costs, ("--", ":", "-.", (0, (1, 3))), strict=False):
        ax.axhline(1e9 / pps, linestyle=style, color="grey", label=f"netfast: {path}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("link speed (Gb/s)")
    ax.set_ylabel("ns per packet")
    ax.set_title("Figure 1 as a time budget, with netfast's measured cost")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)


PfilCase = tuple[int, int, bool]
"""(hooks, readers, writer churning)."""


def pfil_grid(
    pf: dict[str, Any],
) -> tuple[list[str], list[PfilCase], dict[tuple[str, PfilCase], dict[str, Any]]]:
    """The designs in the order measured, the cases, and each (design, case)'s cell."""
    cells = pf["cells"]
    impls = list(dict.fromkeys(c["impl"] for c in cells))
    grid = {(c["impl"], (c["hooks"], c["readers"], c["churn_us"] is not None)): c for c in cells}
    return impls, sorted({case for _, case in grid}), grid


def pfil(fig: Figure, pf: dict[str, Any]) -> None:
    ax = fig.add_subplot()
    impls, cases, grid = pfil_grid(pf)
    width = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        ys = [grid[impl, c]["runs_per_s"] / 1e6 if (impl, c) in grid else 0.0 for c in cases]
        ax.bar([i + j * width for i in range(len(cases))], ys, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
    ax.set_xticklabels(
        [f"{h}h/{r}r{'/churn' if c else ''}" for h, r, c in cases], fontsize=7, rotation=30
    )
    ax.set_ylabel("hook-list runs per second (M)")
    ax.set_title("pfil: lock-free designs vs reader-writer lock")
    ax.legend()


def routing(fig: Figure, tables: Sequence[dict[str, Any]]) -> None:
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    names = [a["name"] for a in tables[0]["algorithms"]]
    ordered = sorted(tables, key=lambda t: t["prefixes"])
    for name in names:
        pts = [(t["prefixes"], a) for t in ordered for a in t["algorithms"] if a["name"] == name]
        xs = [p for p, _ in pts]
        ax1.plot(xs, [a["batch_lps_inside"] / 1e6 for _, a in pts], "o-", label=name)
        mem = [(p, a["memory_bytes"]) for p, a in pts if a["memory_bytes"]]
        if mem:
            ax2.plot([p for p, _ in mem], [m / (1 << 20) for _, m in mem], "o-", label=name)
    for ax, what in ((ax1, "lookups/s (M, batch, inside prefixes)"), (ax2, "memory (MiB)")):
        ax.set_xlabel("prefixes in the table")
        ax.set_ylabel(what)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=6)
    fig.suptitle("Routing table: lookups and memory against table size")


def reassembly(fig: Figure, rows: Sequence[dict[str, Any]]) -> None:
    ax = fig.add_subplot()
    patterns = ["in_order", "reordered", "adversarial"]
    impls = sorted({r["impl"] for r in rows}, key=lambda i: (i != "netfast", i))
    width = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        ys = []
        for p in patterns:
            r = next((x for x in rows if x["impl"] == impl and x["pattern"] == p), None)
            ys.append(r["segments_per_s"] if r else 0.0)
        ax.bar([i + j * width for i in range(len(patterns))], ys, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(patterns))])
    ax.set_xticklabels([p.replace("_", " ") for p in patterns])
    ax.set_yscale("log")
    ax.set_ylabel("segments per second")
    ax.set_title("TCP reassembly queues")
    ax.legend()


def ttcp(fig: Figure, tt: dict[str, Any]) -> None:
    ax = fig.add_subplot()
    sim = [r for r in tt["simulated"] if r["rtt_ms"] > 0]
    rtts = sorted({r["rtt_ms"] for r in sim})
    modes = list(dict.fromkeys(r["mode"] for r in sim))
    width = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        ys = [
            next((r["repeat_ms"] for r in sim if r["mode"] == mode and r["rtt_ms"] == t), 0.0)
            for t in rtts
        ]
        ax.bar([i + j * width for i in range(len(rtts))], ys, width, label=mode)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rtts))])
    ax.set_xticklabels([f"RTT {t:g} ms" for t in rtts])
    ax.set_yscale("log")
    ax.set_ylabel("repeat request-response (ms)")
    ax.set_title("Short connections: plain TCP vs T/TCPv2 vs TFO (simulated)")
    ax.legend()


def figure18(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The HTTP benchmark's own Figure 18 plot, drawn from the run's rows."""
    from netfast.bench.http.report import plot_figure18

    why = plot_figure18(rows, path)
    if why is not None:
        raise ValueError(why)


def figure16(fig: Figure, bd: dict[str, Any]) -> None:
    ax = fig.add_subplot()
    ms = [m for m in bd["measured"] if m["order"] == "in_order" and m["bytes_held"]]
    for impl, key, style, label in (
        ("netfast", "traced_bytes", "o-", "netfast queue (measured)"),
        ("linked_list", "traced_bytes", "s-", "linked list (measured)"),
        ("linked_list", "mbuf_bytes", "^--", "4.4BSD mbufs and clusters"),
    ):
        pts = sorted((m["bytes_held"], m[key]) for m in ms if m["impl"] == impl and m[key])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    held = sorted({m["bytes_held"] for m in ms})
    ax.plot(held, held, ":", color="grey", label="payload held")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bytes waiting behind the lost segment")
    ax.set_ylabel("memory (bytes)")
    ax.set_title("Figure 16: reassembly memory against the window")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def pcb(fig: Figure, pc: dict[str, Any]) -> None:
    left = fig.add_subplot(1, 2, 1)
    rows = pc["lookup"]["rows"]
    for impl in dict.fromkeys(r["impl"] for r in rows):
        pts = sorted((r["n"], r["ns_per_lookup"]) for r in rows if r["impl"] == impl)
        left.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=impl)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("connections")
    left.set_ylabel("ns per lookup")
    left.set_title("PCB lookup", fontsize=10)
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    right = fig.add_subplot(1, 2, 2)
    lr = pc["locking"]["rows"]
    cases = sorted({(r["connections"], r["threads"]) for r in lr})
    designs = list(dict.fromkeys(r["design"] for r in lr))
    width = 0.8 / len(designs)
    for j, d in enumerate(designs):
        ys = [
            next(
                (
                    r["segments_per_s"] / 1e3
                    for r in lr
                    if r["design"] == d and (r["connections"], r["threads"]) == c
                ),
                0.0,
            )
            for c in cases
        ]
        right.bar([i + j * width for i in range(len(cases))], ys, width, label=d)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
    right.set_xticklabels([f"{c}c/{t}t" for c, t in cases], fontsize=7, rotation=30)
    right.set_ylabel("segments/s (k)")
    right.set_title("global lock vs per-connection", fontsize=10)
    right.legend(fontsize=7)
