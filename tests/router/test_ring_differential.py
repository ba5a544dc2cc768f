"""The same frames through the router twice -- on packet rings, then on plain AF_PACKET sockets
-- leave it as the same frames.

Host A (namespace) -- veth -- netfast -- veth -- host B (namespace), as in test_live_router.py,
with static neighbours and no ICMP rate limit, so nothing depends on time.  A raw socket in A
sends a fixed, shuffled mix that exercises both paths: UDP and TCP to forward (vector path), IP
options (punted, forwarded by the scalar path), TTL 1, an unrouted destination, DF over B's MTU
and fragmentation, a bad header checksum, echo requests and ARP requests to the router.  The
forwarded frames go to 198.18.1.3, which B's neighbour entry maps to B's MAC and B's kernel drops
silently (not its address, no forwarding), so B answers nothing.  Plain AF_PACKET sockets in A
and B capture what the router sends; the two runs must capture the same frames, count the same,
and send each flow's frames in the same order.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPOption_RR
from tests.conftest import have_netns
from tests.netns import Capture, Sandbox, iface_mac, offloads_off, run, send_from

from netfast.link.afpacket import AfPacketLink
from netfast.link.base import Link
from netfast.link.ring import RingLink
from netfast.router.build import build_router
from netfast.router.config import parse_config
from netfast.router.run import LiveSummary

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SKIP_REASON = have_netns()
ROUTER_A_MAC = "02:00:00:00:fa:01"
ROUTER_B_MAC = "02:00:00:00:fa:02"
HOST_A, HOST_B, SINK = "198.18.0.2", "198.18.1.2", "198.18.1.3"


@dataclass
class Topology:
    ns_a: str
    ns_b: str
    in_a: str
    in_b: str
    out_a: str
    out_b: str
    mac_a: str
    mac_b: str


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool is not installed (apt-get install -y ethtool)")
    with Sandbox() as sb:
        ns_a, ns_b = sb.netns(), sb.netns()
        out_a, in_a = sb.veth(ns_a, f"{HOST_A}/24")
        out_b, in_b = sb.veth(ns_b, f"{HOST_B}/24")
        run("ip", "link", "set", out_b, "mtu", "1400")
        run("ip", "link", "set", in_b, "mtu", "1400", ns=ns_b)
        run("sysctl", "-q", "-w", "net.ipv4.ip_forward=0", ns=ns_b)
        for ifname, ns in ((out_a, None), (out_b, None), (in_a, ns_a), (in_b, ns_b)):
            offloads_off(ifname, ns)
        mac_a, mac_b = (iface_mac(i, n).hex(":") for i, n in ((in_a, ns_a), (in_b, ns_b)))
        yield Topology(ns_a, ns_b, in_a, in_b, out_a, out_b, mac_a, mac_b)


def config(t: Topology, ring: bool) -> str:
    return f"""
[router]
icmp_rate = 0

[[interface]]
name = "a"
mac = "{ROUTER_A_MAC}"
addresses = ["198.18.0.1/24"]
link = {{ type = "afpacket", device = "{t.out_a}", ring = {str(ring).lower()} }}

[[interface]]
name = "b"
mac = "{ROUTER_B_MAC}"
addresses = ["198.18.1.1/24"]
mtu = 1400
link = {{ type = "afpacket", device = "{t.out_b}", ring = {str(ring).lower()} }}

