"""Running every benchmark for the report: the stages, their arguments, and the run's header.

Each stage is one ``netfast bench NAME`` command run as a child process with its ``--json``
output in ``OUT/raw/``, so the report measures exactly what a user who runs that benchmark alone
would measure, a benchmark that crashes or hangs cannot take the others down (each child has a
time limit), and a stage's memory is returned when it ends.  The child's terminal output goes to
``OUT/raw/NAME.log``.

A stage that cannot run here is not run, and the reason goes into the run instead: it needs root
(namespaces, TAP, veth), or a tool that is not installed.  A stage that runs but fails records
the last lines of its log.

The run (``run.json``) is a dictionary::

    {"header": {...}, "stages": {NAME: {"status": "ok" | "skipped" | "failed",
                                        "reason": str | None, "seconds": float,
                                        "command": str, "data": <the stage's JSON> | None}}}

``header`` holds what makes the run reproducible: the exact command, the commit (and whether the
tree had changes), the machine (CPU model, cores, kernel, Python, numpy, numba), the date, and the
data files the stages read, each with its size and SHA-256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Log lines kept in a failed stage's reason.
FAILED_TAIL_LINES = 6


@dataclass(frozen=True)
class Stage:
    """One benchmark of the report."""

    name: str
    """The ``netfast bench`` sub-command, and the stem of its JSON file."""
    title: str
    quick: tuple[str, ...]
    """Arguments after ``netfast bench NAME`` for ``--quick``."""
    full: tuple[str, ...]
    """Arguments for the full run."""
    quick_timeout: float
    full_timeout: float
    root: bool = False
    """Needs root (namespaces, TAP, veth): skipped with that reason otherwise."""
    tools: tuple[str, ...] = ()
    """Programs that must be on PATH: skipped, naming the missing one, otherwise."""
    out_dir: bool = False
    """The benchmark takes ``--out DIR`` (writing ``DIR/NAME.json``) rather than ``--json``."""
    plot: bool = False
    """The benchmark also takes ``--plot FILE``."""


def _route_args(quick: bool, base: tuple[str, ...]) -> tuple[str, ...]:
    """With the shared data present: the 2002 table (the closest to the paper's 173k prefixes)
    in a quick run, the 2002, 2016 and 2026 tables in a full one; else ``base`` (the bundled
    table)."""
    from netfast.bench import shared_data_dir
    from netfast.cli.bench import TREND_TABLES

    data = shared_data_dir()
    if data is None:
        return base
    if not quick:
        return (*base, "--trend")
    return (*base, "--table", str(data / "routes" / TREND_TABLES[0]))


STAGES: tuple[Stage, ...] = (
    Stage("ethernet", "Figure 1", (), (), 60, 60),
    Stage("checksum", "checksum", ("--seconds", "0.03"), ("--seconds", "0.3"), 120, 300),
    Stage(
        "ipinput",
        "integrity checks and local addresses",
        ("--quick", "--seconds", "0.05"),
        (),
        120,
        300,
    ),
    Stage("pfil", "pfil hooks", ("--quick", "--rounds", "1", "--seconds", "0.1"), (), 120, 300),
    Stage(
        "route",
        "routing table",
        ("--quick", "--update-seconds", "0.4"),
        (),
        300,
        1200,
        out_dir=True,
    ),
    Stage("forward", "vector path", ("--quick", "--rules", "0", "--rules", "100"), (), 180, 600),
    Stage(
        "firewall", "firewall rules", ("--quick", "--rules", "1", "--rules", "100"), (), 120, 600
    ),
    Stage("pcb", "PCB lookup", ("--quick",), (), 120, 300),
    Stage("bdp", "Figure 16", ("--quick",), (), 120, 300),
    Stage(
        "tcp",
        "TCP reassembly and TSO",
        ("--quick", "--only", "reass,memory,tap", "--bytes", "4000000", "--segments", "2000"),
        (),
        300,
        1500,
    ),
    Stage(
        "ttcp",
        "T/TCPv2",
        ("--quick", "--connections", "20", "--requests", "3", "--seconds", "0.5"),
        (),
        300,
        900,
    ),
    Stage(
        "http",
        "HTTP and Figure 18",
        (
            "--quick",
            "--only",
            "keepalive,figure18",
            "--seconds",
            "1",
            "--workers",
            "1",
            "--idle",
            "0,100,500",
            "--probes",
            "50",
        ),
        (),
        300,
        1500,
        tools=("wrk", "nginx"),
        plot=True,
    ),
    Stage("live", "live forwarding", ("--quick", "--no-search"), (), 300, 900, root=True),
    Stage("annotate", "address annotation", ("--quick", "--rows", "100000"), (), 300, 900),
)


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def stage_args(stage: Stage, quick: bool, raw: Path) -> list[str]:
    """The full argument list after ``netfast``."""
    base = stage.quick if quick else stage.full
    if stage.name == "route":
        base = _route_args(quick, base)
    args = ["bench", stage.name, *base]
    if stage.out_dir:
        args += ["--out", str(raw / stage.name)]
    else:
        args += ["--json", str(raw / f"{stage.name}.json")]
    if stage.plot:
        args += ["--plot", str(raw / f"{stage.name}.png")]
    return args


def json_path(stage: Stage, raw: Path) -> Path:
    return raw / stage.name / f"{stage.name}.json" if stage.out_dir else raw / f"{stage.name}.json"


def why_not(stage: Stage) -> str | None:
    """None when the stage can run on this machine, else the reason it cannot."""
    if stage.root and os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, TAP devices)"
    missing = [t for t in stage.tools if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (see scripts/system-deps.sh)"
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a stage's child and everything it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def run_stage(
    stage: Stage,
    quick: bool,
    raw: Path,
    *,
    timeout: float | None = None,
    tick: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run one stage as a child process and return its entry of the run (see the module doc).

    ``tick(elapsed_seconds)`` is called a few times a second while it runs."""
    args = stage_args(stage, quick, raw)
    command = "netfast " + " ".join(args)
    reason = why_not(stage)
    if reason is not None:
        return {"status": "skipped", "reason": reason, "seconds": 0.0, "command": command}
    limit = (
        timeout if timeout is not None else (stage.quick_timeout if quick else stage.full_timeout)
    )
    out = json_path(stage, raw)
    out.unlink(missing_ok=True)
    log = raw / f"{stage.name}.log"
    env = dict(os.environ, COLUMNS="160", NO_COLOR="1")
    t0 = time.perf_counter()
    rc: int | None = None
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netfast", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.perf_counter() - t0
                    if tick is not None:
                        tick(elapsed)
                    if elapsed > limit:
                        _stop(proc)
                        break
        except BaseException:
            _stop(proc)
            raise
    seconds = time.perf_counter() - t0
    entry: dict[str, Any] = {"seconds": seconds, "command": command}
    if rc is None:
        entry.update(status="failed", reason=f"did not finish within {limit:.0f} s: stopped")
    elif rc != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-FAILED_TAIL_LINES:]
        entry.update(
            status="failed",
            reason=f"exit status {rc}: " + " / ".join(line.strip() for line in tail if line),
        )
    else:
        try:
            entry.update(status="ok", reason=None, data=json.loads(out.read_text()))
        except json.JSONDecodeError as exc:
            entry.update(status="failed", reason=f"{out}: not JSON: {exc}")
    return entry


