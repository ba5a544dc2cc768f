"""TapLink: a TAP created through /dev/net/tun, its kernel side moved into a namespace."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.all import ARP, ICMP, IP, Ether
from tests.conftest import have_netns
from tests.netns import (
    NETFAST_MAC,
    Sandbox,
    arp_frame,
    echo_frame,
    have_ping,
    iface_mac,
    recv_until,
    run,
    unique_name,
)

from netfast.link.base import Link
from netfast.link.tap import TapLink
from netfast.wire.arp import ArpOperation

pytestmark = pytest.mark.netns
SKIP_REASON = have_netns()

KERNEL_IP = "198.18.1.1"
NETFAST_IP = "198.18.1.2"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def tap_in_ns(sandbox: Sandbox) -> Iterator[tuple[TapLink, str]]:
    """A TapLink whose interface lives in a fresh namespace with KERNEL_IP/24."""
    tap = TapLink(unique_name("t"))
    try:
        ns = sandbox.netns()
        sandbox.move(tap.name, ns)
        sandbox.address(ns, tap.name, f"{KERNEL_IP}/24")
        yield tap, ns
    finally:
        tap.close()


def test_create_and_close(sandbox: Sandbox) -> None:
    name = unique_name("t")
    tap = TapLink(name, mtu=1400)
    try:
        assert isinstance(tap, Link)
        assert tap.name == name
        assert tap.mtu == 1400
        assert Path(f"/sys/class/net/{name}/mtu").read_text().strip() == "1400"
        # IFF_TAP | IFF_NO_PI as the kernel reports them.
        assert int(Path(f"/sys/class/net/{name}/tun_flags").read_text(), 16) == 0x1002
        assert os.get_blocking(tap.fileno()) is False
        assert tap.recv_batch() == []  # down, nothing queued, and it does not block
    finally:
        tap.close()
    assert not Path(f"/sys/class/net/{name}").exists()
    tap.close()  # idempotent
    assert tap.recv_batch() == []
    assert tap.send([bytes(60)]) == 0
    assert tap.counters["drop.closed"] == 1


def test_name_pattern(sandbox: Sandbox) -> None:
    with TapLink(f"nft{os.getpid()}q%d") as tap:
        assert tap.name.startswith(f"nft{os.getpid()}q")
        assert tap.name[-1].isdigit()
        assert Path(f"/sys/class/net/{tap.name}").exists()


def test_attach_to_a_persistent_tap(sandbox: Sandbox) -> None:
    name = unique_name("p")
    run("ip", "tuntap", "add", "dev", name, "mode", "tap")
    sandbox.on_close(lambda: run("ip", "link", "delete", name, check=False))
    with TapLink(name, create=False) as tap:
        assert tap.name == name
    assert Path(f"/sys/class/net/{name}").exists()  # persistent: outlives the link


def test_create_false_needs_an_existing_interface() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TapLink("nf-no-such-tap", create=False)


def test_vnet_hdr_sets_the_flag(sandbox: Sandbox) -> None:
    """Offloads on: the kernel reports IFF_VNET_HDR; off (the default): it does not."""
    with TapLink(unique_name("t"), vnet_hdr=True) as tap:
        assert tap.offloads
        assert int(Path(f"/sys/class/net/{tap.name}/tun_flags").read_text(), 16) == 0x5002
        assert tap.recv_batch() == [] and tap.recv_batch_meta() == []
    with TapLink(unique_name("t")) as tap:
        assert not tap.offloads


def test_kernel_answers_arp_and_echo(tap_in_ns: tuple[TapLink, str]) -> None:
    tap, ns = tap_in_ns
    tap.send([arp_frame(ArpOperation.REQUEST, NETFAST_MAC, NETFAST_IP, b"", KERNEL_IP)])
    reply = recv_until(
        tap, lambda f: ARP in Ether(f) and Ether(f)[ARP].op == 2 and Ether(f)[ARP].psrc == KERNEL_IP
    )
    assert reply is not None, f"no ARP reply; counters {dict(tap.counters)}"
    kernel_mac = bytes.fromhex(Ether(reply)[ARP].hwsrc.replace(":", ""))
    assert kernel_mac == iface_mac(tap.name, ns=ns)
    assert Ether(reply)[ARP].pdst == NETFAST_IP

    tap.send([echo_frame(NETFAST_MAC, kernel_mac, NETFAST_IP, KERNEL_IP, 0x7A7, 3, b"tap!")])
    echo = recv_until(tap, lambda f: ICMP in Ether(f) and Ether(f)[ICMP].type == 0)
    assert echo is not None, "no echo reply"
    pkt = Ether(echo)
    assert (pkt[IP].src, pkt[IP].dst) == (KERNEL_IP, NETFAST_IP)
    assert (pkt[ICMP].id, pkt[ICMP].seq) == (0x7A7, 3)
    assert bytes(pkt[ICMP].payload).startswith(b"tap!")
    assert tap.counters["tx.frames"] == 2


def test_kernel_frames_arrive(tap_in_ns: tuple[TapLink, str]) -> None:
    """The kernel pings netfast through the TAP; netfast answers ARP and echo by hand."""
    tap, ns = tap_in_ns
    if not have_ping():
        pytest.skip("ping is not installed")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "3", NETFAST_IP],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        request = recv_until(tap, lambda f: ARP in Ether(f) and Ether(f)[ARP].pdst == NETFAST_IP)
        assert request is not None, "the kernel's ARP request never arrived"
        kernel_mac = bytes.fromhex(Ether(request)[ARP].hwsrc.replace(":", ""))
        tap.send([arp_frame(ArpOperation.REPLY, NETFAST_MAC, NETFAST_IP, kernel_mac, KERNEL_IP)])
        echo = recv_until(tap, lambda f: ICMP in Ether(f) and Ether(f)[ICMP].type == 8)
        assert echo is not None, "the kernel's echo request never arrived"
        pkt = Ether(echo)
        data = bytes(pkt[ICMP].payload)[: pkt[IP].len - 28]
        icmp = pkt[ICMP]
        reply = echo_frame(
            NETFAST_MAC, kernel_mac, NETFAST_IP, KERNEL_IP, icmp.id, icmp.seq, data, reply=True
        )
        tap.send([reply])
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out.decode()
        assert "1 received" in out.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_oversize_frames_are_dropped(tap_in_ns: tuple[TapLink, str]) -> None:
    tap, _ = tap_in_ns
    frame = arp_frame(ArpOperation.REQUEST, NETFAST_MAC, NETFAST_IP, b"", KERNEL_IP)
    assert tap.send([frame.ljust(tap.mtu + 15, b"\0"), b"short"]) == 0
    assert tap.counters["drop.oversize"] == 1
    assert tap.counters["drop.runt"] == 1
