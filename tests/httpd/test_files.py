"""Tests for netfast.httpd.files: path resolution, metadata, and the response plan.

Expected header values are written out or computed here from os.stat and email.utils, never by
calling the code under test; http.client reads the serialized heads back as an oracle.
"""

from __future__ import annotations

import email.utils
import html.parser
import http.client
import io
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.httpd.files import (
    MISS,
    REASONS,
    FileInfo,
    Response,
    StatCache,
    content_type,
    error_response,
    file_info,
    http_date,
    parse_http_date,
    plan_response,
    resolve,
    serialize_head,
)
from netfast.httpd.proto import HttpError, Request

# a.txt's modification time: 2023-11-14 22:13:20.123456789 UTC.
MTIME_NS = 1_700_000_000_123_456_789
MTIME_S = 1_700_000_000
A_DATA = bytes(range(256)) * 3 + bytes(range(232))  # 1000 bytes
A_LM = "Tue, 14 Nov 2023 22:13:20 GMT"
A_ETAG = f'"{1000:x}-{MTIME_NS:x}"'


@pytest.fixture
def tree(tmp_path: Path) -> str:
    """A served root (returned, as a real path) beside a directory it must not leak."""
    base = Path(os.path.realpath(tmp_path))
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = base / "root"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "a.txt").write_bytes(A_DATA)
    os.utime(root / "a.txt", ns=(MTIME_NS, MTIME_NS))
    (root / "empty.bin").write_bytes(b"")
    (root / "%2e%2e").write_bytes(b"literal")
    (root / "\u00fc.txt").write_bytes(b"umlaut")
    (root / "sub").mkdir()
    (root / "sub" / "b.css").write_bytes(b"b{}")
    (root / "sub" / "index.html").write_bytes(b"<p>sub</p>")
    (root / "noindex").mkdir()
    for name in ("a b.txt", "<x>&.txt", "\u00fc.txt"):
        (root / "noindex" / name).write_bytes(b"n")
    (root / "noindex" / "d").mkdir()
    (root / "link_in").symlink_to("a.txt")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "dirlink_out").symlink_to(outside)
    (root / "idxout").mkdir()
    (root / "idxout" / "index.html").symlink_to(outside / "secret.txt")
    return str(root)


def req(path: str, *headers: tuple[str, str], method: str = "GET", query: str = "") -> Request:
    target = path + ("?" + query if query else "")
    return Request(method, target, path, query, (1, 1), (("host", "h"), *headers), True)


def plan(root: str, r: Request, **kw: object) -> Response:
    calls: list[str] = []

    def info_for(path: str) -> FileInfo | None:
        calls.append(path)
        return file_info(path)

    resp = plan_response(r, root, info_for, **kw)  # type: ignore[arg-type]
    # Only real paths inside the root are ever looked at.
    for path in calls:
        assert path == root or path.startswith(root + "/"), path
        assert os.path.realpath(path) == path
    check_lengths(resp)
    return resp


def check_lengths(resp: Response) -> None:
    fields = dict(resp.headers)
    if resp.status == 304:
        assert "Content-Length" not in fields
        assert (resp.body, resp.file_path, resp.length) == (b"", None, 0)
        return
    file_part = resp.length if resp.file_path is not None else 0
    assert int(fields["Content-Length"]) == len(resp.body) + file_part


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("a.htm", "text/html; charset=utf-8"),
        ("A.HTML", "text/html; charset=utf-8"),
        ("s.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("m.mjs", "text/javascript; charset=utf-8"),
        ("d.json", "application/json"),
        ("r.txt", "text/plain; charset=utf-8"),
        ("p.png", "image/png"),
        ("p.jpg", "image/jpeg"),
        ("p.JPEG", "image/jpeg"),
        ("p.gif", "image/gif"),
        ("p.svg", "image/svg+xml"),
        ("favicon.ico", "image/vnd.microsoft.icon"),
        ("p.webp", "image/webp"),
        ("d.pdf", "application/pdf"),
        ("m.wasm", "application/wasm"),
        ("f.xml", "application/xml"),
        ("v.mp4", "video/mp4"),
        ("f.woff2", "font/woff2"),
        ("f.woff", "font/woff"),
        ("a.tar.gz", "application/gzip"),
        ("/dir.html/file", "application/octet-stream"),
        ("noext", "application/octet-stream"),
        (".htaccess", "application/octet-stream"),
        (".css", "application/octet-stream"),  # a dot file, not a style sheet
        ("x.unknown", "application/octet-stream"),
        ("trailing.", "application/octet-stream"),
    ],
)
def test_content_type(name: str, ctype: str) -> None:
    assert content_type(name) == ctype


