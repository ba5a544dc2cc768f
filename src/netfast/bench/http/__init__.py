"""The HTTP benchmark (``netfast bench http``): ``netfast httpd`` against nginx and Python's
``http.server`` in one run, and the paper's Figure 18 (response time against idle connections,
poll(2)/select(2) against an event queue) reproduced on the kernel backend's three pollers.

The paper's application section (Oppermann, "Optimizing the FreeBSD IP and TCP Stack") says a
static-file server is dominated by the operating system: accept filters, an event queue instead
of poll/select, stat off the main loop and sendfile.  ``netfast httpd`` builds those; this package
measures what they are worth against a C server that uses the same kernel facilities (nginx) and
a Python one that uses none of them (``http.server``).

Sections
--------
``keepalive``
    ``wrk -t1 -c50 --latency`` on a 1 KiB file over persistent connections, for each worker
    count (nginx with the same ``worker_processes``).  Targets: netfast at least
    :data:`TARGETS` ``["keepalive_vs_nginx"]`` times nginx's requests/s and
    ``["keepalive_vs_http_server"]`` times ``http.server``'s.
``close``
    The same with ``-H 'Connection: close'``: one new TCP connection per request, so the accept
    path is measured.  Target: ``["close_vs_nginx"]`` times nginx.
``large``
    A large file (100 MB; 10 MB with ``--quick``) over 4 connections, bytes/s.  Target:
    ``["large_vs_nginx"]`` times nginx's throughput.
``tap``
    The netfast backend (netfast's own TCP/IP on a TAP, as root): the 1 KiB keep-alive load and a
    10 MB file, wrk running in a network namespace on the kernel's side of the TAP.  No target;
    nginx's loopback figures of the same run are printed for reference.
``figure18``
    :func:`measure_figure18`: ``K`` idle keep-alive connections held open against each server
    process (one worker each, all running at once), then the latency of sequential requests on
    one more connection, timed with ``perf_counter`` around the send and the whole response, in
    rounds that rotate the servers.  Each idle connection first has one request answered, so the
    server has accepted it (the accept filter holds silent ones back) and watches it idle.  The
    netfast kernel backend with ``--poller select``, ``poll`` and ``epoll``, and nginx (epoll) as
    a reference; idle timeouts are an hour, so none expires, and the rows say how many were
    still open after the measurement (``idle_open``).
    select(2) cannot take descriptors at or above ``FD_SETSIZE`` (1024), so counts of
    :data:`SELECT_LIMIT` and more are skipped for it (a row says so).  The paper's claim: with
    poll/select the response time grows with ``K``, with kqueue (here epoll) it stays flat.

    :func:`measure_figure18_tap` adds the line ``netfast-kqueue``: the netfast backend
    (netfast's TCP/IP and its :class:`~netfast.stack.kqueue.EventQueue`) on a TAP, the idle
    connections and the probes made by one client process in the namespace; counts above
    :data:`FIG18_TAP_LIMIT` are skipped rows (netfast would take minutes to set them up).
    :func:`measure_retrieval` isolates the mechanism on netfast's two-host simulator: the
    microseconds one round of event retrieval takes with ``K`` idle connections and one active,
    ``EventQueue.events()`` (``netfast-eventqueue``) against a poll(2)-style ``readiness()``
    call on every registered socket (``netfast-scan``), and the host stack's own per-round pass
    (``netfast-stackpoll``) for reference; these rows have section ``figure18-queue``.

Fairness and noise
------------------
Everything runs in one process tree on one (shared, noisy) machine: wrk with one thread on one
core, the server on what is left.  Each server is started fresh for its measurements, checked to
serve the 1 KiB file byte for byte before it is measured, and killed (its whole process group)
afterwards.  Compare the ratios; absolute figures are printed for the record.  A wrk run that
saw socket errors or non-2xx/3xx responses, or whose server died (``server_died``), is flagged
in its row, never dropped; a server or a tool that is missing or cannot run here becomes a row
with ``skipped`` or ``error``.

Bounds: each server start waits at most :data:`READY_TIMEOUT` s for the file to be served; every
wrk run is killed :data:`WRK_GRACE` s after its duration; opening the idle connections of one
Figure 18 point may take at most :data:`OPEN_TIMEOUT` s (the in-process set-up
:data:`QUEUE_SETUP_TIMEOUT` s).  Addresses: loopback, 198.18.31.0/24 (reserved for benchmarking)
inside the namespace of the ``tap`` section, 198.18.32.0/24 inside that of the ``netfast-kqueue``
line, and the simulator's 198.18.0.0/24 (no real interface).

Modules
-------
:mod:`~netfast.bench.http.common` (settings, :class:`BenchError`),
:mod:`~netfast.bench.http.wrk` (wrk's report and one run),
:mod:`~netfast.bench.http.servers` (the files, the servers and their lifetime),
:mod:`~netfast.bench.http.loopback` (the wrk sections), :mod:`~netfast.bench.http.tap` (the
netfast backend on a TAP, the ``tap`` section), :mod:`~netfast.bench.http.figure18` (Figure 18 on
loopback), :mod:`~netfast.bench.http.figure18_tap` (its ``netfast-kqueue`` line),
:mod:`~netfast.bench.http.retrieval` (the in-process measurement),
:mod:`~netfast.bench.http.tables` (what is printed) and :mod:`~netfast.bench.http.report`
(targets, environment, plot).  This package re-exports their public names.
"""

