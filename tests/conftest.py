"""Shared fixtures: where the real data lives, and skipping tests that need root/namespaces."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


# --- the end-of-run summary of skipped groups ------------------------------------------------
# A green run that skipped the live paths must say so: the last lines of every run name each
# group of tests that skipped, how many and why.  Groups by test file; anything else is "other".
SKIP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "live router",
        (
            "tests/router/test_live_router.py",
            "tests/router/test_bench_live.py",
            "tests/bench/test_live_netns.py",
            "tests/router/test_workers.py",
            "tests/router/test_ring_differential.py",
        ),
    ),
    (
        "TAP and AF_PACKET links",
        (
            "tests/link/test_tap.py",
            "tests/link/test_tap_vnet.py",
            "tests/link/test_afpacket.py",
            "tests/link/test_ring.py",
            "tests/link/test_bridge.py",
            "tests/stack/test_host_tap.py",
            "tests/cli/test_host_cli.py",
            "tests/bench/test_netns_probe.py",
        ),
    ),
    (
        "kernel TCP peers",
        (
            "tests/tcp/test_linux_interop.py",
            "tests/tcp/test_fastopen_linux.py",
            "tests/bench/test_bench_ttcp.py",
            "tests/bench/test_bench_tcp.py",
            "tests/bench/test_pytcp_anchor.py",
        ),
    ),
    ("HTTP server against real clients", ("tests/httpd/", "tests/bench/test_bench_http.py")),
)


def skip_group(nodeid: str) -> str:
    """The group a test belongs to in the skip summary."""
    for name, prefixes in SKIP_GROUPS:
        if nodeid.startswith(prefixes):
            return name
    return "other"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ").strip()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    # The outermost wrapper: printed after pytest's own short summary, right before the counts.
    yield
    ran: dict[str, int] = {}
    skipped: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if not isinstance(report, pytest.TestReport):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            group = skip_group(report.nodeid)
            if outcome == "skipped":
                reasons = skipped.setdefault(group, {})
                reason = _skip_reason(report)
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                ran[group] = ran.get(group, 0) + 1
    terminalreporter.write_sep("-", "skipped groups")
    for name in [*(n for n, _ in SKIP_GROUPS), "other"]:
        if name not in skipped and name not in ran:
            continue  # not selected in this run
        reasons = skipped.get(name, {})
        total = sum(reasons.values())
        line = f"{name}: {ran.get(name, 0)} ran, {total} skipped"
        if reasons:
            top = sorted(reasons.items(), key=lambda kv: -kv[1])
            line += " -- " + "; ".join(f"{r} ({n})" for r, n in top)
        terminalreporter.write_line(line)


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