# --- dates --------------------------------------------------------------------------------------


def test_http_date_rfc_example() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(784111777.999) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(-1) == "Wed, 31 Dec 1969 23:59:59 GMT"
    assert http_date(-0.5) == "Wed, 31 Dec 1969 23:59:59 GMT"  # floor, not truncation


@given(st.integers(0, 253402300799))
def test_http_date_against_email_utils(t: int) -> None:
    text = http_date(t)
    assert text == email.utils.formatdate(t, usegmt=True)
    assert email.utils.parsedate_to_datetime(text).timestamp() == t
    assert parse_http_date(text) == t


def test_http_date_is_locale_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Day and month names from strftime follow LC_TIME (a German locale gives "So, 06 Nov");
    # HTTP dates must not.  No non-English locale need be installed to check it: the C
    # library's formatter is made to give German names, and the date must not change.
    def german(*_a: object, **_k: object) -> str:
        return "So, 06 Nov. 1994 08:49:37 GMT"

    monkeypatch.setattr(time, "strftime", german)
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(784111777.9) == "Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime
    ],
)
def test_parse_http_date_three_forms(text: str) -> None:
    assert parse_http_date(text) == 784111777
    assert email.utils.parsedate_to_datetime(text).timestamp() == 784111777


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
    ],
)
def test_parse_http_date_refuses(text: str) -> None:
    assert parse_http_date(text) is None


# --- resolve ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("/../etc/passwd", 404),
        ("/..", 404),
        ("/%2e%2e/", 404),
        ("/%2E%2e%2f", 404),
        ("/%2e%2e%2fetc%2fpasswd", 404),
        ("/..%2f..%2fetc%2fpasswd", 404),
        ("/sub/../a.txt", 404),
        ("/sub/%2E%2E/a.txt", 404),
        ("/a/..%5c..", 400),
        ("/..\\..\\etc\\passwd", 400),
        ("/%5cetc", 400),
        ("/sub\\b.css", 400),
        ("/%00", 400),
        ("/a.txt%00.html", 400),
        ("/foo%", 400),
        ("/foo%zz", 400),
        ("/foo%2", 400),
        ("/%%41", 400),
        ("/%G0", 400),
        ("a.txt", 400),
        ("", 400),
        ("/link_out", 404),
        ("/dirlink_out", 404),
        ("/dirlink_out/secret.txt", 404),
        ("/dirlink_out/../root/a.txt", 404),
    ],
)
def test_resolve_refuses(tree: str, raw: str, status: int) -> None:
    with pytest.raises(HttpError) as e:
        resolve(tree, raw)
    assert e.value.status == status


@pytest.mark.parametrize(
    ("raw", "rel"),
    [
        ("/", ""),
        ("/a.txt", "a.txt"),
        ("/./a.txt", "a.txt"),
        ("/%2e/a.txt", "a.txt"),
        ("//a.txt", "a.txt"),
        ("/sub//b.css", "sub/b.css"),
        ("/sub/", "sub"),
        ("/%73ub/b%2Ecss", "sub/b.css"),
        ("/link_in", "a.txt"),  # a symlink inside the root resolves to its target
        ("/%252e%252e", "%2e%2e"),  # decoded once: a literal name
        ("/%252e%252e/", "%2e%2e"),
        ("/%C3%BC.txt", "\u00fc.txt"),
        ("/\u00fc.txt", "\u00fc.txt"),
        ("//etc/passwd", "etc/passwd"),  # under the root, not /etc/passwd
        ("/...", "..."),
        ("/does/not/exist", "does/not/exist"),
    ],
)
def test_resolve_inside(tree: str, raw: str, rel: str) -> None:
    expected = os.path.join(tree, rel) if rel else tree
    assert resolve(tree, raw) == expected
    assert resolve(Path(tree), raw) == expected


