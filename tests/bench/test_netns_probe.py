"""The reachability probe the namespace benchmarks and kernel-peer tests use instead of ``ping``:
one ICMP echo from a raw socket inside a namespace, checked against the kernel's own answers."""

from __future__ import annotations

import time

import pytest
from tests.conftest import have_netns
from tests.netns import Sandbox, run

from netfast.bench.netns import icmp_echo


@pytest.fixture
def two_hosts() -> object:
    reason = have_netns()
    if reason:
        pytest.skip(reason)
    with Sandbox() as box:
        left, right = box.netns(), box.netns()
        outer, _inner = box.veth(left, "198.18.7.1/24")
        box.move(outer, right)
        box.address(right, outer, "198.18.7.2/24")
        yield left, right


def test_probe_sees_a_kernel_answer_and_its_absence(two_hosts: tuple[str, str]) -> None:
    left, right = two_hosts
    ok = any(icmp_echo(left, "198.18.7.2", timeout=1.0) for _ in range(3))
    assert ok, "the kernel in the peer namespace answers echo requests"
    # With echo answers switched off in the peer, the same probe must report no answer.
    run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all", ns=right)
    start = time.monotonic()
    assert not icmp_echo(left, "198.18.7.2", timeout=0.5)
    assert time.monotonic() - start < 5
    # Nobody at all at that address.
    assert not icmp_echo(left, "198.18.7.99", timeout=0.3)
