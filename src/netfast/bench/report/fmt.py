"""Number formatting and Markdown tables for the report: one place, so that every figure in
REPORT.md is printed the same way from the run's JSON."""

from __future__ import annotations

from collections.abc import Sequence


def rate(x: float | None, unit: str = "/s") -> str:
    """``12.9M/s``, ``845k/s``, ``61/s``; ``-`` for a missing value."""
    if x is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def num(x: float | None, digits: int = 3) -> str:
    """A number to ``digits`` significant figures, thousands separated when whole."""
    if x is None:
        return "-"
    if abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x" if x < 10 else f"{x:.3g}x"


def mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / (1 << 20):.2f} MiB"


def ns(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f} ns" if x >= 100 else f"{x:.3g} ns"


def yes(ok: bool | None) -> str:
    return "-" if ok is None else "yes" if ok else "no"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(headers) + " |"]
    out.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out
