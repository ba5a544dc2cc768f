"""Packet filter hooks (the paper's PFIL section): heads at the intercept points, hooks chained on
heads, verdicts.  See docs/ROUTER.md for the contract between ip, pfil and the firewall."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Verdict(IntEnum):
    PASS = 0
    DROP = 1
    CONSUMED = 2  # the hook took the packet (and may have sent something instead)


class Direction(IntEnum):
    IN = 0
    FORWARD = 1
    OUT = 2


@dataclass(slots=True)
class PfilPacket:
    """What a hook sees of one IPv4 packet: the parsed fields (so hooks do not parse again) and
    the packet bytes (from the IP header on).  Ports, TCP flags and ICMP type/code are set only
    for the first fragment of a packet whose transport header is present (else ``-1``)."""

    ifindex: int
    direction: Direction
    src: int
    dst: int
    proto: int
    ttl: int
    length: int
    sport: int = -1
    dport: int = -1
    tcp_flags: int = -1
    icmp_type: int = -1
    icmp_code: int = -1
    fragment: bool = False
    data: bytes | bytearray | memoryview = b""
    #: Set by a hook that wants replies sent (e.g. a TCP reset or an ICMP unreachable): whole IPv4
    #: packets (IP header on) that the router routes and sends like its own ICMP errors.
    replies: list[bytes] | None = None
