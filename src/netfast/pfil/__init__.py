"""Packet filter hooks (the paper's PFIL section): heads at the intercept points, hooks chained on
heads, verdicts.  See docs/ROUTER.md for the contract between ip, pfil and the firewall."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


class Verdict(IntEnum):
    PASS = 0
    DROP = 1
    CONSUMED = 2  # the hook took the packet (and may have sent something instead)
    #: Batch verdicts only: this packet needs the scalar path (a hook's per-packet work, such
    #: as a reply, a log line or a state it cannot decide in the batch).
    PUNT = 3


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


#: The columns a :class:`BatchHook` reads, one integer array each, ``-1`` where a field is
#: absent (as in :class:`PfilPacket`); ``fragment`` is nonzero for fragments.
BATCH_COLUMNS = (
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "tcp_flags",
    "icmp_type",
    "ttl",
    "length",
    "fragment",
)


@runtime_checkable
class BatchHook(Protocol):
    """A hook that can also decide a whole batch (the router's vector path runs these; a head
    holding any other hook makes the vector path punt its candidates to the scalar path).

    Called with one packet it is an ordinary pfil hook.  :meth:`evaluate_batch` returns one
    :class:`Verdict` value per row (PASS, DROP or PUNT, as ``uint8``) and counts what it decided
    exactly as the per-packet calls would have; rows it answers PUNT it has not counted.
    Because a later head may punt a row an earlier head passed (and counted), the vector path
    takes a :meth:`counter_snapshot` before the heads run and may :meth:`counter_restore` it to
    run them again without the punted rows.

    ``ordered=True`` is the caller's promise that this call is the only one these rows go
    through in their batch (one hook at one head), that the rows are in arrival order, and that
    every row it answers PUNT -- and every row marked in the optional ``punted`` column, which
    it must answer PUNT -- then goes through the per-packet hook in that order.  The hook may
    then change its own state row by row (a stateful firewall creating its states), provided
    the rows it decides plus the punted ones handled afterwards end exactly as every row through
    the per-packet hook in order: it punts whatever an earlier punted row could have changed."""

    def __call__(self, pkt: PfilPacket) -> Verdict: ...

    def evaluate_batch(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: Direction | int,
        ifindex: npt.NDArray[np.integer] | int,
        *,
        ordered: bool = False,
    ) -> npt.NDArray[np.uint8]: ...

    def counter_snapshot(self) -> object: ...

    def counter_restore(self, snapshot: object) -> None: ...
