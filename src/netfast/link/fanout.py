"""PACKET_FANOUT: one port's frames spread over several packet sockets, by flow.

packet(7): sockets bound to the same interface that join the same fanout group id share its
received frames; in ``hash`` mode the kernel picks the member from the packet's flow hash, so the
frames of one flow go to one member, in order.  The hash the kernel computes itself (when the
frame arrives without one) is symmetric -- the same for both directions of a flow -- so when every
worker holds the same member index in each port's group, both directions of a flow meet at one
worker: :func:`netfast.router.workers.run_workers` has the workers join one after the other for
that reason.  ``PACKET_FANOUT_FLAG_DEFRAG`` is set so the fragments of a datagram are
reassembled before the choice, and reach the same worker.

Group ids are 16 bits and live per network namespace; :func:`group_id` derives one per port from
a base (the parent process's id), so two routers in one namespace do not share a group by
accident.
"""

from __future__ import annotations

import socket
import struct

from netfast.link.base import WaitableLink

__all__ = ["PACKET_FANOUT", "FANOUT_HASH", "FANOUT_FLAG_DEFRAG", "group_id", "join_fanout"]

SOL_PACKET = 263
PACKET_FANOUT = 18
FANOUT_HASH = 0
FANOUT_FLAG_DEFRAG = 0x8000


def group_id(base: int, ifindex: int) -> int:
    """A 16-bit fanout group id for port ``ifindex`` of the router identified by ``base``."""
    return (base * 16 + ifindex) & 0xFFFF


def join_fanout(link: WaitableLink, group: int) -> None:
    """Make ``link``'s packet socket a member of fanout ``group`` (hash mode, defragmenting).

    Raises
    ------
    OSError
        The kernel refused (for example a group of that id with another mode exists, or the
        link is not a packet socket), with the interface named by the caller.
    ValueError
        ``group`` is not a 16-bit id.
    """
    if not 0 <= group <= 0xFFFF:
        raise ValueError(f"fanout group {group}: must be 0..65535")
    sock = socket.socket(fileno=link.fileno())
    try:
        # the defrag flag sets bit 31: passed as an unsigned int, not a Python int
        value = group | ((FANOUT_HASH | FANOUT_FLAG_DEFRAG) << 16)
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", value))
    finally:
        sock.detach()  # the link owns the descriptor
