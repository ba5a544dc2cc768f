"""``netfast httpd DIR``: serve the files under DIR over HTTP/1.1 until interrupted.

Two backends run the same application (netfast.httpd.app):

- ``kernel`` (the default): the Linux kernel's sockets with the paper's techniques -- accept
  filter (TCP_DEFER_ACCEPT plus a full-request gate), one epoll event queue, stat/open on a
  thread pool, sendfile with the head coalesced; ``--workers N`` processes on one port
  (SO_REUSEPORT).
- ``netfast``: netfast's own TCP/IP host stack on a TAP interface (as root), its socket API and
  event queue; files go from a memory map into TCP segments.

Examples::

    netfast httpd ./site --port 8080 --workers 2
    netfast httpd ./site --backend netfast --tap nftap0 --addr 198.18.0.2/24 --port 80
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TextIO

from netfast.cli import CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "httpd",
        help="serve static files over HTTP/1.1 (kernel sockets or netfast's own TCP)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="DIR", help="the directory to serve")
    p.add_argument("--port", type=_port, default=8080, metavar="N", help="TCP port (8080)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on, kernel backend (127.0.0.1)")  # fmt: skip
    p.add_argument("--workers", type=_count(1, 64), default=1, metavar="N",
                   help="worker processes on the port, kernel backend (1)")  # fmt: skip
    p.add_argument("--backend", choices=("kernel", "netfast"), default="kernel")
    p.add_argument("--tap", metavar="NAME", help="TAP interface, netfast backend")
    p.add_argument("--addr", metavar="IP/LEN", help="netfast's address, netfast backend")
    p.add_argument("--index", action="store_true", help="list directories without index.html")
    p.add_argument("--access-log", default="-", metavar="PATH",
                   help="access log file, '-' for standard output, 'off' for none (-)")  # fmt: skip
    p.add_argument("--header-timeout", type=_seconds, default=10.0, metavar="S",
                   help="seconds to receive a request head (10; then 408)")  # fmt: skip
    p.add_argument("--idle-timeout", type=_seconds, default=30.0, metavar="S",
                   help="seconds a keep-alive connection may idle (30)")  # fmt: skip
    p.add_argument("--max-connections", type=_count(1, 1_000_000), default=4096, metavar="N",
                   help="open connections at most (4096)")  # fmt: skip
    p.add_argument("--poller", choices=("epoll", "poll", "select"), default="epoll",
                   help="the kernel backend's event mechanism (epoll)")  # fmt: skip
    p.add_argument("--no-accept-filter", action="store_true",
                   help="accept connections before a whole request arrived")  # fmt: skip
    p.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds")
    p.set_defaults(func=cmd_httpd)


def _ascii_int(text: str) -> int:
    # int() accepts "٣", "²"-like digits and "+5", " 5", "1_0": only ASCII digits are numbers here.
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _port(text: str) -> int:
    n = _ascii_int(text)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"port {n} is not in 0..65535")
    return n


def _count(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = _ascii_int(text)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n} is not in {lo}..{hi}")
        return n

    return parse


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (v == v and 0 < v < 86400 * 365):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return v


def _open_log(spec: str) -> TextIO | None:
    if spec == "off":
        return None
    if spec == "-":
        return sys.stdout
    try:
        return open(spec, "a", encoding="utf-8")  # lives as long as the server
    except OSError as exc:
        raise CliError(f"{spec}: cannot open the access log: {exc.strerror}") from None


def cmd_httpd(args: argparse.Namespace) -> int:
    from netfast.httpd.app import HttpdConfig

    root = os.path.realpath(args.root)
    if not os.path.isdir(root):
        raise CliError(f"{args.root}: not a directory")
    log = _open_log(args.access_log)
    cfg = HttpdConfig(
        root=root, host=args.host, port=args.port, workers=args.workers, index=args.index,
        header_timeout=args.header_timeout, idle_timeout=args.idle_timeout,
        max_connections=args.max_connections, poller=args.poller,
        accept_filter=not args.no_accept_filter, access_log=log,
    )  # fmt: skip
    try:
        cfg.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.backend == "netfast":
        if not args.tap or not args.addr:
            raise CliError("--backend netfast needs --tap NAME and --addr IP/LEN")
        from netfast.httpd.netstack import serve_on_tap

        return serve_on_tap(cfg, args.tap, args.addr, duration=args.duration)
    if args.tap or args.addr:
        raise CliError("--tap and --addr go with --backend netfast")
    from netfast.httpd.kernel import serve_workers

    def ready(address: tuple[str, int]) -> None:
        print(
            f"netfast httpd: serving {root} on http://{address[0]}:{address[1]}/ "
            f"({cfg.workers} worker{'s' if cfg.workers > 1 else ''}, kernel backend)",
            file=sys.stderr,
            flush=True,
        )

    try:
        return serve_workers(cfg, ready=ready, duration=args.duration)
    except OSError as exc:
        raise CliError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
