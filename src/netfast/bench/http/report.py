"""What goes with the rows into the JSON and the PNG: the targets' verdicts (:func:`targets`),
the machine and the tools' versions (:func:`environment`), and the Figure 18 plot."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netfast.bench.http.common import TARGETS
from netfast.bench.http.tables import figure18_label


def _ok(row: dict[str, Any] | None) -> bool:
    return row is not None and "error" not in row and "skipped" not in row


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured ratio and verdict (``met`` None when not measurable)."""
    index = {
        (r["section"], r["server"], r["workers"]): r
        for r in rows
        if r["section"] in ("keepalive", "close", "large")
    }
    plan = (
        ("keepalive", "nginx", "requests_per_s", "keepalive_vs_nginx"),
        ("keepalive", "http.server", "requests_per_s", "keepalive_vs_http_server"),
        ("close", "nginx", "requests_per_s", "close_vs_nginx"),
        ("large", "nginx", "bytes_per_s", "large_vs_nginx"),
    )
    workers = sorted(
        {r["workers"] for r in rows if r["section"] in ("keepalive", "close", "large")}
    )
    out: list[dict[str, Any]] = []
    for section, other, metric, key in plan:
        for w in workers:
            ours = index.get((section, "netfast", w))
            theirs = index.get((section, other, w))
            if ours is None and theirs is None:
                continue
            goal = TARGETS[key]
            t: dict[str, Any] = {
                "target": key,
                "section": section,
                "workers": w,
                "metric": metric,
                "goal": goal,
                "ratio": None,
                "met": None,
            }
            if _ok(ours) and _ok(theirs) and theirs[metric] > 0:  # type: ignore[index]
                t["ratio"] = ours[metric] / theirs[metric]  # type: ignore[index]
                t["met"] = t["ratio"] >= goal
                t["netfast"], t[other] = ours[metric], theirs[metric]  # type: ignore[index]
                flags = [
                    f"{n}: {r['flagged']}"
                    for n, r in (("netfast", ours), (other, theirs))
                    if r is not None and r.get("flagged")
                ]
                if flags:
                    t["flagged"] = "; ".join(flags)
            else:
                t["why"] = "not measured: " + "; ".join(
                    f"{n} {(r or {}).get('error') or (r or {}).get('skipped') or 'missing'}"
                    for n, r in (("netfast", ours), (other, theirs))
                    if not _ok(r)
                )
            out.append(t)
    return out


def _version(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return None
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else None


def environment() -> dict[str, Any]:
    """The machine and the tools' versions, for the JSON."""
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return {
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "nginx": _version([nginx, "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "root": os.geteuid() == 0,
    }


def plot_figure18(rows: Sequence[dict[str, Any]], path: Path) -> str | None:
    """Write the Figure 18 plot as a PNG: median response time against idle connections, one
    line per server and poller (the netfast backend's over the TAP among them), and, when
    measured, a second panel with the in-process cost of one event retrieval round
    (:func:`measure_retrieval`); both on a log scale.  Return None, or why no plot was
    written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'netfast[bench]')"
    panels: dict[str, dict[str, list[tuple[int, float]]]] = {"figure18": {}, "figure18-queue": {}}
    for r in rows:
        if r.get("section") in panels and r.get("median_us", 0) > 0:
            label = figure18_label(r)
            if r["section"] == "figure18":
                if r["server"] == "nginx":
                    label = "nginx (epoll)"
                elif r["server"] == "netfast":
                    label += " (kernel backend)"
                else:
                    label += " (netfast backend, TAP)"
            panels[r["section"]].setdefault(label, []).append((r["idle"], r["median_us"]))
    if not panels["figure18"] and not panels["figure18-queue"]:
        return "no Figure 18 point was measured"
    shown = [name for name, lines in panels.items() if lines]
    fig, axes = plt.subplots(1, len(shown), figsize=(7 * len(shown), 4.8), squeeze=False)
    titles = {
        "figure18": (
            "Figure 18: response time, poll/select vs an event queue",
            "median response time (µs, log scale)",
        ),
        "figure18-queue": (
            "netfast in process: event retrieval per round, one connection active",
            "median µs per round (log scale)",
        ),
    }
    try:
        for ax, name in zip(axes[0], shown, strict=True):
            for label, pts in panels[name].items():
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            ax.set_xlabel(
                "idle keep-alive connections" if name == "figure18" else "idle connections"
            )
            ax.set_title(titles[name][0], fontsize=10)
            ax.set_ylabel(titles[name][1])
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=110)
    finally:
        plt.close(fig)
    return None