# --- the header -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[4]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_files(quick: bool, names: Sequence[str]) -> list[Path]:
    """The data files the chosen stages read: the bundled table, and from the shared data folder
    the trend tables and update streams (route) and the captures (ipinput), when present."""
    from netfast.bench import shared_data_dir
    from netfast.bench.ipinput import find_captures
    from netfast.bench.route import UPDATE_STREAMS
    from netfast.cli.bench import TREND_TABLES
    from netfast.route.loaders import default_table_path

    files = [default_table_path()]
    data = shared_data_dir()
    if data is not None and "route" in names:
        tables = TREND_TABLES[:1] if quick else TREND_TABLES
        files += [data / "routes" / t for t in tables]
        files += [data / "bgp-updates" / u for u in UPDATE_STREAMS]
    if "ipinput" in names:
        files += find_captures()
    return [f for f in files if f.exists()]


def header(argv: Sequence[str], quick: bool, names: Sequence[str]) -> dict[str, Any]:
    import numba
    import numpy

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "command": "netfast " + " ".join(argv),
        "quick": quick,
        "stages": list(names),
        "date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "commit": commit,
        "tree_changed": bool(status) if status is not None else None,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "arch": platform.machine(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "numba": numba.__version__,
            "root": os.geteuid() == 0,
        },
        "data": [
            {"file": f.name, "bytes": f.stat().st_size, "sha256": _sha256(f)}
            for f in data_files(quick, names)
        ],
    }


def run_all(
    out: Path,
    *,
    quick: bool,
    names: Sequence[str],
    argv: Sequence[str],
    on_stage: Callable[[Stage, int], Callable[[float], None] | None] | None = None,
    on_done: Callable[[Stage, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the named stages in the report's order and return the run (see the module doc).

    ``on_stage(stage, index)`` is called before each stage and may return the stage's ``tick``;
    ``on_done(stage, entry)`` is called after it.
    """
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    run: dict[str, Any] = {"header": header(argv, quick, names), "stages": {}}
    chosen = [s for s in STAGES if s.name in names]
    for i, stage in enumerate(chosen):
        tick = on_stage(stage, i) if on_stage is not None else None
        entry = run_stage(stage, quick, raw, tick=tick)
        run["stages"][stage.name] = entry
        if on_done is not None:
            on_done(stage, entry)
    run["header"]["seconds"] = sum(e["seconds"] for e in run["stages"].values())
    return run
