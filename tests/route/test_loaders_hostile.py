"""Route files as an attacker writes them: corrupt compression, files that decompress to far
more than they weigh, overlong lines, numbers in other scripts, leading zeros.  Every one must be
a :class:`RouteFileError` naming the file and the place (never zlib's or int()'s own exception),
and loading must stream: memory follows the table, not the decompressed size."""

from __future__ import annotations

import bz2
import gzip
import itertools
import tracemalloc
import zlib
from pathlib import Path

import pytest

from netfast.route import mrt
from netfast.route.loaders import MAX_LINE, RouteFileError, iter_updates, load_table

ROUTES = Path("routes")
UPDATES = Path("bgp-updates")


def _head_lines(path: Path, n: int) -> bytes:
    """The first ``n`` lines of a shared gzip file, decompressed."""
    with gzip.open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


@pytest.fixture
def table_text(shared_data: Path) -> bytes:
    return _head_lines(shared_data / ROUTES / "ipv4-dfz-20260619.txt.gz", 3000)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --- corrupt compression ---------------------------------------------------------------------


def test_corrupt_gzip_names_the_offset(tmp_path: Path, table_text: bytes) -> None:
    good = gzip.compress(table_text)
    flip = len(good) // 2
    while True:  # the first flip from the middle on that zlib itself refuses (the oracle)
        raw = bytearray(good)
        raw[flip] ^= 0xFF
        try:
            gzip.decompress(bytes(raw))
        except zlib.error:
            break
        except (OSError, EOFError):
            pass
        flip += 1
    p = _write(tmp_path, "bad.txt.gz", bytes(raw))
    for skip_bad in (False, True):
        with pytest.raises(RouteFileError) as info:
            load_table(p, skip_bad=skip_bad)
        err = info.value
        assert str(err).startswith(f"{p}: offset ")
        assert "gzip data is corrupt" in str(err)
        assert "Error -3" not in str(err)
        assert err.offset is not None and flip <= err.offset < len(raw)
        assert not err.skippable


def test_gzip_crc_mismatch(tmp_path: Path, table_text: bytes) -> None:
    raw = bytearray(gzip.compress(table_text))
    raw[-6] ^= 0x01  # inside the CRC-32 of the trailer
    p = _write(tmp_path, "crc.txt.gz", bytes(raw))
    with pytest.raises(RouteFileError, match="CRC mismatch") as info:
        load_table(p)
    assert info.value.offset is not None and len(raw) - 8 <= info.value.offset < len(raw)


