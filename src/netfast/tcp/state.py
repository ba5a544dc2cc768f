"""TCP connection states and the transitions between them (RFC 9293 section 3.3.2, Figure 5).

Contract
--------
:data:`TRANSITIONS` maps every :class:`TcpState` to the states it may move to, as data.  A
connection changes state only through :func:`check_transition` (``TcpConnection._set_state``
calls it), which raises :class:`IllegalTransition` for an edge outside the table: such an edge is
a bug in the state machine, never the peer's doing, so it is loud (bad input from the network is
dropped and counted long before it could ask for one).

The table is Figure 5 of RFC 9293, plus what the RFC's text (section 3.10.7) adds to the picture:

- *abort*: any state may go to CLOSED (a reset accepted, a user ABORT, a retransmission or
  keepalive timeout, an orphan's FIN_WAIT_2 timeout);
- SYN_RECEIVED -> CLOSE_WAIT and FIN_WAIT_1 -> TIME_WAIT, the eighth step's FIN in SYN-RECEIVED
  and a FIN that also acknowledges ours (simultaneous close with crossed segments);
- SYN_RECEIVED -> LISTEN (a reset of a passive open) is in the figure; this package's listeners
  live in the SYN cache, so its connections never take that edge, but the table keeps it.

LISTEN and the SYN_RECEIVED of a passive open belong to :mod:`netfast.tcp.syncache`; a connection
it completes replays CLOSED -> LISTEN -> SYN_RECEIVED -> ESTABLISHED, so every connection's path
through the table is visible.
"""

from __future__ import annotations

import enum


class TcpState(enum.IntEnum):
    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


S = TcpState

#: The edges of RFC 9293 Figure 5, each with the event the figure writes on it.
FIGURE_5: dict[tuple[TcpState, TcpState], str] = {
    (S.CLOSED, S.LISTEN): "passive OPEN",
    (S.CLOSED, S.SYN_SENT): "active OPEN / snd SYN",
    (S.LISTEN, S.SYN_RECEIVED): "rcv SYN / snd SYN,ACK",
    (S.LISTEN, S.SYN_SENT): "SEND / snd SYN",
    (S.LISTEN, S.CLOSED): "CLOSE",
    (S.SYN_SENT, S.SYN_RECEIVED): "rcv SYN / snd SYN,ACK (simultaneous open)",
    (S.SYN_SENT, S.ESTABLISHED): "rcv SYN,ACK / snd ACK",
    (S.SYN_SENT, S.CLOSED): "CLOSE",
    (S.SYN_RECEIVED, S.LISTEN): "rcv RST (passive open)",
    (S.SYN_RECEIVED, S.ESTABLISHED): "rcv ACK of SYN",
    (S.SYN_RECEIVED, S.FIN_WAIT_1): "CLOSE / snd FIN",
    (S.ESTABLISHED, S.FIN_WAIT_1): "CLOSE / snd FIN",
    (S.ESTABLISHED, S.CLOSE_WAIT): "rcv FIN / snd ACK",
    (S.FIN_WAIT_1, S.FIN_WAIT_2): "rcv ACK of FIN",
    (S.FIN_WAIT_1, S.CLOSING): "rcv FIN / snd ACK (simultaneous close)",
    (S.FIN_WAIT_2, S.TIME_WAIT): "rcv FIN / snd ACK",
    (S.CLOSE_WAIT, S.LAST_ACK): "CLOSE / snd FIN",
    (S.CLOSING, S.TIME_WAIT): "rcv ACK of FIN",
    (S.LAST_ACK, S.CLOSED): "rcv ACK of FIN",
    (S.TIME_WAIT, S.CLOSED): "timeout = 2 MSL",
}

#: Edges the RFC's text adds to the figure (section 3.10.7.4, eighth step).
TEXT_EDGES: dict[tuple[TcpState, TcpState], str] = {
    (S.SYN_RECEIVED, S.CLOSE_WAIT): "rcv FIN in SYN-RECEIVED",
    (S.FIN_WAIT_1, S.TIME_WAIT): "rcv FIN that also acknowledges ours",
}


def _table() -> dict[TcpState, frozenset[TcpState]]:
    edges = set(FIGURE_5) | set(TEXT_EDGES)
    # Abort: a reset, ABORT or a fatal timeout ends a connection from any state.
    edges |= {(s, S.CLOSED) for s in TcpState if s != S.CLOSED}
    return {s: frozenset(b for a, b in edges if a == s) for s in TcpState}


#: Every legal transition: ``TRANSITIONS[old]`` holds the states ``old`` may move to.
TRANSITIONS: dict[TcpState, frozenset[TcpState]] = _table()

#: States in which the connection is synchronized (RFC 9293 3.5: both SYNs seen).
SYNCHRONIZED = frozenset(
    {
        S.ESTABLISHED,
        S.FIN_WAIT_1,
        S.FIN_WAIT_2,
        S.CLOSE_WAIT,
        S.CLOSING,
        S.LAST_ACK,
        S.TIME_WAIT,
    }
)
#: States in which received data is accepted (RFC 9293 3.10.7.4, seventh step).
RECEIVING = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})


class IllegalTransition(AssertionError):
    """A state change outside :data:`TRANSITIONS`: a bug in the state machine."""


def check_transition(old: TcpState, new: TcpState) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is an edge of the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"TCP state {old.name} -> {new.name} is not in the table")
