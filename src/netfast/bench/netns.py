"""Commands for the benchmarks that build network namespaces (``bench live``, ``bench tcp`` and
the PyTCP anchor): one way to run ``ip`` and friends, inside a namespace or not, bounded in time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def set_sysctl(ns: str, key: str, value: str | int) -> None:
    """Set ``key`` (dotted, as sysctl names it) in namespace ``ns`` through ``/proc/sys``
    (no sysctl binary needed)."""
    path = "/proc/sys/" + key.replace(".", "/")
    run("sh", "-c", f"echo {value} > {path}", ns=ns)


def enable_fastopen(ns: str) -> None:
    """TCP Fast Open as client and server in ``ns`` (``net.ipv4.tcp_fastopen=3``), with Linux's
    black-hole detection off so that a lost SYN does not switch it off for a while."""
    set_sysctl(ns, "net.ipv4.tcp_fastopen", 3)
    set_sysctl(ns, "net.ipv4.tcp_fastopen_blackhole_timeout_sec", 0)


# The probe runs in the namespace as a child (a raw socket must be opened there); it needs only
# the standard library, so it works wherever ``ip netns exec`` can start this Python.
_ECHO_CHILD = r"""
import os, select, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
ident = os.getpid() & 0xFFFF
body = b"netfast-probe"
msg = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + body
msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(msg, (dst, 0))
end = time.monotonic() + timeout
while (left := end - time.monotonic()) > 0:
    if not select.select([s], [], [], left)[0]:
        break
    pkt, (src, _) = s.recvfrom(2048)
    ihl = (pkt[0] & 0x0F) * 4
    icmp = pkt[ihl:]
    echo_reply = len(icmp) >= 8 and icmp[0] == 0
    if src == dst and echo_reply and struct.unpack("!H", icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)
"""


def icmp_echo(ns: str | None, address: str, timeout: float = 1.0) -> bool:
    """Whether ``address`` answers one ICMP echo sent from namespace ``ns`` within ``timeout`` s.

    This is the reachability probe of the benchmarks and the tests that need a kernel peer to
    reach netfast: it uses a raw socket of the standard library in a child started with ``ip
    netns exec``, so it needs neither ``ping`` nor anything else beyond ``ip`` (already required
    to build the namespace).  Needs root, as every namespace benchmark does.
    """
    argv = [sys.executable, "-c", _ECHO_CHILD, address, str(timeout)]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout + COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0
