"""Unit tests of the vector path's pieces; the end-to-end comparison with the scalar path is in
test_vector_differential.py (whose topology and frame builders these tests reuse)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from tests.ip.test_vector_differential import (
    GW1,
    GW_MAC,
    MAC,
    NOW,
    RULES,
    SRC,
    assert_same,
    eth,
    ip_packet,
    make_router,
    routing_table,
    zoo,
)

from netfast.ip import vector
from netfast.ip.iface import NextHop
from netfast.ip.vector import VectorForwarder
from netfast.route.rib import parse_prefix
from netfast.wire.batch import FrameBatch
from netfast.wire.ipv4 import ip_from_str


def test_forwarded_frames_are_valid_and_rewritten() -> None:
    router, _ = make_router(routing_table(), None)
    dsts = ["10.0.0.1", "130.0.0.1", "10.0.0.2", "130.0.0.2", "10.0.0.3"]
    frames = [eth(ip_packet(SRC, ip_from_str(d), ttl=9), pad=7) for d in dsts]
    res = VectorForwarder(router).forward(FrameBatch.from_frames(frames), 0, NOW)
    assert len(res.punt) == 0
    assert res.out_rows[1].tolist() == [0, 2, 4] and res.out_rows[2].tolist() == [1, 3]
    out1 = res.out[1]
    assert out1.slot == 64  # trimmed slots
    for i, data in zip(res.out_rows[1], out1.frames(), strict=True):
        pkt = Ether(data)
        assert pkt.dst == GW_MAC[GW1].hex(":") and pkt.src == MAC[1].hex(":")
        assert pkt[IP].ttl == 8 and pkt[IP].dst == dsts[i]
        assert len(data) == len(frames[i]) - 7  # link padding removed
        # scapy recomputes the checksum: the incremental update must equal it
        fresh = IP(bytes(pkt[IP]))
        del fresh.chksum
        assert pkt[IP].chksum == IP(bytes(fresh)).chksum
    assert res.drops["ip.fwd.forwarded"] == 5


def test_arp_looked_up_once_per_distinct_next_hop() -> None:
    router, _ = make_router(routing_table(), None)
    calls: list[tuple[int, int]] = []
    lookup = router.arp.lookup

    def counting(ifindex: int, ip: int, now: float) -> bytes | None:
        calls.append((ifindex, ip))
        return lookup(ifindex, ip, now)

    router.arp.lookup = counting  # type: ignore[method-assign]
    frames = [eth(ip_packet(SRC, ip_from_str(f"10.0.{i}.1"))) for i in range(50)]
    frames += [eth(ip_packet(ip_from_str("198.18.1.7"), ip_from_str("198.18.0.10")))] * 3
    res = VectorForwarder(router).forward(FrameBatch.from_frames(frames), 1, NOW)
    assert res.forwarded == 53
    assert sorted(calls) == [(0, ip_from_str("198.18.0.10")), (1, GW1)]


def test_next_hop_cache_follows_new_values() -> None:
    table = routing_table()
    router, _ = make_router(table, None)
    fwd = VectorForwarder(router)
    frames = [eth(ip_packet(SRC, ip_from_str("10.20.0.1")))]
    assert list(fwd.forward(FrameBatch.from_frames(frames), 0, NOW).out) == [1]
    table.add(*parse_prefix("10.20.0.0/16"), NextHop(2, ip_from_str("198.19.0.254")))
    assert list(fwd.forward(FrameBatch.from_frames(frames), 0, NOW).out) == [2]
    # a value change on an existing route is a single store, seen at once
    table.add(*parse_prefix("10.20.0.0/16"), NextHop(1, GW1))
    assert list(fwd.forward(FrameBatch.from_frames(frames), 0, NOW).out) == [1]


def test_unknown_ingress_and_empty_batch() -> None:
    router, _ = make_router(routing_table(), None)
    fwd = VectorForwarder(router)
    with pytest.raises(ValueError, match="no interface"):
        fwd.forward(FrameBatch.from_frames(zoo()), 9, NOW)
    res = fwd.forward(FrameBatch.empty(0), 0, NOW)
    assert not res.out and len(res.punt) == 0 and not res.drops


def test_input_batch_left_untouched() -> None:
    router, _ = make_router(routing_table(), None)
    batch = FrameBatch.from_frames(zoo())
    before = batch.data.copy()
    VectorForwarder(router).forward(batch, 0, NOW)
    assert (batch.data == before).all()


@pytest.mark.parametrize("chunk", [1, 3, 7, 16])
@pytest.mark.parametrize("rules", [None, RULES], ids=["no-firewall", "firewall"])
def test_chunked_batches_identical(
    monkeypatch: pytest.MonkeyPatch, chunk: int, rules: str | None
) -> None:
    """A batch decided chunk by chunk (the ARP snapshot and the per-chunk firewall calls shared
    across chunks) still equals the scalar path, frames and counters."""
    monkeypatch.setattr(vector, "CHUNK", chunk)
    frames = zoo() * 3
    vec = assert_same(frames, rules)
    assert vec["ip.fwd.forwarded"] >= 21


def test_chunked_arp_looked_up_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector, "CHUNK", 4)
    router, _ = make_router(routing_table(), None)
    calls: list[tuple[int, int]] = []
    lookup = router.arp.lookup

    def counting(ifindex: int, ip: int, now: float) -> bytes | None:
        calls.append((ifindex, ip))
        return lookup(ifindex, ip, now)

    router.arp.lookup = counting  # type: ignore[method-assign]
    frames = [eth(ip_packet(SRC, ip_from_str(f"10.0.{i}.1"))) for i in range(50)]
    frames += [eth(ip_packet(ip_from_str("198.18.1.7"), ip_from_str("198.18.0.10")))] * 3
    res = VectorForwarder(router).forward(FrameBatch.from_frames(frames), 1, NOW)
    assert res.forwarded == 53
    assert sorted(calls) == [(0, ip_from_str("198.18.0.10")), (1, GW1)]


def test_discarded_firewall_round_restores_rule_counters_and_stats() -> None:
    """When a later head punts a packet an earlier head passed, the vector path re-runs the heads
    without it; what the discarded round counted -- rule packets/bytes and ipfw stats such as
    state hits -- must be put back, or it counts twice."""
    from netfast.pfil.ipfw import parse_rules

    rs = parse_rules("allow udp from any to any keep-state")
    rs.packets[0] = 5
    rs.bytes[0] = 500
    rs.stats["ipfw.state.hit"] = 2
    saved = rs.counter_snapshot()
    rs.packets[0] += 3
    rs.bytes[0] += 300
    rs.stats["ipfw.state.hit"] += 4
    rs.stats["ipfw.state.created"] += 1
    rs.counter_restore(saved)
    assert rs.packets[0] == 5 and rs.bytes[0] == 500
    assert rs.stats == {"ipfw.state.hit": 2}
