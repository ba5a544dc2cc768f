"""The HTTP benchmark's settings (sections, targets, file sizes, connection counts, timeouts,
addresses), its error type, and the small helpers the measuring modules share."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

SECTIONS = ("keepalive", "close", "large", "tap", "figure18")
#: Ratios netfast's kernel backend should reach (measured / competitor in the same run).
TARGETS = {
    "keepalive_vs_nginx": 0.5,
    "keepalive_vs_http_server": 10.0,
    "close_vs_nginx": 0.5,
    "large_vs_nginx": 0.9,
}
SMALL_FILE = "1k.bin"
SMALL_BYTES = 1024
LARGE_BYTES = 100_000_000
QUICK_LARGE_BYTES = 10_000_000
#: The large file of the ``tap`` section: netfast's TCP in Python moves tens of MB/s, not GB/s.
TAP_LARGE_BYTES = 10_000_000
#: With --quick: small enough that a one-second run over a busy TAP completes responses.
QUICK_TAP_LARGE_BYTES = 1_000_000
WORKERS = (1, 2)
#: wrk's connections per load.
SMALL_CONNECTIONS = 50
LARGE_CONNECTIONS = 4
FIG18_COUNTS = (0, 100, 500, 900, 2000, 5000)
FIG18_QUICK_COUNTS = (0, 100, 500)
FIG18_PROBES = 300
#: Interleaved rounds the probes of each Figure 18 point are split into.
FIG18_ROUNDS = 5
#: (server, poller) lines of Figure 18.
FIG18_SERVERS = (
    ("netfast", "select"),
    ("netfast", "poll"),
    ("netfast", "epoll"),
    ("nginx", "epoll"),
)
#: select(2) takes descriptors below FD_SETSIZE (1024) only; this many idle ones leave no room.
SELECT_LIMIT = 1000

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
WRK_GRACE = 30.0
OPEN_TIMEOUT = 120.0
#: Per-request socket timeout of the Figure 18 client (seconds).
REQUEST_TIMEOUT = 10.0
#: Keep-alive and idle timeouts of the Figure 18 servers: no idle connection may expire.
FIG18_IDLE_TIMEOUT = 3600

TAP_PREFIX = "198.18.31"
KERNEL_IP = f"{TAP_PREFIX}.1"
NETFAST_IP = f"{TAP_PREFIX}.2"
TAP_PORT = 80

#: The /24 (reserved for benchmarking) of the netfast backend's Figure 18 line.
FIG18_TAP_PREFIX = "198.18.32"
#: Idle connections the netfast backend's Figure 18 line goes up to at most.  Measured on a
#: loaded 2-CPU machine: 0 -> 100 idle connections took 0.4 s, 500 -> 1000 8.5 s, 1000 -> 2000
#: 35 s, 2000 -> 3000 60 s, and 3000 -> 5000 did not finish within OPEN_TIMEOUT (120 s); a
#: quieter run took 21 s for 900 -> 2000.  Each new connection costs netfast's loop more the more
#: it already holds (its TCP timer pass visits every connection each round).
FIG18_TAP_LIMIT = 2000
#: Seconds the namespace's client may take per idle-connection count, beyond opening them.
FIG18_TAP_GRACE = 60.0
#: Idle-connection counts and rounds of the in-process measurement (:func:`measure_retrieval`).
FIG18_QUEUE_COUNTS = (0, 100, 1000, 5000, 10000)
FIG18_QUEUE_QUICK_COUNTS = (0, 100, 1000)
FIG18_QUEUE_ROUNDS = 100
FIG18_QUEUE_QUICK_ROUNDS = 50

HTTP_SERVER_NOTE = (
    "no worker option: one process, a thread per connection; HTTP/1.0, so every response "
    "closes its connection"
)

_names = itertools.count()


class BenchError(Exception):
    """A server or a tool could not be run; the message becomes a row's ``error``."""


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of an ascending sequence."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]