def test_resolve_non_utf8_name(tree: str) -> None:
    raw_name = b"\xff.bin"
    with open(os.path.join(os.fsencode(tree), raw_name), "wb") as f:
        f.write(b"x")
    path = resolve(tree, "/%FF.bin")
    assert os.fsencode(path) == os.fsencode(tree) + b"/" + raw_name
    assert file_info(path) is not None


# --- file_info and StatCache --------------------------------------------------------------------


def test_file_info_regular(tree: str) -> None:
    path = os.path.join(tree, "a.txt")
    info = file_info(path)
    assert info == FileInfo(
        path=path,
        size=1000,
        mtime_ns=MTIME_NS,
        is_dir=False,
        etag=A_ETAG,
        last_modified=email.utils.formatdate(MTIME_S, usegmt=True),
        content_type="text/plain; charset=utf-8",
    )
    assert info.last_modified == A_LM


def test_file_info_dir_missing_special(tree: str) -> None:
    d = file_info(os.path.join(tree, "sub"))
    assert d is not None and d.is_dir
    assert file_info(os.path.join(tree, "nope")) is None
    assert file_info(os.path.join(tree, "a.txt", "x")) is None  # ENOTDIR
    assert file_info(os.path.join(tree, "a\0b")) is None
    fifo = os.path.join(tree, "fifo")
    os.mkfifo(fifo)
    assert file_info(fifo) is None
    broken = os.path.join(tree, "broken")
    os.symlink("nowhere", broken)
    assert file_info(broken) is None


def test_etag_changes_with_size_and_mtime(tree: str) -> None:
    path = os.path.join(tree, "a.txt")
    before = file_info(path)
    os.utime(path, ns=(MTIME_NS + 1, MTIME_NS + 1))
    after = file_info(path)
    assert before is not None and after is not None
    assert after.etag == f'"3e8-{MTIME_NS + 1:x}"' != before.etag


def test_stat_cache() -> None:
    info = FileInfo("/x", 1, 2, False, '"1-2"', http_date(0), "text/plain")
    c = StatCache(ttl=2.0, size=3)
    assert c.get("/x", 0.0) is MISS is StatCache.MISS
    c.put("/x", info, 10.0)
    c.put("/none", None, 10.0)
    assert c.get("/x", 10.0) is info
    assert c.get("/x", 11.999) is info
    assert c.get("/none", 11.0) is None  # cached absence, not a miss
    assert c.get("/x", 12.0) is MISS  # expired at exactly ttl
    assert c.get("/none", 9.0) is MISS  # the clock went back: not trusted
    assert len(c) == 0


def test_stat_cache_bounded_first_in_first_out() -> None:
    c = StatCache(ttl=100.0, size=3)
    for name in "abc":
        c.put(name, None, 0.0)
    c.put("a", None, 1.0)  # re-put: now the newest
    c.put("d", None, 1.0)  # evicts b, the oldest
    assert [c.get(n, 2.0) is MISS for n in "abcd"] == [False, True, False, False]
    assert len(c) == 3
    c.clear()
    assert len(c) == 0
    with pytest.raises(ValueError):
        StatCache(size=0)


# --- plan_response: methods, paths, directories --------------------------------------------------


def a_headers(length: int = 1000, content_range: str | None = None) -> list[tuple[str, str]]:
    h = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(length))]
    if content_range is not None:
        h.append(("Content-Range", content_range))
    return [*h, ("Last-Modified", A_LM), ("ETag", A_ETAG), ("Accept-Ranges", "bytes")]


