"""Tests for netfast.httpd.proto: the sans-IO HTTP/1.1 request parser and the accept filter test.

Every input is parsed three ways -- whole, one byte at a time, and followed by another
(pipelined) request -- and the ways must agree.  Expected values are written out by hand or built
from the generating data, never taken from the parser.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfast.httpd.proto import (
    MAX_EMPTY_LINES,
    HttpError,
    Request,
    RequestParser,
    request_complete,
)

# --- helpers ------------------------------------------------------------------------------------


def drain(p: RequestParser) -> list[Request]:
    out = []
    while (r := p.next_request()) is not None:
        out.append(r)
    return out


def parse_whole(data: bytes, **kw: int) -> list[Request]:
    p = RequestParser(**kw)
    p.feed(data)
    return drain(p)


def parse_bytewise(data: bytes, **kw: int) -> list[Request]:
    p = RequestParser(**kw)
    out = []
    for i in range(len(data)):
        p.feed(data[i : i + 1])
        out.extend(drain(p))
    return out


TRAILER = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"


def parse_one(data: bytes, **kw: int) -> Request:
    """The single request in ``data``, checked whole, bytewise and with a pipelined trailer."""
    whole = parse_whole(data, **kw)
    assert len(whole) == 1
    assert parse_bytewise(data, **kw) == whole
    both = parse_whole(data + TRAILER, **kw)
    assert both[0] == whole[0]
    assert [r.target for r in both[1:]] == ["/next"]
    return whole[0]


def error_of(data: bytes, **kw: int) -> HttpError:
    """The error ``data`` raises, whole and bytewise (same status); checks it is sticky."""
    p = RequestParser(**kw)
    p.feed(data)
    with pytest.raises(HttpError) as whole:
        drain(p)
    # Sticky: the same error again, and fed bytes are ignored.
    p.feed(TRAILER)
    with pytest.raises(HttpError) as again:
        p.next_request()
    assert (again.value.status, again.value.detail) == (whole.value.status, whole.value.detail)
    assert p.buffered == 0
    with pytest.raises(HttpError) as bytewise:
        parse_bytewise(data, **kw)
    assert bytewise.value.status == whole.value.status
    return whole.value


def status_of(data: bytes, **kw: int) -> int:
    return error_of(data, **kw).status


def get(target: str = "/", *lines: str, version: str = "HTTP/1.1", method: str = "GET") -> bytes:
    head = f"{method} {target} {version}\r\n" + "".join(line + "\r\n" for line in lines)
    return head.encode("latin-1") + b"\r\n"


# --- valid requests -----------------------------------------------------------------------------


def test_simple_get() -> None:
    r = parse_one(b"GET /a/b.html?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    assert r == Request(
        method="GET",
        target="/a/b.html?x=1&y=%20",
        path="/a/b.html",
        query="x=1&y=%20",
        version=(1, 1),
        headers=(("host", "example.com"), ("accept", "*/*")),
        keep_alive=True,
    )
    assert r.header("host") == "example.com"
    assert r.header("user-agent") is None


def test_header_names_lowered_values_stripped_order_kept() -> None:
    r = parse_one(get("/", "X-One:  a b \t", "x-ONE:\tsecond", "Host:h", "Empty:", "Sp:   "))
    assert r.headers == (
        ("x-one", "a b"),
        ("x-one", "second"),
        ("host", "h"),
        ("empty", ""),
        ("sp", ""),
    )
    assert r.header("x-one") == "a b"  # the first value


def test_obs_text_decoded_as_latin1() -> None:
    r = parse_one(b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n")
    assert r.header("x-name") == "caf\xc3\xa9 \xff"  # latin-1: one code point per byte


def test_http10_without_host() -> None:
    r = parse_one(b"GET /x HTTP/1.0\r\n\r\n")
    assert (r.version, r.keep_alive, r.headers) == ((1, 0), False, ())


@pytest.mark.parametrize(
    ("version", "expected"),
    [("HTTP/1.0", (1, 0)), ("HTTP/1.1", (1, 1)), ("HTTP/1.2", (1, 1)), ("HTTP/1.9", (1, 1))],
)
def test_versions_accepted(version: str, expected: tuple[int, int]) -> None:
    assert parse_one(get("/", "Host: h", version=version)).version == expected


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9"])
def test_other_major_version_is_505(version: str) -> None:
    assert status_of(get("/", "Host: h", version=version)) == 505


@pytest.mark.parametrize(
    "version",
    ["HTTP/1", "HTTP/2", "HTTP/1.10", "HTTP/11.1", "http/1.1", "HTTP/1.1 ", "HTTP1.1",
     "HTTP/\xb9.1", "HTTP/1,1", "HTTPS/1.1", ""],
)  # fmt: skip
def test_malformed_version_is_400(version: str) -> None:
    assert status_of(get("/", "Host: h", version=version)) == 400


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Close", False),
        ("HTTP/1.1", "keep-alive", True),
        ("HTTP/1.1", "upgrade, close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
        ("HTTP/1.0", "Keep-Alive", True),
        ("HTTP/1.0", "te, keep-alive", True),
        ("HTTP/1.0", "keep-alive, close", False),
        ("HTTP/1.0", "keep-alive-ish", False),
    ],
)
def test_keep_alive(version: str, connection: str | None, keep: bool) -> None:
    lines = ["Host: h"] + ([f"Connection: {connection}"] if connection else [])
    assert parse_one(get("/", *lines, version=version)).keep_alive is keep


def test_keep_alive_from_several_connection_fields() -> None:
    data = get("/", "Host: h", "Connection: keep-alive", "Connection: close")
    assert parse_one(data).keep_alive is False


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/a?", "/a", ""),
        ("/a?b?c", "/a", "b?c"),
        ("/%2e%2e/x", "/%2e%2e/x", ""),
        ("http://example.com/z/y?q=1", "/z/y", "q=1"),
        ("HTTP://example.com", "/", ""),
        ("https://example.com:8443?q", "/", "q"),
    ],
)
def test_targets(target: str, path: str, query: str) -> None:
    r = parse_one(get(target, "Host: example.com"))
    assert (r.target, r.path, r.query) == (target, path, query)


def test_options_star() -> None:
    r = parse_one(get("*", "Host: h", method="OPTIONS"))
    assert (r.method, r.path, r.query) == ("OPTIONS", "*", "")


def test_method_is_case_sensitive_token_and_not_policed() -> None:
    # The parser passes any token on; the planner answers 405/501.
    for method in ("get", "BREW", "M-SEARCH", "X_Y!#$%&'*+.^`|~9"):
        assert parse_one(get("/", "Host: h", method=method)).method == method


@pytest.mark.parametrize("n", [1, 2, MAX_EMPTY_LINES])
def test_leading_empty_lines_ignored(n: int) -> None:
    r = parse_one(b"\r\n" * n + get("/e", "Host: h"))
    assert r.target == "/e"


def test_too_many_leading_empty_lines() -> None:
    assert status_of(b"\r\n" * (MAX_EMPTY_LINES + 1) + get("/", "Host: h")) == 400


def test_empty_line_between_pipelined_requests() -> None:
    data = get("/1", "Host: h") + b"\r\n" + get("/2", "Host: h")
    assert [r.target for r in parse_whole(data)] == ["/1", "/2"]
    assert [r.target for r in parse_bytewise(data)] == ["/1", "/2"]


# --- request line errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GET  / HTTP/1.1",
        b"GET /  HTTP/1.1",
        b" GET / HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b"GET\t/ HTTP/1.1",
        b"GET /\tHTTP/1.1",
        b"GET / a HTTP/1.1",
        b"GET /",
        b"GET / ",
        b"/ HTTP/1.1",
        b"GE(T / HTTP/1.1",
        b"GE:T / HTTP/1.1",
        b"G\x80T / HTTP/1.1",
        b"GET /\x7f HTTP/1.1",
        b"GET /\x00 HTTP/1.1",
        b"GET /caf\xc3\xa9 HTTP/1.1",
        b"GET index.html HTTP/1.1",
        b"GET * HTTP/1.1",
        b"CONNECT example.com:443 HTTP/1.1",
        b"GET ftp://example.com/ HTTP/1.1",
        b"GET http:///x HTTP/1.1",
        b"GET http://h#frag HTTP/1.1",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
)
def test_bad_request_line(line: bytes) -> None:
    assert status_of(line + b"\r\nHost: h\r\n\r\n") == 400


# --- CR and LF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: h\n\n",
        b"GET / HTTP/1.1\r\nHost: h\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\nb\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
        b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
    ],
)
def test_bare_cr_or_lf_is_400(data: bytes) -> None:
    assert status_of(data) == 400


def test_bare_lf_refused_before_the_head_ends() -> None:
    # A head that only uses LF never shows CRLF CRLF: it must not wait for the timeout.
    p = RequestParser()
    p.feed(b"GET / HTTP/1.1\nHost: h\n")
    with pytest.raises(HttpError) as e:
        p.next_request()
    assert e.value.status == 400
    assert request_complete(b"GET / HTTP/1.1\nHost: h\n")


# --- header field errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b" folded",
        b"\tfolded",
        b"Host : h",
        b"X\t: y",
        b"X y: z",
        b": no name",
        b"no colon",
        b"X(: y",
        b"X\x80: y",
        b"X: nul \x00 in value",
        b"X: \x01",
        b"X: \x1f",
        b"X: del \x7f",
        b"X: \x0b vt",
        b"X: \x0c ff",
    ],
)
def test_bad_field_line_is_400(line: bytes) -> None:
    assert status_of(b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\nY: z\r\n\r\n") == 400


def test_obs_fold_continuation_refused() -> None:
    e = error_of(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n")
    assert e.status == 400
    assert "obs-fold" in e.detail


def test_htab_in_value_allowed() -> None:
    assert parse_one(get("/", "Host: h", "X: a\tb")).header("x") == "a\tb"


# --- Host ------------------------------------------------------------------------------------


def test_http11_without_host_is_400() -> None:
    assert status_of(get("/", "X: y")) == 400


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_two_host_fields_are_400(version: str) -> None:
    assert status_of(get("/", "Host: a", "Host: a", version=version)) == 400


@pytest.mark.parametrize("host", ["a b", "a/b", "a@b", 'a"b', "a\tb"])
def test_invalid_host_is_400(host: str) -> None:
    assert status_of(get("/", f"Host: {host}")) == 400


@pytest.mark.parametrize("host", ["", "example.com", "example.com:8080", "[::1]:80", "10.0.0.1"])
def test_valid_host(host: str) -> None:
    assert parse_one(get("/", f"Host: {host}")).header("host") == host


# --- Content-Length and Transfer-Encoding ----------------------------------------------------


def post(*lines: str, body: bytes = b"") -> bytes:
    return get("/form", "Host: h", *lines, method="POST") + body


@pytest.mark.parametrize(
    "value",
    [
        b"\xb2",  # "²" in latin-1: str.isdigit() is True, int() refuses it
        b"\xb9",  # "¹"
        "\u0663".encode(),  # Arabic-Indic three, as UTF-8 bytes
        "\uff15".encode(),  # fullwidth five
        b"+5",
        b"-5",
        b"5_0",
        b"0x5",
        b"5.0",
        b"5e0",
        b"1 2",
        b"",
        b",",
        b"5,",
        b"5,,5",
    ],
)
def test_content_length_not_ascii_digits_is_400(value: bytes) -> None:
    assert "\xb2".isdigit()  # the trap this test is about
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\n12345"
    assert status_of(data) == 400


def test_content_length_ows_is_not_part_of_the_value() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \t 5 \r\n\r\n12345"
    assert parse_one(data).header("content-length") == "5"


@pytest.mark.parametrize(
    "lines", [("Content-Length: 5", "Content-Length: 6"), ("Content-Length: 5, 6",)]
)
def test_conflicting_content_length_is_400(lines: tuple[str, ...]) -> None:
    assert status_of(post(*lines, body=b"123456")) == 400


@pytest.mark.parametrize(
    "lines",
    [
        ("Content-Length: 5", "Content-Length: 5"),
        ("Content-Length: 5, 5",),
        ("Content-Length: 05",),
    ],
)
def test_identical_content_length_values_accepted(lines: tuple[str, ...]) -> None:
    data = post(*lines, body=b"12345")
    assert parse_one(data).target == "/form"


def test_content_length_limit() -> None:
    assert parse_one(post("Content-Length: 10", body=b"0123456789"), max_body=10).method == "POST"
    assert status_of(post("Content-Length: 11", body=b"01234567890"), max_body=10) == 413


def test_huge_content_length_is_413_not_a_crash() -> None:
    # int() refuses strings of more than 4300 digits; the parser must still answer.
    assert status_of(post("Content-Length: " + "9" * 5000)) == 413
    assert parse_one(post("Content-Length: " + "0" * 5000 + "3", body=b"abc")).method == "POST"


@pytest.mark.parametrize(
    ("method", "lines", "status"),
    [
        ("GET", ("Transfer-Encoding: chunked",), 400),
        ("HEAD", ("Transfer-Encoding: chunked",), 400),
        ("GET", ("Transfer-Encoding: chunked", "Content-Length: 3"), 400),
        ("POST", ("Content-Length: 3", "Transfer-Encoding: chunked"), 400),
        ("POST", ("Transfer-Encoding: chunked",), 501),
        ("POST", ("Transfer-Encoding: gzip, chunked",), 501),
        ("PUT", ("transfer-encoding: identity",), 501),
    ],
)
def test_transfer_encoding(method: str, lines: tuple[str, ...], status: int) -> None:
    assert (
        status_of(get("/", "Host: h", *lines, method=method) + b"3\r\nabc\r\n0\r\n\r\n") == status
    )


# --- bodies and pipelining ----------------------------------------------------------------------


def test_body_skipped_and_pipelining_stays_in_sync() -> None:
    # The body looks like a request: it must be skipped, not parsed.
    body = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    data = (
        get("/1", "Host: h")
        + post(f"Content-Length: {len(body)}", body=body)
        + get("/3", "Host: h", "Connection: close")
    )
    for out in (parse_whole(data), parse_bytewise(data)):
        assert [(r.method, r.target) for r in out] == [("GET", "/1"), ("POST", "/form"),
                                                       ("GET", "/3")]  # fmt: skip
        assert [r.keep_alive for r in out] == [True, True, False]


def test_request_with_body_returned_once_the_body_is_in() -> None:
    p = RequestParser()
    p.feed(post("Content-Length: 6", body=b"abc"))
    assert p.next_request() is None
    assert p.in_request
    assert p.buffered == 0  # the body is skipped as it comes, never held
    p.feed(b"de")
    assert p.next_request() is None
    p.feed(b"f" + get("/after", "Host: h"))
    assert p.next_request().target == "/form"  # type: ignore[union-attr]
    assert p.next_request().target == "/after"  # type: ignore[union-attr]
    assert p.next_request() is None
    assert not p.in_request


def test_many_pipelined_in_one_feed() -> None:
    data = b"".join(get(f"/{i}", "Host: h") for i in range(50))
    assert [r.target for r in parse_whole(data)] == [f"/{i}" for i in range(50)]


def test_buffered_and_in_request() -> None:
    p = RequestParser()
    assert (p.buffered, p.in_request) == (0, False)
    p.feed(b"\r\n")
    assert p.next_request() is None
    assert not p.in_request  # empty lines only: idle, not a request
    p.feed(b"GET / HT")
    assert p.next_request() is None
    assert p.in_request
    assert p.buffered == 8
    p.feed(b"TP/1.1\r\nHost: h\r\n\r\nGET /2")
    assert p.next_request() is not None
    assert p.buffered == 6
    assert p.in_request
    p.feed(b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert p.next_request() is not None
    assert (p.buffered, p.in_request) == (0, False)


# --- limits -------------------------------------------------------------------------------------


def line_of(n: int) -> bytes:
    """A request line of exactly ``n`` bytes."""
    fixed = len(b"GET / HTTP/1.1") - 1
    return b"GET /" + b"a" * (n - fixed - 1) + b" HTTP/1.1"


@pytest.mark.parametrize("max_line", [20, 100, 8192])
def test_max_line_boundary(max_line: int) -> None:
    ok = line_of(max_line)
    assert len(ok) == max_line
    assert parse_one(ok + b"\r\nHost: h\r\n\r\n", max_line=max_line).version == (1, 1)
    assert status_of(line_of(max_line + 1) + b"\r\nHost: h\r\n\r\n", max_line=max_line) == 414


def test_long_line_refused_before_its_crlf() -> None:
    p = RequestParser(max_line=50)
    p.feed(line_of(50))
    assert p.next_request() is None
    p.feed(b"\r")  # may still become a CRLF
    assert p.next_request() is None
    p2 = RequestParser(max_line=50)
    p2.feed(line_of(51))
    with pytest.raises(HttpError) as e:
        p2.next_request()
    assert e.value.status == 414
    assert not request_complete(line_of(50) + b"\r", max_line=50)
    assert request_complete(line_of(51), max_line=50)


def fields_of(total: int) -> bytes:
    """Field lines (each with CRLF) of exactly ``total`` bytes, the first a Host."""
    host = b"Host: h\r\n"
    return host + b"X: " + b"v" * (total - len(host) - 5) + b"\r\n"


@pytest.mark.parametrize("limit", [30, 200, 16384])
def test_max_header_bytes_boundary(limit: int) -> None:
    assert len(fields_of(limit)) == limit
    ok = b"GET / HTTP/1.1\r\n" + fields_of(limit) + b"\r\n"
    assert parse_one(ok, max_header_bytes=limit).header("host") == "h"
    bad = b"GET / HTTP/1.1\r\n" + fields_of(limit + 1) + b"\r\n"
    assert status_of(bad, max_header_bytes=limit) == 431


def test_header_bytes_refused_before_the_end() -> None:
    p = RequestParser(max_header_bytes=100)
    p.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 200)
    with pytest.raises(HttpError) as e:
        p.next_request()
    assert e.value.status == 431
    assert request_complete(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 200, max_header_bytes=100)


@pytest.mark.parametrize("limit", [30, 200])
def test_header_bytes_early_boundary(limit: int) -> None:
    # Without the final CRLF yet: exactly the limit and a CR may still end well...
    ok = b"GET / HTTP/1.1\r\n" + fields_of(limit) + b"\r"
    p = RequestParser(max_header_bytes=limit)
    p.feed(ok)
    assert p.next_request() is None
    assert not request_complete(ok, max_header_bytes=limit)
    p.feed(b"\n")
    assert p.next_request() is not None
    # ...one byte more cannot.
    bad = b"GET / HTTP/1.1\r\n" + fields_of(limit + 1) + b"\r"
    p = RequestParser(max_header_bytes=limit)
    p.feed(bad)
    with pytest.raises(HttpError) as e:
        p.next_request()
    assert e.value.status == 431
    assert request_complete(bad, max_header_bytes=limit)


@pytest.mark.parametrize("limit", [1, 5, 100])
def test_max_headers_boundary(limit: int) -> None:
    lines = ["Host: h"] + [f"X-{i}: {i}" for i in range(limit - 1)]
    assert len(parse_one(get("/", *lines), max_headers=limit).headers) == limit
    assert status_of(get("/", *lines, "One: more"), max_headers=limit) == 431


def test_pathological_values_stay_fast() -> None:
    # Patterns that would backtrack quadratically on long whitespace runs.
    for value in (b" " * 16000 + b"\x01", b" a" * 8000 + b"\x01", b"\t " * 8000):
        data = b"GET / HTTP/1.1\r\nHost: h\r\nX:" + value + b"\r\n\r\n"
        t0 = time.perf_counter()
        p = RequestParser(max_header_bytes=1 << 16)
        p.feed(data)
        with contextlib.suppress(HttpError):
            p.next_request()
        assert time.perf_counter() - t0 < 0.5


def test_trickled_head_is_not_rescanned() -> None:
    # One byte at a time through a 16 kB head: linear work, so well under a second.
    data = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: " + b"v" * 16000 + b"\r\n\r\n"
    t0 = time.perf_counter()
    assert len(parse_bytewise(data, max_header_bytes=1 << 15)) == 1
    assert time.perf_counter() - t0 < 2.0


def test_bad_limits_refused() -> None:
    with pytest.raises(ValueError):
        RequestParser(max_line=0)


# --- hypothesis: generated valid requests ---------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PCHARS = "abcXYZ019-._~!$&'()*+,;=:@%/"
VCHARS = "".join(chr(c) for c in range(0x21, 0x7F)) + "\x80\xe9\xff"

tokens = st.text(TCHARS, min_size=1, max_size=12)
names = tokens.filter(lambda n: n.lower() not in ("host", "content-length", "transfer-encoding",
                                                  "connection"))  # fmt: skip
values = st.text(VCHARS + " \t", max_size=24).map(lambda v: v.strip(" \t"))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, Request]:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"]) | tokens)
    path = "/" + draw(st.text(PCHARS, max_size=20))
    query = draw(st.none() | st.text(PCHARS + "?", max_size=10))
    target = path if query is None else f"{path}?{query}"
    minor = draw(st.sampled_from([0, 1]))
    fields = [("host", draw(st.sampled_from(["h", "example.com:80", ""])))]
    fields += draw(st.lists(st.tuples(names, values), max_size=6))
    body = draw(st.none() | st.binary(max_size=30))
    if body is not None:
        fields.insert(draw(st.integers(0, len(fields))), ("content-length", str(len(body))))
    lead = b"\r\n" * draw(st.integers(0, 2))
    ows = draw(st.sampled_from(["", " ", "\t", "  "]))
    head = f"{method} {target} HTTP/1.{minor}\r\n" + "".join(
        f"{n.upper() if i % 2 else n}:{ows}{v}{ows}\r\n" for i, (n, v) in enumerate(fields)
    )
    data = lead + head.encode("latin-1") + b"\r\n" + (body or b"")
    expected = Request(method, target, path, query or "", (1, minor),
                       tuple((n.lower(), v) for n, v in fields), minor == 1)  # fmt: skip
    return data, expected


@given(requests())
@settings(max_examples=300, deadline=None)
def test_generated_requests_three_ways(case: tuple[bytes, Request]) -> None:
    data, expected = case
    assert parse_one(data) == expected


@given(requests())
@settings(max_examples=100, deadline=None)
def test_headers_agree_with_http_client(case: tuple[bytes, Request]) -> None:
    # Python's email-based header parser as an oracle for names and values.
    data, _ = case
    r = parse_one(data)
    block = data.lstrip(b"\r\n").split(b"\r\n", 1)[1].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    msg = http.client.parse_headers(io.BytesIO(block))
    assert [(k.lower(), v.strip(" \t")) for k, v in msg.items()] == list(r.headers)


@given(requests())
@settings(max_examples=200, deadline=None)
def test_request_complete_agrees_with_parser(case: tuple[bytes, Request]) -> None:
    raw, _ = case
    for k in range(len(raw) + 1):
        p = RequestParser()
        p.feed(raw[:k])
        parsed = p.next_request() is not None
        assert request_complete(raw[:k]) is parsed, k
    # Any input types the server may hand over.
    assert request_complete(bytearray(raw))
    assert request_complete(memoryview(raw))


# --- request_complete on bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x00",  # a TLS ClientHello on a plain port
        b"GET / HTTP/1.1\n",
        b"GET / HTTP/1.1\r\nHost: h\rX",
        b"G\x00",
        b" GET",
        b"GET  /",
        b"GET / HTTP/2.0\r\n",
        b"GET / HTTP/1.1 \r\n",
        b"\r\n" * (MAX_EMPTY_LINES + 1),
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_request_complete_true_when_certainly_bad(data: bytes) -> None:
    assert request_complete(data)
    with pytest.raises(HttpError):
        p = RequestParser()
        p.feed(data)
        p.next_request()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"\r",
        b"G",
        b"GET",
        b"GET ",
        b"GET /index.html HTTP/1.1\r",
        b"GET / HTTP/1.1\r\nHost: h\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r",
        b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 4\r\n\r\nabc",
    ],
)
def test_request_complete_false_when_incomplete(data: bytes) -> None:
    assert not request_complete(data)
    p = RequestParser()
    p.feed(data)
    assert p.next_request() is None


def test_request_complete_respects_max_body() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
    assert not request_complete(data, max_body=100)
    assert request_complete(data, max_body=99)


def test_http_error_fields() -> None:
    e = HttpError(431, "too many")
    assert (e.status, e.detail, str(e)) == (431, "too many", "431 too many")
