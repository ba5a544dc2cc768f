"""wrk: a ``wrk --latency`` report (wrk 4.1) parsed into a :class:`WrkResult`, and one bounded
``wrk -t1`` run (:func:`run_wrk`), on loopback or inside a network namespace."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from netfast.bench.http.common import WRK_GRACE, BenchError, _tail


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, as its report says."""

    requests: int
    seconds: float
    bytes_read: float
    requests_per_s: float
    bytes_per_s: float
    #: avg, stdev, max and the percentiles 50, 75, 90, 99, in microseconds.
    latency_us: dict[str, float]
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0

    def problems(self) -> str | None:
        """What makes this run suspect (socket errors, bad statuses), or None."""
        bad = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non_2xx_3xx:
            bad.append(f"non-2xx/3xx {self.non_2xx_3xx}")
        return ", ".join(bad) or None


# wrk prints sizes in binary units (format_binary), times in us/ms/s/m/h (format_time_us).
_SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_TIME_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def _size(number: str, unit: str) -> float:
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown wrk size unit {unit!r}")
    return float(number) * _SIZE_UNITS[unit]


def _time_us(number: str, unit: str) -> float:
    if unit not in _TIME_US:
        raise ValueError(f"unknown wrk time unit {unit!r}")
    return float(number) * _TIME_US[unit]


def parse_wrk(text: str) -> WrkResult:
    """The figures of a ``wrk --latency`` report (wrk 4.1).

    Raises
    ------
    ValueError
        When the text holds no ``Requests/sec`` line or a figure cannot be read.
    """
    rps = re.search(rf"^Requests/sec:\s+{_NUM}\s*$", text, re.M)
    tps = re.search(rf"^Transfer/sec:\s+{_NUM}([KMGT]?B)\s*$", text, re.M)
    total = re.search(
        rf"^\s*([0-9]+) requests in {_NUM}(us|ms|s|m|h), {_NUM}([KMGT]?B) read\s*$", text, re.M
    )
    if rps is None or tps is None or total is None:
        raise ValueError("not a wrk report: no Requests/sec, Transfer/sec or total line")
    latency: dict[str, float] = {}
    stats = re.search(
        rf"^\s*Latency\s+{_NUM}(us|ms|s|m|h)\s+{_NUM}(us|ms|s|m|h)\s+{_NUM}(us|ms|s|m|h)",
        text,
        re.M,
    )
    if stats is not None:
        g = stats.groups()
        for i, name in enumerate(("avg", "stdev", "max")):
            latency[name] = _time_us(g[2 * i], g[2 * i + 1])
    for pct, number, unit in re.findall(
        rf"^\s*(50|75|90|99)%\s+{_NUM}(us|ms|s|m|h)\s*$", text, re.M
    ):
        latency[f"p{pct}"] = _time_us(number, unit)
    errors: dict[str, int] = {}
    sock = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", text
    )
    if sock is not None:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
    bad = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_time_us(total.group(2), total.group(3)) / 1e6,
        bytes_read=_size(total.group(4), total.group(5)),
        requests_per_s=float(rps.group(1)),
        bytes_per_s=_size(tps.group(1), tps.group(2)),
        latency_us=latency,
        socket_errors=errors,
        non_2xx_3xx=int(bad.group(1)) if bad else 0,
    )


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    close: bool = False,
    ns: str | None = None,
    request_timeout: float = 10.0,
) -> WrkResult:
    """Run ``wrk -t1`` for ``seconds`` (inside namespace ``ns`` when given) and parse it.

    Raises
    ------
    BenchError
        When wrk is missing, fails, overruns :data:`WRK_GRACE` or prints no report.
    """
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (scripts/system-deps.sh installs it)")
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        f"{request_timeout:g}s",
    ]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + WRK_GRACE, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + WRK_GRACE:g} s") from None
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {_tail(proc.stderr + proc.stdout)}")
    try:
        return parse_wrk(proc.stdout)
    except ValueError as exc:
        raise BenchError(f"{exc}: {_tail(proc.stdout)}") from None
