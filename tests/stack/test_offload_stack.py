"""Software GSO and GRO in the host stack.

GRO: the compiled pass must change nothing but the cost.  Two host pairs built from one seed
live the same life; host b of one takes a batch through the compiled pass, host b of the other
through the ordinary path (every frame slow, merged later by ``coalesce``).  The batches are a
real sender's frames, reordered, duplicated, dropped, corrupted, with PSH set and with junk mixed
in; afterwards both hosts must have sent the same frames, counted the same counters and handed
the application the same bytes.

GSO: what the TCP hands down as one large segment leaves as wire-sized frames that scapy reads as
valid, in sequence, with consecutive IP identifications.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ARP, IP, TCP, Ether, Raw

from netfast.link.impair import Impairment
from netfast.link.offload import RUN_COLUMNS, RUN_FAST, RUN_FIRST, RUN_STOP, gro_scan
from netfast.stack import host as host_module
from netfast.stack.bulk import SinkServer, SourceClient
from netfast.stack.host import HostConfig
from netfast.stack.sim import ADDR_A, ADDR_B, HostPair
from netfast.wire.tcp import TcpFlags, TcpRepr

BODY = bytes(random.Random(5).randbytes(120_000))


def _all_slow(frames: list[bytes], mac: bytes, addrs: object) -> tuple[list[list[int]], bytes]:
    """gro_scan's shape with every frame slow: the ordinary per-frame path."""
    rows = []
    for i in range(len(frames)):
        row = [0] * RUN_COLUMNS
        row[RUN_FIRST], row[RUN_STOP], row[RUN_FAST] = i, i + 1, 0
        rows.append(row)
    return rows, b""


def _pair(**kw: object) -> tuple[HostPair, object, object]:
    """A host pair (``kw`` for HostPair, seed 3 unless given) with a connection a -> b:80."""
    pair = HostPair(**{"seed": 3, **kw})  # type: ignore[arg-type]
    listener = pair.tcp_b.socket()
    listener.bind(("198.18.0.2", 80))
    listener.listen()
    cli = pair.tcp_a.socket()
    cli.connect(("198.18.0.2", 80), pair.now)
    assert pair.run(lambda: bool(listener.listener.ready), max_time=5).ok  # type: ignore[union-attr]
    srv, _ = listener.accept()
    return pair, cli, srv


def _with_psh(raw: bytes) -> bytes:
    pkt = Ether(raw)
    if TCP not in pkt:  # a frame corrupted before: left as it is
        return raw
    pkt[TCP].flags = int(pkt[TCP].flags) | 0x08
    del pkt[TCP].chksum
    return bytes(pkt)


def _corrupt(raw: bytes, at: int) -> bytes:
    out = bytearray(raw)
    out[at % len(out)] ^= 0x40
    return bytes(out)


def _junk(kind: int) -> bytes:
    mac = "02:00:00:00:0b:01"
    if kind == 0:  # no socket on this port: an RST goes back
        pkt = Ether(dst=mac) / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(
            sport=999, dport=81, flags="A", seq=1, ack=1) / Raw(b"x" * 10)  # fmt: skip
    elif kind == 1:  # an ARP request for us
        pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:0a:01") / ARP(
            op=1, psrc="198.18.0.1", pdst="198.18.0.2", hwsrc="02:00:00:00:0a:01")  # fmt: skip
    else:  # a broadcast data segment
        pkt = Ether(dst="ff:ff:ff:ff:ff:ff") / IP(src="198.18.0.1", dst="198.18.0.255") / TCP(
            sport=999, dport=80, flags="A") / Raw(b"y")  # fmt: skip
    return bytes(pkt)