from netfast.bench.http.common import (
    FIG18_COUNTS,
    FIG18_IDLE_TIMEOUT,
    FIG18_PROBES,
    FIG18_QUEUE_COUNTS,
    FIG18_QUEUE_QUICK_COUNTS,
    FIG18_QUEUE_QUICK_ROUNDS,
    FIG18_QUEUE_ROUNDS,
    FIG18_QUICK_COUNTS,
    FIG18_ROUNDS,
    FIG18_SERVERS,
    FIG18_TAP_GRACE,
    FIG18_TAP_LIMIT,
    FIG18_TAP_PREFIX,
    HTTP_SERVER_NOTE,
    KERNEL_IP,
    LARGE_BYTES,
    LARGE_CONNECTIONS,
    NETFAST_IP,
    OPEN_TIMEOUT,
    QUICK_LARGE_BYTES,
    QUICK_TAP_LARGE_BYTES,
    READY_TIMEOUT,
    REQUEST_TIMEOUT,
    SECTIONS,
    SELECT_LIMIT,
    SMALL_BYTES,
    SMALL_CONNECTIONS,
    SMALL_FILE,
    STOP_TIMEOUT,
    TAP_LARGE_BYTES,
    TAP_PORT,
    TAP_PREFIX,
    TARGETS,
    WORKERS,
    WRK_GRACE,
    BenchError,
)
from netfast.bench.http.common import _percentile as _percentile  # the tests read it here
from netfast.bench.http.figure18 import measure_figure18, nofile_for, probe_latency
from netfast.bench.http.figure18_tap import measure_figure18_tap
from netfast.bench.http.loopback import measure_wrk
from netfast.bench.http.report import environment, plot_figure18, targets
from netfast.bench.http.retrieval import QUEUE_SETUP_TIMEOUT, measure_retrieval
from netfast.bench.http.servers import (
    Server,
    fetch,
    free_port,
    large_name,
    make_root,
    nginx_conf,
    running,
    server_argv,
    stop_process,
)
from netfast.bench.http.tables import (
    figure18_answer,
    figure18_label,
    figure18_table,
    retrieval_table,
    tap_table,
    targets_table,
    wrk_table,
)
from netfast.bench.http.tap import TapServer, measure_tap, netfast_on_tap
from netfast.bench.http.wrk import WrkResult, parse_wrk, run_wrk

__all__ = [
    "BenchError",
    "FIG18_COUNTS",
    "FIG18_IDLE_TIMEOUT",
    "FIG18_PROBES",
    "FIG18_QUEUE_COUNTS",
    "FIG18_QUEUE_QUICK_COUNTS",
    "FIG18_QUEUE_QUICK_ROUNDS",
    "FIG18_QUEUE_ROUNDS",
    "FIG18_QUICK_COUNTS",
    "FIG18_ROUNDS",
    "FIG18_SERVERS",
    "FIG18_TAP_GRACE",
    "FIG18_TAP_LIMIT",
    "FIG18_TAP_PREFIX",
    "HTTP_SERVER_NOTE",
    "KERNEL_IP",
    "LARGE_BYTES",
    "LARGE_CONNECTIONS",
    "NETFAST_IP",
    "OPEN_TIMEOUT",
    "QUEUE_SETUP_TIMEOUT",
    "QUICK_LARGE_BYTES",
    "QUICK_TAP_LARGE_BYTES",
    "READY_TIMEOUT",
    "REQUEST_TIMEOUT",
    "SECTIONS",
    "SELECT_LIMIT",
    "SMALL_BYTES",
    "SMALL_CONNECTIONS",
    "SMALL_FILE",
    "STOP_TIMEOUT",
    "Server",
    "TAP_LARGE_BYTES",
    "TAP_PORT",
    "TAP_PREFIX",
    "TARGETS",
    "TapServer",
    "WORKERS",
    "WRK_GRACE",
    "WrkResult",
    "environment",
    "fetch",
    "figure18_answer",
    "figure18_label",
    "figure18_table",
    "free_port",
    "large_name",
    "make_root",
    "measure_figure18",
    "measure_figure18_tap",
    "measure_retrieval",
    "measure_tap",
    "measure_wrk",
    "netfast_on_tap",
    "nginx_conf",
    "nofile_for",
    "parse_wrk",
    "plot_figure18",
    "probe_latency",
    "retrieval_table",
    "run_wrk",
    "running",
    "server_argv",
    "stop_process",
    "tap_table",
    "targets",
    "targets_table",
    "wrk_table",
]
