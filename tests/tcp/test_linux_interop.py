"""netfast's TCP against the Linux kernel's, over a TAP in a namespace the test creates.

- curl downloads 50 MB from a netfast server, and a netfast client downloads 50 MB from Python's
  http.server; both sha256-verified;
- the same through netfast's impairment bridge with 2% loss, 5% reordering and 1% duplication
  in both directions;
- many short connections in a row; abortive closes from either side;
- a SYN flood (bounded count, spoofed sources in 198.18.9.0/24) against a listener with a small
  SYN cache: the cache stays within its bound, cookies answer the rest, and a real download
  during the flood completes.

Addresses are in 198.18.0.0/15 only; every wait is bounded; namespaces always go away.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import have_netns
from tests.tcp.kernel import KERNEL_IP, NETFAST_IP, kernel_peer

from netfast.link.impair import Impairment
from netfast.stack.bulk import HttpBodyServer, HttpGetClient
from netfast.stack.hostrun import EchoService

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SKIP_REASON = have_netns()
BIG = 50 * 1000 * 1000
IMPAIR = Impairment(loss=0.02, reorder=0.05, duplicate=0.01, reorder_delay=0.005)


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")


def _body(size: int, seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(size)


class Gate:
    """Starts an app only once ``event`` is set (when the kernel side is ready)."""

    def __init__(self, event: threading.Event, inner: Any) -> None:
        self.event = event
        self.inner = inner

    def step(self, now: float) -> None:
        if self.event.is_set():
            self.inner.step(now)

    def close(self) -> None:
        self.inner.close()


def _curl_sha(peer: Any, url: str, timeout: float) -> tuple[str, float, str]:
    start = time.monotonic()
    proc = peer.sh(
        "sh", "-c", f"curl -sS --max-time {int(timeout)} {url} | sha256sum", timeout=timeout + 10
    )
    return proc.stdout.split()[0] if proc.stdout else "", time.monotonic() - start, proc.stderr


@pytest.mark.parametrize("impair", [None, IMPAIR], ids=["clean", "impaired"])
def test_curl_downloads_50mb_from_netfast(impair: Impairment | None) -> None:
    body = _body(BIG)
    servers: list[HttpBodyServer] = []

    def apps(stack: Any) -> list[Any]:
        servers.append(HttpBodyServer(stack, 80, body, limit=1))
        return servers

    with kernel_peer(impair=impair, apps=apps) as peer:
        sha, seconds, err = _curl_sha(peer, f"http://{NETFAST_IP}/", 200)
        assert sha == hashlib.sha256(body).hexdigest(), (err, sorted(peer.stack.counters.items()))
        assert servers[0].done.wait(10)
        c = peer.stack.counters
        label = "impaired" if impair else "clean"
        rate = BIG * 8 / seconds / 1e6
        print(f"\ncurl <- netfast {label}: {rate:.0f} Mbit/s, rexmt {c['tcp.out.retransmit']}")
        if impair is not None:
            assert peer.bridge is not None
            bc = peer.bridge.counters
            assert bc["ab.impair.loss"] + bc["ba.impair.loss"] > 0, bc
            assert c["tcp.out.retransmit"] > 0
        assert not peer.errors


@pytest.mark.parametrize("impair", [None, IMPAIR], ids=["clean", "impaired"])
def test_netfast_downloads_50mb_from_linux(impair: Impairment | None, tmp_path: Path) -> None:
    body = _body(BIG, seed=6)
    (tmp_path / "blob").write_bytes(body)
    ready = threading.Event()
    clients: list[HttpGetClient] = []

    def apps(stack: Any) -> list[Any]:
        clients.append(HttpGetClient(stack, (KERNEL_IP, 8000), "/blob"))
        return [Gate(ready, clients[0])]

    with kernel_peer(impair=impair, apps=apps) as peer:
        server = peer.popen(
            "python3", "-m", "http.server", "8000", "--bind", KERNEL_IP,
            "--directory", str(tmp_path),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if ":8000" in peer.sh("ss", "-ltn").stdout:
                    break
                time.sleep(0.1)
            ready.set()
            client = clients[0]
            assert client.done.wait(240), "download did not finish"
            assert client.error is None, client.error
            assert client.body_len == BIG
            assert client.body_sha256 == hashlib.sha256(body).hexdigest()
            label = "impaired" if impair else "clean"
            rate = BIG * 8 / client.seconds / 1e6
            print(f"\nnetfast <- http.server {label}: {rate:.0f} Mbit/s")
        finally:
            server.terminate()
            server.wait(10)
        assert not peer.errors


def test_many_short_connections_in_a_row() -> None:
    script = f"""
import socket
ok = 0
for i in range(200):
    s = socket.create_connection(("{NETFAST_IP}", 7), timeout=5)
    msg = b"hello %d" % i
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    s.close()
    ok += got == msg