edits = st.lists(
    st.tuples(
        st.sampled_from(["swap", "dup", "drop", "psh", "corrupt", "junk"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    max_size=12,
)


@settings(max_examples=40)
@given(edits=edits, rounds=st.integers(1, 3))
def test_compiled_gro_changes_nothing_but_the_cost(
    edits: list[tuple[str, int, int]], rounds: int
) -> None:
    fast, cli_f, srv_f = _pair()
    slow, cli_s, srv_s = _pair()
    got = {id(fast): bytearray(), id(slow): bytearray()}
    sent = 0
    for r in range(rounds):
        chunk = BODY[sent : sent + 40_000]
        sent += len(chunk)
        batches = []
        for pair, cli in ((fast, cli_f), (slow, cli_s)):
            assert cli.send(chunk) == len(chunk)  # type: ignore[attr-defined]
            batches.append([f for _, f in pair.a.poll(pair.now)])
        assert batches[0] == batches[1]  # the same life so far
        batch = list(batches[0])
        for kind, x, y in edits:
            if not batch:
                break
            i, j = x % len(batch), y % len(batch)
            if kind == "swap":
                batch[i], batch[j] = batch[j], batch[i]
            elif kind == "dup":
                batch.insert(j, batch[i])
            elif kind == "drop":
                del batch[i]
            elif kind == "psh" and batch[i][12:14] == b"\x08\x00":
                batch[i] = _with_psh(batch[i])
            elif kind == "corrupt":
                batch[i] = _corrupt(batch[i], y)
            elif kind == "junk":
                batch.insert(i, _junk(y % 3))
        outs = []
        for pair, srv, scan in ((fast, srv_f, gro_scan), (slow, srv_s, _all_slow)):
            with mock.patch.object(host_module, "gro_scan", scan):
                pair.b.input_batch(0, batch, pair.now)
            outs.append([f for _, f in pair.b.poll(pair.now)])
            with contextlib.suppress(BlockingIOError):
                got[id(pair)] += srv.recv(1 << 20)  # type: ignore[attr-defined]
        assert outs[0] == outs[1], f"round {r}: host b answered differently"
        for pair in (fast, slow):  # the answers go back, so the next round starts alike
            pair.a.input_batch(0, outs[0], pair.now)
    assert got[id(fast)] == got[id(slow)]
    assert dict(fast.b.counters) == dict(slow.b.counters)
    assert srv_f.state == srv_s.state  # type: ignore[attr-defined]


def test_a_clean_batch_takes_the_compiled_path() -> None:
    pair, cli, srv = _pair()
    assert cli.send(BODY[:60_000]) == 60_000  # type: ignore[attr-defined]
    frames = [f for _, f in pair.a.poll(pair.now)]
    assert len(frames) > 1 and all(len(f) <= 1514 for f in frames)
    before = pair.b.counters["tcp.in.coalesced"]
    with mock.patch.object(pair.tcp_b, "deliver", wraps=pair.tcp_b.deliver) as deliver:
        pair.b.input_batch(0, frames, pair.now)
    assert deliver.call_count == 1  # one run, one segment for the TCP
    assert deliver.call_args.args[3] == len(frames)
    assert pair.b.counters["tcp.in.coalesced"] - before == len(frames) - 1
    got = srv.recv(1 << 20)  # type: ignore[attr-defined]
    assert got == BODY[: sum(len(f) - 14 - 20 - 32 for f in frames)]  # timestamps on


def test_gso_frames_are_valid_wire_frames() -> None:
    pair, cli, _srv = _pair()
    assert cli.send(BODY) == len(BODY)  # type: ignore[attr-defined]
    frames = [f for _, f in pair.a.poll(pair.now)]
    assert pair.a.counters["ip.out.gso_software"] >= 1
    assert pair.a.counters["ip.out.gso_segments"] == len(frames) > 1
    ids, seq = [], None
    for raw in frames:
        assert len(raw) <= 1514
        pkt = Ether(raw)
        ip, tcp = pkt[IP], pkt[TCP]
        check = Ether(raw)
        del check[IP].chksum
        del check[TCP].chksum
        rebuilt = Ether(bytes(check))
        assert (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (ip.chksum, tcp.chksum)
        if seq is not None:
            assert tcp.seq == seq
        seq = (tcp.seq + len(tcp.payload)) % (1 << 32)
        ids.append(ip.id)
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(ids))


def test_without_gso_the_tcp_cuts_every_segment_itself() -> None:
    pair, cli, _srv = _pair(host_config=HostConfig(gso=False))
    assert cli.send(BODY) == len(BODY)  # type: ignore[attr-defined]
    frames = [f for _, f in pair.a.poll(pair.now)]
    assert frames and all(len(f) <= 1514 for f in frames)
    assert pair.a.counters["ip.out.gso_software"] == 0
    assert pair.a.counters["tcp.out.segments"] >= len(frames)


@settings(max_examples=6)
@given(seed=st.integers(0, 1000), gso=st.booleans(), gro=st.booleans())
def test_bulk_through_loss_reordering_and_duplication(seed: int, gso: bool, gro: bool) -> None:
    imp = Impairment(loss=0.02, reorder=0.05, duplicate=0.01)
    pair = HostPair(
        seed=seed,
        impair_ab=imp,
        impair_ba=imp,
        host_config=HostConfig(gso=gso, rx_coalesce=gro),
    )
    sink = SinkServer(pair.b, 80)
    source = SourceClient(pair.a, ("198.18.0.2", 80), BODY)

    def app() -> None:
        source.step(pair.now)
        sink.step(pair.now)

    assert pair.run(sink.done.is_set, app=app, max_time=120).ok
    assert sink.error is None and sink.received == len(BODY)
    assert sink.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (pair.a.counters["ip.out.gso_software"] > 0) == gso


def test_large_segments_still_go_when_gso_is_turned_off_midway() -> None:
    pair, cli, srv = _pair()
    pair.a.config.gso = False  # the connection already hands down 64 KiB segments
    assert cli.send(BODY) == len(BODY)  # type: ignore[attr-defined]
    got = bytearray()

    def app() -> None:
        with contextlib.suppress(BlockingIOError):
            got.extend(srv.recv(1 << 20))  # type: ignore[attr-defined]

    assert pair.run(lambda: len(got) == len(BODY), app=app, max_time=30).ok
    assert bytes(got) == BODY
    assert pair.a.counters["ip.out.gso_software"] > 0
    assert pair.a.counters["ip.out.too_big"] == 0


def test_a_large_segment_that_fits_the_link_gets_its_checksum() -> None:
    # gso_mss on a segment the link can carry whole: nothing cuts it, so the stack fills in
    # the TCP checksum the TCP left out.
    pair = HostPair(seed=3, mtu=9000)
    pair.a.output.ip_output(ADDR_A, ADDR_B, 17, b"\0" * 8, pair.now)  # resolve b's address first
    assert pair.run(lambda: pair.a.arp.lookup(0, ADDR_B, pair.now) is not None, max_time=5).ok
    pair.a.poll(pair.now)
    seg = TcpRepr(40000, 80, 1, 1, TcpFlags.ACK, 1000, payload=b"z" * 3000)
    data = seg.to_bytes(ADDR_A, ADDR_B, checksum=False)
    assert data[16:18] == b"\0\0"
    pair.a.output.ip_output(ADDR_A, ADDR_B, 6, data, pair.now, gso_mss=1448)
    frames = [f for _, f in pair.a.poll(pair.now)]
    assert len(frames) == 1, frames
    pkt = Ether(frames[0])
    check = Ether(frames[0])
    del check[TCP].chksum
    assert Ether(bytes(check))[TCP].chksum == pkt[TCP].chksum != 0


def test_a_failing_offload_pass_loses_no_frame() -> None:
    pair, cli, srv = _pair()
    pair.b.strict = False
    assert cli.send(BODY[:20_000]) == 20_000  # type: ignore[attr-defined]
    frames = [f for _, f in pair.a.poll(pair.now)]

    def broken(*_args: object) -> None:
        raise RuntimeError("kernel failure")

    with mock.patch.object(host_module, "gro_scan", broken):
        pair.b.input_batch(0, frames, pair.now)
    assert pair.b.counters["host.internal_error"] == 1
    got = srv.recv(1 << 20)  # type: ignore[attr-defined]
    assert got == BODY[: len(got)] and len(got) == sum(len(f) - 66 for f in frames)