[neighbors]
"{HOST_A}" = "{t.mac_a}"
"{HOST_B}" = "{t.mac_b}"
"{SINK}" = "{t.mac_b}"
"""


def traffic(t: Topology, seed: int = 10, first: int = 1) -> tuple[list[bytes], set[int]]:
    """The frames A sends, shuffled, and the IP identifications that should reach B (from
    ``first`` on: UDP, TCP, options, fragmented)."""
    rng = random.Random(seed)
    eth = Ether(src=t.mac_a, dst=ROUTER_A_MAC)
    frames: list[bytes] = []
    forwarded: set[int] = set()
    ident = iter(range(first, 65_536))

    def ip(dst: str = SINK, **kw: object) -> IP:
        return IP(src=HOST_A, dst=dst, id=next(ident), **kw)

    for _ in range(600):
        p = ip(ttl=rng.randint(2, 64)) / UDP(sport=rng.randint(1024, 65535), dport=9)
        p = p / bytes(rng.randint(0, 1340))
        forwarded.add(p[IP].id)
        frames.append(bytes(eth / p))
    for _ in range(60):
        p = ip() / TCP(sport=rng.randint(1024, 65535), dport=80, flags="S", seq=rng.getrandbits(32))
        forwarded.add(p[IP].id)
        frames.append(bytes(eth / p))
    for _ in range(20):
        p = ip(options=[IPOption_RR(routers=["0.0.0.0"] * 2)]) / UDP(dport=9) / b"options"
        forwarded.add(p[IP].id)
        frames.append(bytes(eth / p))
    for _ in range(10):  # fragmented by the scalar path: both fragments keep the ident
        p = ip() / UDP(dport=9) / bytes(1450)
        forwarded.add(p[IP].id)
        frames.append(bytes(eth / p))
    frames += [bytes(eth / ip(ttl=1) / UDP(dport=9) / b"ttl") for _ in range(20)]
    frames += [bytes(eth / ip(dst="198.19.255.1") / UDP(dport=9)) for _ in range(20)]
    frames += [bytes(eth / ip(flags="DF") / UDP(dport=9) / bytes(1450)) for _ in range(10)]
    for _ in range(10):
        bad = bytearray(bytes(eth / ip() / UDP(dport=9) / b"bad checksum"))
        bad[24] ^= 0xFF
        frames.append(bytes(bad))
    frames += [bytes(eth / ip(dst="198.18.0.1") / ICMP(id=7, seq=i) / b"echo") for i in range(10)]
    arp = Ether(src=t.mac_a, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=t.mac_a, psrc=HOST_A, pdst="198.18.0.1"
    )
    frames += [bytes(arp)] * 5
    rng.shuffle(frames)
    return frames, forwarded


def socket_drops(link: Link) -> int:
    """Frames the kernel dropped on a plain packet socket (its receive buffer was full), which
    AfPacketLink does not count itself (``PACKET_STATISTICS``); 0 for other links."""
    if not isinstance(link, AfPacketLink):
        return 0
    raw = socket.socket(fileno=os.dup(link.fileno()))
    try:
        return int(struct.unpack("2I", raw.getsockopt(263, 6, 8))[1])
    finally:
        raw.close()


@dataclass
class Run:
    at_a: list[bytes]
    at_b: list[bytes]
    summary: LiveSummary
    link_types: set[type]


def forward(t: Topology, ring: bool, frames: list[bytes]) -> Run:
    built = build_router(parse_config(config(t, ring), "diff.toml"))
    links = built.open_links()
    engine = built.new_engine()
    stop = threading.Event()
    result: dict[str, LiveSummary] = {}
    thread = threading.Thread(
        target=lambda: result.update(summary=built.run_live(stop, duration=120, engine=engine)),
        name="netfast-router",
        daemon=True,
    )
    thread.start()

    def sent_through(frames: list[bytes], total: int) -> None:
        # Paced gently, so a plain socket's receive buffer (about 90 large frames) does not
        # overflow while the router thread waits for a CPU either.
        assert send_from(t.ns_a, t.in_a, frames, burst=4, gap=0.003) == len(frames)
        end = time.monotonic() + 30
        while engine.stats.frames_in < total and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.3)  # what the router sent last reaches the captures

    try:
        # Warm up first: the first batches compile (or load) the vector path's kernels, and
        # the frames arriving meanwhile would fill any receive buffer.
        warm, _ = traffic(t, seed=99, first=40_000)
        sent_through(warm, len(warm))
        with (
            Capture(t.ns_a, t.in_a, sources=(bytes.fromhex(ROUTER_A_MAC.replace(":", "")),)) as a,
            Capture(t.ns_b, t.in_b, sources=(bytes.fromhex(ROUTER_B_MAC.replace(":", "")),)) as b,
        ):
            sent_through(frames, len(warm) + len(frames))
            at_a, at_b = a.frames(), b.frames()
    finally:
        stop.set()
        thread.join(30)
        lost = {i: socket_drops(link) for i, link in links.items()}
        built.close()
    assert not thread.is_alive()
    summary = result["summary"]
    assert summary.stats.frames_in == len(warm) + len(frames), (
        f"kernel drops on plain sockets {lost}; link counters {summary.link_counters}"
    )
    return Run(at_a, at_b, summary, {type(link) for link in links.values()})


def test_ring_and_plain_sockets_forward_the_same_frames(topo: Topology) -> None:
    frames, forwarded = traffic(topo)
    rings = forward(topo, True, frames)
    plain = forward(topo, False, frames)
    assert rings.link_types == {RingLink} and plain.link_types == {AfPacketLink}
    for r in (rings, plain):
        s = r.summary.stats
        # Warm-up and measured traffic alike: UDP, TCP and bad checksums finish in the vector
        # path (670 each), the other 95 in the scalar path.
        assert (s.vector_frames, s.scalar_frames) == (2 * 670, 2 * 95)
        assert r.summary.counters["router.internal_error"] == 0
        for counters in r.summary.link_counters.values():
            assert not {k: v for k, v in counters.items() if k.startswith("drop.")}, counters
            assert "link.ring_fallback" not in counters
    # Same frames out of each port, same counts.
    assert Counter(rings.at_b) == Counter(plain.at_b)
    assert Counter(rings.at_a) == Counter(plain.at_a)
    assert rings.summary.counters == plain.summary.counters
    assert rings.summary.stats.out == plain.summary.stats.out
    # Each path keeps the input order: the frames B got, by IP identification, in arrival
    # order (how vector and scalar output interleave depends on where batches end).
    sent = [Ether(f)[IP].id for f in frames if IP in Ether(f) and Ether(f)[IP].dst == SINK]

    def order(r: Run, vector: bool) -> list[int]:
        ids = [Ether(f)[IP].id for f in r.at_b if IP in Ether(f)]
        return [i for i in ids if (i <= 660) == vector]  # UDP and TCP take the vector path

    for vector in (True, False):
        assert order(rings, vector) == order(plain, vector)
    assert order(rings, True) == [i for i in sent if i in forwarded and i <= 660]
    scalar = [i for i in sent if i in forwarded and i > 660]
    assert order(rings, False) == [j for i in scalar for j in ([i, i] if i > 680 else [i])]
    # And it is the traffic meant for B: every forwarded ident (fragments twice), nothing else.
    assert set(order(rings, True) + order(rings, False)) == forwarded
    assert len(rings.at_b) == len(forwarded) + 10
    # A got the router's answers: 20 time exceeded, 20 unreachable, 10 frag needed, 10 bad-
    # checksum drops answer nothing, 10 echo replies, 5 ARP replies.
    kinds = Counter(
        (Ether(f)[ICMP].type, Ether(f)[ICMP].code) if ICMP in Ether(f) else "arp"
        for f in rings.at_a
    )
    assert kinds == Counter({(11, 0): 20, (3, 0): 20, (3, 4): 10, (0, 0): 10, "arp": 5})
