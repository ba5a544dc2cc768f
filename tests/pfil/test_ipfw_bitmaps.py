"""The bitmap matcher against the rule-major walk, the per-packet oracle and the scalar path.

Both matchers run through the same :meth:`Ruleset.run_batch_kernel` set-up (states, counting),
so equal verdicts, counters and states mean equal walks.  Rulesets go past 64 rules so that the
bitmaps span several words, and skipto jumps across word boundaries.
"""

from __future__ import annotations

import copy
import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.pfil.oracles import packet_major_kernel
from tests.pfil.test_ipfw import (
    _HOSTS,
    columns,
    ip,
    packet,
    random_packets,
    rule_texts,
    tcp,
    udp,
)

from netfast.pfil import Direction, PfilPacket
from netfast.pfil.ipfw import parse_rules
from netfast.pfil.ipfw import ruleset as ruleset_module
from netfast.pfil.ipfw.bitmaps import RuleBitmaps
from netfast.pfil.ipfw.ruleset import Ruleset

IN = Direction.IN
OPTIONS = {"me": [_HOSTS[1]], "interfaces": {"a": 1, "b": 2}}


def _three(text: str, **extra: object) -> tuple[Ruleset, Ruleset, Ruleset]:
    opts = {**OPTIONS, **extra}
    return (
        parse_rules(text, matcher="bitmap", **opts),  # type: ignore[arg-type]
        parse_rules(text, matcher="walk", **opts),  # type: ignore[arg-type]
        parse_rules(text, matcher="walk", **opts),  # type: ignore[arg-type]
    )


def _run_all(
    text: str, pkts: list[PfilPacket], direction: Direction, **extra: object
) -> tuple[list[int], Ruleset]:
    bm, walk, oracle = _three(text, **extra)
    assert bm.uses_bitmaps and not walk.uses_bitmaps
    ifindex = np.array([p.ifindex for p in pkts], np.int64)
    for p in pkts:
        p.direction = direction
    cols = columns(pkts)
    out_b = bm.evaluate_batch(cols, direction, ifindex)
    out_w = walk.evaluate_batch(cols, direction, ifindex)
    out_o = oracle.run_batch_kernel(cols, direction, ifindex, packet_major_kernel)
    assert out_b.tolist() == out_w.tolist() == out_o.tolist(), text
    assert bm.packets.tolist() == walk.packets.tolist() == oracle.packets.tolist()
    assert bm.bytes.tolist() == walk.bytes.tolist() == oracle.bytes.tolist()
    return out_b.tolist(), bm


@st.composite
def many_rules(draw: st.DrawFn, low: int = 0, high: int = 40) -> str:
    lines = ["table t add 10.0.0.0/8", "table t add 198.18.0.0/15"]
    number = 0
    for _ in range(draw(st.integers(low, high))):
        number += draw(st.integers(1, 400))
        lines.append(draw(rule_texts(number)))
    return "\n".join(lines)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    many_rules(),
    st.lists(random_packets(), min_size=1, max_size=80),
    st.sampled_from(list(Direction)),
    st.booleans(),
)
def test_bitmaps_equal_walk_oracle_and_scalar(
    text: str, pkts: list[PfilPacket], direction: Direction, default_allow: bool
) -> None:
    out, bm = _run_all(text, pkts, direction, default_allow=default_allow)
    scalar = parse_rules(text, default_allow=default_allow, **OPTIONS)  # type: ignore[arg-type]
    for p, v in zip(pkts, out, strict=True):
        if v != 3:
            assert int(scalar.evaluate(copy.copy(p))) == v, (text, p)
    assert bm.packets.tolist() == scalar.packets.tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    many_rules(60, 160),
    st.lists(random_packets(), min_size=20, max_size=120),
    st.sampled_from(list(Direction)),
)
def test_bitmaps_over_several_words(
    text: str, pkts: list[PfilPacket], direction: Direction
) -> None:
    _run_all(text, pkts, direction)


