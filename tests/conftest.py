"""Shared fixtures: where the real data lives, and skipping tests that need root/namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("NETFAST_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
    "/work/shared/data",
]


def _find_shared_data() -> Path | None:
    for c in _CANDIDATES:
        if c and (Path(c) / "pcap").is_dir():
            return Path(c)
    return None


SHARED_DATA = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data (../shared/data beside the checkout)."""
    if SHARED_DATA is None:
        pytest.skip("the shared data folder (../shared/data) is not present")
    return SHARED_DATA


def pcap_files() -> list[Path]:
    """Every real capture in shared/data/pcap (empty when the folder is absent)."""
    if SHARED_DATA is None:
        return []
    return sorted((SHARED_DATA / "pcap").glob("*.pcap"))


def have_netns() -> str | None:
    """None when namespace tests can run, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, TAP)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    from shutil import which

    if which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


# The machines are shared and noisy, and the first call of a numba kernel compiles it: hypothesis
# deadlines would turn load into failures that say nothing about correctness.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "netfast", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("ci" if os.environ.get("CI") else "netfast")
