"""The dynamic state table, alone against a dict model, and ordered batches (states created
and used inside one batch) against the scalar path packet by packet."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.pfil.test_ipfw import _STATEFUL_RULES, columns, flow_batches, ip

from netfast.pfil import Direction, PfilPacket
from netfast.pfil.ipfw import StateTimeouts, parse_rules
from netfast.pfil.ipfw.states import StateTable, StateView

IN = Direction.IN

# -- the table alone -------------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "remove", "reclaim", "find"]),
        st.integers(0, 40),  # key number: few keys, so they collide and are found again
        st.floats(0, 10, allow_nan=False),
    ),
    max_size=200,
)


def _key(k: int) -> tuple[int, int, int]:
    # a few keys land in one home slot of the 16-slot table (the same hash top bits)
    return (6 if k % 2 else 17, (0xC6120000 + k) << 16 | 80, (0xC6130000 + k % 3) << 16 | 1024)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_table_equals_a_dict(ops: list[tuple[str, int, float]]) -> None:
    """Inserts, deletes (backward shift), reclaims and lookups on a small table, probe runs
    wrapping around its end: the same contents as a dict, counts per rule exact."""
    table = StateTable(max_states=8, n_rules=3)
    model: dict[tuple[int, int, int], tuple[int, float]] = {}
    for op, k, t in ops:
        proto, lo, hi = _key(k)
        slot = table.find(proto, lo, hi)
        assert (slot >= 0) == ((proto, lo, hi) in model)
        if op == "insert" and slot < 0 and len(model) < 8:
            table.insert(proto, lo, hi, k % 3, t, lo, proto == 6)
            model[(proto, lo, hi)] = (k % 3, t)
        elif op == "remove" and slot >= 0:
            table.remove(slot)
            del model[(proto, lo, hi)]
        elif op == "reclaim":
            gone = [key for key, (_, e) in model.items() if e <= t]
            assert table.reclaim(t) == len(gone)
            for key in gone:
                del model[key]
        assert len(table) == len(model)
        per_rule = [sum(1 for r, _ in model.values() if r == i) for i in range(3)]
        assert table.rule_states.tolist() == per_rule
    for (proto, lo, hi), (rule, expire) in model.items():
        key = (proto, lo >> 16, lo & 0xFFFF, hi >> 16, hi & 0xFFFF)
        assert key in table
        assert table[key] == StateView(rule, expire, (lo >> 16, lo & 0xFFFF), False, proto == 6)
    assert sorted(table) == sorted(
        (p, lo >> 16, lo & 0xFFFF, hi >> 16, hi & 0xFFFF) for p, lo, hi in model
    )


# -- ordered batches -------------------------------------------------------------------------------


def _ordered_then_punts(
    rs: object, pkts: list[PfilPacket], punted: list[bool], now: float
) -> list[int]:
    """What the router does with an ordered batch: the vector form with the rows it punted
    before the firewall marked, then every punted row through the scalar path in order."""
    assert hasattr(rs, "evaluate_batch") and hasattr(rs, "evaluate")
    rs.now = now  # type: ignore[attr-defined]
    cols = columns(pkts)
    cols["punted"] = np.array(punted, np.uint8)
    out = rs.evaluate_batch(cols, IN, np.array([p.ifindex for p in pkts]), ordered=True)
    got = out.tolist()
    assert set(got) <= {0, 1, 3}
    for i, v in enumerate(got):
        if punted[i]:
            assert v == 3
        if v == 3:
            got[i] = int(rs.evaluate(copy.copy(pkts[i])))  # type: ignore[attr-defined]
    return got


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_STATEFUL_RULES), min_size=1, max_size=6),
    flow_batches(),
    st.integers(1, 40),
    st.data(),
)
def test_ordered_batches_equal_scalar(
    lines: list[str],
    batches: list[tuple[list[PfilPacket], float]],
    max_states: int,
    data: st.DataObject,
) -> None:
    """Whole batches -- states created by one packet and used by later ones of the same batch,
    rows the caller punted before the firewall among them -- through the ordered vector form
    and the punts through the scalar path, against every packet through the scalar path: the
    same verdicts, counters, stats, logs and states, time advancing so states expire, the table
    fills and rules reach their limits."""
    text = "\n".join(f"{100 * (i + 1)} {line}" for i, line in enumerate(lines))
    timeouts = StateTimeouts(tcp_established=40, tcp_opening=10, other=5)
    vec = parse_rules(text, max_states=max_states, timeouts=timeouts)
    ref = parse_rules(text, max_states=max_states, timeouts=timeouts)
    now = 0.0
    for pkts, step in batches:
        now += step
        if not pkts:
            continue
        punted = data.draw(st.lists(st.integers(0, 5).map(lambda d: d == 0), min_size=len(pkts),
                                    max_size=len(pkts)))  # fmt: skip
        ref.now = now
        expected = [int(ref.evaluate(copy.copy(p))) for p in pkts]
        assert _ordered_then_punts(vec, pkts, punted, now) == expected, text
        assert vec.packets.tolist() == ref.packets.tolist(), text
        assert vec.bytes.tolist() == ref.bytes.tolist()
        assert vec.stats == ref.stats, text
        assert list(vec.log) == list(ref.log)
        assert dict(vec.states.items()) == dict(ref.states.items())


def test_ordered_batch_decides_new_flows_itself() -> None:
    """The point of ordered batches: a flow's first packet creates its state in the batch and
    the flow's later packets, replies included, are decided by it -- nothing punted."""
    rs = parse_rules(
        "100 count tcp from any to any setup\n"
        "200 allow tcp from 198.18.0.0/24 to any 80 setup keep-state\n"
        "300 allow udp from 198.18.0.0/24 to any 53 keep-state limit 8\n"
    )
    a, b = ip("198.18.0.7"), ip("198.19.0.1")
    pkts = [
        PfilPacket(1, IN, a, b, 6, 64, 60, 40000, 80, 0x02),
        PfilPacket(1, IN, b, a, 6, 64, 60, 80, 40000, 0x12),
        PfilPacket(1, IN, a, b, 6, 64, 52, 40000, 80, 0x10),
        PfilPacket(1, IN, a, b, 17, 64, 40, 5000, 53),
        PfilPacket(1, IN, b, a, 17, 64, 90, 53, 5000),
        PfilPacket(1, IN, b, a, 6, 64, 60, 80, 40001, 0x12),  # no state: default deny
    ]
    rs.now = 1.0
    out = rs.evaluate_batch(columns(pkts), IN, 1, ordered=True)
    assert out.tolist() == [0, 0, 0, 0, 0, 1]
    assert rs.stats["ipfw.state.created"] == 2 and rs.stats["ipfw.state.hit"] == 3
    assert {c.number: c.packets for c in rs.counters} == {100: 1, 200: 3, 300: 2, 65535: 1}
    # the same batch unordered: the creating packets are punted, the rest decided without them
    again = parse_rules(rs.text())
    again.now = 1.0
    assert again.evaluate_batch(columns(pkts), IN, 1).tolist() == [3, 1, 1, 3, 1, 1]
