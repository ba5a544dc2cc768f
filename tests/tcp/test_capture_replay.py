"""Real captures replayed through the reassembly queue, checked against scapy.

Every TCP flow direction of every capture in ../shared/data/pcap is read with netfast's own pcap
reader and header views and fed, segment by segment in capture order, into a
:class:`~netfast.tcp.reass.ReassemblyQueue` starting at ISN + 1 from the SYN.  Flows captured
without their SYN start at the lowest sequence number seen carrying data.  The delivered stream
must equal an independent reconstruction: scapy's ``rdpcap`` and a per-byte dict keyed by stream
offset in which the first copy of a byte wins, cut at the first missing byte.  Of packets cut
short by the capture (shorter than their IP total length) both sides use the bytes captured.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from tests.conftest import pcap_files

from netfast.link.pcap import read_capture
from netfast.tcp.reass import ReassemblyQueue
from netfast.wire.dissect import dissect
from netfast.wire.tcp import TcpFlags

M = 2**32
WINDOW = 1 << 30

FlowKey = tuple[int, int, int, int]


def _signed(d: int) -> int:
    d %= M
    return d - M if d >= 2**31 else d


def _stream_start(syn_seq: int | None, data_seqs: list[int]) -> int | None:
    """ISN + 1 from the SYN, else the earliest sequence number carrying data (None: no data)."""
    if syn_seq is not None:
        return (syn_seq + 1) % M
    if not data_seqs:
        return None
    first = data_seqs[0]
    return min(data_seqs, key=lambda s: _signed(s - first))


def netfast_segments(path: Path) -> dict[FlowKey, tuple[int | None, list[tuple[int, bytes]]]]:
    """Per flow direction: the first SYN's sequence number and the data segments, in order."""
    flows: dict[FlowKey, tuple[int | None, list[tuple[int, bytes]]]] = {}
    for rec in read_capture(path):
        d = dissect(rec.data, rec.linktype)
        if d.tcp is None or d.ipv4 is None:
            continue
        key = (d.ipv4.src, d.tcp.src_port, d.ipv4.dst, d.tcp.dst_port)
        syn, segs = flows.get(key, (None, []))
        seq = d.tcp.seq
        if d.tcp.flags & TcpFlags.SYN:
            if syn is None:
                syn = seq
            seq = (seq + 1) % M  # data on a SYN follows the ISN
        if len(d.tcp.payload):
            segs.append((seq, bytes(d.tcp.payload)))
        flows[key] = (syn, segs)
    return flows


def replay(
    start: int, segs: list[tuple[int, bytes]], *, max_holes: int
) -> tuple[bytes, ReassemblyQueue]:
    q = ReassemblyQueue(max_bytes=1 << 24, max_holes=max_holes)
    rcv_nxt = start
    out = bytearray()
    for seq, data in segs:
        got = q.add(rcv_nxt, WINDOW, seq, data)
        out += got
        rcv_nxt = (rcv_nxt + len(got)) % M
    return bytes(out), q


def scapy_streams(path: Path) -> dict[FlowKey, tuple[bytes, list[tuple[int, int]]]]:
    """The oracle: first-seen byte per stream offset; the contiguous prefix from the start, and
    the runs of bytes held beyond it as ``(start, end)`` stream offsets."""
    from scapy.all import IP, TCP, rdpcap  # type: ignore[import-untyped]

    syn: dict[FlowKey, int] = {}
    pieces: dict[FlowKey, list[tuple[int, bytes]]] = defaultdict(list)
    for pkt in rdpcap(str(path)):
        if IP not in pkt or TCP not in pkt:
            continue
        ip, tcp = pkt[IP], pkt[TCP]
        if ip.frag != 0 or ip.flags.MF:
            continue
        key = (
            int.from_bytes(bytes(map(int, ip.src.split("."))), "big"),
            int(tcp.sport),
            int.from_bytes(bytes(map(int, ip.dst.split("."))), "big"),
            int(tcp.dport),
        )
        raw = bytes(tcp)
        plen = int(ip.len) - int(ip.ihl) * 4 - int(tcp.dataofs) * 4
        payload = raw[int(tcp.dataofs) * 4 : int(tcp.dataofs) * 4 + plen]
        seq = int(tcp.seq)
        if "S" in tcp.flags:
            syn.setdefault(key, seq)
            seq = (seq + 1) % M
        if payload:
            pieces[key].append((seq, payload))
    streams: dict[FlowKey, tuple[bytes, list[tuple[int, int]]]] = {}
    for key in set(syn) | set(pieces):
        segs = pieces.get(key, [])
        start = _stream_start(syn.get(key), [s for s, _ in segs])
        if start is None:
            continue
        byte_at: dict[int, int] = {}
        for seq, payload in segs:
            base = _signed(seq - start)
            for k, b in enumerate(payload):
                if 0 <= base + k < WINDOW:
                    byte_at.setdefault(base + k, b)
        out = bytearray()
        while len(out) in byte_at:
            out.append(byte_at[len(out)])
        runs: list[tuple[int, int]] = []
        for off in sorted(o for o in byte_at if o > len(out)):
            if runs and runs[-1][1] == off:
                runs[-1] = (runs[-1][0], off + 1)
            else:
                runs.append((off, off + 1))
        streams[key] = (bytes(out), runs)
    return streams