def test_get_file(tree: str) -> None:
    resp = plan(tree, req("/a.txt"))
    assert resp == Response(200, a_headers(), b"", os.path.join(tree, "a.txt"), 0, 1000, False)


def test_head_file_same_headers(tree: str) -> None:
    get = plan(tree, req("/a.txt"))
    head = plan(tree, req("/a.txt", method="HEAD"))
    assert head.head_only and not get.head_only
    assert (head.status, head.headers, head.file_path, head.length) == (
        get.status, get.headers, get.file_path, get.length,
    )  # fmt: skip


def test_empty_file(tree: str) -> None:
    resp = plan(tree, req("/empty.bin"))
    assert resp.status == 200
    assert ("Content-Length", "0") in resp.headers
    assert (resp.body, resp.file_path, resp.length) == (b"", None, 0)


@pytest.mark.parametrize(
    "method", ["OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"]
)
def test_known_methods_405(tree: str, method: str) -> None:
    resp = plan(tree, req("/a.txt", method=method))
    assert resp.status == 405
    assert dict(resp.headers)["Allow"] == "GET, HEAD"
    assert resp.file_path is None


@pytest.mark.parametrize("method", ["BREW", "get", "Head", "PROPFIND", "M-SEARCH"])
def test_other_methods_501(tree: str, method: str) -> None:
    resp = plan(tree, req("/a.txt", method=method))
    assert resp.status == 501
    assert "Allow" not in dict(resp.headers)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/missing", 404),
        ("/../etc/passwd", 404),
        ("/%2e%2e/%2e%2e/etc/passwd", 404),
        ("/..%2f..%2f", 404),
        ("/%252e%252e/", 404),  # a regular file named "%2e%2e" asked for as a directory
        ("/a/..%5c..", 400),
        ("/%00", 400),
        ("/foo%", 400),
        ("/foo%zz", 400),
        ("/link_out", 404),
        ("/dirlink_out/secret.txt", 404),
        ("/a.txt/", 404),
        ("/noindex/", 404),  # no index file and listings off
        ("/idxout/", 404),  # its index.html leads outside
    ],
)
def test_error_statuses(tree: str, path: str, status: int) -> None:
    resp = plan(tree, req(path))
    assert resp.status == status
    assert resp.file_path is None
    assert resp.body.startswith(f"{status} {REASONS[status]}".encode())


def test_double_encoded_name_is_served_literally(tree: str) -> None:
    resp = plan(tree, req("/%252e%252e"))
    assert (resp.status, resp.file_path) == (200, os.path.join(tree, "%2e%2e"))


def test_symlink_inside_served_from_target(tree: str) -> None:
    resp = plan(tree, req("/link_in"))
    assert (resp.status, resp.file_path) == (200, os.path.join(tree, "a.txt"))
    assert dict(resp.headers)["ETag"] == A_ETAG


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/sub", "", "/sub/"),
        ("/sub", "x=1&y=2", "/sub/?x=1&y=2"),
        ("//sub", "", "/sub/"),  # never "//sub/": another host to a browser
        ("/%73ub", "", "/%73ub/"),
        ('/su"b<', "", None),
    ],
)
def test_directory_redirect(tree: str, path: str, query: str, location: str | None) -> None:
    resp = plan(tree, req(path, query=query))
    if location is None:  # no such directory: 404, no redirect
        assert resp.status == 404
        return
    assert resp.status == 301
    assert dict(resp.headers)["Location"] == location


def test_redirect_location_is_percent_encoded(tree: str) -> None:
    os.mkdir(os.path.join(tree, 'q"<>'))
    resp = plan(tree, req('/q"<>'))
    assert (resp.status, dict(resp.headers)["Location"]) == (301, "/q%22%3C%3E/")


