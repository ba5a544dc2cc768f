"""Real captures replayed into the sans-IO TCP core: the byte stream the capture carried comes out.

For every connection in ../shared/data/pcap, each direction that carries data is replayed into a
:class:`~netfast.tcp.conn.TcpConnection` standing in for its receiver: built as the SYN cache
would build it from the captured SYN and SYN-ACK (ISNs and the options the sender offered) -- or,
captured mid-connection, from the earliest data and acknowledgment -- with the receiver's own
sent bytes preloaded so that the sender's acknowledgments are acceptable.  Every captured segment
of the sender then goes through :meth:`TcpConnection.input` in capture order at its capture time
(sequence checks, PAWS, trimming, the reassembly queue, FIN), and what
:meth:`TcpConnection.recv` returns must equal scapy's reconstruction of the stream (first copy of
each byte wins, up to the first missing byte).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import pcap_files
from tests.tcp.test_capture_replay import _signed, _stream_start, scapy_streams

from netfast.link.pcap import read_capture
from netfast.tcp.config import TcpConfig
from netfast.tcp.conn import TcpConnection
from netfast.tcp.negotiate import Negotiated
from netfast.tcp.state import TcpState
from netfast.wire.dissect import dissect
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import TcpOptions

M = 1 << 32
FlowKey = tuple[int, int, int, int]


def _segments(path: Path) -> list[tuple[float, FlowKey, TcpRepr]]:
    out: list[tuple[float, FlowKey, TcpRepr]] = []
    for rec in read_capture(path):
        d = dissect(rec.data, rec.linktype)
        if d.tcp is None or d.ipv4 is None or d.ipv4.frag_offset or d.ipv4.more_frags:
            continue
        key = (d.ipv4.src, d.tcp.src_port, d.ipv4.dst, d.tcp.dst_port)
        # The dissector parsed the segment without insisting on its checksum (captures often
        # hold checksums left to offload); payloads cut by the capture are what was captured.
        out.append((rec.timestamp_ns / 1e9, key, d.tcp))
    return out


def _replay_direction(
    segs: list[tuple[float, FlowKey, TcpRepr]], key: FlowKey
) -> tuple[TcpConnection, bytes] | None:
    back = (key[2], key[3], key[0], key[1])
    segs = [x for x in segs if x[1] == key or x[1] == back]
    syn = next((s for _, k, s in segs if k == key and s.flags & TcpFlags.SYN), None)
    synack = next((s for _, k, s in segs if k == back and s.flags & TcpFlags.SYN), None)
    if syn is not None and synack is not None:
        irs, iss, opts = syn.seq, synack.seq, syn.options
        ts_ok = opts.timestamps is not None and synack.options.timestamps is not None
    else:
        # Captured mid-connection: the stream starts at the earliest data, as in the oracle,
        # and the receiver's sequence space just below the earliest acknowledgment.
        data = [s.seq for _, k, s in segs if k == key and s.payload]
        acks = [s.ack for _, k, s in segs if k == key and s.flags & TcpFlags.ACK]
        start = _stream_start(None, data)
        if start is None or not acks:
            return None
        irs = (start - 1) % M
        iss = (min(acks, key=lambda a: _signed(a - acks[0])) - 1) % M
        opts = TcpOptions()
        ts_ok = False
    # The receiver's own sequence space as far as the sender acknowledged it.
    reach = 1
    for _, k, s in segs:
        # Signed distances: an RST's zero acknowledgment or a stray segment lies "behind".
        if k == back:
            reach = max(reach, _signed(s.seq - iss) + s.segment_len)
        elif k == key and s.flags & TcpFlags.ACK and not s.flags & TcpFlags.RST:
            reach = max(reach, _signed(s.ack - iss))
    ts = opts.timestamps
    neg = Negotiated(
        peer_mss=opts.mss or 536,
        snd_wscale=opts.wscale,
        sack_ok=opts.sack_permitted,
        ts_ok=ts_ok,
        ts_recent=ts.tsval if ts is not None else 0,
    )
    cfg = TcpConfig(rcv_buf=1 << 24, snd_buf=1 << 24, mss_from_mtu=False)
    first_t = segs[0][0]
    conn = TcpConnection.accept_from_syn(
        (key[2], key[3]), (key[0], key[1]), iss, irs, neg, cfg, 1 << 20, 0.0
    )
    # Preload what the receiver had sent: the sender's ACKs must fall within SND.NXT.
    conn.sndbuf += bytes(max(0, reach - 1))
    conn.snd_nxt = conn.snd_max = reach
    stream = bytearray()
    for t, k, s in segs:
        if k != key or s.flags & TcpFlags.SYN or (s.seq - irs) % M == 0:
            continue
        conn.input(s, t - first_t)
        conn.output(t - first_t)
        while True:
            try:
                data = conn.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                break
            stream += data
    return conn, bytes(stream)


@pytest.mark.parametrize("path", pcap_files(), ids=lambda p: p.name)
def test_capture_streams_come_out_of_the_tcp_core(path: Path) -> None:
    segs = _segments(path)
    oracle = scapy_streams(path)
    keys = {k for _, k, s in segs if s.payload}
    if not keys:
        # Nothing to replay (ARP, ICMP, DNS, a bare handshake): scapy must agree that no TCP
        # segment of the capture carries data.
        assert all(not v[0] for v in oracle.values()), (path.name, list(oracle))
        return
    checked = 0
    for key in keys:
        replayed = _replay_direction(segs, key)
        if replayed is None:
            continue
        conn, stream = replayed
        expected, _ = oracle[key]
        assert stream == expected, (path.name, key, len(stream), len(expected))
        assert conn.counters["tcp.in.bytes"] == len(expected)
        sender_fin = any(k == key and s.flags & TcpFlags.FIN for _, k, s in segs)
        if sender_fin and conn.fin_rcvd:
            assert conn.state in (TcpState.CLOSE_WAIT, TcpState.LAST_ACK, TcpState.CLOSED)
        checked += 1
    if checked == 0:
        pytest.skip(f"{path.name}: no TCP connection carries data")


def test_some_capture_replays_through_the_core(shared_data: Path) -> None:
    """The parametrised test must not pass by skipping everything: the HTTP captures hold whole
    handshakes with data in both directions."""
    total = 0
    for path in pcap_files():
        segs = _segments(path)
        for key in {k for _, k, s in segs if s.payload}:
            replayed = _replay_direction(segs, key)
            if replayed is not None and replayed[1]:
                total += len(replayed[1])
    assert total > 10_000
