"""Tests of :class:`netfast.tcp.syncache.SynCache`: entries, duplicate SYNs, completion, bad ACKs,
RSTs, bucket and total limits, SYN cookies and SYN-ACK retransmission."""

from __future__ import annotations

import random

import pytest
from tests.tcp.segments import WRAP, seg

from netfast.tcp.config import TcpConfig
from netfast.tcp.isn import IsnGenerator
from netfast.tcp.syncache import SynCache
from netfast.tcp.syncookie import MSS_TABLE, SynCookies
from netfast.wire.tcp import TcpFlags
from netfast.wire.tcp_options import TcpOptions

M = 0xFFFFFFFF
LADDR, LPORT, FADDR = 0x0A000001, 80, 0x0A000002


def make(
    cookie_mode: str = "overflow",
    buckets: int = 16,
    bucket_limit: int = 4,
    cache_limit: int | None = None,
    **cfg: object,
) -> SynCache:
    rng = random.Random(5)
    config = TcpConfig(mss_from_mtu=False, **cfg)  # type: ignore[arg-type]
    return SynCache(
        config,
        IsnGenerator(rng.randbytes(16)),
        IsnGenerator(rng.randbytes(16)),
        SynCookies(lambda: rng.randbytes(16)),
        buckets=buckets,
        bucket_limit=bucket_limit,
        cache_limit=cache_limit,
        cookie_mode=cookie_mode,
    )


def key(fport: int = 40000) -> tuple[int, int, int, int]:
    return (LADDR, LPORT, FADDR, fport)


FULL = TcpOptions.build(mss=1460, wscale=7, sack_permitted=True, timestamps=(1000, 0))


def syn(irs: int, opts: TcpOptions = FULL, fport: int = 40000):  # type: ignore[no-untyped-def]
    return seg("S", irs, 0, 65535, opts=opts, sport=fport, dport=LPORT)


@pytest.mark.parametrize("irs", WRAP)
def test_syn_adds_entry_and_answers(irs: int) -> None:
    sc = make(rcv_buf=1 << 20)
    sa = sc.syn(key(), syn(irs), 0.0)
    assert sa.flags == TcpFlags.SYN | TcpFlags.ACK
    assert sa.ack == (irs + 1) & M
    assert (sa.src_port, sa.dst_port) == (LPORT, 40000)
    assert sa.options.mss == 1460
    assert sa.options.sack_permitted
    assert sa.options.wscale == 5  # our own shift for a 1 MiB buffer
    ts = sa.options.timestamps
    assert ts is not None and ts.tsecr == 1000
    assert sa.window == 0xFFFF
    assert len(sc) == 1 and sc.has(key())


def test_options_not_offered_are_not_answered() -> None:
    sc = make()
    sa = sc.syn(key(), syn(5, TcpOptions.build(mss=1200)), 0.0)
    assert sa.options.wscale is None
    assert not sa.options.sack_permitted
    assert sa.options.timestamps is None


def test_dup_syn_resends_same_synack() -> None:
    sc = make()
    a = sc.syn(key(), syn(100), 0.0)
    b = sc.syn(key(), syn(100), 0.5)
    assert b.seq == a.seq and b.ack == a.ack
    assert len(sc) == 1
    assert sc.counters["tcp.syncache.dup_syn"] == 1


def test_new_irs_replaces_entry() -> None:
    sc = make()
    sc.syn(key(), syn(100), 0.0)
    b = sc.syn(key(), syn(9000), 0.5)
    assert b.ack == 9001
    assert len(sc) == 1


@pytest.mark.parametrize("irs", WRAP)
def test_ack_completes(irs: int) -> None:
    sc = make()
    sa = sc.syn(key(), syn(irs), 0.0)
    ack = seg("A", irs + 1, sa.seq + 1, opts=TcpOptions.build(timestamps=(1001, 5)), sport=40000)
    e = sc.ack(key(), ack, 0.1)
    assert e is not None
    assert (e.irs, e.iss) == (irs, sa.seq)
    assert e.neg.peer_mss == 1460 and e.neg.snd_wscale == 7 and e.neg.sack_ok and e.neg.ts_ok
    assert e.neg.ts_recent == 1001
    assert len(sc) == 0
    assert sc.counters["tcp.syncache.completed"] == 1


@pytest.mark.parametrize("delta", [(0, 1), (1, 0), (-1, 0), (0, 0x80000000)])
def test_bad_ack_rejected_entry_kept(delta: tuple[int, int]) -> None:
    sc = make()
    sa = sc.syn(key(), syn(7), 0.0)
    e = sc.ack(key(), seg("A", 8 + delta[0], sa.seq + 1 + delta[1], sport=40000), 0.1)
    assert e is None
    assert sc.has(key())
    assert sc.counters["tcp.syncache.bad_ack"] == 1