def test_gzip_cut_short(tmp_path: Path, table_text: bytes) -> None:
    raw = gzip.compress(table_text)
    p = _write(tmp_path, "cut.txt.gz", raw[: len(raw) * 2 // 3])
    with pytest.raises(RouteFileError, match="cut short") as info:
        load_table(p, skip_bad=True)
    assert info.value.offset == len(raw) * 2 // 3


def test_gzip_members_and_padding(tmp_path: Path, table_text: bytes) -> None:
    lines = table_text.splitlines(keepends=True)
    half = len(lines) // 2
    two = gzip.compress(b"".join(lines[:half])) + gzip.compress(b"".join(lines[half:]))
    whole = load_table(_write(tmp_path, "one.txt", table_text))
    joined = load_table(_write(tmp_path, "two.txt.gz", two + b"\0" * 1000))
    assert len(joined.rib) == len(whole.rib) > 2000
    with pytest.raises(RouteFileError, match="followed by bytes that are not gzip") as info:
        load_table(_write(tmp_path, "junk.txt.gz", two + b"trailing junk"))
    assert info.value.offset == len(two)


def test_corrupt_bzip2(tmp_path: Path, table_text: bytes) -> None:
    raw = bytearray(bz2.compress(table_text))
    flip = len(raw) // 2
    raw[flip] ^= 0x55
    p = _write(tmp_path, "bad.txt.bz2", bytes(raw))
    with pytest.raises(RouteFileError, match="bzip2 data") as info:
        load_table(p, skip_bad=True)
    assert info.value.offset is not None and flip <= info.value.offset <= len(raw)
    good = load_table(_write(tmp_path, "good.txt.bz2", bz2.compress(table_text)))
    assert len(good.rib) == len(load_table(_write(tmp_path, "t.txt", table_text)).rib)


def test_corrupt_gzip_mrt(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / UPDATES / "ris-rrc01-updates.20070211.0141.mrt.gz"
    raw = bytearray(src.read_bytes()[:200_000])
    raw[100_000] ^= 0xFF
    p = _write(tmp_path, "bad.mrt.gz", bytes(raw))
    with pytest.raises(RouteFileError):
        list(iter_updates(p))
    try:  # with skip_bad a lost MRT framing ends the stream; a broken gzip still raises
        list(iter_updates(p, skip_bad=True))
    except RouteFileError as e:
        assert "gzip data" in str(e)


# --- streaming -------------------------------------------------------------------------------


def _peak(fn: object) -> int:
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_streams_a_gzip_of_comments(tmp_path: Path) -> None:
    # 96 MB of comment lines in a gzip of a few hundred kilobytes, then two routes.
    comment = b"# this comment line repeats to fill the file with many megabytes\n"
    comments = comment * 1_500_000
    body = comments + b"10.0.0.0/8\t100\n" + comment * 10 + b"10.1.0.0/16\t200\n"
    p = _write(tmp_path, "comments.txt.gz", gzip.compress(body, 1))
    assert len(body) > 90 << 20
    result: list[object] = []
    peak = _peak(lambda: result.append(load_table(p)))
    loaded = result[0]
    assert len(loaded.rib) == 2  # type: ignore[attr-defined]
    assert loaded.stats.lines == body.count(b"\n")  # type: ignore[attr-defined]
    assert peak < 12 << 20, f"peak {peak:,} bytes while loading {len(body):,} bytes"


def test_overlong_line_bounded(tmp_path: Path) -> None:
    # One 40 MB line without a newline among valid lines: an error naming it, in bounded memory.
    body = b"10.0.0.0/8\t100\n" + b"#" + b"x" * (40 << 20) + b"\n10.1.0.0/16\t200\n"
    p = _write(tmp_path, "long.txt.gz", gzip.compress(body, 1))
    with pytest.raises(RouteFileError) as info:
        load_table(p)
    assert str(info.value) == f"{p}: line 2: line longer than {MAX_LINE:,} bytes"
    result: list[object] = []
    peak = _peak(lambda: result.append(load_table(p, skip_bad=True)))
    loaded = result[0]
    assert len(loaded.rib) == 2  # type: ignore[attr-defined]
    assert loaded.stats.skipped == {"line_too_long": 1}  # type: ignore[attr-defined]
    assert loaded.stats.lines == 3  # type: ignore[attr-defined]
    assert peak < 12 << 20


def test_line_just_within_the_limit(tmp_path: Path) -> None:
    value = b"v" * (MAX_LINE - len(b"10.0.0.0/8\t"))
    ok = load_table(_write(tmp_path, "ok.txt", b"10.0.0.0/8\t" + value + b"\n"))
    assert ok.rib.value_of(0) == value.decode()
    with pytest.raises(RouteFileError, match="line 1: line longer than"):
        load_table(_write(tmp_path, "no.txt", b"10.0.0.0/8\t" + value + b"v\n"))


def test_bgpdump_overlong_line(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / UPDATES / "ris-rrc01-updates.20070211.0141.bgpdump-m.txt.gz"
    lines = _head_lines(src, 500).splitlines(keepends=True)
    body = b"".join(lines[:10]) + b"BGP4MP|" + b"9" * (MAX_LINE * 3) + b"\n" + b"".join(lines[10:])
    p = _write(tmp_path, "long.bgpdump.gz", gzip.compress(body))
    with pytest.raises(RouteFileError, match="line 11: line longer than"):
        load_table(p)
    skipped = load_table(p, skip_bad=True)
    assert skipped.stats.skipped == {"line_too_long": 1}
    assert skipped.stats.lines == 501


def test_mrt_length_field_beyond_the_limit(tmp_path: Path, shared_data: Path) -> None:
    data = gzip.decompress(
        (shared_data / UPDATES / "ris-rrc01-updates.20070211.0141.mrt.gz").read_bytes()
    )
    records = list(itertools.islice(mrt.iter_records(data), 5))
    cut = bytearray(data[: records[-1].offset + 4096])
    at = records[3].offset
    cut[at + 8 : at + 12] = (0xFFFF_FFF0).to_bytes(4, "big")
    p = _write(tmp_path, "huge.mrt.gz", gzip.compress(bytes(cut)))
    with pytest.raises(RouteFileError) as info:
        load_table(p)
    assert info.value.offset == at + 8 and "exceeds the limit" in str(info.value)


# --- messages and numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "010.0.0.0/8\t100",
        "10.0.0.0/08\t100",
        "1.2.3.0/2\u0664\t100",  # ARABIC-INDIC DIGIT FOUR
        "1.2.3.0/\u00b2\t100",  # SUPERSCRIPT TWO
        "\u0661.0.0.0/8\t100",
    ],
)
def test_text_numbers_are_ascii_without_leading_zeros(tmp_path: Path, line: str) -> None:
    p = _write(tmp_path, "t.txt", f"# x\n{line}\n".encode())
    with pytest.raises(RouteFileError) as info:
        load_table(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: line 2: ")
    assert "invalid literal" not in msg and "cannot parse" not in msg


def test_pfx2as_leading_zero(tmp_path: Path) -> None:
    p = _write(tmp_path, "p.txt", b"1.0.0.0\t24\t13335\n001.0.4.0\t22\t38803\n")
    with pytest.raises(RouteFileError, match=r"line 2: .*leading zero"):
        load_table(p)


BGP_A = "BGP4MP|1171158060|A|193.0.0.56|3333|{prefix}|3333 3356 15169|IGP|{nh}|0|0||NAG||"


@pytest.mark.parametrize(
    ("prefix", "peer_as", "nh", "what"),
    [
        ("10.0.0.0/\u00b2", "3333", "193.0.0.56", "prefix length"),
        ("10.0.0.0/8", "\u0663\u0663", "193.0.0.56", "peer AS"),
        ("010.0.0.0/8", "3333", "193.0.0.56", "leading zero"),
        ("10.0.0.0/8", "3333", "193.0.0.x", "next hop"),
    ],
)
def test_bgpdump_numbers(tmp_path: Path, prefix: str, peer_as: str, nh: str, what: str) -> None:
    good = BGP_A.format(prefix="11.0.0.0/8", nh="193.0.0.56")
    bad = BGP_A.format(prefix=prefix, nh=nh).replace("|3333|", f"|{peer_as}|", 1)
    p = _write(tmp_path, "u.txt", f"{good}\n{bad}\n".encode())
    with pytest.raises(RouteFileError) as info:
        load_table(p, value="nexthop")
    msg = str(info.value)
    assert msg.startswith(f"{p}: line 2: ") and what in msg
    assert "invalid literal" not in msg


def test_offending_line_is_shortened(tmp_path: Path) -> None:
    junk = "x" * 60_000
    p = _write(tmp_path, "t.txt", f"10.0.0.0/8\t1\n{junk}\n".encode())
    with pytest.raises(RouteFileError) as info:
        load_table(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: line 2: ") and len(msg) < 300
    assert "60,000 characters" in msg


def test_bad_next_hop_names_its_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "nh.txt", b"10.0.0.0/8\t192.0.2.1\n10.1.0.0/16\tgw-a\n")
    with pytest.raises(RouteFileError, match=r"line 2: next hop 'gw-a' is not an IPv4 address"):
        load_table(p, value="nexthop")
    assert len(load_table(p).rib) == 2  # origin values are free text
    skipped = load_table(p, value="nexthop", skip_bad=True)
    assert len(skipped.rib) == 1 and skipped.stats.skipped == {"bad_next_hop": 1}


def test_nexthop_of_real_tables_load(shared_data: Path) -> None:
    for name in ("ipv4-fib-20050801-abilene-nexthop.txt.gz",):
        loaded = load_table(shared_data / ROUTES / name, value="nexthop")
        assert len(loaded.rib) > 0 and loaded.stats.skipped_total == 0
    src = shared_data / UPDATES / "ris-rrc01-updates.20070211.0141.bgpdump-m.txt.gz"
    assert load_table(src, value="nexthop").stats.skipped_total == 0


def test_mrt_announcement_without_next_hop(tmp_path: Path) -> None:
    def record(next_hop: int | None, net: int) -> bytes:
        msg = mrt.encode_update([], [(net, 8)], as_path=[(2, [64500])], next_hop=next_hop)
        body = mrt.encode_bgp4mp_message(msg, peer_as=64500, peer_ip=0xC0000201)
        return mrt.encode_record(mrt.MrtType.BGP4MP, mrt.Bgp4mp.MESSAGE_AS4, body, 1)

    first = record(0xC0000201, 0x0A000000)
    p = _write(tmp_path, "u.mrt", first + record(None, 0x0B000000))
    assert len(load_table(p).rib) == 2  # origins need no next hop
    with pytest.raises(RouteFileError) as info:
        load_table(p, value="nexthop")
    assert info.value.offset == len(first) and "without a next hop" in str(info.value)
    skipped = load_table(p, value="nexthop", skip_bad=True)
    assert len(skipped.rib) == 1 and skipped.stats.skipped == {"bad_record": 1}