print(ok)
"""
    with kernel_peer(apps=lambda stack: [EchoService(stack)]) as peer:
        proc = peer.sh("python3", "-c", script, timeout=120)
        assert proc.stdout.strip() == "200", proc.stderr
        c = peer.stack.counters
        assert c["tcp.conn.accepted"] == 200
        assert c["tcp.syncache.completed"] == 200
        tcp = peer.stack.tcp
        assert tcp is not None
        # Linux closed first: netfast's side passes LAST_ACK to CLOSED and is forgotten.
        deadline = time.monotonic() + 5
        while tcp.conns and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tcp.conns) == 0
        assert not peer.errors


class AbortServer:
    """Accepts connections on ``port``: reads one message, then either aborts (RST) or waits for
    the peer and records the error the peer's reset gives ``recv``."""

    def __init__(self, stack: Any, port: int, abort: bool) -> None:
        self.listener = stack.tcp_socket()
        self.listener.bind(("", port))
        self.listener.listen(8)
        self.abort = abort
        self.sock: Any = None
        self.got = b""
        self.error: str | None = None
        self.done = threading.Event()

    def step(self, now: float) -> None:
        if self.done.is_set():
            return
        if self.sock is None:
            try:
                self.sock, _ = self.listener.accept()
            except BlockingIOError:
                return
        try:
            data = self.sock.recv(1000)
        except BlockingIOError:
            return
        except ConnectionResetError as exc:
            self.error = type(exc).__name__
            self.done.set()
            return
        self.got += data
        if self.abort and self.got:
            self.sock.abort()
            self.done.set()
        elif not data:
            self.error = "eof"
            self.done.set()

    def close(self) -> None:
        self.listener.close()


def test_linux_abortive_close_resets_netfast() -> None:
    script = f"""
import socket, struct, time
s = socket.create_connection(("{NETFAST_IP}", 5000), timeout=5)
s.sendall(b"x" * 10)
time.sleep(0.2)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"""
    servers: list[AbortServer] = []
    with kernel_peer(apps=lambda st: servers.append(AbortServer(st, 5000, False)) or servers) as p:
        proc = p.sh("python3", "-c", script, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert servers[0].done.wait(10)
        assert servers[0].error == "ConnectionResetError"
        assert p.stack.counters["tcp.in.rst"] >= 1


def test_netfast_abortive_close_resets_linux() -> None:
    script = f"""
import socket
s = socket.create_connection(("{NETFAST_IP}", 5001), timeout=5)
s.sendall(b"hello")
try:
    data = s.recv(100)
    print("eof" if not data else "data")
except ConnectionResetError:
    print("reset")
"""
    servers: list[AbortServer] = []
    with kernel_peer(apps=lambda st: servers.append(AbortServer(st, 5001, True)) or servers) as p:
        proc = p.sh("python3", "-c", script, timeout=30)
        assert proc.stdout.strip() == "reset", (proc.stdout, proc.stderr)


FLOOD = """
import random, socket, struct, sys
count = int(sys.argv[1])
rng = random.Random(3)
dst = socket.inet_aton("{dst}")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)

def csum(data):
    if len(data) % 2:
        data += b"\\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

for i in range(count):
    src = socket.inet_aton("198.18.9.%d" % rng.randrange(100, 250))
    sport = rng.randrange(1024, 65535)
    tcp = struct.pack("!HHIIBBHHH", sport, 80, rng.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
    s.sendto(ip + tcp, ("{dst}", 0))
print(count)
"""


def test_syn_flood_cache_and_cookies_hold(tmp_path: Path) -> None:
    body = _body(2_000_000, seed=9)
    servers: list[HttpBodyServer] = []

    def apps(stack: Any) -> list[Any]:
        servers.append(HttpBodyServer(stack, 80, body))
        return servers

    script = tmp_path / "flood.py"
    script.write_text(FLOOD.replace("{dst}", NETFAST_IP))
    # A small SYN cache so the bounded flood overflows it.
    small_cache = {"syncache_buckets": 16, "syncache_bucket_limit": 4, "syncache_limit": 48}
    with kernel_peer(apps=apps, tcp_kw=small_cache) as peer:
        flood = peer.popen("python3", str(script), "20000", stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            sha, _, err = _curl_sha(peer, f"http://{NETFAST_IP}/", 60)
            assert sha == hashlib.sha256(body).hexdigest(), err
        finally:
            flood.wait(120)
        tcp = peer.stack.tcp
        assert tcp is not None
        c = peer.stack.counters
        print(
            f"\nflood: {c['tcp.syncache.added']} cached, {c['tcp.syncache.cookie_sent']} "
            f"cookies, {c['tcp.syncache.bucket_overflow']} evictions, now {len(tcp.syncache)}"
        )
        assert len(tcp.syncache) <= 48
        assert c["tcp.syncache.cookie_sent"] > 0
        assert c["tcp.syncache.added"] + c["tcp.syncache.cookie_sent"] > 1000
        assert servers[0].served >= 1
        assert not peer.errors
