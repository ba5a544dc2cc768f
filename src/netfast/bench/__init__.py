"""Benchmarks behind ``netfast bench``: measurement code, kept apart from the CLI that prints it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir"]


def shared_data_dir(holding: str = "routes") -> Path | None:
    """The shared data folder that has the sub-folder ``holding`` (``routes``, ``pcap``, ...):
    $NETFAST_SHARED_DATA when it is set (and only there), else ``shared/data`` beside or below
    the working directory, or beside the checkout; None when there is none."""
    env = os.environ.get("NETFAST_SHARED_DATA")
    if env:
        candidates = [Path(env)]
    else:
        checkout = Path(__file__).resolve().parents[3]
        candidates = [
            Path.cwd().parent / "shared" / "data",
            Path.cwd() / "shared" / "data",
            checkout.parent / "shared" / "data",
        ]
    return next((c for c in candidates if (c / holding).is_dir()), None)