def test_rst_with_exact_seq_removes() -> None:
    sc = make()
    sc.syn(key(), syn(M), 0.0)
    assert not sc.rst(key(), seg("R", 5, 0, sport=40000))
    assert not sc.rst(key(), seg("R", M, 0, sport=40000))
    assert sc.has(key())
    assert sc.rst(key(), seg("R", 0, 0, sport=40000))  # IRS + 1 wraps to 0
    assert not sc.has(key()) and len(sc) == 0


def test_bucket_limit_evicts_oldest() -> None:
    sc = make(buckets=1, bucket_limit=3, cache_limit=100)
    for p in range(5):
        sc.syn(key(1000 + p), syn(p, fport=1000 + p), float(p))
    assert len(sc) == 3
    assert [sc.has(key(1000 + p)) for p in range(5)] == [False, False, True, True, True]
    assert sc.counters["tcp.syncache.bucket_overflow"] == 2


def test_total_limit_switches_to_cookies_and_cookie_ack_rebuilds_options() -> None:
    sc = make(buckets=4, bucket_limit=8, cache_limit=4)
    for p in range(4):
        sc.syn(key(1000 + p), syn(p, fport=1000 + p), 0.0)
    assert len(sc) == 4
    opts = TcpOptions.build(mss=1400, wscale=3, sack_permitted=True, timestamps=(9, 0))
    sa = sc.syn(key(2000), syn(0xFFFFFFFF, opts, fport=2000), 0.0)
    assert len(sc) == 4  # no state for the cookie
    assert sc.counters["tcp.syncache.cookie_sent"] == 1
    assert sa.options.timestamps is None  # cookies carry no timestamps
    assert sa.options.sack_permitted and sa.options.wscale is not None
    e = sc.ack(key(2000), seg("A", 0, sa.seq + 1, sport=2000), 1.0)
    assert e is not None and e.from_cookie
    assert e.irs == 0xFFFFFFFF and e.iss == sa.seq
    assert e.neg.peer_mss == 1400 and e.neg.snd_wscale == 3 and e.neg.sack_ok
    assert not e.neg.ts_ok
    assert sc.counters["tcp.syncache.cookie_ok"] == 1


@pytest.mark.parametrize("mss", [1460, 1450, 1000, 9000, 300])
def test_cookie_mss_rounds_down_to_table(mss: int) -> None:
    sc = make(cookie_mode="always")
    sa = sc.syn(key(), syn(1, TcpOptions.build(mss=mss)), 0.0)
    e = sc.ack(key(), seg("A", 2, sa.seq + 1, sport=40000), 0.5)
    assert e is not None
    assert e.neg.peer_mss == max([m for m in MSS_TABLE if m <= mss] or [MSS_TABLE[0]])
    assert e.neg.snd_wscale is None and not e.neg.sack_ok


def test_forged_cookie_ack_rejected() -> None:
    sc = make(cookie_mode="always")
    sa = sc.syn(key(), syn(1), 0.0)
    assert sc.ack(key(), seg("A", 2, sa.seq + 2, sport=40000), 0.5) is None
    assert sc.ack(key(41000), seg("A", 2, sa.seq + 1, sport=41000), 0.5) is None
    assert sc.counters["tcp.syncache.cookie_bad"] == 2


def test_never_mode_has_no_cookies() -> None:
    sc = make(cookie_mode="never", buckets=1, bucket_limit=2, cache_limit=2)
    for p in range(4):
        sc.syn(key(1000 + p), syn(p, fport=1000 + p), 0.0)
    assert len(sc) == 2
    assert sc.counters["tcp.syncache.cookie_sent"] == 0
    assert sc.ack(key(7), seg("A", 1, 1, sport=7), 0.0) is None


def test_synack_retransmits_then_expires() -> None:
    sc = make()
    first = sc.syn(key(), syn(10), 0.0)
    assert sc.poll_at() == pytest.approx(1.0)
    times, t = [], 0.0
    while True:
        nxt = sc.poll_at()
        if nxt is None:
            break
        t = nxt
        out = sc.poll(t)
        for k, sa in out:
            assert k == key() and sa.seq == first.seq and sa.ack == 11
            times.append(t)
    assert times == pytest.approx([1.0, 3.0, 7.0])  # 1, 2, 4 seconds apart (rexmits=3)
    assert len(sc) == 0
    assert sc.counters["tcp.syncache.expired"] == 1
    assert t == pytest.approx(15.0)


def test_poll_before_due_does_nothing() -> None:
    sc = make()
    sc.syn(key(), syn(10), 0.0)
    assert sc.poll(0.5) == []
    assert len(sc) == 1


def test_drop_listener() -> None:
    sc = make()
    a, b = object(), object()
    sc.syn(key(1), syn(1, fport=1), 0.0, listener=a)
    sc.syn(key(2), syn(2, fport=2), 0.0, listener=b)
    sc.drop_listener(a)
    assert not sc.has(key(1)) and sc.has(key(2)) and len(sc) == 1


def test_route_mss_announced() -> None:
    sc = make()
    sa = sc.syn(key(), syn(1), 0.0, mss=1200)
    assert sa.options.mss == 1200
