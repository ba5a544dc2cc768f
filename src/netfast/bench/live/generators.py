"""The traffic generators of ``netfast bench live``: what runs in namespace A and sends the
benchmark's 60-byte UDP frames (64 on the wire with the FCS) to B's 198.18.1.2 port 9.

- ``trafgen`` (:mod:`netfast.bench.live.trafgen`): netsniff-ng's generator on a packet socket,
  from frames built here; the default when it is installed.
- ``python``: one Python process sending with ``send`` on a connected UDP socket; the fallback.
  The kernel in A builds the frames (same sizes, same addresses).

A generator sends until ``packets`` were sent or ``seconds`` passed, whichever comes first, at
``rate`` packets/s when given, else as fast as it can, and reports what it sent and how long it
took by its own clock (:class:`Burst`): the offered rate is ``sent / seconds``.  Every run is a
child process bounded in time (its own limit, then a kill).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Protocol

from netfast.bench.live.topology import DST_PORT, HOST_B, UDP_PAYLOAD

__all__ = ["GENERATORS", "Burst", "Generator", "PythonGenerator", "choose_generator"]

GENERATORS = ("auto", "trafgen", "python")

#: Seconds a generator child may run past its own time limit before it is killed.
GRACE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Burst:
    """What one generator run sent: frames handed to the kernel, failed sends, and the seconds
    from the first send to the last by the generator's own clock."""

    sent: int
    errors: int
    seconds: float


class Generator(Protocol):
    """Sends the benchmark's frames from namespace ``ns``; see the module docstring."""

    @property
    def name(self) -> str: ...

    @property
    def paced(self) -> bool:
        """Whether it can hold a given rate (without, it only goes flat out)."""
        ...

    def send(self, ns: str, packets: int, seconds: float, rate: float | None = None) -> Burst:
        """Send up to ``packets`` frames within ``seconds`` at ``rate`` pps (None: flat out).

        Raises
        ------
        RuntimeError
            The generator failed or did not report.
        """
        ...


# The generator, run with `ip netns exec A python -c`: argv dst port packets seconds size rate.
# Checks the clock every 64 sends; when paced, sleeps until the schedule of `rate` catches up.
# send() errors (e.g. ECONNREFUSED after an ICMP error) are counted, not fatal.
_PYTHON_GENERATOR = """\
import json, socket, sys, time
dst, port, n, limit, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((dst, port))
send, data, clock = s.send, bytes(size), time.perf_counter
sent = errors = 0
t0 = clock()
end = t0 + limit
while sent < n:
    chunk = min(64, n - sent)
    for _ in range(chunk):
        try:
            send(data)
        except OSError:
            errors += 1
    sent += chunk
    now = clock()
    if now >= end:
        break
    if rate > 0:
        ahead = t0 + sent / rate - now
        if ahead > 0:
            time.sleep(min(ahead, end - now))
dt = clock() - t0
print(json.dumps({"sent": sent - errors, "errors": errors, "seconds": dt}))
"""


class PythonGenerator:
    """One Python process in A sending on a connected UDP socket (see the module docstring)."""

    name = "python"
    paced = True

    def send(self, ns: str, packets: int, seconds: float, rate: float | None = None) -> Burst:
        argv = [
            "ip", "netns", "exec", ns, sys.executable, "-c", _PYTHON_GENERATOR,
            HOST_B, str(DST_PORT), str(packets), repr(seconds), str(UDP_PAYLOAD),
            repr(float(rate or 0.0)),
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + GRACE_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the Python generator ran past {seconds:g} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"the generator failed ({proc.returncode}): {proc.stderr.strip()}")
        report = json.loads(proc.stdout)
        return Burst(int(report["sent"]), int(report["errors"]), float(report["seconds"]))


def choose_generator(name: str = "auto", *, flows: int = 16) -> Generator:
    """The generator called ``name``: ``trafgen``, ``python``, or ``auto`` (trafgen when it is
    installed, else Python).

    Raises
    ------
    ValueError
        An unknown name.
    RuntimeError
        ``trafgen`` asked for and not installed.
    """
    from netfast.bench.live.trafgen import TrafgenGenerator

    if name not in GENERATORS:
        raise ValueError(f"generator = {name!r}: expected one of {GENERATORS}")
    if name == "python" or (name == "auto" and shutil.which("trafgen") is None):
        return PythonGenerator()
    if shutil.which("trafgen") is None:
        raise RuntimeError("trafgen is not installed (Debian package netsniff-ng)")
    return TrafgenGenerator(flows=flows)
