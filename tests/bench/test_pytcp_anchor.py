"""PyTCP anchor: a small bulk transfer each way against Linux over a TAP, and PyTCP to PyTCP
over the in-memory link, each checked end to end by SHA-256.  Rates are printed, never
asserted."""

from __future__ import annotations

import os
import subprocess

import pytest
from tests.conftest import have_netns

from netfast.bench.pytcp_anchor import (
    DIRECTIONS,
    _figures,
    check_environment,
    measure_pytcp_linux,
    measure_pytcp_memory,
)

NBYTES = 1_500_000


def _our_namespaces() -> list[str]:
    """Namespaces this process's measurements named (others may come and go meanwhile)."""
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    prefix = f"nfpt{os.getpid()}x"
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_linux_tap_transfer(direction: str) -> None:
    if reason := have_netns() or check_environment(tap=True):
        pytest.skip(reason)
    result = measure_pytcp_linux(NBYTES, direction, timeout=60.0)
    print(result)
    assert "error" not in result and "skipped" not in result, result
    assert result["impl"] == "pytcp" and result["path"] == "linux-tap"
    assert result["direction"] == direction
    assert result["bytes"] == NBYTES
    assert result["sha256_ok"] is True
    assert result["mbit_s"] > 0
    # The run's namespace (and the TAP inside it) is gone again.
    assert _our_namespaces() == []


@pytest.mark.slow
def test_memory_transfer() -> None:
    if reason := check_environment(tap=False):
        pytest.skip(reason)
    result = measure_pytcp_memory(NBYTES, timeout=60.0)
    print(result)
    assert "error" not in result and "skipped" not in result, result
    assert result["path"] == "memory"
    assert result["bytes"] == NBYTES
    assert result["sha256_ok"] is True
    assert result["mbit_s"] > 0


def test_misuse_raises() -> None:
    with pytest.raises(ValueError, match="direction"):
        measure_pytcp_linux(1000, "sideways")
    with pytest.raises(ValueError, match="nbytes"):
        measure_pytcp_linux(0)
    with pytest.raises(ValueError, match="timeout"):
        measure_pytcp_memory(1000, timeout=0)


def test_figures_flag_a_short_or_corrupt_transfer() -> None:
    base = {"impl": "pytcp"}
    sent = {"bytes": 100, "sha256": "aa"}
    whole = _figures(base, 100, {"bytes": 100, "seconds": 0.5, "sha256": "aa"}, sent)
    assert whole["sha256_ok"] is True and whole["mbit_s"] == pytest.approx(100 * 8 / 0.5 / 1e6)
    corrupt = _figures(base, 100, {"bytes": 100, "seconds": 0.5, "sha256": "ab"}, sent)
    assert corrupt["sha256_ok"] is False
    short = _figures(base, 100, {"bytes": 99, "seconds": 0.5, "sha256": "aa"}, sent)
    assert short["sha256_ok"] is False