def test_skipto_and_count_across_word_boundaries() -> None:
    """count at rule 0, a skipto from word 0 into word 2, matches on either side of it."""
    lines = ["count ip from any to any"]
    lines += [f"deny udp from any to any {1000 + i}" for i in range(60)]
    lines += ["skipto 5000 udp from any to any 53"]
    lines += [f"deny udp from any to any {2000 + i}" for i in range(80)]
    lines += ["5000 count udp from 198.18.0.0/15 to any", "5001 deny udp from any to any 53"]
    lines += ["6000 allow ip from any to any"]
    text = "\n".join(
        line if line[0].isdigit() else f"{10 * (i + 1)} {line}" for i, line in enumerate(lines)
    )
    pkts = [
        packet(udp(dport=53)),  # count, skipto, count, deny at 5001
        packet(udp(src="203.0.113.1", dport=53)),  # count, skipto, deny at 5001
        packet(udp(dport=1030)),  # count, deny in word 0
        packet(udp(dport=2070)),  # count, deny in word 2
        packet(tcp(dport=2070)),  # count, allow
    ]
    out, bm = _run_all(text, pkts, IN)
    assert out == [1, 1, 1, 1, 0]
    rules = {r.number: r.packets for r in bm.counters}
    assert rules[10] == 5 and rules[5000] == 1 and rules[5001] == 2
    assert len(bm.rules) > 128


def test_address_forms_and_negation() -> None:
    """Prefixes, ranges, a non-contiguous mask, a value outside its mask, negated lists."""
    text = "\n".join(
        [
            "deny ip from 198.18.0.0/24 to any",
            "deny ip from any to 10.0.0.5-10.0.0.9",
            "deny ip from 192.0.2.1:255.0.255.0 to any",  # non-contiguous: checked in full
            "deny ip from 192.0.3.1:255.255.255.0 to any",  # value outside mask: never
            "deny ip from not { 198.18.0.0/15, 198.51.100.0/24 } to any",
            "deny ip from any to not 198.19.0.0/16",
            "allow ip from any to any",
        ]
    )
    cases = [
        ("198.18.0.9", "198.19.0.1", 1),
        ("198.18.1.9", "10.0.0.5", 1),
        ("198.18.1.9", "10.0.0.10", 1),  # outside the range: then not 198.19/16 denies
        ("198.18.1.9", "198.19.3.3", 0),
        ("198.51.100.7", "198.19.0.1", 0),
        ("192.0.77.1", "198.19.0.1", 1),  # the non-contiguous mask
        ("192.0.3.1", "198.19.0.1", 1),  # not in the allowed sources
        ("203.0.113.1", "198.19.0.1", 1),
    ]
    pkts = [packet(udp(src=s, dst=d)) for s, d, _ in cases]
    out, _ = _run_all(text, pkts, IN)
    assert out == [v for _, _, v in cases]


def test_tables_me_interfaces_and_residual_conditions() -> None:
    text = "\n".join(
        [
            "table t add 203.0.113.0/24",
            "deny ip from table(t) to any",
            "deny ip from any to me",
            "deny udp from any to any recv b",
            "deny tcp from any to any tcpflags syn,!ack",
            "deny ip from any to any ttl 0-1",
            "allow ip from any to any",
        ]
    )
    pkts = [
        packet(udp(src="203.0.113.9")),
        packet(udp(dst=str(ipaddress.IPv4Address(_HOSTS[1])))),
        packet(udp(), ifindex=2),
        packet(tcp(flags="S")),
        packet(tcp(flags="SA")),
        packet(udp(ttl=1)),
        packet(udp()),
    ]
    out, _ = _run_all(text, pkts, IN)
    assert out == [1, 1, 1, 1, 0, 1, 0]


