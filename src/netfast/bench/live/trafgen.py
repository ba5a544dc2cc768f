"""netsniff-ng's ``trafgen`` as the generator of ``netfast bench live``.

The frames
----------
:func:`bench_frames` builds the benchmark's frames with :mod:`netfast.wire`: Ethernet from A
(``02:00:00:00:fb:01``) to the middle's ``am`` (``02:00:00:00:fa:01``), IPv4 198.18.0.2 ->
198.18.1.2 (TTL 64, DF, header checksum filled), UDP to port 9 with its checksum filled and 18
zero bytes of payload: 60 bytes, 64 on the wire with the FCS the veth does not carry.  Flow
``i`` has UDP source port ``1024 + i`` (and IP identification ``i``), so ``flows`` frames make
that many distinct 5-tuples.  :func:`trafgen_config` writes them as trafgen packets of literal
bytes, one ``{ ... }`` each; trafgen sends them round robin.

The run
-------
``trafgen --dev a0 --in - --cpus 1 --num N --no-sock-mem --notouch-irq``, started with ``ip
netns exec A`` in its own process group, the configuration on standard input: one process
(``--cpus 1``; trafgen pins it to CPU 0), so the other CPU is left to the middle;
``--no-sock-mem`` and ``--notouch-irq`` because trafgen would otherwise change machine-wide
socket-memory sysctls and IRQ affinities.

- Flat out: trafgen's TX_RING path, bypassing A's qdisc (trafgen's default), stopped with
  SIGINT after ``seconds`` or when ``--num`` frames are out.
- Paced at ``R`` pps: trafgen's own pacing does not hold a rate -- ``--rate`` (0.6.8) sends
  each second's frames in one flat-out burst, and ``--gap`` sleeps per frame, which costs about
  100 us on a loaded virtual machine whatever the gap -- so A's qdisc paces instead: a token
  bucket (``tc qdisc replace dev a0 root tbf``: ``R`` frames of 60 bytes a second, a bucket of
  2 ms of frames, 16 to 256, and a queue of 4096 frames) and trafgen sending through it
  (``--qdisc-path --gap 0``: one blocking ``sendto`` per frame, no sleep).  The queue is longer
  than the socket's send buffer lets trafgen fill, so trafgen blocks rather than the qdisc
  dropping (its drops are counted all the same); the frames leave at ``R``, smoothed to the
  timer's lateness.  ``--num`` is ``R * seconds``; SIGINT ends a run that falls behind (on a
  loaded machine the qdisc's timer does not reach every rate: the offered rate is measured,
  never assumed).  The qdisc stays on ``a0`` (flat-out runs bypass it) and goes with A.

Either way the run is bounded by ``--num`` and by time: SIGINT, then SIGKILL of the group
:data:`netfast.bench.live.generators.GRACE_SECONDS` later.  trafgen's exit report gives the
frames it sent (``N packets outgoing``) and the seconds its sending loop took (``S sec, U usec
on CPU0``), which is the :class:`~netfast.bench.live.generators.Burst`; for a paced run the
seconds also count the frames still in the pacing queue when trafgen stopped (the time until
the queue was read, plus its length then over the rate), since those leave A after it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import replace

from netfast.bench.live.generators import GRACE_SECONDS, Burst
from netfast.bench.live.topology import (
    DST_PORT,
    FRAME_LEN,
    HOST_A,
    HOST_B,
    IF_A,
    MAC_A,
    MAC_ROUTER_A,
    UDP_PAYLOAD,
    a0_qdisc,
)
from netfast.bench.netns import run as _run
from netfast.wire.ethernet import EthernetRepr, EtherType, mac_from_str
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_from_str
from netfast.wire.udp import UdpRepr

__all__ = [
    "FIRST_SRC_PORT",
    "TrafgenGenerator",
    "bench_frames",
    "pacing_qdisc",
    "parse_report",
    "trafgen_command",
    "trafgen_config",
]

FIRST_SRC_PORT = 1024
MAX_FLOWS = 4096

_SENT = re.compile(r"^\s*(\d+)\s+packets outgoing\s*$", re.MULTILINE)
_CPU_TIME = re.compile(r"^\s*(\d+)\s+sec,\s*(\d+)\s+usec on CPU\d+ \((\d+) packets\)", re.MULTILINE)


def bench_frames(flows: int = 16) -> list[bytes]:
    """The benchmark's frames, one per flow (see the module docstring).

    Raises
    ------
    ValueError
        ``flows`` outside 1..4096.
    """
    if not 1 <= flows <= MAX_FLOWS:
        raise ValueError(f"flows = {flows}: expected 1..{MAX_FLOWS}")
    src, dst = ip_from_str(HOST_A), ip_from_str(HOST_B)
    eth = EthernetRepr(mac_from_str(MAC_ROUTER_A), mac_from_str(MAC_A), EtherType.IPV4)
    payload = bytes(UDP_PAYLOAD)
    frames = []
    for i in range(flows):
        udp = UdpRepr(FIRST_SRC_PORT + i, DST_PORT, UDP_PAYLOAD).to_bytes(src, dst, payload)
        ip = Ipv4Repr(
            src, dst, IpProtocol.UDP, len(udp), ttl=64, identification=i, dont_frag=True
        ).to_bytes(udp)
        frames.append(eth.to_bytes(ip))
    return frames


def trafgen_config(frames: list[bytes]) -> str:
    """A trafgen configuration sending ``frames`` (literal bytes, one packet each)."""
    if not frames:
        raise ValueError("no frames")
    lines = [
        f"/* netfast bench live: {len(frames)} frame(s), {HOST_A} -> {HOST_B}:{DST_PORT} */",
    ]
    for frame in frames:
        rows = [
            ", ".join(f"0x{b:02x}" for b in frame[i : i + 16]) for i in range(0, len(frame), 16)
        ]
        lines.append("{ " + ",\n  ".join(rows) + " }")
    return "\n".join(lines) + "\n"


def trafgen_command(ns: str, packets: int, *, paced: bool = False) -> list[str]:
    """The command line of one run in namespace ``ns`` (configuration on standard input);
    ``paced`` sends through A's qdisc (see the module docstring)."""
    if packets < 1:
        raise ValueError(f"packets = {packets}: must be at least 1")
    argv = [
        "ip", "netns", "exec", ns, "trafgen", "--dev", IF_A, "--in", "-", "--cpus", "1",
        "--num", str(packets), "--no-sock-mem", "--notouch-irq",
    ]  # fmt: skip
    if paced:
        argv += ["--qdisc-path", "--gap", "0"]
    return argv


