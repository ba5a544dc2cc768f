"""The report of ``netfast bench tcp``: the transfer table, each netfast row next to its target
and to PyTCP on the same path, and the answers (offload ratios, targets met) drawn from the rows
that :mod:`netfast.bench.tcp` measures.  Nothing here measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from netfast.bench.tcp import DIRECTIONS, MEMORY_TARGET_MBIT, REASS_TARGET, TAP_TARGET_MBIT

__all__ = ["answer_lines", "answers", "target_for", "transfer_table", "vs_pytcp"]


def _peer_key(row: dict[str, Any]) -> tuple[str, str]:
    """(path, direction with the implementation's name taken out), to pair netfast with PyTCP."""
    impl = row.get("impl", "")
    direction = str(row.get("direction", "")).replace(impl, "self")
    return str(row.get("path", "")), direction


def target_for(row: dict[str, Any]) -> float | None:
    """The Mbit/s target of a netfast transfer row (None for competitors)."""
    if row.get("impl") != "netfast":
        return None
    return MEMORY_TARGET_MBIT if row.get("path") == "memory" else TAP_TARGET_MBIT


def vs_pytcp(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> float | None:
    """netfast's Mbit/s over PyTCP's on the same path and direction, when both were measured."""
    if row.get("impl") != "netfast" or not row.get("mbit_s"):
        return None
    key = _peer_key(row)
    for other in rows:
        if other.get("impl") == "pytcp" and _peer_key(other) == key and other.get("mbit_s"):
            return float(row["mbit_s"]) / float(other["mbit_s"])
    return None


def transfer_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The transfer rows: figures, targets and ratios against PyTCP."""
    table = Table(
        title="TCP bulk transfers (memory: both stacks in this process, on one core; "
        "tap: Mbit/s at the receiver, accept to end of stream)"
    )
    cols = ("impl", "path", "direction", "offloads", "mtu", "bytes", "seconds", "Mbit/s",
            "target", "vs PyTCP", "sha256")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:4] else "right")
    for r in rows:
        head = [
            str(r.get("impl", "-")),
            str(r.get("path", "-")),
            str(r.get("direction", "-")),
            _offloads_label(r),
            str(r.get("mtu", "-")),
        ]
        if "skipped" in r or "error" in r:
            what = f"skipped: {r['skipped']}" if "skipped" in r else f"[red]error: {r['error']}[/]"
            table.add_row(*head, what, *[""] * (len(cols) - len(head) - 1))
            continue
        target = target_for(r)
        ratio = vs_pytcp(r, rows)
        mbit = float(r["mbit_s"])
        met = "" if target is None else ("[green]" if mbit >= target else "[red]")
        table.add_row(
            *head,
            f"{r['bytes']:,}",
            f"{r['seconds']:.3f}",
            f"{met}{mbit:,.1f}{'[/]' if met else ''}",
            "-" if target is None else f">= {target:,.0f}",
            "-" if ratio is None else f"{ratio:,.1f}x",
            "ok" if r.get("sha256_ok") else "[red]MISMATCH[/]",
        )
    return table


def _offloads_label(row: dict[str, Any]) -> str:
    return str(row.get("offloads") or "-")


def answers(
    reass_rows: Sequence[dict[str, Any]] | None, rows: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The questions the benchmark answers, from its rows (keys absent when not measured).

    ``offload_ratio`` -- per transfer (``memory/<mtu>`` or ``tap/<direction>``) and offload
    setting, netfast's Mbit/s over its Mbit/s with offloads ``none``;
    ``memory_mbit`` -- per ``<mtu>/<offloads>``, and ``memory_best_mbit`` /
    ``memory_target_met``; ``tap_mbit`` -- per ``<direction>/<offloads>``, and
    ``tap_best_mbit`` / ``tap_target_met`` (the target holds in both directions with the
    best setting); ``reass_adversarial_ratio`` (netfast's segments/s over the linked list's
    under the attack), ``reass_peak_bytes`` (both, under the attack) and ``reass_target_met``
    (the ratio reaches :data:`REASS_TARGET` and netfast held less).
    """
    out: dict[str, Any] = {}

    def ok(r: dict[str, Any]) -> bool:
        return r.get("impl") == "netfast" and "mbit_s" in r and bool(r.get("sha256_ok"))

    best: dict[tuple[str, str], float] = {}  # (transfer, offloads) -> Mbit/s
    for r in rows:
        if not ok(r):
            continue
        if r.get("path") == "memory":
            transfer = f"memory/{r['mtu']}"
        elif r.get("path") == "linux-tap":
            transfer = f"tap/{r['direction']}"
        else:
            continue
        key = (transfer, str(r.get("offloads")))
        best[key] = max(best.get(key, 0.0), float(r["mbit_s"]))
    ratios: dict[str, dict[str, float]] = {}
    for (transfer, offloads), mbit in best.items():
        base = best.get((transfer, "none"))
        if offloads != "none" and base:
            ratios.setdefault(transfer, {})[offloads] = mbit / base
    if ratios:
        out["offload_ratio"] = ratios
    mem = {f"{t.split('/')[1]}/{o}": v for (t, o), v in best.items() if t.startswith("memory/")}
    if mem:
        out["memory_mbit"] = mem
        out["memory_best_mbit"] = max(mem.values())
        out["memory_target_met"] = out["memory_best_mbit"] >= MEMORY_TARGET_MBIT
    tap = {f"{t.split('/')[1]}/{o}": v for (t, o), v in best.items() if t.startswith("tap/")}
    if tap:
        out["tap_mbit"] = tap
        per_direction = [
            max(v for k, v in tap.items() if k.startswith(d + "/"))
            for d in DIRECTIONS
            if any(k.startswith(d + "/") for k in tap)
        ]
        out["tap_best_mbit"] = min(per_direction)
        out["tap_target_met"] = out["tap_best_mbit"] >= TAP_TARGET_MBIT
    if reass_rows:
        adv = {r["impl"]: r for r in reass_rows if r["pattern"] == "adversarial"}
        nf, ll = adv.get("netfast"), adv.get("linked_list")
        if nf is not None and ll is not None and ll["segments_per_s"] > 0:
            ratio = nf["segments_per_s"] / ll["segments_per_s"]
            out["reass_adversarial_ratio"] = ratio
            out["reass_peak_bytes"] = {
                "netfast": nf["peak_bytes_held"],
                "linked_list": ll["peak_bytes_held"],
            }
            out["reass_target_met"] = (
                ratio >= REASS_TARGET and nf["peak_bytes_held"] < ll["peak_bytes_held"]
            )
    return out


def answer_lines(ans: dict[str, Any]) -> list[str]:
    """:func:`answers` as short sentences for the terminal."""

    def met(flag: bool) -> str:
        return "[green]met[/]" if flag else "[red]missed[/]"

    lines: list[str] = []
    for transfer, by_offloads in ans.get("offload_ratio", {}).items():
        for offloads, ratio in by_offloads.items():
            lines.append(f"offloads {offloads} vs none, {transfer}: {ratio:.2f}x")
    for key, mbit in ans.get("memory_mbit", {}).items():
        mtu, offloads = key.split("/")
        lines.append(
            f"memory, MTU {mtu}, offloads {offloads}: {mbit:,.1f} Mbit/s vs target "
            f">= {MEMORY_TARGET_MBIT:,.0f}: {met(mbit >= MEMORY_TARGET_MBIT)}"
        )
    for key, mbit in ans.get("tap_mbit", {}).items():
        direction, offloads = key.split("/")
        lines.append(
            f"tap, {direction}, offloads {offloads}: {mbit:,.1f} Mbit/s vs target "
            f">= {TAP_TARGET_MBIT:,.0f}: {met(mbit >= TAP_TARGET_MBIT)}"
        )
    if "reass_adversarial_ratio" in ans:
        peak = ans["reass_peak_bytes"]
        lines.append(
            f"reassembly under attack: {ans['reass_adversarial_ratio']:,.1f}x the linked list "
            f"(target >= {REASS_TARGET:.0f}x), peak bytes held {peak['netfast']:,} vs "
            f"{peak['linked_list']:,}: {met(ans['reass_target_met'])}"
        )
    return lines
