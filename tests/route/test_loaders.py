"""Route-file loaders: every real table loads with the count its header states, values round-trip,
malformed lines are reported with their line number, and the bulk fill equals Rib.add."""

from __future__ import annotations

import bz2
import gzip
import ipaddress
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.route.loaders import (
    LoadStats,
    RouteFileError,
    default_table_path,
    detect_format,
    iter_routes,
    iter_updates,
    load_table,
)
from netfast.route.rib import Rib, format_prefix, prefix_mask

ROUTES = Path("routes")


def _header(path: Path) -> dict[str, str]:
    """The ``# key: value`` header lines of a shared route file."""
    out = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, _, val = line[1:].strip().partition(": ")
            out[key] = val
    return out


def _oracle(path: Path) -> dict[tuple[int, int], str]:
    """The file read with the standard library alone."""
    out = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            prefix, value = line.rstrip("\n").split("\t")
            net = ipaddress.ip_network(prefix, strict=True)
            if net.version == 4:
                out[(int(net.network_address), net.prefixlen)] = value
    return out


def _ipv4_files(shared: Path) -> list[Path]:
    return sorted((shared / ROUTES).glob("ipv4-*.txt.gz"))


@pytest.mark.slow
def test_every_real_ipv4_table(shared_data: Path) -> None:
    files = _ipv4_files(shared_data)
    assert len(files) >= 8
    for path in files:
        header = _header(path)
        stated = int(re.match(r"\d+", header["prefixes"]).group())  # type: ignore[union-attr]
        res = load_table(path)
        assert len(res.rib) == stated, path.name
        assert res.stats.routes == stated and res.stats.skipped_total == 0
        assert res.stats.duplicates == 0 and res.stats.ipv6_skipped == 0
        # the histogram in the header, computed from the loaded table
        hist = dict(
            (int(k), int(v))
            for k, v in (item[1:].split(":") for item in header["prefix-length histogram"].split())
        )
        lengths, counts = np.unique(res.rib.plen[: res.rib.route_count], return_counts=True)
        assert dict(zip(lengths.tolist(), counts.tolist(), strict=True)) == hist, path.name
        # every value, against an independent parse
        oracle = _oracle(path)
        rib = res.rib
        got = {(n, p): rib.value_of(rid) for n, p, rid in rib.items()}
        assert got == oracle, path.name


def test_spot_checks_of_the_2026_table(shared_data: Path) -> None:
    rib = load_table(shared_data / ROUTES / "ipv4-dfz-20260619.txt.gz").rib
    for prefix, origin in [
        ("1.1.1.0/24", "13335"),
        ("8.8.8.0/24", "15169"),
        ("9.9.9.0/24", "19281"),
        ("193.0.0.0/21", "3333"),
    ]:
        net = ipaddress.ip_network(prefix)
        rid = rib.get(int(net.network_address), net.prefixlen)
        assert rid is not None and rib.value_of(rid) == origin
    multi = [v for v in rib.values if "_" in str(v)]
    assert len({v for v in multi}) > 100  # MOAS values kept as written, e.g. '1101_6939'


def test_bundled_default_table_is_the_shared_file(shared_data: Path) -> None:
    bundled = default_table_path()
    assert bundled.read_bytes() == (shared_data / ROUTES / "ipv4-dfz-20260619.txt.gz").read_bytes()
    assert "ipv4-dfz-20260619.txt.gz" in (bundled.parent / "SOURCES.md").read_text()


def test_ipv6_tables_are_skipped_and_counted(shared_data: Path) -> None:
    for path in sorted((shared_data / ROUTES).glob("ipv6-*.txt.gz")):
        stated = int(re.match(r"\d+", _header(path)["prefixes"]).group())  # type: ignore[union-attr]
        res = load_table(path)
        assert len(res.rib) == 0
        assert res.stats.ipv6_skipped == stated


