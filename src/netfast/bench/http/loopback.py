"""The ``keepalive``, ``close`` and ``large`` sections: wrk against each server on loopback at each
worker count (:func:`measure_wrk`), and the row one wrk run becomes (which the ``tap`` section
uses too)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from netfast.bench.http.common import (
    HTTP_SERVER_NOTE,
    LARGE_BYTES,
    LARGE_CONNECTIONS,
    SMALL_CONNECTIONS,
    SMALL_FILE,
    WORKERS,
    BenchError,
)
from netfast.bench.http.servers import Server, large_name, running
from netfast.bench.http.wrk import run_wrk


def _wrk_row(
    base: dict[str, Any],
    server: Server | None,
    url: str,
    *,
    seconds: int,
    connections: int,
    close: bool,
    ns: str | None = None,
    request_timeout: float = 10.0,
) -> dict[str, Any]:
    row = {**base, "connections": connections}
    try:
        res = run_wrk(
            url,
            seconds=seconds,
            connections=connections,
            close=close,
            ns=ns,
            request_timeout=request_timeout,
        )
    except BenchError as exc:
        return {**row, "error": str(exc)}
    row.update(asdict(res))
    flags = [why] if (why := res.problems()) is not None else []
    if server is not None and not server.alive():
        row["server_died"] = True
        flags.append(f"the server died during the run: {server.log_tail()}")
    if flags:
        row["flagged"] = "; ".join(flags)
    if res.requests == 0 and res.bytes_read == 0:
        row["error"] = "no response in the whole run"
    return row


def measure_wrk(
    sections: Sequence[str],
    root: Path,
    tmp: Path,
    *,
    seconds: int,
    workers: Sequence[int] = WORKERS,
    large_bytes: int = LARGE_BYTES,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The ``keepalive``, ``close`` and ``large`` sections (those in ``sections``): every
    server at every worker count, started once per worker count for all its loads."""
    wanted = [s for s in ("keepalive", "close", "large") if s in sections]
    rows: list[dict[str, Any]] = []
    if not wanted:
        return rows
    large = large_name(large_bytes)
    for w in workers:
        for kind in ("netfast", "nginx", "http.server"):
            loads = [s for s in wanted if not (kind == "http.server" and s == "large")]
            if not loads:
                continue
            bases = {s: _base(s, kind, w, large if s == "large" else SMALL_FILE) for s in loads}
            if shutil.which("wrk") is None:
                rows += [{**b, "skipped": "wrk is not installed"} for b in bases.values()]
                continue
            try:
                with running(kind, root, tmp, workers=w if kind != "http.server" else 1) as srv:
                    for s in loads:
                        if progress is not None:
                            progress(f"{s}: {kind}, {w} worker(s)")
                        row = _wrk_row(
                            {**bases[s], "content_ok": srv.content_ok},
                            srv,
                            f"{srv.url}/{bases[s]['file']}",
                            seconds=seconds,
                            connections=LARGE_CONNECTIONS if s == "large" else SMALL_CONNECTIONS,
                            close=s == "close",
                            request_timeout=60.0 if s == "large" else 10.0,
                        )
                        rows.append(row)
            except BenchError as exc:
                done = {(r["section"], r["server"], r["workers"]) for r in rows}
                rows += [
                    {**b, "error": str(exc)} for s, b in bases.items() if (s, kind, w) not in done
                ]
    return rows


def _base(section: str, kind: str, workers: int, file: str) -> dict[str, Any]:
    row: dict[str, Any] = {"section": section, "server": kind, "workers": workers, "file": file}
    if kind == "http.server":
        row["note"] = HTTP_SERVER_NOTE
    return row