def test_directory_index_file(tree: str) -> None:
    resp = plan(tree, req("/sub/"))
    assert (resp.status, resp.file_path) == (200, os.path.join(tree, "sub", "index.html"))
    assert dict(resp.headers)["Content-Type"] == "text/html; charset=utf-8"
    root = plan(tree, req("/"))
    assert (root.status, root.file_path) == (200, os.path.join(tree, "index.html"))


def test_index_files_order(tree: str) -> None:
    resp = plan(tree, req("/sub/"), index_files=("b.css", "index.html"))
    assert resp.file_path == os.path.join(tree, "sub", "b.css")
    resp = plan(tree, req("/sub/"), index_files=("none.html",))
    assert resp.status == 404


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs)["href"]

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


def test_directory_listing(tree: str) -> None:
    with open(os.path.join(os.fsencode(tree), b"noindex", b"\xff.bin"), "wb") as f:
        f.write(b"x")
    resp = plan(tree, req("/noindex/"), index=True)
    assert resp.status == 200
    assert dict(resp.headers)["Content-Type"] == "text/html; charset=utf-8"
    parser = Links()
    parser.feed(resp.body.decode("utf-8"))
    assert parser.links == [
        ("../", "../"),
        ("%3Cx%3E%26.txt", "<x>&.txt"),
        ("a%20b.txt", "a b.txt"),
        ("d/", "d/"),
        ("%C3%BC.txt", "\u00fc.txt"),
        ("%FF.bin", "\ufffd.bin"),  # not UTF-8: shown replaced, linked exactly
    ]
    assert b"&lt;x&gt;&amp;.txt" in resp.body
    assert b"<x>" not in resp.body
    head = plan(tree, req("/noindex/", method="HEAD"), index=True)
    assert head.head_only and head.headers == resp.headers


def test_root_listing_has_no_parent_link(tree: str) -> None:
    os.unlink(os.path.join(tree, "index.html"))
    resp = plan(tree, req("/"), index=True)
    parser = Links()
    parser.feed(resp.body.decode())
    hrefs = [h for h, _ in parser.links]
    assert "../" not in hrefs
    assert "sub/" in hrefs and "a.txt" in hrefs and "dirlink_out/" in hrefs


def test_listing_instead_of_outside_index(tree: str) -> None:
    resp = plan(tree, req("/idxout/"), index=True)
    assert resp.status == 200 and resp.file_path is None
    assert b"secret" not in resp.body


