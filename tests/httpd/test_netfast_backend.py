"""The netfast backend: the same HTTP application on netfast's own TCP over a TAP, with Linux's
curl as the client in a namespace the test creates -- files sha256-verified, clean and through
netfast's impairment bridge; the listener's accept filter holds connections until a request."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import have_netns
from tests.tcp.kernel import NETFAST_IP, kernel_peer

from netfast.httpd.app import HttpdConfig
from netfast.httpd.netstack import NetfastHttpd
from netfast.link.impair import Impairment

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SKIP_REASON = have_netns()
IMPAIR = Impairment(loss=0.02, reorder=0.05, duplicate=0.01, reorder_delay=0.005)


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/system-deps.sh installs it)")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "small.txt").write_bytes(b"hello from netfast\n")
    (root / "big.bin").write_bytes(os.urandom(8 << 20))
    (root / "index.html").write_bytes(b"<p>index</p>\n")
    return root


def _curl(peer: Any, args: str, timeout: float = 60) -> str:
    proc = peer.sh("sh", "-c", f"curl -sS --max-time {int(timeout)} {args}", timeout=timeout + 10)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("impair", [None, IMPAIR], ids=["clean", "impaired"])
def test_curl_downloads_from_netfast_httpd(site: Path, impair: Impairment | None) -> None:
    servers: list[NetfastHttpd] = []

    def apps(stack: Any) -> list[Any]:
        servers.append(NetfastHttpd(stack, HttpdConfig(root=str(site), port=80)))
        return servers

    with kernel_peer(impair=impair, apps=apps) as peer:
        base = f"http://{NETFAST_IP}"
        got = _curl(peer, f"-o /dev/null -w '%{{http_code}}' {base}/small.txt")
        assert got == "200"
        assert _curl(peer, f"{base}/small.txt") == "hello from netfast\n"
        sha = _curl(peer, f"{base}/big.bin | sha256sum").split()[0]
        assert sha == hashlib.sha256((site / "big.bin").read_bytes()).hexdigest()
        # Several URLs on one keep-alive connection, and a range.
        out = _curl(peer, f"-s {base}/small.txt {base}/ {base}/small.txt")
        assert out == "hello from netfast\n<p>index</p>\nhello from netfast\n"
        part = _curl(peer, f"-r 6-9 {base}/small.txt")
        assert part == "from"
        code = _curl(peer, f"-o /dev/null -w '%{{http_code}}' {base}/nope")
        assert code == "404"
        server = servers[0]
        c = peer.stack.counters
        # Every connection came through the accept filter with its request complete.
        assert c["tcp.accf.passed"] >= 5
        assert server.counters["file.bytes"] >= 8 << 20
        assert server.app.counters["req.200"] >= 5 and server.app.counters["req.404"] == 1
        if impair is not None:
            assert c["tcp.out.retransmit"] > 0
        assert not peer.errors


def test_slow_client_gets_408_and_others_are_served(site: Path) -> None:
    servers: list[NetfastHttpd] = []

    def apps(stack: Any) -> list[Any]:
        cfg = HttpdConfig(root=str(site), port=80, header_timeout=1.0, accept_filter=False)
        servers.append(NetfastHttpd(stack, cfg))
        return servers

    with kernel_peer(apps=apps) as peer:
        script = (
            "import socket,time\n"
            f"s=socket.create_connection(('{NETFAST_IP}',80),timeout=8)\n"
            "s.sendall(b'GET /small.txt HTTP/1.1\\r\\nHost: x\\r\\n')\n"
            "t=time.monotonic(); d=b''\n"
            "while True:\n"
            "    b=s.recv(4096)\n"
            "    if not b: break\n"
            "    d+=b\n"
            "print(d.split(b' ')[1].decode(), round(time.monotonic()-t,1))\n"
        )
        slow = peer.popen("python3", "-c", script, stdout=-1)
        time.sleep(0.2)
        assert _curl(peer, f"http://{NETFAST_IP}/small.txt") == "hello from netfast\n"
        out, _ = slow.communicate(timeout=20)
        status, seconds = out.decode().split()
        assert status == "408" and float(seconds) < 5
        assert servers[0].counters["timeout.header"] == 1
