"""TapLink offloads: the virtio_net_hdr, partial checksums, software GSO and the kernel's TSO.

The unit tests check :class:`VnetHeader` against hand-written bytes and the pure helpers against
scapy.  The namespace tests put a TAP with ``vnet_hdr=True`` (and, where the kernel has to
finish an offload for us to see it, a plain TAP fed by a tc ``mirred`` redirect) into a
namespace: the kernel's own receive path trusts partial checksums and GSO super-frames without
looking, so only a redirect to a device without offloads makes it cut segments and fill in
checksums where we can read them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Ether, raw
from scapy.layers.inet import in4_pseudoheader
from scapy.utils import checksum as scapy_checksum
from tests.conftest import have_netns
from tests.netns import NETFAST_MAC, Sandbox, echo_frame, iface_mac, run, unique_name

from netfast.link.base import GsoFrame
from netfast.link.tap import TapLink, gso_segment
from netfast.link.vnet import (
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VnetHeader,
    complete_csum,
    partial_csum_header,
    prepare_partial_csum,
)

KERNEL_IP = "198.18.2.1"
NETFAST_IP = "198.18.2.2"
KERNEL_MAC = "02:00:00:00:00:01"
NF_MAC = ":".join(f"{b:02x}" for b in NETFAST_MAC)

# --- VnetHeader ------------------------------------------------------------------------------

# flags NEEDS_CSUM, gso TCPV4, hdr_len 54, gso_size 1460, csum_start 34, csum_offset 16
VECTOR = bytes.fromhex("0101 3600 b405 2200 1000")


def test_vnet_header_parse_vector() -> None:
    h = VnetHeader.parse(VECTOR + b"frame")
    assert h == VnetHeader(1, 1, 54, 1460, 34, 16)
    assert h.needs_csum and not h.data_valid and h.is_gso
    assert VnetHeader(gso_type=VIRTIO_NET_HDR_GSO_ECN).is_gso is False
    assert VnetHeader(flags=VIRTIO_NET_HDR_F_DATA_VALID).data_valid


def test_vnet_header_emit_writes_every_byte() -> None:
    buf = bytearray(b"\xa5" * 12)
    VnetHeader(1, 1, 54, 1460, 34, 16).emit(buf, 1)
    assert bytes(buf[1:11]) == VECTOR
    assert buf[0] == buf[11] == 0xA5
    assert VnetHeader().to_bytes() == bytes(10)


@given(st.tuples(*[st.integers(0, 0xFF)] * 2, *[st.integers(0, 0xFFFF)] * 4))
def test_vnet_header_round_trip(fields: tuple[int, ...]) -> None:
    h = VnetHeader(*fields)
    assert VnetHeader.parse(h.to_bytes()) == h


def test_vnet_header_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="need 10 bytes"):
        VnetHeader.parse(VECTOR[:9])
    with pytest.raises(ValueError, match="gso_size = 65536"):
        VnetHeader(gso_size=0x10000)
    with pytest.raises(ValueError, match="flags = -1"):
        VnetHeader(flags=-1)


# --- pure helpers against scapy ----------------------------------------------------------------


def _tcp_frame(payload: bytes, seq: int = 1000, flags: str = "PA", **tcp: object) -> bytes:
    return raw(
        Ether(src=NF_MAC, dst=KERNEL_MAC)
        / IP(src=NETFAST_IP, dst=KERNEL_IP, id=0xFFFE)
        / TCP(sport=40000, dport=5001, seq=seq, ack=77, flags=flags, **tcp)
        / payload
    )


def _partial_field(src: str, dst: str, proto: int, l4_len: int) -> int:
    # The folded, uncomplemented pseudo-header sum, from scapy's own pseudo-header.
    return ~scapy_checksum(in4_pseudoheader(proto, IP(src=src, dst=dst), l4_len)) & 0xFFFF


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_partial_csum_then_completion_matches_scapy(proto: str) -> None:
    l4 = TCP(sport=1, dport=2) if proto == "tcp" else UDP(sport=1, dport=2)
    pkt = Ether(src=NF_MAC, dst=KERNEL_MAC) / IP(src=NETFAST_IP, dst=KERNEL_IP) / l4 / b"odd!!"
    full = raw(pkt)
    field = 34 + (16 if proto == "tcp" else 6)
    l4_len = len(full) - 34
    partial = prepare_partial_csum(full)
    assert int.from_bytes(partial[field : field + 2], "big") == _partial_field(
        NETFAST_IP, KERNEL_IP, 6 if proto == "tcp" else 17, l4_len
    )
    assert partial[:field] == full[:field] and partial[field + 2 :] == full[field + 2 :]
    header = partial_csum_header(full)
    assert header == VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, field - 34)
    assert complete_csum(partial, header.csum_start, header.csum_offset) == full
    with pytest.raises(ValueError, match="beyond the frame"):
        complete_csum(partial, len(partial) - 2, 1)


def test_partial_csum_refuses_non_tcp_udp() -> None:
    icmp = raw(Ether() / IP(src=NETFAST_IP, dst=KERNEL_IP) / ICMP())
    with pytest.raises(ValueError, match="protocol = 1"):
        prepare_partial_csum(icmp)
    with pytest.raises(ValueError, match="not an Ethernet frame carrying IPv4"):
        prepare_partial_csum(b"\x00" * 60)


def _expected_segments(frame: bytes, mss: int) -> list[bytes]:
    """What TSO must produce, built by scapy from the super-frame's fields."""
    sup = Ether(frame)
    payload = bytes(sup[TCP].payload)
    chunks = [payload[i : i + mss] for i in range(0, len(payload), mss)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        flags = int(sup[TCP].flags)
        if i < len(chunks) - 1:
            flags &= ~0x09  # FIN, PSH
        if i:
            flags &= ~0x80  # CWR
        tcp = sup[TCP].copy()
        tcp.remove_payload()
        tcp.seq = (sup[TCP].seq + i * mss) & 0xFFFFFFFF
        tcp.flags = flags
        tcp.chksum = None
        ip = sup[IP].copy()
        ip.remove_payload()
        ip.id = (sup[IP].id + i) & 0xFFFF
        ip.len = ip.chksum = None
        out.append(raw(Ether(src=sup.src, dst=sup.dst) / ip / tcp / chunk))
    return out


# Scapy builds every expected segment slowly: keep examples few and segments per example <= 40.
@settings(max_examples=40)
@given(
    n=st.integers(0, 4000),
    mss=st.integers(100, 1460),
    seq=st.sampled_from([0, 1000, 0xFFFFFF00, 0xFFFFFFFF]),
    flags=st.sampled_from(["A", "PA", "FPA", "CA", "CEPA", "FA"]),
    options=st.booleans(),
)
def test_gso_segment_matches_scapy(n: int, mss: int, seq: int, flags: str, options: bool) -> None:
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))] if options else []
    frame = _tcp_frame(bytes(i & 0xFF for i in range(n)), seq, flags, options=opts)
    segs = gso_segment(frame, mss)
    assert segs == _expected_segments(frame, mss)
    assert len(segs) == max(1, -(-n // mss))


def test_gso_segment_tiny_mss() -> None:
    frame = _tcp_frame(b"abcde", flags="CFPA")
    segs = gso_segment(frame, 1)
    assert segs == _expected_segments(frame, 1)
    assert [str(Ether(s)[TCP].flags) for s in segs] == ["AC"] + ["A"] * 3 + ["FPA"]


def test_gso_segment_completes_a_partial_superframe() -> None:
    frame = _tcp_frame(b"x" * 3000)
    assert gso_segment(prepare_partial_csum(frame), 1448) == _expected_segments(frame, 1448)


def test_gso_segment_rejects() -> None:
    with pytest.raises(ValueError, match="mss = 0"):
        gso_segment(_tcp_frame(b"x"), 0)
    udp = raw(Ether() / IP(src=NETFAST_IP, dst=KERNEL_IP) / UDP() / b"x")
    with pytest.raises(ValueError, match="only TCP"):
        gso_segment(udp, 100)
    frag = raw(Ether() / IP(src=NETFAST_IP, dst=KERNEL_IP, flags="MF") / TCP() / b"x")
    with pytest.raises(ValueError, match="fragment"):
        gso_segment(frag, 100)
    short = bytearray(_tcp_frame(b"x" * 10))
    short[16:18] = (2000).to_bytes(2, "big")  # total length beyond the frame
    with pytest.raises(ValueError, match="total length 2000"):
        gso_segment(bytes(short), 100)


# --- with the kernel ---------------------------------------------------------------------------

SKIP_REASON = have_netns()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with Sandbox() as sb:
        yield sb


def _vnet_tap_in_ns(sandbox: Sandbox, rx_gso: str = "segment") -> tuple[TapLink, str]:
    tap = TapLink(unique_name("v"), vnet_hdr=True, rx_gso=rx_gso)  # type: ignore[arg-type]
    sandbox.on_close(tap.close)
    ns = sandbox.netns()
    sandbox.move(tap.name, ns)
    sandbox.address(ns, tap.name, f"{KERNEL_IP}/24")
    # A static neighbour: the kernel sends to netfast without an ARP exchange.
    run("ip", "neigh", "replace", NETFAST_IP, "lladdr", NF_MAC, "dev", tap.name, ns=ns)
    return tap, ns


def _redirect(ns: str, src: str, dst: str) -> None:
    """tc: every IPv4 frame arriving on ``src`` leaves through ``dst`` instead."""
    run("tc", "qdisc", "add", "dev", src, "ingress", ns=ns)
    run(
        "tc", "filter", "add", "dev", src, "parent", "ffff:", "protocol", "ip",
        "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", dst,
        ns=ns,
    )  # fmt: skip


def _plain_tap_in_ns(sandbox: Sandbox, ns: str) -> TapLink:
    tap = TapLink(unique_name("w"))
    sandbox.on_close(tap.close)
    sandbox.move(tap.name, ns)
    run("ip", "link", "set", tap.name, "up", ns=ns)
    return tap


def _collect(
    read: object, want: int, match: object, timeout: float = 3.0
) -> list[tuple[VnetHeader, bytes]]:
    """Frames ``match`` accepts until ``want`` of them or ``timeout`` s (bounded both ways)."""
    got: list[tuple[VnetHeader, bytes]] = []
    end = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < end:
        batch = read()  # type: ignore[operator]
        for item in batch:
            pair = item if isinstance(item, tuple) else (VnetHeader(), item)
            if match(pair[1]):  # type: ignore[operator]
                got.append(pair)
        if not batch:
            time.sleep(0.002)
    return got


def _tcp_to_kernel(f: bytes) -> bool:
    p = Ether(f)
    return TCP in p and p[IP].dst == KERNEL_IP


def test_vnet_tap_flags(sandbox: Sandbox) -> None:
    tap, ns = _vnet_tap_in_ns(sandbox)
    assert tap.offloads
    flags = int(run("cat", f"/sys/class/net/{tap.name}/tun_flags", ns=ns), 16)
    assert flags == 0x5002  # IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
    if run("sh", "-c", "command -v ethtool", check=False).strip():
        features = run("ethtool", "-k", tap.name, ns=ns)
        assert "tcp-segmentation-offload: on" in features
        assert "tx-checksumming: on" in features
    with pytest.raises(ValueError, match="rx_gso"):
        TapLink("nf-unused", vnet_hdr=True, rx_gso="merge")  # type: ignore[arg-type]


def test_kernel_icmp_arrives_with_plain_header(sandbox: Sandbox) -> None:
    tap, ns = _vnet_tap_in_ns(sandbox)
    kernel_mac = iface_mac(tap.name, ns=ns)
    assert tap.send([echo_frame(NETFAST_MAC, kernel_mac, NETFAST_IP, KERNEL_IP, 7, 1, b"vnet")])
    got = _collect(tap.recv_batch_meta, 1, lambda f: ICMP in Ether(f) and Ether(f)[ICMP].type == 0)
    assert got, f"no echo reply; counters {dict(tap.counters)}"
    header, frame = got[0]
    # Locally generated ICMP is checksummed in software: nothing offloaded, nothing to say.
    assert header == VnetHeader()
    pkt = Ether(frame)
    assert (pkt[ICMP].id, pkt[ICMP].seq) == (7, 1)
    sent = pkt[ICMP].chksum
    pkt[ICMP].chksum = None
    assert Ether(raw(pkt))[ICMP].chksum == sent


_UDP_SEND = (
    "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
    "s.bind((sys.argv[1],4000));[s.sendto(b'partial'*20,(sys.argv[2],9)) for _ in range(2)]"
)


def test_kernel_udp_arrives_with_partial_checksum(sandbox: Sandbox) -> None:
    tap, ns = _vnet_tap_in_ns(sandbox)
    run(sys.executable, "-c", _UDP_SEND, KERNEL_IP, NETFAST_IP, ns=ns)
    is_udp = lambda f: UDP in Ether(f) and Ether(f)[UDP].dport == 9  # noqa: E731
    meta = _collect(lambda: tap.recv_batch_meta(1), 1, is_udp)
    assert meta, f"no UDP datagram; counters {dict(tap.counters)}"
    header, frame = meta[0]
    assert header.needs_csum and not header.is_gso
    assert (header.csum_start, header.csum_offset) == (34, 6)
    udp_len = len(frame) - 34
    assert int.from_bytes(frame[40:42], "big") == _partial_field(KERNEL_IP, NETFAST_IP, 17, udp_len)
    # recv_batch completes it; scapy recomputes the checksum independently.
    plain = _collect(tap.recv_batch, 1, is_udp)
    assert plain, "no second datagram"
    pkt = Ether(plain[0][1])
    sent = pkt[UDP].chksum
    pkt[UDP].chksum = None
    assert Ether(raw(pkt))[UDP].chksum == sent
    assert tap.counters["rx.csum_completed"] == 1


_UDP_RECV = (
    "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
    "s.bind((sys.argv[1],5000));s.settimeout(5);print(s.recvfrom(2048)[0].decode())"
)


def test_partial_checksum_udp_reaches_a_kernel_socket(sandbox: Sandbox) -> None:
    tap, ns = _vnet_tap_in_ns(sandbox)
    kernel_mac = ":".join(f"{b:02x}" for b in iface_mac(tap.name, ns=ns))
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _UDP_RECV, KERNEL_IP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        frame = raw(
            Ether(src=NF_MAC, dst=kernel_mac)
            / IP(src=NETFAST_IP, dst=KERNEL_IP)
            / UDP(sport=4001, dport=5000)
            / b"offloaded"
        )
        partial = prepare_partial_csum(frame)
        deadline = time.monotonic() + 5
        out = ""
        # The receiver may not be bound yet: resend a few times until it prints.
        for _ in range(50):
            assert tap.send_meta([(partial_csum_header(partial), partial)]) == 1
            try:
                out, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    break
        assert out.strip() == "offloaded", err if proc.returncode else out
        assert tap.counters["tx.csum_partial"] >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def redirected(sandbox: Sandbox) -> tuple[TapLink, TapLink]:
    """A vnet TAP whose incoming IPv4 leaves through a plain TAP (no offloads)."""
    tap, ns = _vnet_tap_in_ns(sandbox)
    out = _plain_tap_in_ns(sandbox, ns)
    _redirect(ns, tap.name, out.name)
    return tap, out


@pytest.mark.parametrize(("n", "mss"), [(5000, 1000), (14600, 1460), (65000, 1448)])
def test_kernel_segments_a_tso_superframe(
    redirected: tuple[TapLink, TapLink], n: int, mss: int
) -> None:
    tap, out = redirected
    payload = bytes((i * 7) & 0xFF for i in range(n))
    frame = _tcp_frame(payload, seq=0xFFFFF000, flags="FPA")
    assert tap.send_tso(prepare_partial_csum(frame), mss)
    assert tap.counters["tx.tso_frames"] == 1
    want = -(-n // mss)
    got = [f for _, f in _collect(out.recv_batch, want, _tcp_to_kernel)]
    assert len(got) == want, f"kernel produced {len(got)} segments; {dict(out.counters)}"
    # The kernel's segments, checked by scapy field by field ...
    assert got == _expected_segments(frame, mss)
    for seg in got:
        assert len(seg) <= 14 + out.mtu
    assert b"".join(bytes(Ether(s)[TCP].payload) for s in got) == payload
    # ... are exactly what the software fallback makes.
    assert got == gso_segment(frame, mss)


def test_gso_frames_through_send_with_and_without_offloads(
    sandbox: Sandbox, redirected: tuple[TapLink, TapLink]
) -> None:
    """What the host stack hands a link: a GsoFrame (a whole TCP frame with its full checksum,
    larger than the MTU).  A TAP with offloads gives it to the kernel to cut; a plain TAP cuts it
    in software.  The wire sees the same segments either way."""
    payload = bytes((i * 11) & 0xFF for i in range(6000))
    frame = _tcp_frame(payload, seq=0x7FFFF000, flags="PA")
    want = _expected_segments(frame, 1000)
    tap, out = redirected
    assert tap.send([GsoFrame(frame, 1000)]) == 1
    assert tap.counters["tx.tso_frames"] == 1
    assert [f for _, f in _collect(out.recv_batch, len(want), _tcp_to_kernel)] == want
    ns = sandbox.netns()
    plain, sink = _plain_tap_in_ns(sandbox, ns), _plain_tap_in_ns(sandbox, ns)
    _redirect(ns, plain.name, sink.name)
    assert plain.send([GsoFrame(frame, 1000)]) == len(want)
    assert plain.counters["tx.gso_software"] == 1
    assert [f for _, f in _collect(sink.recv_batch, len(want), _tcp_to_kernel)] == want


def test_partial_udp_checksum_completed_by_the_kernel(
    redirected: tuple[TapLink, TapLink],
) -> None:
    tap, out = redirected
    frame = raw(
        Ether(src=NF_MAC, dst=KERNEL_MAC)
        / IP(src=NETFAST_IP, dst=KERNEL_IP)
        / UDP(sport=4001, dport=5000)
        / b"checksum me"
    )
    partial = prepare_partial_csum(frame)
    assert partial != frame
    assert tap.send_meta([(partial_csum_header(partial), partial)]) == 1
    got = _collect(out.recv_batch, 1, lambda f: UDP in Ether(f))
    assert got and got[0][1] == frame  # the kernel filled in scapy's checksum


@pytest.mark.parametrize("rx_gso", ["segment", "keep"])
def test_superframes_from_the_kernel(sandbox: Sandbox, rx_gso: str) -> None:
    """Our own super-frame, reflected back out of the TAP by tc, arrives whole with GSO
    metadata; recv_batch cuts it (or keeps it) with valid checksums."""
    tap, ns = _vnet_tap_in_ns(sandbox, rx_gso)
    _redirect(ns, tap.name, tap.name)
    frame = _tcp_frame(bytes(range(256)) * 20, flags="PA")  # 5120 bytes of payload
    partial = prepare_partial_csum(frame)

    assert tap.send_tso(partial, 1000)
    meta = _collect(tap.recv_batch_meta, 6 if rx_gso == "segment" else 1, _tcp_to_kernel)
    assert tap.counters["rx.gso_frames"] == 1
    if rx_gso == "keep":
        assert len(meta) == 1
        header, whole = meta[0]
        assert header.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 and header.gso_size == 1000
        assert header.needs_csum and (header.csum_start, header.csum_offset) == (34, 16)
        assert whole == partial
    else:
        assert [h.flags for h, _ in meta] == [VIRTIO_NET_HDR_F_DATA_VALID] * 6
        assert [h.gso_type for h, _ in meta] == [VIRTIO_NET_HDR_GSO_NONE] * 6
        assert [f for _, f in meta] == _expected_segments(frame, 1000)

    assert tap.send_tso(partial, 1000)
    plain = [
        f for _, f in _collect(tap.recv_batch, 6 if rx_gso == "segment" else 1, _tcp_to_kernel)
    ]
    if rx_gso == "keep":
        assert plain == [frame]  # the super-frame, its checksum completed
        assert tap.counters["rx.csum_completed"] == 1
    else:
        assert plain == _expected_segments(frame, 1000)
        assert tap.counters["rx.gso_segments"] == 12


def test_segments_beyond_the_batch_wait_for_the_next(sandbox: Sandbox) -> None:
    tap, ns = _vnet_tap_in_ns(sandbox)
    _redirect(ns, tap.name, tap.name)
    frame = _tcp_frame(b"y" * 4000)
    assert tap.send_tso(prepare_partial_csum(frame), 1000)
    got = _collect(lambda: tap.recv_batch(3), 4, _tcp_to_kernel)
    assert [f for _, f in got] == _expected_segments(frame, 1000)


def test_send_tso_misuse(sandbox: Sandbox) -> None:
    tap, _ = _vnet_tap_in_ns(sandbox)
    frame = prepare_partial_csum(_tcp_frame(b"z" * 3000))
    with pytest.raises(ValueError, match="exceed the MTU"):
        tap.send_tso(frame, 1481)
    with pytest.raises(ValueError, match="mss = 0"):
        tap.send_tso(frame, 0)
    with pytest.raises(ValueError, match="TCP only"):
        tap.send_tso(raw(Ether() / IP(src=NETFAST_IP, dst=KERNEL_IP) / UDP() / b"u"), 100)
    with TapLink(unique_name("x")) as plain:
        with pytest.raises(ValueError, match="offloads"):
            plain.send_tso(frame, 1000)
        with pytest.raises(ValueError, match="offloads"):
            plain.send_meta([(VnetHeader(flags=1), frame)])
    assert tap.send_meta([(VnetHeader(), frame)]) == 0  # not GSO, larger than the MTU
    assert tap.counters["drop.oversize"] == 1