# --- conditionals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ((), 200),
        ((("if-none-match", A_ETAG),), 304),
        ((("if-none-match", "W/" + A_ETAG),), 304),
        ((("if-none-match", '"zzz", ' + A_ETAG),), 304),
        ((("if-none-match", '"a,b",W/' + A_ETAG),), 304),
        ((("if-none-match", "*"),), 304),
        ((("if-none-match", '"zzz"'),), 200),
        ((("if-none-match", A_ETAG[1:-1]),), 200),  # unquoted: not an entity-tag
        ((("if-none-match", '"zzz"'), ("if-modified-since", A_LM)), 200),
        ((("if-none-match", A_ETAG), ("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")), 304),
        ((("if-modified-since", A_LM),), 304),
        ((("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),), 304),
        ((("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT"),), 200),
        ((("if-modified-since", "Tuesday, 14-Nov-23 22:13:20 GMT"),), 304),
        ((("if-modified-since", "Tue Nov 14 22:13:20 2023"),), 304),
        ((("if-modified-since", "Tue Nov 14 22:13:19 2023"),), 200),
        ((("if-modified-since", "garbage"),), 200),
        ((("if-modified-since", "Tue, 14 Nov 2023 22:13:20 UTC"),), 200),
        ((("if-modified-since", "Fri, 31 Nov 2023 22:13:20 GMT"),), 200),
    ],
)
def test_conditionals(tree: str, headers: tuple[tuple[str, str], ...], status: int) -> None:
    for method in ("GET", "HEAD"):
        resp = plan(tree, req("/a.txt", *headers, method=method))
        assert resp.status == status
        if status == 304:
            assert resp == Response(
                304, [("Last-Modified", A_LM), ("ETag", A_ETAG)], b"", None, 0, 0, method == "HEAD"
            )
        else:
            assert resp.headers == a_headers()


def test_conditional_beats_range(tree: str) -> None:
    resp = plan(tree, req("/a.txt", ("if-none-match", A_ETAG), ("range", "bytes=0-9")))
    assert resp.status == 304


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=100-", (100, 999)),
        ("bytes=999-", (999, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-1", (999, 999)),
        ("bytes=-1000", (0, 999)),
        ("bytes=-2000", (0, 999)),
        ("bytes=990-2000", (990, 999)),
        ("bytes=0-99999999999999999999999999", (0, 999)),
        ("bytes=0000000000000000000000000000005-6", (5, 6)),
        ("BYTES=1-2", (1, 2)),
        ("Bytes=1-2, ", (1, 2)),
        ("bytes= 1-2", (1, 2)),
        ("bytes=1000-", 416),
        ("bytes=1000-1001", 416),
        ("bytes=5000-", 416),
        ("bytes=99999999999999999999999999-", 416),
        ("bytes=-0", 416),
        ("bytes=0-1,5-6", 200),
        ("bytes=0-1, 0-1", 200),
        ("bytes=5-3", 200),
        ("bytes=", 200),
        ("bytes=-", 200),
        ("bytes=a-b", 200),
        ("bytes=1 - 2", 200),
        ("bytes=+1-2", 200),
        ("bytes=\u00b2-5", 200),
        ("bytes=\u0661-5", 200),
        ("bytes 0-5", 200),
        ("items=0-5", 200),
        ("bytes=0-1-2", 200),
    ],
)
def test_range(tree: str, value: str, expected: tuple[int, int] | int) -> None:
    resp = plan(tree, req("/a.txt", ("range", value)))
    if expected == 200:
        assert (resp.status, resp.headers, resp.offset, resp.length) == (200, a_headers(), 0, 1000)
    elif expected == 416:
        assert resp.status == 416
        assert ("Content-Range", "bytes */1000") in resp.headers
        assert resp.file_path is None
    else:
        assert isinstance(expected, tuple)
        first, last = expected
        n = last - first + 1
        assert resp == Response(
            206,
            a_headers(n, f"bytes {first}-{last}/1000"),
            b"",
            os.path.join(tree, "a.txt"),
            first,
            n,
            False,
        )
        assert A_DATA[resp.offset : resp.offset + resp.length] == A_DATA[first : last + 1]


def test_range_ignored_for_head(tree: str) -> None:
    # RFC 9110 14.2: Range is defined for GET only.
    resp = plan(tree, req("/a.txt", ("range", "bytes=0-9"), method="HEAD"))
    assert (resp.status, resp.headers, resp.head_only) == (200, a_headers(), True)


def test_range_on_empty_file(tree: str) -> None:
    for value in ("bytes=0-", "bytes=-5", "bytes=0-0"):
        resp = plan(tree, req("/empty.bin", ("range", value)))
        assert resp.status == 416
        assert ("Content-Range", "bytes */0") in resp.headers


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        (A_ETAG, 206),
        ("W/" + A_ETAG, 200),  # If-Range compares strongly
        ('"other"', 200),
        (A_LM, 206),
        ("Tuesday, 14-Nov-23 22:13:20 GMT", 206),
        ("Tue, 14 Nov 2023 22:13:21 GMT", 200),
        ("Tue, 14 Nov 2023 22:13:19 GMT", 200),
        ("garbage", 200),
    ],
)
def test_if_range(tree: str, if_range: str, status: int) -> None:
    resp = plan(tree, req("/a.txt", ("range", "bytes=10-19"), ("if-range", if_range)))
    assert resp.status == status
    assert (resp.offset, resp.length) == ((10, 10) if status == 206 else (0, 1000))


