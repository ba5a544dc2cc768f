"""The compiled receive offload (gro_scan) against frames scapy builds: which frames are fast,
where runs end, and the fields and payload of each merged run."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, TCP, Dot1Q, Ether, Raw

from netfast.link.offload import (
    RUN_ACK,
    RUN_DPORT,
    RUN_DST,
    RUN_FAST,
    RUN_FIRST,
    RUN_FLAGS,
    RUN_PAY_START,
    RUN_PAY_STOP,
    RUN_SEQ,
    RUN_SPORT,
    RUN_SRC,
    RUN_STOP,
    RUN_TS,
    RUN_TSECR,
    RUN_TSVAL,
    RUN_WINDOW,
    gro_scan,
)
from netfast.wire.ipv4 import ip_from_str

MAC = bytes.fromhex("020000000b01")
PEER_MAC = "02:00:00:00:0a:01"
ME = "198.18.0.2"
PEER = "198.18.0.1"
ADDRS = np.array([ip_from_str(ME), ip_from_str("198.19.0.9")], np.int64)
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 77))]
TS2 = [("NOP", None), ("NOP", None), ("Timestamp", (1001, 77))]
TS_LAST = [("Timestamp", (1, 2)), ("NOP", None), ("NOP", None)]
TO_ME = "02:00:00:00:0b:01"


def frame(
    seq: int,
    n: int,
    *,
    flags: str = "A",
    ack: int = 5000,
    window: int = 512,
    options: Any = TS,
    sport: int = 40000,
    dport: int = 80,
    src: str = PEER,
    dst: str = ME,
    mac: str = "02:00:00:00:0b:01",
    ip_kw: dict[str, Any] | None = None,
    fill: int | None = None,
) -> bytes:
    body = bytes([(seq + i) % 251 if fill is None else fill for i in range(n)])
    pkt = (
        Ether(src=PEER_MAC, dst=mac)
        / IP(src=src, dst=dst, **({"flags": "DF"} | (ip_kw or {})))
        / TCP(
            sport=sport,
            dport=dport,
            seq=seq % (1 << 32),
            ack=ack,
            flags=flags,
            window=window,
            options=options,
        )
    )
    return bytes(pkt / Raw(body)) if n else bytes(pkt)


def stream(start: int, sizes: list[int], **kw: Any) -> list[bytes]:
    out, seq = [], start
    for n in sizes:
        out.append(frame(seq, n, **kw))
        seq += n
    return out


def runs_of(frames: list[bytes]) -> tuple[list[list[int]], bytes]:
    return gro_scan(frames, MAC, ADDRS)


def payload_of(raw: bytes) -> bytes:
    pkt = Ether(raw)
    return pkt[Raw].load if Raw in pkt[TCP] else b""  # Ethernet padding is scapy's Padding


def test_one_run_carries_every_payload_and_the_first_header() -> None:
    frames = stream(0xFFFFFF00, [1448, 1448, 700, 1])  # the sequence space wraps inside
    runs, pay = runs_of(frames)
    assert len(runs) == 1
    run = runs[0]
    assert (run[RUN_FIRST], run[RUN_STOP], run[RUN_FAST]) == (0, 4, 1)
    assert pay[run[RUN_PAY_START] : run[RUN_PAY_STOP]] == b"".join(map(payload_of, frames))
    first = Ether(frames[0])
    assert run[RUN_SRC] == ip_from_str(PEER) and run[RUN_DST] == ip_from_str(ME)
    assert (run[RUN_SPORT], run[RUN_DPORT]) == (first[TCP].sport, first[TCP].dport)
    assert (run[RUN_SEQ], run[RUN_ACK], run[RUN_WINDOW]) == (0xFFFFFF00, 5000, 512)
    assert (run[RUN_TS], run[RUN_TSVAL], run[RUN_TSECR]) == (1, 1000, 77)
    assert run[RUN_FLAGS] == 0x10


def test_psh_ends_a_run_and_is_kept_as_the_runs_flags() -> None:
    a = stream(0, [100, 100])
    b = [frame(200, 100, flags="PA")]
    c = stream(300, [100, 100])
    runs, _ = runs_of(a + b + c)
    assert [(r[RUN_FIRST], r[RUN_STOP], r[RUN_FAST]) for r in runs] == [(0, 3, 1), (3, 5, 1)]
    assert runs[0][RUN_FLAGS] == 0x18 and runs[1][RUN_FLAGS] == 0x10


def test_no_options_merge_and_ethernet_padding_is_not_payload() -> None:
    frames = [frame(0, 1, options=[]) + b"\0" * 5, frame(1, 2, options=[]) + b"\0" * 4]
    runs, pay = runs_of(frames)
    assert [(r[RUN_FIRST], r[RUN_STOP], r[RUN_FAST], r[RUN_TS]) for r in runs] == [(0, 2, 1, 0)]
    assert pay == b"".join(map(payload_of, frames))


@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(dict(seq_skip=1), id="hole"),
        pytest.param(dict(ack=5001), id="ack"),
        pytest.param(dict(window=513), id="window"),
        pytest.param(dict(options=TS2), id="tsval"),
        pytest.param(dict(options=[]), id="option-bytes"),
        pytest.param(dict(sport=40001), id="other-connection"),
        pytest.param(dict(src="198.18.0.3"), id="other-source"),
        pytest.param(dict(dst="198.19.0.9"), id="other-local-address"),
    ],
)  # fmt: skip
def test_what_ends_a_run_but_stays_fast(breaker: dict[str, Any]) -> None:
    skip = breaker.pop("seq_skip", 0)
    frames = [frame(0, 100), frame(100 + skip, 100, **breaker)]
    runs, _ = runs_of(frames)
    assert [(r[RUN_FIRST], r[RUN_STOP], r[RUN_FAST]) for r in runs] == [(0, 1, 1), (1, 2, 1)]


def _corrupt(raw: bytes, at: int) -> bytes:
    out = bytearray(raw)
    out[at] ^= 0x01
    return bytes(out)


SLOW = {
    "syn": lambda: frame(0, 10, flags="SA"),
    "fin": lambda: frame(0, 10, flags="FA"),
    "rst": lambda: frame(0, 10, flags="RA"),
    "urg": lambda: frame(0, 10, flags="UA"),
    "ece": lambda: frame(0, 10, flags="EA"),
    "cwr": lambda: frame(0, 10, flags="CA"),
    "no-ack": lambda: frame(0, 10, flags=""),
    "pure-ack": lambda: frame(0, 0),
    "sack": lambda: frame(0, 10, options=[("NOP", None), ("NOP", None), ("SAck", (1, 2))]),
    "mss": lambda: frame(0, 10, options=[("MSS", 1460)]),
    "ts-other-layout": lambda: frame(0, 10, options=TS_LAST),
    "ip-options": lambda: frame(0, 10, ip_kw={"options": [b"\x01\x01\x01\x00"]}),
    "more-fragments": lambda: frame(0, 10, ip_kw={"flags": "MF"}),
    "fragment-offset": lambda: frame(0, 10, ip_kw={"frag": 8}),
    "broadcast-mac": lambda: frame(0, 10, mac="ff:ff:ff:ff:ff:ff"),
    "other-mac": lambda: frame(0, 10, mac="02:00:00:00:0b:02"),
    "not-our-address": lambda: frame(0, 10, dst="198.18.0.7"),
    "martian-source": lambda: frame(0, 10, src="127.0.0.1"),
    "multicast-source": lambda: frame(0, 10, src="224.0.0.1"),
    "zero-source-port": lambda: frame(0, 10, sport=0),
    "zero-dest-port": lambda: frame(0, 10, dport=0),
    "bad-ip-checksum": lambda: _corrupt(frame(0, 10), 14 + 10),
    "bad-tcp-checksum": lambda: _corrupt(frame(0, 10), 14 + 20 + 16),
    "bad-payload": lambda: _corrupt(frame(0, 10), len(frame(0, 10)) - 1),
    "truncated": lambda: frame(0, 10)[:-1],
    "udp": lambda: bytes(Ether(dst=TO_ME) / IP(src=PEER, dst=ME, proto=17) / Raw(b"x" * 30)),
    "vlan": lambda: bytes(Ether(dst=TO_ME) / Dot1Q(vlan=5) / Ether(frame(0, 10))[IP]),
    "arp-type": lambda: frame(0, 10)[:12] + b"\x08\x06" + frame(0, 10)[14:],
    "runt": lambda: frame(0, 10)[:40],
    "ip-version-6": lambda: frame(0, 10)[:14] + b"\x65" + frame(0, 10)[15:],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SLOW))
def test_anything_off_the_fast_path_is_slow_and_splits_the_runs(name: str) -> None:
    odd = SLOW[name]()
    frames = [frame(0, 100), frame(100, 100), odd, frame(200, 100)]
    runs, pay = runs_of(frames)
    assert [(r[RUN_FIRST], r[RUN_STOP], r[RUN_FAST]) for r in runs] == [
        (0, 2, 1),
        (2, 3, 0),
        (3, 4, 1),
    ]
    assert pay == b"".join(payload_of(f) for f in (frames[0], frames[1], frames[3]))


@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 300), st.sampled_from(["A", "PA", "FA"])),
        min_size=1,
        max_size=30,
    )
)
def test_runs_cover_the_batch_in_order(spec: list[tuple[int, int, str]]) -> None:
    # Three interleaved connections, each in order: every frame lands in exactly one run, runs
    # are in frame order, and each connection's fast payloads come out as its stream.
    seqs = [0, 0, 0]
    frames: list[bytes] = []
    streams: list[bytearray] = [bytearray(), bytearray(), bytearray()]
    for conn, n, flags in spec:
        frames.append(frame(seqs[conn], n, flags=flags, sport=40000 + conn, fill=conn + 1))
        streams[conn] += bytes([conn + 1]) * n
        seqs[conn] += n
    runs, pay = runs_of(frames)
    assert runs[0][RUN_FIRST] == 0 and runs[-1][RUN_STOP] == len(frames)
    for prev, nxt in itertools.pairwise(runs):
        assert prev[RUN_STOP] == nxt[RUN_FIRST]
    got: list[bytearray] = [bytearray(), bytearray(), bytearray()]
    for r in runs:
        if r[RUN_FAST]:
            got[r[RUN_SPORT] - 40000] += pay[r[RUN_PAY_START] : r[RUN_PAY_STOP]]
        else:
            assert r[RUN_STOP] - r[RUN_FIRST] == 1
            f = Ether(frames[r[RUN_FIRST]])
            assert "F" in str(f[TCP].flags)
            got[f[TCP].sport - 40000] += bytes(f[TCP].payload)
    assert got == streams


def test_empty_batch() -> None:
    assert runs_of([]) == ([], b"")