def test_ports_absent_and_boundaries() -> None:
    text = "\n".join(
        [
            "deny udp from any 0-1023 to any",
            "deny udp from any to any 65535",
            "allow ip from any to any",
        ]
    )
    pkts = [
        packet(udp(sport=1023)),
        packet(udp(sport=1024)),
        packet(udp(sport=5000, dport=65535)),
        packet(udp(sport=5000, dport=65534)),
    ]
    icmp_pkt = packet(udp())
    icmp_pkt.proto, icmp_pkt.sport, icmp_pkt.dport = 1, -1, -1  # no ports: no port rule holds
    out, _ = _run_all(text, [*pkts, icmp_pkt], IN)
    assert out == [1, 0, 1, 0, 0]


def test_addresses_outside_32_bits_are_checked_in_full() -> None:
    """A column value no address row covers takes the full check of every candidate."""
    rs = parse_rules("deny ip from 0.0.0.0/0 to any\nallow ip from any to any", matcher="bitmap")
    walk = parse_rules("deny ip from 0.0.0.0/0 to any\nallow ip from any to any", matcher="walk")
    cols = columns([packet(udp()), packet(udp())])
    cols["src"] = np.array([ip("198.18.0.1"), -5], np.int64)
    assert rs.evaluate_batch(cols, IN, 1).tolist() == walk.evaluate_batch(cols, IN, 1).tolist()


def test_auto_takes_the_bitmaps_within_their_size_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = parse_rules("allow ip from any to any")
    hosts = ", ".join(f"198.18.{i // 256}.{i % 256}" for i in range(2000))
    big = parse_rules(f"deny ip from {{ {hosts} }} to any\nallow ip from any to any")
    assert small.uses_bitmaps and big.uses_bitmaps
    built = RuleBitmaps(big._table)
    size = sum(getattr(built, f).nbytes for f in RuleBitmaps.__slots__ if f != "words")
    assert size <= RuleBitmaps.size_bound(big._table)
    monkeypatch.setattr(ruleset_module, "BITMAP_MAX_BYTES", RuleBitmaps.size_bound(big._table) - 1)
    assert small.uses_bitmaps and not big.uses_bitmaps
    pkt = packet(udp(src="198.18.3.7"))
    assert big.evaluate_batch(columns([pkt]), IN, 1).tolist() == [1]  # the walk, same verdict
    assert big._bitmaps is None
    with pytest.raises(ValueError, match="matcher must be one of"):
        parse_rules("allow ip from any to any", matcher="tree")


def test_bitmap_rows_are_narrow_and_rebuilt_after_changes() -> None:
    rs = parse_rules("deny ip from any to me\nallow ip from any to any", matcher="bitmap")
    p = packet(udp(dst="198.19.0.1"))
    assert rs.evaluate_batch(columns([p]), IN, 1).tolist() == [0]
    rs.set_me([ip("198.19.0.1")])
    assert rs.evaluate_batch(columns([p]), IN, 1).tolist() == [1]
    bm = RuleBitmaps(parse_rules("deny udp from any to any 53\nallow ip from any to any")._table)
    # one word, the default rule in every row; rule 0 only in the rows holding port 53
    assert bm.words == 1
    assert all(int(r) & 2 for r in bm.dport_rows[:, 0])
    assert [port for port in (52, 53, 54) if int(bm.dport_rows[bm.dport_of[port], 0]) & 1] == [53]


def test_fragments_and_negated_tables() -> None:
    text = "\n".join(
        [
            "table t add 203.0.113.0/24",
            "deny ip from any to any frag",
            "deny tcp from not table(t) to any 80",
            "allow ip from any to any",
        ]
    )
    pkts = [
        packet(udp(flags="MF")),  # a first fragment
        packet(udp()),
        packet(tcp(src="203.0.113.9", dport=80)),  # in the table: the negation does not hold
        packet(tcp(src="198.18.0.1", dport=80)),
    ]
    assert [p.fragment for p in pkts] == [True, False, False, False]
    out, _ = _run_all(text, pkts, IN)
    assert out == [1, 0, 0, 1]
