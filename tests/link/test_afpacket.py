"""AfPacketLink against the Linux kernel's own stack, across a veth into a namespace."""

from __future__ import annotations

import subprocess
import sys
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
)

from netfast.link.afpacket import AfPacketLink
from netfast.link.base import Frame, Link
from netfast.wire.arp import ArpOperation

pytestmark = pytest.mark.netns
SKIP_REASON = have_netns()

KERNEL_IP = "198.18.0.1"
NETFAST_IP = "198.18.0.2"
IFF_PROMISC = 0x100


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def peer(sandbox: Sandbox) -> tuple[str, str, str]:
    """(namespace, root-side veth end, namespaced end holding KERNEL_IP/24)."""
    ns = sandbox.netns()
    outer, inner = sandbox.veth(ns, f"{KERNEL_IP}/24")
    return ns, outer, inner


def is_arp(frame: Frame, op: int, psrc: str, pdst: str) -> bool:
    pkt = Ether(frame)
    return ARP in pkt and pkt[ARP].op == op and pkt[ARP].psrc == psrc and pkt[ARP].pdst == pdst


def is_echo(frame: Frame, icmp_type: int, ident: int, seq: int) -> bool:
    pkt = Ether(frame)
    if ICMP not in pkt:
        return False
    return (pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (icmp_type, ident, seq)


def answer_arp(link: Link, my_ip: str) -> object:
    """An on_frame hook replying to the kernel's ARP requests for ``my_ip``."""

    def hook(frame: Frame) -> None:
        pkt = Ether(frame)
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == my_ip:
            asker = bytes.fromhex(pkt[ARP].hwsrc.replace(":", ""))
            link.send([arp_frame(ArpOperation.REPLY, NETFAST_MAC, my_ip, asker, pkt[ARP].psrc)])

    return hook


def checksums_ok(frame: Frame) -> bool:
    """scapy's verdict: rebuilding with fresh checksums changes nothing."""
    pkt = Ether(frame)
    rebuilt = pkt.copy()
    del rebuilt[IP].chksum
    del rebuilt[ICMP].chksum
    return bytes(rebuilt) == bytes(pkt)


def test_mtu_comes_from_the_interface(sandbox: Sandbox, peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    subprocess.run(["ip", "link", "set", outer, "mtu", "1400"], check=True, timeout=10)
    with AfPacketLink(outer) as link:
        assert link.mtu == 1400
        assert link.name == outer
        assert isinstance(link, Link)
        assert link.fileno() >= 0
    with AfPacketLink(outer, mtu=1200) as link:
        assert link.mtu == 1200


def test_unknown_interface_raises() -> None:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    with pytest.raises(OSError):
        AfPacketLink("nf-no-such-if")


def test_kernel_answers_arp_and_echo(peer: tuple[str, str, str]) -> None:
    ns, outer, inner = peer
    with AfPacketLink(outer) as link:
        link.send([arp_frame(ArpOperation.REQUEST, NETFAST_MAC, NETFAST_IP, b"", KERNEL_IP)])
        reply = recv_until(link, lambda f: is_arp(f, 2, KERNEL_IP, NETFAST_IP))
        assert reply is not None, f"no ARP reply; counters {dict(link.counters)}"
        arp = Ether(reply)[ARP]
        assert arp.hwdst == "02:00:00:00:fa:57"
        assert Ether(reply).dst == "02:00:00:00:fa:57"
        kernel_mac = bytes.fromhex(arp.hwsrc.replace(":", ""))
        assert kernel_mac == iface_mac(inner, ns=ns)

        request = echo_frame(NETFAST_MAC, kernel_mac, NETFAST_IP, KERNEL_IP, 0x4E46, 1, b"hello")
        link.send([request])
        echo = recv_until(
            link, lambda f: is_echo(f, 0, 0x4E46, 1), on_frame=answer_arp(link, NETFAST_IP)
        )
        assert echo is not None, "no echo reply"
        pkt = Ether(echo)
        assert (pkt[IP].src, pkt[IP].dst) == (KERNEL_IP, NETFAST_IP)
        assert bytes(pkt[ICMP].payload).startswith(b"hello")
        assert checksums_ok(echo)
        assert link.counters["tx.frames"] >= 2
        assert link.counters["rx.frames"] >= 2


def test_kernel_pings_netfast(peer: tuple[str, str, str]) -> None:
    """The kernel's ARP request and echo request arrive; netfast's answers complete the ping."""
    ns, outer, _ = peer
    with AfPacketLink(outer) as link:
        if have_ping():
            cmd = ["ping", "-c", "1", "-W", "3", NETFAST_IP]
        else:  # a UDP datagram makes the kernel ARP just the same
            code = f"import socket; socket.socket(2, 2).sendto(b'x', ('{NETFAST_IP}', 9))"
            cmd = [sys.executable, "-c", code]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            request = recv_until(link, lambda f: is_arp(f, 1, KERNEL_IP, NETFAST_IP))
            assert request is not None, "the kernel's ARP request never arrived"
            asker = Ether(request)[ARP].hwsrc
            assert Ether(request).dst == "ff:ff:ff:ff:ff:ff"
            if not have_ping():
                return
            kernel_mac = bytes.fromhex(asker.replace(":", ""))
            answer = arp_frame(ArpOperation.REPLY, NETFAST_MAC, NETFAST_IP, kernel_mac, KERNEL_IP)
            link.send([answer])
            echo = recv_until(link, lambda f: ICMP in Ether(f) and Ether(f)[ICMP].type == 8)
            assert echo is not None, "the kernel's echo request never arrived"
            pkt = Ether(echo)
            assert pkt.dst == "02:00:00:00:fa:57"
            icmp = pkt[ICMP]
            data = bytes(icmp.payload)[: pkt[IP].len - 28]  # without the Ethernet padding
            reply = echo_frame(
                NETFAST_MAC, kernel_mac, NETFAST_IP, KERNEL_IP, icmp.id, icmp.seq, data, reply=True
            )
            link.send([reply])
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == 0, out.decode()
            assert "1 received" in out.decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def test_own_frames_are_not_received(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    with AfPacketLink(outer) as link:
        requests = [
            arp_frame(ArpOperation.REQUEST, NETFAST_MAC, NETFAST_IP, b"", KERNEL_IP)
            for _ in range(5)
        ]
        assert link.send(requests) == 5
        seen: list[Frame] = []
        recv_until(link, lambda f: seen.append(f) is not None, timeout=0.5)
        assert seen, "the kernel's replies should arrive"
        assert all(Ether(f).src != "02:00:00:00:fa:57" for f in seen)


def test_oversize_and_runt_frames_are_dropped(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    with AfPacketLink(outer) as link:
        big = arp_frame(ArpOperation.REQUEST, NETFAST_MAC, NETFAST_IP, b"", KERNEL_IP)
        assert link.send([big.ljust(link.mtu + 15, b"\0"), b"\x00" * 10]) == 0
        assert link.counters["drop.oversize"] == 1
        assert link.counters["drop.runt"] == 1
        # The largest legal frame goes.
        assert link.send([big.ljust(link.mtu + 14, b"\0")]) == 1


def test_promiscuous_mode_lasts_as_long_as_the_socket(peer: tuple[str, str, str]) -> None:
    _, outer, _ = peer
    flags = Path(f"/sys/class/net/{outer}/flags")
    assert not int(flags.read_text(), 16) & IFF_PROMISC
    with AfPacketLink(outer, promiscuous=True):
        assert int(flags.read_text(), 16) & IFF_PROMISC
    assert not int(flags.read_text(), 16) & IFF_PROMISC
