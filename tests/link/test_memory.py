"""MemoryLink: a back-to-back pair with bounded queues and named drop counters."""

from __future__ import annotations

import pytest

from netfast.link.base import Link, frame_too_big
from netfast.link.memory import MemoryLink


def frame(n: int, size: int = 60) -> bytes:
    """A frame whose bytes 14..18 carry a sequence number."""
    head = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + n.to_bytes(4, "big")
    return head + bytes(size - len(head))


def test_pair_is_a_link() -> None:
    a, b = MemoryLink.pair()
    assert isinstance(a, Link)
    assert isinstance(b, Link)
    assert (a.name, b.name) == ("mem0", "mem1")
    assert a.mtu == b.mtu == 1500


def test_frames_cross_in_order_both_ways() -> None:
    a, b = MemoryLink.pair()
    assert a.send([frame(i) for i in range(5)]) == 5
    assert b.send([frame(100)]) == 1
    assert b.recv_batch() == [frame(i) for i in range(5)]
    assert a.recv_batch() == [frame(100)]
    assert a.recv_batch() == []
    assert b.recv_batch() == []


def test_recv_batch_respects_max_frames() -> None:
    a, b = MemoryLink.pair()
    a.send(frame(i) for i in range(10))
    assert b.recv_batch(3) == [frame(0), frame(1), frame(2)]
    assert b.pending == 7
    assert b.recv_batch(100) == [frame(i) for i in range(3, 10)]


def test_counters() -> None:
    a, b = MemoryLink.pair()
    a.send([frame(0, 60), frame(1, 100)])
    b.recv_batch()
    assert a.counters["tx.frames"] == 2
    assert a.counters["tx.bytes"] == 160
    assert b.counters["rx.frames"] == 2
    assert b.counters["rx.bytes"] == 160
    assert a.counters["rx.frames"] == 0


def test_overflow_is_dropped_and_counted() -> None:
    a, b = MemoryLink.pair(capacity=4)
    assert a.send(frame(i) for i in range(10)) == 4
    assert a.counters["drop.queue_full"] == 6
    assert b.recv_batch() == [frame(i) for i in range(4)]
    # Room again once the peer has drained its queue.
    assert a.send([frame(42)]) == 1
    assert b.recv_batch() == [frame(42)]


def test_oversize_and_runt_frames_are_dropped() -> None:
    a, b = MemoryLink.pair(mtu=100)
    assert a.send([frame(0, 114)]) == 1  # 14 + 100: exactly fits
    assert a.send([frame(1, 115)]) == 0
    assert a.send([b"\x00" * 13]) == 0
    assert a.counters["drop.oversize"] == 1
    assert a.counters["drop.runt"] == 1
    assert b.recv_batch() == [frame(0, 114)]


def test_one_vlan_tag_may_exceed_the_untagged_limit() -> None:
    tagged = b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + bytes(100)
    assert len(tagged) == 118
    assert not frame_too_big(tagged, 100)
    assert frame_too_big(tagged + b"\x00", 100)
    assert frame_too_big(b"\x02" * 12 + b"\x08\x00" + bytes(101), 100)


def test_sent_frames_are_copied() -> None:
    a, b = MemoryLink.pair()
    buf = bytearray(frame(1))
    a.send([buf])
    buf[20] = 0xFF
    assert b.recv_batch() == [frame(1)]


def test_close_drops_and_empties() -> None:
    a, b = MemoryLink.pair()
    a.send([frame(0)])
    b.close()
    assert b.recv_batch() == []
    assert a.send([frame(1)]) == 0
    assert b.send([frame(2)]) == 0
    assert a.counters["drop.closed"] == 1
    assert b.counters["drop.closed"] == 1


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="mtu"):
        MemoryLink.pair(mtu=10)
    with pytest.raises(ValueError, match="capacity"):
        MemoryLink.pair(capacity=0)
