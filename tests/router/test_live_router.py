"""netfast as a router between two Linux hosts, end to end.

Host A (namespace, 198.18.0.2/24, default via 198.18.0.1) -- veth -- netfast -- veth -- host B
(namespace, 198.18.1.2/24, default via 198.18.1.1).  netfast runs in a thread of the test on
AF_PACKET packet rings (the default for ``afpacket`` links) bound to the root-namespace ends of
the veths, configured from a TOML description like any user's router, and answers ARP itself.
The link to B has an MTU of 1400 on both ends.

Offloads are turned off on every veth end (ethtool): with them, the kernel hands AF_PACKET
sockets TCP segments with partial checksums (CHECKSUM_PARTIAL) and GSO super-frames, which a
router on the wire never sees.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import have_netns
from tests.netns import Sandbox, have_ping, run

from netfast.router.build import BuiltRouter, build_router
from netfast.router.config import parse_config
from netfast.router.engine import Engine
from netfast.router.run import LiveSummary

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SKIP_REASON = have_netns()
ROUTER_A_MAC = "02:00:00:00:fa:01"
ROUTER_B_MAC = "02:00:00:00:fa:02"
HOST_A, HOST_B = "198.18.0.2", "198.18.1.2"
#: Bound on the router thread's life, whatever the test does.
ROUTER_DURATION = 180.0


@dataclass
class Net:
    sandbox: Sandbox
    ns_a: str
    ns_b: str
    built: BuiltRouter
    engine: Engine
    stop: threading.Event
    result: dict[str, LiveSummary]

    def sh(self, ns: str, *cmd: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _offloads_off(ifname: str, ns: str | None = None) -> None:
    run("ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
        "gro", "off", ns=ns, check=False)  # fmt: skip
    features = run("ethtool", "-k", ifname, ns=ns)
    if re.search(r"^tx-checksumming: on", features, re.M):
        raise RuntimeError(f"{ifname}: could not turn off tx checksum offload")


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    for tool in ("ethtool", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install -y {tool})")
    if not have_ping():
        pytest.skip("ping is not installed (apt-get install -y iputils-ping)")
    with Sandbox() as sb:
        ns_a, ns_b = sb.netns(), sb.netns()
        out_a, in_a = sb.veth(ns_a, f"{HOST_A}/24")
        out_b, in_b = sb.veth(ns_b, f"{HOST_B}/24")
        run("ip", "link", "set", out_b, "mtu", "1400")
        run("ip", "link", "set", in_b, "mtu", "1400", ns=ns_b)
        run("ip", "route", "add", "default", "via", "198.18.0.1", ns=ns_a)
        run("ip", "route", "add", "default", "via", "198.18.1.1", ns=ns_b)
        for ifname, ns in ((out_a, None), (out_b, None), (in_a, ns_a), (in_b, ns_b)):
            _offloads_off(ifname, ns)
        cfg = parse_config(
            f"""
            [[interface]]
            name = "a"
            mac = "{ROUTER_A_MAC}"
            addresses = ["198.18.0.1/24"]
            link = {{ type = "afpacket", device = "{out_a}" }}

            [[interface]]
            name = "b"
            mac = "{ROUTER_B_MAC}"
            addresses = ["198.18.1.1/24"]
            mtu = 1400
            link = {{ type = "afpacket", device = "{out_b}" }}
            """,
            "live-test.toml",
        )
        built = build_router(cfg)
        built.open_links()
        stop = threading.Event()
        result: dict[str, LiveSummary] = {}
        # The vector path when it is there, punting to the scalar one, as `netfast forward`.
        engine = built.new_engine()

        def forward() -> None:
            result["summary"] = built.run_live(stop, duration=ROUTER_DURATION, engine=engine)

        thread = threading.Thread(target=forward, name="netfast-router", daemon=True)
        thread.start()
        try:
            yield Net(sb, ns_a, ns_b, built, engine, stop, result)
        finally:
            stop.set()
            thread.join(10)
            built.close()


def test_ping_through_the_router_decrements_ttl(net: Net) -> None:
    proc = net.sh(net.ns_a, "ping", "-c", "3", "-i", "0.2", "-W", "2", HOST_B)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # B answers with TTL 64; one router on the way back leaves 63.
    ttls = re.findall(r"ttl=(\d+)", proc.stdout)
    assert ttls == ["63", "63", "63"], proc.stdout
    # Six packets crossed: forwarded at once, or after waiting for the next hop's ARP reply.
    c = net.engine.counters
    assert c["ip.fwd.forwarded"] + c["arp.hold.queued"] >= 6, c


def test_ping_the_router_itself(net: Net) -> None:
    proc = net.sh(net.ns_a, "ping", "-c", "1", "-W", "2", "198.18.0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ttl=64" in proc.stdout


def test_ttl_1_gets_time_exceeded_from_the_router(net: Net) -> None:
    proc = net.sh(net.ns_a, "ping", "-c", "1", "-t", "1", "-W", "2", HOST_B)
    assert "198.18.0.1" in proc.stdout and "Time to live exceeded" in proc.stdout, proc.stdout


def test_unrouted_destination_gets_net_unreachable(net: Net) -> None:
    proc = net.sh(net.ns_a, "ping", "-c", "1", "-W", "2", "198.19.255.1")
    assert "198.18.0.1" in proc.stdout, proc.stdout
    assert "Destination Net Unreachable" in proc.stdout, proc.stdout


def test_df_packet_over_egress_mtu_gets_frag_needed(net: Net) -> None:
    proc = net.sh(
        net.ns_a, "ping", "-c", "2", "-i", "0.3", "-M", "do", "-s", "1450", "-W", "2", HOST_B
    )
    text = proc.stdout + proc.stderr
    assert re.search(r"mtu ?= ?1400", text), text
    assert net.engine.counters["ip.fwd.frag_needed"] >= 1


@pytest.fixture(scope="module")
def web(net: Net, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server in B serving a random 1 MB file; yields its sha256."""
    root = tmp_path_factory.mktemp("www")
    blob = os.urandom(1 << 20)
    (root / "blob").write_bytes(blob)
    server = subprocess.Popen(
        ["ip", "netns", "exec", net.ns_b, "python3", "-m", "http.server", "8000",
         "--bind", HOST_B, "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            probe = net.sh(net.ns_b, "curl", "-s", "-o", "/dev/null", "--max-time", "1",
                           f"http://{HOST_B}:8000/")  # fmt: skip
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the HTTP server in B did not start")
        yield hashlib.sha256(blob).hexdigest()
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def _download(net: Net, out: Path, max_time: float) -> subprocess.CompletedProcess[str]:
    out.unlink(missing_ok=True)
    return net.sh(
        net.ns_a,
        "curl", "-s", "-S", "--max-time", str(max_time), "-o", str(out),
        f"http://{HOST_B}:8000/blob",
        timeout=max_time + 10,
    )  # fmt: skip


def test_tcp_download_through_the_router(net: Net, web: str, tmp_path: Path) -> None:
    out = tmp_path / "blob"
    proc = _download(net, out, 60)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == web
    assert net.engine.counters["ip.fwd.forwarded"] > 700  # 1 MB in <= 1360-byte segments


def test_firewall_rule_blocks_then_live_removal_restores(
    net: Net, web: str, tmp_path: Path
) -> None:
    from netfast.pfil.ipfw import parse_rules

    rules = parse_rules(
        "00100 deny tcp from any to any 8000\n", "block-8000.fw", default_allow=True
    )
    out = tmp_path / "blob"
    net.built.set_ruleset(rules)
    try:
        proc = _download(net, out, 3)
        assert proc.returncode != 0, "the download passed a firewall denying port 8000"
        assert rules.counter(100)[0] >= 1
        assert net.engine.counters["pfil.in.drop"] >= 1
    finally:
        net.built.set_ruleset(None)  # removed while the router thread forwards
    proc = _download(net, out, 60)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == web


def test_ports_run_on_packet_rings(net: Net) -> None:
    """afpacket links get PACKET_MMAP rings by default, and every frame the kernel offered a
    ring was read or is counted."""
    from netfast.link.ring import RingLink

    assert net.built.links and all(isinstance(x, RingLink) for x in net.built.links.values())
    for link in net.built.links.values():
        c = link.counters
        assert c["link.ring_fallback"] == 0 and c["drop.rx_ring"] == 0, c
        assert c["rx.frames"] > 0 and c["tx.frames"] > 0, c
        assert c["rx.ring_offered"] >= c["rx.frames"], c


def test_router_thread_is_alive_and_bounded(net: Net) -> None:
    # Runs last in the module: the router is still forwarding (not stopped by an error).
    assert "summary" not in net.result
    assert net.engine.counters["router.internal_error"] == 0
    if net.built.vector is not None:
        assert net.engine.stats.vector_frames > 0
