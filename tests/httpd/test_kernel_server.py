"""The kernel backend against real clients (Python's http.client, curl, wrk) and raw sockets:
every status the server promises, persistent connections and pipelining, requests sent whole,
one byte at a time, truncated and oversized; path traversal; slowloris; the connection cap."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import io
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.httpd.conftest import Served, read_until_close


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:80]
    return int(raw[9:12])


def responses(raw: bytes) -> list[http.client.HTTPResponse]:
    """Every response in ``raw``, parsed by http.client (an independent parser)."""

    class _Unclosable(io.BytesIO):
        def close(self) -> None:  # http.client closes after a "Connection: close" response
            pass

    class _Sock:
        def __init__(self, data: bytes) -> None:
            self.f = _Unclosable(data)

        def makefile(self, *_a: object, **_k: object) -> io.BytesIO:
            return self.f

    sock = _Sock(raw)
    out = []
    while sock.f.tell() < len(raw):
        r = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        r.begin()
        r.body = r.read()  # type: ignore[attr-defined]
        out.append(r)
    return out


def client(s: Served) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(s.host, s.port, timeout=5)


# --- the ordinary path -----------------------------------------------------------------------


def test_get_head_and_headers(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    c = client(s)
    c.request("GET", "/1k.bin")
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body == (s.root / "1k.bin").read_bytes()
    assert r.getheader("Content-Length") == "1024"
    assert r.getheader("Content-Type") == "application/octet-stream"
    assert r.getheader("Accept-Ranges") == "bytes"
    assert r.getheader("Server") == "netfast"
    mtime = (s.root / "1k.bin").stat().st_mtime
    assert email.utils.parsedate_to_datetime(r.getheader("Last-Modified")).timestamp() == int(mtime)
    assert email.utils.parsedate_to_datetime(r.getheader("Date")) is not None
    etag = r.getheader("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    # HEAD on the same persistent connection: the same headers, no body.
    c.request("HEAD", "/1k.bin")
    h = c.getresponse()
    assert h.status == 200 and h.read() == b""
    assert h.getheader("Content-Length") == "1024" and h.getheader("ETag") == etag
    # And the connection is still good for more.
    c.request("GET", "/style.css")
    r = c.getresponse()
    assert r.read() == b"body{}\n" and r.getheader("Content-Type").startswith("text/css")
    c.close()


def test_many_requests_on_one_connection_hit_the_caches(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    c = client(s)
    want = (s.root / "1k.bin").read_bytes()
    for _ in range(200):
        c.request("GET", "/1k.bin")
        r = c.getresponse()
        assert r.status == 200 and r.read() == want
    c.close()
    counters = s.server.app.counters
    assert counters["cache.hot_hit"] >= 150  # stat once a second at most, not per request
    assert s.server.counters["lookup.submitted"] <= 10


def test_pipelined_requests_answered_in_order(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    reqs = b"".join(
        f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for name in ("style.css", "index.html", "missing", "1k.bin")
    )
    raw = s.exchange(reqs + b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = responses(raw)
    assert [r.status for r in got] == [200, 200, 404, 200, 200]
    assert got[0].body == b"body{}\n" and got[1].body == b"<html>home</html>\n"  # type: ignore[attr-defined]
    assert got[3].body == (s.root / "1k.bin").read_bytes()  # type: ignore[attr-defined]


def test_request_one_byte_at_a_time(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    req = b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with s.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(req)):
            sock.send(req[i : i + 1])
            time.sleep(0.002)
        raw = read_until_close(sock)
    (r,) = responses(raw)
    assert r.status == 200 and r.body == b"body{}\n"  # type: ignore[attr-defined]
    assert s.server.counters["accept_filter.gated_reads"] >= 1


def test_http10_closes_unless_keep_alive(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    raw = s.exchange(b"GET /style.css HTTP/1.0\r\n\r\n")
    (r,) = responses(raw)
    assert r.status == 200 and r.getheader("Connection", "").lower() == "close"
    with s.connect() as sock:
        sock.sendall(b"GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        time.sleep(0.2)
        sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        raw = read_until_close(sock)
    got = responses(raw)
    assert [r.status for r in got] == [200, 200]
    assert got[0].getheader("Connection", "").lower() == "keep-alive"


def test_conditional_and_range(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    c = client(s)
    c.request("GET", "/1k.bin")
    r = c.getresponse()
    r.read()
    etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
    c.request("GET", "/1k.bin", headers={"If-None-Match": etag})
    r = c.getresponse()
    assert r.status == 304 and r.read() == b"" and r.getheader("ETag") == etag
    c.request("GET", "/1k.bin", headers={"If-Modified-Since": lm})
    r = c.getresponse()
    assert r.status == 304 and r.read() == b""
    data = (s.root / "1k.bin").read_bytes()
    c.request("GET", "/1k.bin", headers={"Range": "bytes=100-199"})
    r = c.getresponse()
    assert r.status == 206 and r.read() == data[100:200]
    assert r.getheader("Content-Range") == "bytes 100-199/1024"
    c.request("GET", "/1k.bin", headers={"Range": "bytes=-10"})
    r = c.getresponse()
    assert r.status == 206 and r.read() == data[-10:]
    c.request("GET", "/1k.bin", headers={"Range": "bytes=5000-"})
    r = c.getresponse()
    r.read()
    assert r.status == 416 and r.getheader("Content-Range") == "bytes */1024"
    c.close()


def test_directories(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    c = client(s)
    c.request("GET", "/sub%20dir")
    r = c.getresponse()
    r.read()
    assert r.status == 301 and r.getheader("Location") == "/sub%20dir/"
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"<html>home</html>\n"
    c.request("GET", "/noindex/")
    r = c.getresponse()
    r.read()
    assert r.status == 404  # no listing unless asked for
    c.close()
    s2: Served = serve(index=True)  # type: ignore[operator]
    c = client(s2)
    c.request("GET", "/noindex/")
    r = c.getresponse()
    assert r.status == 200 and b"x.txt" in r.read()
    c.close()


def test_statuses_for_bad_requests(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    cases = {
        b"POST /1k.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n": 405,
        b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n": 501,
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n": 505,
        b"GET / HTTP/1.1\r\n\r\n": 400,  # no Host
        b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello": 400,
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n": 400,
        b"GET / HTTP/1.1\nHost: x\n\n": 400,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n": 413,
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 414,
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n": 431,
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 150 + b"\r\n": 431,
        b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": 404,
    }
    for raw, want in cases.items():
        got = s.exchange(raw)
        assert got, f"no answer to {raw[:60]!r}"
        assert status_of(got) == want, (raw[:60], got[:200])
        r = responses(got)[0]
        assert r.getheader("Content-Length") == str(len(r.body))  # type: ignore[attr-defined]
    assert s.server.app.counters["req.400"] >= 7


def test_truncated_and_garbage_requests_leave_the_server_serving(serve: object) -> None:
    s: Served = serve(header_timeout=1.0)  # type: ignore[operator]
    for raw in (b"GET /1k.bin HT", b"\x00\xff" * 100, b"\r\n" * 50, b"GET", b""):
        with s.connect() as sock:
            if raw:
                sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            read_until_close(sock, timeout=3)
    c = client(s)
    c.request("GET", "/style.css")
    assert c.getresponse().read() == b"body{}\n"
    c.close()


def test_path_traversal_never_escapes_the_root(serve: object) -> None:
    s: Served = serve()  # type: ignore[operator]
    attempts = [
        "/../secret/passwd", "/%2e%2e/secret/passwd", "/%2E%2e%2fsecret%2fpasswd",
        "/..%2f..%2fsecret/passwd", "/%252e%252e/secret/passwd", "/sub%20dir/..%5c..%5csecret",
        "/%00", "/foo%", "/foo%zz", "/..\\secret\\passwd", "/link-out", "//../secret/passwd",
        "/sub%20dir/../../secret/passwd", "/./../secret/passwd",
    ]  # fmt: skip
    for path in attempts:
        raw = s.exchange(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert b"SECRET-OUTSIDE-ROOT" not in raw, path
        assert status_of(raw) in (400, 404), (path, raw[:100])
    # A symlink that stays inside the root is served.
    raw = s.exchange(b"GET /link-in HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b"body{}\n")


# --- time and resource limits ----------------------------------------------------------------


def test_slowloris_is_cut_off_while_others_are_served(serve: object) -> None:
    s: Served = serve(header_timeout=1.0)  # type: ignore[operator]
    slow = s.connect(timeout=6)
    slow.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    served = 0
    while time.monotonic() - start < 0.8:
        c = client(s)
        c.request("GET", "/style.css")
        assert c.getresponse().read() == b"body{}\n"
        c.close()
        served += 1
        try:
            slow.sendall(b"X-Drip: 1\r\n")  # a byte now and then, never the end of the head
        except OSError:
            break
        time.sleep(0.05)
    raw = read_until_close(slow, timeout=5)
    elapsed = time.monotonic() - start
    slow.close()
    assert served >= 3
    assert raw and status_of(raw) == 408
    assert elapsed < 4
    assert s.server.counters["timeout.header"] == 1


def test_connection_cap_holds_under_idle_flood(serve: object) -> None:
    cap = 20
    s: Served = serve(max_connections=cap, idle_timeout=30.0)  # type: ignore[operator]
    idle = []
    try:
        for _ in range(cap * 3):
            sock = s.connect()
            # A whole request, so the accept filter hands it over; then the client idles.
            sock.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(sock)
        time.sleep(0.5)
        assert len(s.server.conns) <= cap
        # A new client is still served: the oldest idle connection made room.
        c = client(s)
        c.request("GET", "/style.css")
        assert c.getresponse().read() == b"body{}\n"
        c.close()
        assert s.server.counters["conn.evicted_idle"] >= cap
    finally:
        for sock in idle:
            sock.close()


def test_idle_keep_alive_connection_is_closed_quietly(serve: object) -> None:
    s: Served = serve(idle_timeout=0.5)  # type: ignore[operator]
    with s.connect() as sock:
        sock.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_until_close(sock, timeout=4)
    assert [r.status for r in responses(raw)] == [200]  # and no 408 after it
    assert s.server.counters["timeout.idle"] == 1


# --- large files and real tools --------------------------------------------------------------


def test_large_file_with_curl_and_concurrent_small_requests(serve: object, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/system-deps.sh installs it)")
    s: Served = serve(chunk=256 * 1024)  # type: ignore[operator]
    out = tmp_path / "got.bin"
    proc = subprocess.Popen(
        ["curl", "-sS", "--limit-rate", "20M", "-o", str(out),
         f"http://{s.host}:{s.port}/big.bin"],
    )  # fmt: skip
    # While the big download runs, small requests are answered promptly.
    for _ in range(20):
        c = client(s)
        c.request("GET", "/style.css")
        assert c.getresponse().read() == b"body{}\n"
        c.close()
    assert proc.wait(timeout=60) == 0
    want = hashlib.sha256((s.root / "big.bin").read_bytes()).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want
    assert s.server.counters["sendfile.bytes"] >= 3 << 20


def test_wrk_sees_no_errors(serve: object) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/system-deps.sh installs it)")
    s: Served = serve()  # type: ignore[operator]
    proc = subprocess.run(
        ["wrk", "-t1", "-c20", "-d1s", f"http://{s.host}:{s.port}/1k.bin"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Socket errors" not in proc.stdout and "Non-2xx" not in proc.stdout, proc.stdout
    assert s.server.app.counters["req.200"] > 100


def test_access_log_line_per_request(tmp_path: Path, serve: object) -> None:
    log = io.StringIO()
    s: Served = serve(access_log=log)  # type: ignore[operator]
    c = client(s)
    for path in ("/style.css", "/missing", "/1k.bin"):
        c.request("GET", path)
        c.getresponse().read()
    c.close()
    deadline = time.monotonic() + 3
    while log.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("127.0.0.1 ") and '"GET /style.css HTTP/1.1" 200 7' in lines[0]
    assert '"GET /missing HTTP/1.1" 404' in lines[1]
    assert lines[2].endswith(" 200 1024")


def test_workers_share_the_port(tmp_path: Path) -> None:
    from tests.httpd.conftest import make_tree

    root, _ = make_tree(tmp_path)
    port_holder = socket.socket()
    port_holder.bind(("127.0.0.1", 0))
    port = port_holder.getsockname()[1]
    port_holder.close()
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "netfast", "httpd", str(root), "--port", str(port),
         "--workers", "2", "--access-log", "off", "--duration", "20"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line and "2 workers" in line, line
        results = []

        def fetch() -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/style.css")
            results.append(c.getresponse().read())
            c.close()

        threads = [threading.Thread(target=fetch) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert results == [b"body{}\n"] * 20
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