def pacing_qdisc(rate: float) -> list[str]:
    """The ``tc`` arguments of the token bucket that paces ``rate`` frames/s on ``a0``."""
    if not rate >= 1:
        raise ValueError(f"rate = {rate}: must be at least 1 pps")
    bucket = min(256, max(16, round(rate * 0.002)))
    return [
        "tc", "qdisc", "replace", "dev", IF_A, "root", "tbf",
        "rate", f"{round(rate * FRAME_LEN * 8)}bit",
        "burst", str(bucket * FRAME_LEN),
        "limit", str(4096 * FRAME_LEN),
    ]  # fmt: skip


def parse_report(stdout: str) -> Burst:
    """The frames sent and the sending seconds from trafgen's exit report.

    Raises
    ------
    RuntimeError
        The report lacks the ``packets outgoing`` line.
    """
    text = stdout.replace("\r", "\n")
    sent = [int(m) for m in _SENT.findall(text)]
    if not sent:
        raise RuntimeError(f"trafgen printed no 'packets outgoing' line: {stdout.strip()!r}")
    # One line per sending process; with --cpus 1 there is one.
    seconds = max(
        (int(s) + int(us) / 1e6 for s, us, _ in _CPU_TIME.findall(text)),
        default=0.0,
    )
    return Burst(sum(sent), 0, seconds)


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    # The group is the one the run was started in (start_new_session): trafgen and its child.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


class TrafgenGenerator:
    """trafgen in namespace A sending :func:`bench_frames` (see the module docstring)."""

    name = "trafgen"
    paced = True

    def __init__(self, flows: int = 16) -> None:
        if shutil.which("trafgen") is None:
            raise RuntimeError("trafgen is not installed (Debian package netsniff-ng)")
        self.flows = flows
        self.config = trafgen_config(bench_frames(flows))

    def send(self, ns: str, packets: int, seconds: float, rate: float | None = None) -> Burst:
        if not seconds > 0:
            raise ValueError(f"seconds = {seconds}: must be positive")
        if rate is not None:
            _run(*pacing_qdisc(rate), ns=ns)
            packets = max(1, min(packets, math.ceil(rate * seconds)))
            # Reached only when the frames cannot leave at the rate: trafgen then reports what
            # it sent, over its own time.
            stop_after = seconds * 1.2 + 0.5
        else:
            stop_after = seconds
        proc = subprocess.Popen(
            trafgen_command(ns, packets, paced=rate is not None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        start = time.monotonic()
        try:
            try:
                out, err = proc.communicate(self.config, timeout=stop_after)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGINT)
                try:
                    out, err = proc.communicate(timeout=GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.communicate(timeout=GRACE_SECONDS)
                    raise RuntimeError(
                        f"trafgen did not stop within {GRACE_SECONDS:g} s of SIGINT "
                        f"({time.monotonic() - start:.1f} s in all); killed"
                    ) from None
        finally:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=GRACE_SECONDS)
        exited = time.monotonic()
        if proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"trafgen failed ({proc.returncode}): {err.strip()[-500:]}")
        burst = parse_report(out)
        if rate is None:
            return burst
        # trafgen's clock stops when it hands over its last frame; the frames still in the
        # pacing queue leave after it, at the rate.  Count them in: when the queue was read,
        # plus its length at that moment over the rate.
        before = time.monotonic()
        _, queued = a0_qdisc(ns)
        read_at = (before + time.monotonic()) / 2
        return replace(burst, seconds=burst.seconds + (read_at - exited) + queued / rate)
