"""A kernel-backend server on loopback in a thread, over a temporary tree of files."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from netfast.httpd.app import HttpdConfig
from netfast.httpd.kernel import KernelServer


@dataclass
class Served:
    server: KernelServer
    root: Path
    outside: Path
    host: str
    port: int

    def connect(self, timeout: float = 5.0) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        return s

    def exchange(self, raw: bytes, timeout: float = 5.0) -> bytes:
        """Send ``raw``, then read until the server closes (or ``timeout``)."""
        with self.connect(timeout) as s:
            s.sendall(raw)
            return read_until_close(s, timeout)


def read_until_close(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    chunks = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            b = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def make_tree(base: Path) -> tuple[Path, Path]:
    root = base / "www"
    outside = base / "secret"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"SECRET-OUTSIDE-ROOT\n")
    root.mkdir()
    (root / "index.html").write_bytes(b"<html>home</html>\n")
    (root / "1k.bin").write_bytes(os.urandom(1024))
    (root / "empty.txt").write_bytes(b"")
    (root / "style.css").write_bytes(b"body{}\n")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    sub = root / "sub dir"
    sub.mkdir()
    (sub / "a.txt").write_bytes(b"alpha\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "x.txt").write_bytes(b"x\n")
    (root / "link-out").symlink_to(outside / "passwd")
    (root / "link-in").symlink_to(root / "style.css")
    return root, outside


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    """``serve(**config)`` starts a server; every one started is stopped at the end."""
    started: list[tuple[KernelServer, threading.Event, threading.Thread]] = []
    root, outside = make_tree(tmp_path)

    def start(**kw: object) -> Served:
        cfg = replace(HttpdConfig(root=str(root), port=0, access_log=None), **kw)  # type: ignore[arg-type]
        server = KernelServer(cfg)
        stop = threading.Event()
        t = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        t.start()
        started.append((server, stop, t))
        host, port = server.address
        return Served(server, root, outside, host, port)

    yield start
    for _server, stop, t in started:
        stop.set()
        t.join(timeout=10)
        assert not t.is_alive(), "the server thread did not stop"