@given(st.text("bytes=0123456789-, \t", max_size=24))
@settings(max_examples=300, deadline=None)
def test_any_range_header_gives_a_consistent_answer(value: str) -> None:
    # A fixed FileInfo: no file system needed.
    info = FileInfo("/r/f.bin", 1000, 0, False, '"3e8-0"', http_date(0), "application/octet-stream")
    resp = plan_response(req("/f.bin", ("range", value)), "/r",
                         lambda p: info if p == "/r/f.bin" else None)  # fmt: skip
    check_lengths(resp)
    assert resp.status in (200, 206, 416)
    if resp.status == 206:
        first, last = resp.offset, resp.offset + resp.length - 1
        assert 0 <= first <= last < 1000
        assert dict(resp.headers)["Content-Range"] == f"bytes {first}-{last}/1000"
    if resp.status == 200:
        assert (resp.offset, resp.length) == (0, 1000)


# --- error responses and serialization ----------------------------------------------------------

RFC9110_REASONS = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def test_reason_phrases() -> None:
    assert REASONS == RFC9110_REASONS


@pytest.mark.parametrize("status", [400, 404, 405, 408, 413, 414, 431, 500, 501, 505])
def test_error_response(status: int) -> None:
    resp = error_response(status, "what \u00e9 went wrong")
    text = resp.body.decode("ascii")
    assert text == f"{status} {RFC9110_REASONS[status]}\nwhat \\xe9 went wrong\n"
    assert resp.headers == [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(resp.body))),
    ]
    assert (resp.status, resp.file_path, resp.head_only) == (status, None, False)
    assert error_response(status).body == f"{status} {RFC9110_REASONS[status]}\n".encode()


class FakeSock:
    def __init__(self, data: bytes) -> None:
        self.file = io.BytesIO(data)

    def makefile(self, mode: str, *args: object, **kw: object) -> io.BytesIO:
        return self.file


def read_back(data: bytes, method: str = "GET") -> http.client.HTTPResponse:
    resp = http.client.HTTPResponse(FakeSock(data), method=method)  # type: ignore[arg-type]
    resp.begin()
    return resp


@pytest.mark.parametrize("keep_alive", [True, False])
def test_serialize_head_read_by_http_client(keep_alive: bool) -> None:
    resp = error_response(404, "nope")
    head = serialize_head(resp, keep_alive=keep_alive, date=http_date(784111777), server="x/1")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    back = read_back(head + resp.body + b"NEXT")
    assert (back.status, back.reason, back.version) == (404, "Not Found", 11)
    assert back.getheaders() == [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(resp.body))),
        ("Connection", "keep-alive" if keep_alive else "close"),
        ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("Server", "x/1"),
    ]
    assert back.will_close is (not keep_alive)
    assert back.read() == resp.body  # Content-Length frames the body exactly


def test_serialize_planned_responses(tree: str) -> None:
    date = http_date(0)
    for r in (req("/a.txt"), req("/a.txt", ("range", "bytes=-10")), req("/sub"),
              req("/a.txt", ("if-none-match", A_ETAG)), req("/x", method="POST")):  # fmt: skip
        resp = plan(tree, r)
        head = serialize_head(resp, keep_alive=True, date=date)
        body = resp.body + (
            A_DATA[resp.offset : resp.offset + resp.length] if resp.file_path else b""
        )
        back = read_back(head + body)
        assert back.status == resp.status
        assert back.reason == RFC9110_REASONS[resp.status]
        assert [(k, v) for k, v in back.getheaders()][: len(resp.headers)] == resp.headers
        assert back.getheader("Server") == "netfast"
        assert back.read() == body


def test_head_response_read_by_http_client(tree: str) -> None:
    resp = plan(tree, req("/a.txt", method="HEAD"))
    head = serialize_head(resp, keep_alive=True, date=http_date(0))
    back = read_back(head, method="HEAD")
    assert back.getheader("Content-Length") == "1000"
    assert back.read() == b""
