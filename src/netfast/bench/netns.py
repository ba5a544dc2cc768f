"""Commands for the benchmarks that build network namespaces (``bench live``, ``bench tcp`` and
the PyTCP anchor): one way to run ``ip`` and friends, inside a namespace or not, bounded in time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Longest any one set-up or tear-down command may take (seconds).
COMMAND_TIMEOUT = 10.0


def tap_environment() -> str | None:
    """None when a namespace with a TAP can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespace, TAP)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def run(*cmd: str, ns: str | None = None, check: bool = True) -> str:
    """Run ``cmd`` (inside namespace ``ns`` when given) and return its standard output.

    Raises
    ------
    RuntimeError
        With ``check``, when the command exits non-zero (the message holds its stderr).
    subprocess.TimeoutExpired
        When it runs longer than :data:`COMMAND_TIMEOUT`.
    """
    argv = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
