"""``netfast host``: run netfast's host stack on a TAP interface -- it answers ARP and ping and
serves TCP and UDP echo on port 7 and discard on port 9 -- until
``--duration`` seconds pass or it is interrupted (Ctrl-C, SIGTERM).  On exit it prints a summary
line, and with ``--stats`` every counter of the stack and the link.

Example (as root)::

    ip tuntap add nftap0 mode tap && ip addr add 198.18.0.1/24 dev nftap0 && ip link set nftap0 up
    netfast host --tap nftap0 --addr 198.18.0.2/24 --stats
    ping 198.18.0.2
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import signal
import sys
import threading
from collections import Counter
from types import FrameType

from rich.console import Console
from rich.table import Table

from netfast.cli import CliError
from netfast.ip.iface import IfAddr, Interface, parse_if_addr
from netfast.stack.host import Stack
from netfast.stack.hostrun import DiscardService, EchoService, run_host
from netfast.wire.ethernet import mac_from_str, mac_to_str


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "host",
        help="run the host stack on a TAP interface (ping, UDP echo/discard)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tap", required=True, metavar="NAME", help="TAP interface (made if absent)")
    p.add_argument(
        "--addr", required=True, metavar="IP/LEN", help="our address, e.g. 198.18.0.2/24"
    )
    p.add_argument("--gateway", metavar="IP", help="default router (on the --addr subnet)")
    p.add_argument("--mac", metavar="MAC", help="our MAC (default: a random local one)")
    p.add_argument("--mtu", type=int, default=1500, metavar="N", help="interface MTU (1500)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--stats", action="store_true", help="print every counter on exit")
    p.add_argument(
        "--offloads",
        action="store_true",
        help="open the TAP with a virtio-net header: TSO/GSO and checksum offload both ways",
    )
    p.add_argument(
        "--fastopen",
        action="store_true",
        help="echo and discard accept data on SYN with a valid cookie (T/TCPv2, or TCP Fast "
        "Open as Linux clients send it) and give cookies to clients that ask",
    )
    p.set_defaults(func=cmd_host)


def parse_addr(text: str) -> IfAddr:
    """``198.18.0.2/24`` -> IfAddr; CliError with one clear line otherwise."""
    try:
        return parse_if_addr(text)
    except ValueError as exc:
        raise CliError(f"--addr {exc}") from None


def _interface(args: argparse.Namespace) -> tuple[Interface, int | None]:
    addr = parse_addr(args.addr)
    if args.mtu is not None and not 68 <= args.mtu <= 65535:
        raise CliError(f"--mtu {args.mtu}: must be 68..65535")
    if args.duration is not None and args.duration <= 0:
        raise CliError(f"--duration {args.duration}: must be a positive number of seconds")
    if args.mac is None:
        # Locally administered, unicast (RFC 7042 2.1).
        mac = bytes([0x02]) + os.urandom(5)
    else:
        try:
            mac = mac_from_str(args.mac)
        except ValueError:
            raise CliError(f"--mac {args.mac!r}: not a MAC address (aa:bb:cc:dd:ee:ff)") from None
        if mac[0] & 1:
            raise CliError(f"--mac {args.mac}: a multicast MAC cannot be a host's address")
    gateway = None
    if args.gateway is not None:
        try:
            gw = ipaddress.IPv4Address(args.gateway)
        except ValueError:
            raise CliError(f"--gateway {args.gateway!r}: not an IPv4 address") from None
        net = ipaddress.IPv4Network((addr.network, addr.plen))
        if gw not in net:
            raise CliError(f"--gateway {gw}: not on the --addr subnet {net}")
        gateway = int(gw)
    return Interface(0, args.tap, mac, (addr,), mtu=args.mtu), gateway


def counters_table(title: str, counters: Counter[str]) -> Table:
    table = Table(title=title)
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name in sorted(counters):
        if counters[name]:
            table.add_row(name, f"{counters[name]:,}")
    return table


def cmd_host(args: argparse.Namespace) -> int:
    iface, gateway = _interface(args)
    from netfast.link.tap import TapLink

    try:
        link = TapLink(
            args.tap,
            mtu=iface.mtu,
            vnet_hdr=args.offloads,
            rx_gso="keep" if args.offloads else "segment",
        )
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot open TAP {args.tap!r}: {exc}") from None
    stack = Stack([iface], gateway=gateway, rng=random.Random())
    if args.offloads:
        stack.enable_tso(iface.index)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(_sig: int, _frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_term)
    console = Console(file=sys.stdout)
    apps = [
        EchoService(stack, fastopen=args.fastopen),
        DiscardService(stack, fastopen=args.fastopen),
    ]
    addr = args.addr
    console.print(
        f"netfast host {addr} on {link.name} (MAC {mac_to_str(iface.mac)}, MTU {link.mtu}"
        f"{', TSO/GSO' if args.offloads else ''}); TCP and UDP echo on 7, discard on 9"
        f"{'; data on SYN (T/TCPv2, TCP Fast Open)' if args.fastopen else ''}"
    )
    try:
        run_host(stack, {0: link}, duration=args.duration, stop=stop, apps=apps)
    except KeyboardInterrupt:
        pass
    finally:
        for app in apps:
            app.close()
        link.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    c = stack.counters
    console.print(
        f"frames in {c['eth.in.frames']:,}, ip in {c['ip.in.received']:,}, "
        f"pings answered {c['icmp.in.echo']:,}, udp delivered {c['udp.in.delivered']:,}, "
        f"tcp connections {c['tcp.conn.accepted']:,} ({c['tcp.fastopen.passive']:,} by data "
        f"on SYN), tcp bytes in {c['tcp.in.bytes']:,}, "
        f"ip out {c['ip.out.sent']:,}"
    )
    if args.stats:
        console.print(counters_table("host stack counters", c))
        console.print(counters_table(f"link {link.name}", link.counters))
    return 0
