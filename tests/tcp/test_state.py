"""The TCP state table (netfast.tcp.state) against RFC 9293 Figure 5, and every edge the
connection's scenarios take checked against it through a recording hook."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.tcp import test_conn, test_conn_timers
from tests.tcp.segments import ISS_IRS, established

import netfast.tcp.conn as conn_module
from netfast.tcp.state import (
    FIGURE_5,
    TEXT_EDGES,
    TRANSITIONS,
    IllegalTransition,
    TcpState,
    check_transition,
)

S = TcpState

# RFC 9293 Figure 5, transcribed from the RFC's drawing as "FROM -> TO" lines.
RFC_FIGURE_5 = """
CLOSED -> LISTEN
CLOSED -> SYN_SENT
LISTEN -> SYN_RECEIVED
LISTEN -> SYN_SENT
LISTEN -> CLOSED
SYN_SENT -> SYN_RECEIVED
SYN_SENT -> ESTABLISHED
SYN_SENT -> CLOSED
SYN_RECEIVED -> LISTEN
SYN_RECEIVED -> ESTABLISHED
SYN_RECEIVED -> FIN_WAIT_1
ESTABLISHED -> FIN_WAIT_1
ESTABLISHED -> CLOSE_WAIT
FIN_WAIT_1 -> FIN_WAIT_2
FIN_WAIT_1 -> CLOSING
FIN_WAIT_2 -> TIME_WAIT
CLOSE_WAIT -> LAST_ACK
CLOSING -> TIME_WAIT
LAST_ACK -> CLOSED
TIME_WAIT -> CLOSED
"""


def _edges(text: str) -> set[tuple[TcpState, TcpState]]:
    out = set()
    for line in text.strip().splitlines():
        a, b = (x.strip() for x in line.split("->"))
        out.add((S[a], S[b]))
    return out


def test_figure_5_is_the_rfcs() -> None:
    assert set(FIGURE_5) == _edges(RFC_FIGURE_5)


def test_table_is_figure_5_text_edges_and_aborts_only() -> None:
    table = {(a, b) for a, bs in TRANSITIONS.items() for b in bs}
    aborts = {(s, S.CLOSED) for s in TcpState if s != S.CLOSED}
    assert table == set(FIGURE_5) | set(TEXT_EDGES) | aborts
    assert TRANSITIONS[S.CLOSED] == {S.LISTEN, S.SYN_SENT}
    assert S.ESTABLISHED not in TRANSITIONS[S.CLOSE_WAIT]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.ESTABLISHED, S.SYN_SENT),
        (S.CLOSED, S.ESTABLISHED),
        (S.TIME_WAIT, S.ESTABLISHED),
        (S.CLOSE_WAIT, S.FIN_WAIT_1),
        (S.FIN_WAIT_2, S.CLOSING),
    ],
)
def test_illegal_edges_raise(old: TcpState, new: TcpState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(old, new)


def test_a_connection_refuses_an_illegal_edge() -> None:
    fx = established(*ISS_IRS[0])
    with pytest.raises(IllegalTransition):
        fx.conn._set_state(S.SYN_SENT)
    assert fx.conn.state == S.ESTABLISHED


def _scenarios() -> list[Callable[[tuple[int, int]], None]]:
    found = []
    for mod in (test_conn, test_conn_timers):
        for name, fn in vars(mod).items():
            if (
                name.startswith("test_")
                and callable(fn)
                and list(inspect.signature(fn).parameters) == ["nums"]
            ):
                found.append(fn)
    return found


def test_every_edge_the_scenarios_take_is_in_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the connection tests' scenarios with a hook on the one transition check: every edge
    they take is recorded, and together they walk most of the table."""
    taken: set[tuple[TcpState, TcpState]] = set()

    def record(old: TcpState, new: TcpState) -> None:
        taken.add((old, new))
        check_transition(old, new)

    monkeypatch.setattr(conn_module, "check_transition", record)
    scenarios = _scenarios()
    assert len(scenarios) > 40
    for fn in scenarios:
        for nums in ISS_IRS:
            fn(nums)
    table = {(a, b) for a, bs in TRANSITIONS.items() for b in bs}
    assert taken <= table
    # The figure's edges are walked, but for the SYN cache's LISTEN ones and a close during a
    # simultaneous open, which these scenarios do not try.
    must = set(FIGURE_5) - {
        (S.LISTEN, S.SYN_SENT),
        (S.LISTEN, S.CLOSED),
        (S.SYN_RECEIVED, S.LISTEN),
        (S.SYN_RECEIVED, S.FIN_WAIT_1),
    }
    assert must <= taken, sorted(must - taken)


def test_no_code_assigns_the_state_but_the_checked_sites() -> None:
    """Only ``__init__`` (CLOSED), ``_set_state`` and ``_drop`` write ``.state``; both of the
    latter call ``check_transition`` first."""
    src_dir = Path(conn_module.__file__).parent
    sites = []
    for path in sorted(src_dir.glob("*.py")):
        for line in path.read_text().splitlines():
            if re.search(r"\.state\s*=[^=]", line):
                sites.append((path.name, line.strip()))
    assert sites == [
        ("conn.py", "self.state = TcpState.CLOSED"),
        ("conn.py", "self.state = state"),
        ("conn.py", "self.state = TcpState.CLOSED"),
    ]
