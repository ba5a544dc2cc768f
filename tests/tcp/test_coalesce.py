"""Receive coalescing (software GRO) and ACK thinning in a batch: what may merge, what must not,
and that a connection fed merged segments ends with the same stream, state and counters of
delivery as one fed the segments one by one."""

from __future__ import annotations

import contextlib
import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.tcp.segments import established, seg

from netfast.stack.sim import HostPair
from netfast.tcp.layer import coalesce
from netfast.tcp.state import TcpState
from netfast.wire.tcp_options import TcpOptions

IRS = 0xFFFFF000  # the peer's data crosses the sequence wrap
TS = TcpOptions.build(timestamps=(100, 7))


ISS = 1000


def data(seq: int, n: int, flags: str = "A", ack: int = ISS + 1, **kw: object) -> object:
    return seg(flags, (IRS + 1 + seq) % (1 << 32), ack, payload=bytes([seq % 251]) * n, **kw)


def test_contiguous_data_runs_merge_and_psh_ends_a_run() -> None:
    segs = [data(0, 100), data(100, 100), data(200, 50, "PA"), data(250, 10)]
    out = coalesce(segs)  # type: ignore[arg-type]
    assert len(out) == 2
    assert bytes(out[0].payload) == b"".join(bytes(s.payload) for s in segs[:3])  # type: ignore[attr-defined]
    assert out[0].seq == segs[0].seq and str(out[0].flags) == str(segs[2].flags)  # type: ignore[attr-defined]
    assert out[1] is segs[3]


def test_what_must_not_merge() -> None:
    base = data(0, 100)
    for other in (
        data(150, 100),  # a hole
        data(100, 100, ack=ISS + 2),  # another acknowledgment
        data(100, 100, win=1),  # another window
        data(100, 100, opts=TS),  # other option bytes
        data(100, 100, "FA"),  # FIN
        data(100, 100, "RA"),  # RST
    ):
        assert coalesce([base, other]) == [base, other]  # type: ignore[list-item]


def test_pure_acks_thin_but_duplicates_and_sacks_stay() -> None:
    a1, a2, a3 = seg("A", 5, 100), seg("A", 5, 200), seg("A", 5, 300)
    assert coalesce([a1, a2, a3]) == [a3]
    dup = [seg("A", 5, 100), seg("A", 5, 100), seg("A", 5, 100)]
    assert coalesce(dup) == dup  # duplicate ACKs are counted by loss detection
    sack = seg("A", 5, 200, opts=TcpOptions.build(sack_blocks=((300, 400),)))
    assert coalesce([a1, sack, a3]) == [a1, sack, a3]
    assert coalesce([a3, a1]) == [a3, a1]  # an older ACK after a newer one is not "thinner"


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(1, 1460), min_size=2, max_size=40),
    swaps=st.integers(0, 6),
    dups=st.integers(0, 4),
    seed=st.integers(0, 1000),
)
def test_merged_delivery_equals_one_by_one(
    sizes: list[int], swaps: int, dups: int, seed: int
) -> None:
    rng = random.Random(seed)
    offs = [0]
    for n in sizes:
        offs.append(offs[-1] + n)
    segs = [data(offs[i], sizes[i]) for i in range(len(sizes))]
    for _ in range(swaps):
        i = rng.randrange(len(segs) - 1)
        segs[i], segs[i + 1] = segs[i + 1], segs[i]
    for _ in range(dups):
        segs.insert(rng.randrange(len(segs)), rng.choice(segs))

    one = established(ISS, IRS)
    many = established(ISS, IRS)
    for s in segs:
        one.conn.input(s, one.now)  # type: ignore[arg-type]
    for s in coalesce(segs):  # type: ignore[arg-type]
        many.conn.input(s, many.now)
    assert bytes(one.conn.rcvbuf) == bytes(many.conn.rcvbuf)
    assert one.conn.rcv_nxt == many.conn.rcv_nxt
    assert one.conn.reass.blocks() == many.conn.reass.blocks()
    assert one.conn.counters["tcp.in.bytes"] == many.conn.counters["tcp.in.bytes"] > 0


def _bulk(pair: HostPair, n: int) -> bytes:
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    body = bytes(range(256)) * (n // 256)
    st: dict[str, object] = {"acc": None, "sent": 0, "got": bytearray()}

    def app() -> None:
        if st["acc"] is None:
            with contextlib.suppress(BlockingIOError):
                st["acc"], _ = listener.accept()
        sent = st["sent"]
        assert isinstance(sent, int)
        if sent < len(body) and cli.state == TcpState.ESTABLISHED:
            with contextlib.suppress(BlockingIOError):
                st["sent"] = sent + cli.send(body[sent:])
        if st["acc"] is not None:
            with contextlib.suppress(BlockingIOError):
                st["got"] += st["acc"].recv(1 << 20)  # type: ignore[attr-defined, operator]

    assert pair.run(lambda: len(st["got"]) == len(body), app=app, max_time=30).ok  # type: ignore[arg-type]
    assert bytes(st["got"]) == body  # type: ignore[arg-type]
    return body


def test_host_config_switches_receive_coalescing() -> None:
    on = HostPair()
    _bulk(on, 300_000)
    assert on.b.counters["tcp.in.coalesced"] > 0
    off = HostPair()
    off.b.config = dataclasses.replace(off.b.config, rx_coalesce=False)
    _bulk(off, 300_000)
    assert off.b.counters["tcp.in.coalesced"] == 0
    assert off.b.counters["tcp.in.segments"] > on.b.counters["tcp.in.segments"]
