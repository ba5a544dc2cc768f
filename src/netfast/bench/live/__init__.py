"""The live forwarding benchmark (``netfast bench live``): packets per second through netfast
between two veths, next to the Linux kernel forwarding between the same namespaces, measured in
the same run with the same generator and the same sink, and the RFC 2544 throughput of each.

Topology (:mod:`.topology`)
---------------------------
::

    ns A (generator)          ns M (the middle)                 ns B (sink)
    a0 198.18.0.2/24 --veth-- am 02:00:00:00:fa:01
                              bm 02:00:00:00:fa:02 --veth-- b0 198.18.1.2/24

Three namespaces made for the run and always deleted; addresses only in 198.18.0.0/15;
permanent neighbour entries, IPv6 off, offloads off, a silent sink.

The modes
---------
``kernel``
    M has 198.18.0.1/24 on ``am``, 198.18.1.1/24 on ``bm`` and ``ip_forward=1``: the kernel
    forwards.  Over a veth it does so in the sender's softirq, on the generator's CPU.
``netfast``
    M's addresses are flushed and ``ip_forward=0`` (the kernel drops its copy of each frame);
    a netfast router runs ``run_live`` in a thread of this process whose network namespace is
    M, on AF_PACKET links bound to ``am`` and ``bm``, pinned to the last CPU (:mod:`.middle`).

The generator (:mod:`.generators`, :mod:`.trafgen`)
-------------------------------------------------
netsniff-ng's ``trafgen`` in A, one process on CPU 0, sending 60-byte UDP frames (64 bytes on
the wire with the FCS) to 198.18.1.2 port 9 from 16 source ports, flat out (its TX_RING path)
or paced (through a token-bucket qdisc on ``a0``: trafgen's own ``--rate`` sends each second's
frames in one burst); bounded by a frame count and by time (SIGINT, then SIGKILL).  Without
trafgen, one Python process sending on a UDP socket (paced by sleeping); the report names the
generator.  Offered rate: what the generator sent over its own sending time.

What is measured (:mod:`.measure`)
----------------------------------
Each trial: a warm-up burst, the counters read once the network is idle, the generator's run,
the counters read again once idle (so frames still queued when the generator stopped count).
``delivered`` is B's ``b0`` rx count; ``entered`` the middle's ``am`` rx count.  Every lost
frame is placed: the veths' rx/tx drops (``ip -s link``), in kernel mode M's IP MIB discards and
the frames that entered M but never reached IP, in netfast mode the frames that entered M but
netfast never read (a full socket buffer or ring), the frames netfast read but did not forward
(its drop counters), and the frames it forwarded but its links did not send (the links'
counters, whatever their names); what no counter explains is ``unaccounted``.

1. ``rounds`` flat-out trials per mode, modes alternating which goes first: the offered rate
   and the delivered rate at the generator's maximum (the best trial of each mode is reported).
2. The RFC 2544 throughput search (:mod:`.search`): for each mode, the highest offered rate
   forwarded with less than 0.1 % loss, by bisection from the flat-out trial, in trials of about
   a second, the two modes' trials alternating, bounded in trials and in total time.

Every wait is bounded in time and every loop in count.
"""

from __future__ import annotations

import ctypes
import os
import shutil

from netfast.bench.live.generators import GENERATORS, Burst, PythonGenerator, choose_generator
from netfast.bench.live.measure import LiveResult, ModeRun, SearchSettings, measure, run_trial
from netfast.bench.live.middle import NetfastFigures, NetfastRouter, router_config
from netfast.bench.live.search import LOSS_LIMIT, ThroughputSearch, alternate
from netfast.bench.live.topology import FRAME_LEN, MODES, UDP_PAYLOAD, Topology

__all__ = [
    "FRAME_LEN",
    "GENERATORS",
    "LOSS_LIMIT",
    "MODES",
    "UDP_PAYLOAD",
    "Burst",
    "LiveResult",
    "ModeRun",
    "NetfastFigures",
    "NetfastRouter",
    "PythonGenerator",
    "SearchSettings",
    "ThroughputSearch",
    "Topology",
    "alternate",
    "check_environment",
    "choose_generator",
    "measure",
    "router_config",
    "run_trial",
]


def check_environment() -> str | None:
    """None when the benchmark can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, AF_PACKET)"
    for tool in ("ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not hasattr(ctypes.CDLL(None), "setns"):
        return "the C library has no setns(2)"
    return None
