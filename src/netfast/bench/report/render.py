"""REPORT.md and its plots, written from the run's JSON (``run.json``) alone.

:func:`render` is a pure function of the run: the same ``run.json`` gives the same Markdown,
which is what lets a test (and a reader) check that every figure in the report comes from the
run it names.  :func:`write_report` also draws the plots and replaces the files atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from netfast.bench.report.run import STAGES
from netfast.bench.report.sections import SECTIONS, Body, Run, Section

REPORT = "REPORT.md"
RUN_JSON = "run.json"


def _stage_line(run: Run, name: str) -> str:
    e = run["stages"].get(name)
    if e is None:
        return f"`{name}`: not part of this run"
    if e["status"] == "ok":
        return f"`{e['command']}` ({e['seconds']:.0f} s)"
    return f"`{name}` {e['status']}: {e['reason']}"


def section_body(run: Run, sec: Section) -> Body | str:
    """The section's body, or why it could not be written from this run."""
    missing = []
    for name in sec.needs:
        e = run["stages"].get(name)
        if e is None:
            missing.append(f"`{name}` was not part of this run")
        elif e["status"] != "ok":
            missing.append(f"`{name}` {e['status']}: {e['reason']}")
    if missing:
        return "; ".join(missing)
    try:
        return sec.render(run)
    except (KeyError, IndexError, TypeError, ValueError, StopIteration, ZeroDivisionError) as exc:
        # A stage whose JSON lacks what the section reads: the report names it and goes on.
        return (
            f"the section could not be written from this run's JSON ({type(exc).__name__}: {exc})"
        )


def header_lines(run: Run) -> list[str]:
    h = run["header"]
    m = h["machine"]
    lines = [
        "# netfast bench: the paper's claims, measured",
        "",
        f"- **Command:** `{h['command']}` ({'quick' if h['quick'] else 'full'} run, "
        f"{h.get('seconds', 0.0) / 60:.1f} min of benchmarks)",
        f"- **Date:** {h['date']}",
        f"- **Commit:** `{h['commit'] or 'unknown'}`"
        + (" (with uncommitted changes)" if h.get("tree_changed") else ""),
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} ({m['arch']}), "
        f"Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
        f"{'root' if m['root'] else 'not root'}",
        "- **Data:**",
    ]
    for d in h["data"]:
        lines.append(f"  - `{d['file']}` ({d['bytes']:,} bytes, sha256 `{d['sha256']}`)")
    lines += [
        "",
        "Every figure below is read from `run.json` beside this file (the raw JSON of each "
        "benchmark is under `stages`); `netfast bench --render` writes this file again from it. "
        "The machines are shared and noisy: compare the ratios measured in the same run.",
        "",
        "## Verdicts",
        "",
    ]
    return lines


def verdict_lines(bodies: list[tuple[Section, Body | str]]) -> list[str]:
    """The numbered list of every section's verdict (or why it is missing)."""
    out = []
    for i, (sec, body) in enumerate(bodies, 1):
        text = body.verdict if isinstance(body, Body) else f"not measured: {body}"
        out.append(f"{i}. **{sec.title}.** {text}")
    return out


def render(run: Run) -> tuple[str, list[Any]]:
    """The Markdown of the report and the plots it refers to."""
    lines = header_lines(run)
    bodies: list[tuple[Section, Body | str]] = [(s, section_body(run, s)) for s in SECTIONS]
    lines += verdict_lines(bodies)
    plist: list[Any] = []
    for i, (sec, body) in enumerate(bodies, 1):
        lines += ["", f"## {i}. {sec.title}", "", f"**The paper:** {sec.claim}", ""]
        if not isinstance(body, Body):
            lines += [f"**Not measured in this run:** {body}."]
            continue
        lines += body.lines
        for p in body.plots:
            lines += ["", f"![{sec.title}]({p.file})"]
            plist.append(p)
        lines += ["", f"**Verdict:** {body.verdict}", ""]
        used = [n for n in (*sec.needs, *sec.uses) if n in run["stages"]]
        lines.append("Measured by " + "; ".join(_stage_line(run, n) for n in used) + ".")
    lines += ["", "## Stages of this run", ""]
    lines += ["| stage | status | seconds | command or reason |", "|:---|:---|---:|:---|"]
    for st in STAGES:
        e = run["stages"].get(st.name)
        if e is None:
            continue
        what = e["command"] if e["status"] == "ok" else e["reason"]
        lines.append(f"| {st.name} | {e['status']} | {e['seconds']:.1f} | {what} |")
    return "\n".join(lines) + "\n", plist


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(run: Run, folder: Path) -> list[Path]:
    """Write the plots, ``run.json`` and REPORT.md into ``folder``; return the files written.

    Each file is replaced whole.  The report is rendered and its plots drawn before run.json and
    REPORT.md are replaced, so an error there leaves the earlier pair as it was.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stored = json.dumps(run, indent=1, sort_keys=True) + "\n"
    # Render what is stored, not the object in memory: the report must be what --render gives.
    text, plist = render(json.loads(stored))
    written = [p.write(folder) for p in plist]
    _atomic_write(folder / RUN_JSON, stored)
    _atomic_write(folder / REPORT, text)
    return [folder / RUN_JSON, folder / REPORT, *written]


def load_run(folder: Path) -> Run:
    path = folder / RUN_JSON
    try:
        run: Run = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(run, dict) or "header" not in run or "stages" not in run:
        raise ValueError(f"{path}: not a netfast bench run (no header or stages)")
    return run