def test_pfx2as_format(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / ROUTES / "ipv4-dfz-20160202-caida-pfx2as.txt.gz"
    oracle = _oracle(src)
    lines = [f"{format_prefix(n, p).replace('/', chr(9))}\t{v}" for (n, p), v in oracle.items()]
    lines.insert(3, "2001:db8::\t32\t64500")
    out = tmp_path / "rv2.pfx2as"
    out.write_text("\n".join(lines) + "\n")
    with open(out, "rb") as f:
        assert detect_format(f.read()) == "pfx2as"
    res = load_table(out)
    assert res.stats.format == "pfx2as" and res.stats.ipv6_skipped == 1
    assert {(n, p): res.rib.value_of(r) for n, p, r in res.rib.items()} == oracle


def _write(tmp: Path, name: str, text: str, how: str = "plain") -> Path:
    path = tmp / name
    data = text.encode()
    if how == "gzip":
        data = gzip.compress(data)
    elif how == "bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


SMALL = "# a header\n# more\n10.0.0.0/8\t64500\n192.0.2.0/24\t64501_64502\n\n0.0.0.0/0\tdefault\n"


@pytest.mark.parametrize("how", ["gzip", "bz2"])
def test_compressed_and_plain_identical(tmp_path: Path, how: str) -> None:
    plain = load_table(_write(tmp_path, "t.txt", SMALL))
    packed = load_table(_write(tmp_path, "t.txt.x", SMALL, how))
    assert list(plain.rib.items()) == list(packed.rib.items())
    assert plain.rib.values == packed.rib.values == ["64500", "64501_64502", "default"]
    assert plain.stats.lines == packed.stats.lines == 6


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    text = SMALL.replace("\n", "\r\n").rstrip("\r\n")
    res = load_table(_write(tmp_path, "t.txt", text))
    assert sorted(res.rib.values, key=str) == ["64500", "64501_64502", "default"]


def test_duplicates_last_one_wins(tmp_path: Path) -> None:
    text = "10.0.0.0/8\ta\n10.1.0.0/16\tb\n10.0.0.0/8\tc\n"
    res = load_table(_write(tmp_path, "t.txt", text))
    rib = res.rib
    assert len(rib) == 2 and res.stats.duplicates == 1
    assert rib.value_of(rib.get(0x0A000000, 8)) == "c"
    assert rib.get(0x0A000000, 8) == 0  # the rid of first sight, as Rib.add would give
    assert list(iter_routes(_write(tmp_path, "t.txt", text))) == [
        (0x0A000000, 8, "a"),
        (0x0A010000, 16, "b"),
        (0x0A000000, 8, "c"),
    ]


BAD_LINES = [
    ("10.0.0/8\tx", "bad_address", "'10.0.0' is not a dotted-quad IPv4 address"),
    ("10.0.0.256/32\tx", "bad_address", "'10.0.0.256' has an octet above 255"),
    ("10.0.0.1/24\tx", "host_bits", "'10.0.0.1/24' has host bits set beyond /24"),
    ("10.0.0.0/33\tx", "bad_length", "prefix length '33' is not an integer 0..32"),
    ("10.0.0.0/\tx", "bad_length", "prefix length '' is not an integer 0..32"),
    ("10.0.0.0/2a\tx", "bad_length", "prefix length '2a' is not an integer 0..32"),
    ("10.0.0.0\tx", "not_a_prefix", "'10.0.0.0' is not a prefix (no '/len')"),
    ("10.0.0.0/8 64500", "missing_tab", "expected 2 tab-separated fields"),
    ("10.0.0.0/8\t", "empty_value", "empty value"),
    ("10.0.0.0/8\t  ", "empty_value", "empty value"),
    ("10.0.0.0/8\ta\tb", "extra_field", "3 tab-separated fields, expected 2"),
    ("hello world", "missing_tab", "expected 2 tab-separated fields"),
    ("\x00\x01garbage\tx", "not_a_prefix", "is not a prefix (no '/len')"),
    ("1.2.3.4.5/32\tx", "bad_address", "not a dotted-quad"),
    ("1.2.3.0004/32\tx", "bad_address", "not a dotted-quad"),
    ("\u0661.2.3.0/24\tx", "bad_address", "not a dotted-quad"),
]


@pytest.mark.parametrize(("line", "reason", "message"), BAD_LINES)
def test_malformed_line_names_file_line_and_problem(
    tmp_path: Path, line: str, reason: str, message: str
) -> None:
    good = [f"10.{i}.0.0/16\t{i}" for i in range(20)]
    lines = ["# header", *good[:15], line, *good[15:]]  # the bad line is line 17
    path = _write(tmp_path, "table.txt", "\n".join(lines) + "\n")
    with pytest.raises(RouteFileError) as info:
        load_table(path)
    err = info.value
    assert str(err).startswith(f"{path}: line 17: ")
    assert message in str(err)
    assert err.line == 17 and err.path == str(path)
    with pytest.raises(RouteFileError, match="line 17: "):
        list(iter_routes(path))
    res = load_table(path, skip_bad=True)
    assert len(res.rib) == 20
    assert res.stats.skipped == {reason: 1}
    assert res.stats.first_errors == [str(err)]


def test_pfx2as_malformed_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.pfx2as", "1.0.0.0\t24\t13335\n1.0.4.1\t24\t1\n1.0.5.0\t24\n")
    with pytest.raises(RouteFileError, match=r"line 2: '1.0.4.1/24' has host bits set beyond /24"):
        load_table(path)
    res = load_table(path, skip_bad=True)
    assert len(res.rib) == 1
    assert res.stats.skipped == {"host_bits": 1, "missing_tab": 1}


def test_skip_bad_keeps_the_first_few_reasons(tmp_path: Path) -> None:
    lines = [f"10.{i}.0.1/16\tx" if i % 2 else f"10.{i}.0.0/16\tx" for i in range(40)]
    res = load_table(_write(tmp_path, "t.txt", "\n".join(lines)), skip_bad=True)
    assert len(res.rib) == 20 and res.stats.skipped == {"host_bits": 20}
    assert len(res.stats.first_errors) == 5
    assert res.stats.first_errors[0].endswith("line 2: '10.1.0.1/16' has host bits set beyond /16")


def test_error_late_in_a_big_file_returns_nothing(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / ROUTES / "ipv4-dfz-20080501-routeviews.txt.gz"
    text = gzip.decompress(src.read_bytes()).decode() + "3.0.0.1/8\t80\n"
    path = _write(tmp_path, "big.txt", text)
    n = text.count("\n")
    with pytest.raises(RouteFileError, match=f"line {n}: '3.0.0.1/8' has host bits"):
        load_table(path)


def test_empty_and_comment_only_files(tmp_path: Path) -> None:
    for text in ("", "# nothing\n", "\n\n"):
        res = load_table(_write(tmp_path, "e.txt", text))
        assert len(res.rib) == 0 and res.stats.routes == 0


def test_not_a_route_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x00\x00\x00\x00\x63\x00\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(RouteFileError, match="offset 0: not a route file"):
        load_table(path)


def test_api_misuse(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.txt", SMALL)
    with pytest.raises(ValueError, match="value must be"):
        load_table(path, value="color")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fmt must be"):
        load_table(path, fmt="csv")  # type: ignore[arg-type]


# -- bgpdump -m text ---------------------------------------------------------------------------

BGPDUMP = """\
TABLE_DUMP2|1277971199|B|202.249.2.169|2497|1.9.0.0/16|2497 4788|IGP|202.249.2.169|0|0||NAG||
TABLE_DUMP2|1277971199|B|202.249.2.20|4777|1.9.0.0/16|4777 2516 4788|IGP|202.249.2.20|0|0||NAG||
TABLE_DUMP2|1277971199|B|202.249.2.20|4777|2001:200::/32|4777 2500|IGP|2001:200::1|0|0||NAG||
BGP4MP|1277971200|STATE|202.249.2.20|4777|6|1
BGP4MP|1277971201|A|202.249.2.20|4777|12.0.0.0/8|4777 7018 {10,20}|IGP|202.249.2.20|0|0||NAG||
BGP4MP|1277971202|W|202.249.2.20|4777|1.9.0.0/16
"""


def test_bgpdump_text_replay(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.txt", BGPDUMP)
    stats = LoadStats("")
    ups = list(iter_updates(path, stats=stats))
    assert stats.format == "bgpdump" and stats.ipv6_skipped == 1
    assert stats.ignored == {"state_change": 1}
    assert [(u.kind, u.prefix, u.value, u.peer, u.peer_as) for u in ups] == [
        ("A", "1.9.0.0/16", "4788", "202.249.2.169", 2497),
        ("A", "1.9.0.0/16", "4788", "202.249.2.20", 4777),
        ("A", "12.0.0.0/8", "10,20", "202.249.2.20", 4777),
        ("W", "1.9.0.0/16", "", "202.249.2.20", 4777),
    ]
    res = load_table(path, value="nexthop")
    assert [(format_prefix(n, p), res.rib.value_of(r)) for n, p, r in res.rib.items()] == [
        ("12.0.0.0/8", "202.249.2.20")
    ]
    assert res.stats.withdrawals == 1 and res.stats.duplicates == 1
    aspath = load_table(path, value="aspath").rib
    assert aspath.values[-1] == "4777 7018 {10,20}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("BGP4MP|1|A|1.2.3.4|5|10.0.0.1/8|5|IGP|1.2.3.4|", "'10.0.0.1/8' has host bits"),
        ("BGP4MP|1|A|1.2.3.4|5|10.0.0.0/8", "6 '|'-separated fields, need at least 9"),
        ("BGP4MP|x|W|1.2.3.4|5|10.0.0.0/8", "bad timestamp 'x'"),
        ("BGP4MP|1|Q|1.2.3.4|5|10.0.0.0/8", "unknown entry kind 'Q'"),
        ("BGP4MP|1|W|1.2.3.4|5|10.0.0.0/", "prefix length ''"),
        ("XYZ|1|W", "unknown record type 'XYZ'"),
    ],
)
def test_bgpdump_malformed(tmp_path: Path, line: str, problem: str) -> None:
    lines = BGPDUMP.splitlines()
    lines.insert(4, line)  # line 5
    path = _write(tmp_path, "u.txt", "\n".join(lines) + "\n")
    with pytest.raises(
        RouteFileError, match=re.escape(f"{path}: line 5: ") + ".*" + re.escape(problem)
    ):
        list(iter_updates(path))
    stats = LoadStats("")
    assert len(list(iter_updates(path, skip_bad=True, stats=stats))) == 4
    assert stats.skipped_total == 1


# -- the bulk fill -----------------------------------------------------------------------------

prefixes = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: (t[0] & prefix_mask(t[1]), t[1])
)
small_prefixes = st.tuples(st.integers(0, 15), st.integers(0, 4)).map(
    lambda t: ((t[0] << 28) & prefix_mask(t[1]), t[1])
)


@given(
    st.lists(st.tuples(small_prefixes | prefixes, st.sampled_from("abcde")), max_size=60),
    st.lists(st.tuples(small_prefixes, st.sampled_from("xyz")), max_size=10),
)
def test_add_many_equals_sequential_add(
    rows: list[tuple[tuple[int, int], str]], before: list[tuple[tuple[int, int], str]]
) -> None:
    slow, fast = Rib(capacity=2), Rib(capacity=2)
    for rib in (slow, fast):
        for (n, p), v in before:
            rib.add(n, p, v)
    expected = [slow.add(n, p, v)[0] for (n, p), v in rows]
    nets = np.array([n for (n, _), _ in rows], np.uint32)
    plens = np.array([p for (_, p), _ in rows], np.uint8)
    rids = fast.add_many(nets, plens, [v for _, v in rows])
    assert rids.tolist() == expected
    assert list(fast.items()) == list(slow.items())
    assert fast.route_count == slow.route_count
    k = slow.route_count
    for name in ("net", "plen", "alive"):
        assert (getattr(fast, name)[:k] == getattr(slow, name)[:k]).all()
    assert [fast.value_of(r) for r in range(k)] == [slow.value_of(r) for r in range(k)]


def test_add_many_rejects_bad_prefixes() -> None:
    rib = Rib()
    with pytest.raises(ValueError, match="bad prefix"):
        rib.add_many(np.array([0x0A000001], np.uint32), np.array([8], np.uint8), ["x"])
    with pytest.raises(ValueError, match="above 32"):
        rib.add_many(np.array([0], np.uint32), np.array([33], np.uint8), ["x"])
    assert len(rib) == 0


# -- random tables round trip ------------------------------------------------------------------

values = st.text("0123456789_,abcdef.-", min_size=1, max_size=12)


@given(
    st.lists(st.tuples(prefixes, values), max_size=80),
    st.sampled_from(["plain", "gzip"]),
    st.booleans(),
)
def test_random_tables_read_back(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[tuple[int, int], str]],
    how: str,
    comments: bool,
) -> None:
    lines = []
    for i, ((n, p), v) in enumerate(rows):
        if comments and i % 7 == 0:
            lines.append("# comment")
        lines.append(f"{format_prefix(n, p)}\t{v}")
    path = _write(tmp_path_factory.mktemp("t"), "r.txt", "\n".join(lines) + "\n", how)
    expected: dict[tuple[int, int], str] = {}
    for key, v in rows:
        expected[key] = v
    res = load_table(path)
    assert {(n, p): res.rib.value_of(r) for n, p, r in res.rib.items()} == expected
    assert res.stats.duplicates == len(rows) - len(expected)
    assert list(iter_routes(path)) == [(n, p, v) for (n, p), v in rows]