TCP_CAPTURES = [
    "tcp-loss-reorder-overlap.pcap",
    "tcp-dupack-retransmit.pcap",
    "tcp-retransmissions-rto.pcap",
    "tcp-handshake-captured-reordered.pcap",
    "http-google-get.pcap",
    "http-espn-pageload.pcap",
    "wireshark-http.pcap",
]


@pytest.mark.parametrize("name", TCP_CAPTURES)
def test_replay_matches_scapy(shared_data: Path, name: str) -> None:
    path = shared_data / "pcap" / name
    if not path.exists():
        pytest.skip(f"{name} is not in the shared data")
    pytest.importorskip("scapy")
    oracle = scapy_streams(path)
    flows = netfast_segments(path)
    total = 0
    for key, (syn, segs) in flows.items():
        start = _stream_start(syn, [s for s, _ in segs])
        if start is None:
            continue
        # Enough holes for anything a real receiver keeps: must equal the oracle exactly.
        stream, q = replay(start, segs, max_holes=1024)
        expect, runs = oracle[key]
        assert stream == expect, f"{name}: flow {key}"
        # What is still waiting behind the first hole is the same, too.
        assert [(_signed(s - start), _signed(e - start)) for s, e in q.blocks()] == runs
        assert q.bytes_held == sum(e - s for s, e in runs)
        # With the default bound of 8 holes: still a prefix of the true stream.
        bounded, qb = replay(start, segs, max_holes=8)
        assert stream.startswith(bounded)
        assert qb.holes <= 8
        total += len(stream)
        if name.startswith("http-") and stream and 80 in (key[1], key[3]):
            assert stream.startswith((b"GET ", b"HTTP/", b"POST ", b"HEAD ")), stream[:16]
    assert total > 0, f"{name}: no TCP payload reconstructed"


def test_http_capture_holds_a_request_and_a_response(shared_data: Path) -> None:
    path = shared_data / "pcap" / "http-google-get.pcap"
    if not path.exists():
        pytest.skip("http-google-get.pcap is not in the shared data")
    streams = []
    for syn, segs in netfast_segments(path).values():
        start = _stream_start(syn, [s for s, _ in segs])
        if start is not None:
            streams.append(replay(start, segs, max_holes=8)[0])
    assert any(s.startswith(b"GET ") for s in streams)
    assert any(s.startswith(b"HTTP/1.") for s in streams)


def test_lossy_capture_exercises_the_queue(shared_data: Path) -> None:
    """The loss/reorder/overlap capture really does reach the out-of-order paths."""
    path = shared_data / "pcap" / "tcp-loss-reorder-overlap.pcap"
    if not path.exists():
        pytest.skip("tcp-loss-reorder-overlap.pcap is not in the shared data")
    counters: dict[str, int] = defaultdict(int)
    for syn, segs in netfast_segments(path).values():
        start = _stream_start(syn, [s for s, _ in segs])
        if start is None:
            continue
        _, q = replay(start, segs, max_holes=8)
        for k, v in q.counters.items():
            counters[k] += v
    assert counters["tcp.reass.queued"] > 0
    assert counters["tcp.reass.delivered"] > 0


def test_every_capture_is_covered() -> None:
    """No capture with TCP payload is left out of the list above."""
    names = {p.name for p in pcap_files()}
    if not names:
        pytest.skip("the shared data folder is not present")
    for name in names - set(TCP_CAPTURES):
        for _syn, segs in netfast_segments(Path(pcap_files()[0]).parent / name).values():
            assert not segs, f"{name} carries TCP data but is not replayed"
