"""The ``netfast`` command: argument parsing and dispatch to subcommand modules.

Each subcommand module offers ``register(subparsers)``, which adds its parser and sets ``func``
to a callable taking the parsed arguments and returning an exit status.  Errors a user can fix
(a bad file, a bad argument) raise :class:`CliError` and end with exit status 2 and one clear line
on stderr; they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from netfast import __version__


class CliError(Exception):
    """A user-facing error: printed as ``netfast: error: <message>``, exit status 2."""


#: Subcommand modules (``netfast.cli.<name>``), each with ``register(subparsers)``.
COMMANDS = ("pcap", "route", "fw", "forward", "bench", "host", "httpd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netfast",
        description="A userspace IPv4/TCP stack and software router.",
    )
    parser.add_argument("--version", action="version", version=f"netfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"netfast.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command line as typed, for reports that record how they were made.
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    try:
        status = args.func(args)
    except CliError as exc:
        print(f"netfast: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `netfast pcap show big.pcap | head`: the reader went away; not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return int(status or 0)
