"""`netfast route` on hostile input: corrupt and mutated route files, CSV fields past the csv
module's limit, ``-o`` into places it cannot write, and a user's files beside the output.
Every run ends with exit 0 or a one-line error (exit 2); nothing of the user's is touched."""

from __future__ import annotations

import bz2
import gzip
import random
import time
from pathlib import Path

import pytest

from netfast.cli import main

TABLE = "# a tiny table\n10.0.0.0/8\t100\n10.1.0.0/16\t200\n0.0.0.0/0\tdefault\n"


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(TABLE)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netfast: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- route files -----------------------------------------------------------------------------


def test_corrupt_gzip_table_no_skip_bad_advice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    src = shared_data / "routes" / "ipv4-fib-20050801-abilene-nexthop.txt.gz"
    raw = bytearray(src.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(bytes(raw))
    for extra in ((), ("--skip-bad",)):
        status, _, err = run(capsys, "route", "stats", "--table", str(bad), *extra)
        assert status == 2
        line = _one_line_error(err)
        assert f"{bad}: offset " in line and "gzip data" in line
        assert "--skip-bad" not in line


def test_unreadable_table(capsys: pytest.CaptureFixture[str]) -> None:
    # A file that opens but cannot be read, for root too (permissions would not stop root):
    # reading the process's own memory file at offset 0 fails with EIO.
    status, _, err = run(capsys, "route", "lookup", "--table", "/proc/self/mem", "10.0.0.1")
    assert status == 2 and "cannot read" in _one_line_error(err)


# --- annotate: CSV, --column, -o ---------------------------------------------------------------


def test_csv_field_over_the_limit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("addr,note\n10.0.0.1,ok\n10.1.0.1," + "y" * 200_000 + "\n")
    out = tmp_path / "out.csv"
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--column", "addr", "--table", str(table),
        "-o", str(out),
    )  # fmt: skip
    assert status == 2
    line = _one_line_error(err)
    assert f"{src}: line 3: " in line and "longer than 131,072 characters" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "t.txt"]


@pytest.mark.parametrize("column", ["\u00b2", "\u0661", "0"])
def test_column_numbers_are_ascii(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path, column: str
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("addr\n10.0.0.1\n")
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--column", column, "--table", str(table)
    )
    assert status == 2
    _one_line_error(err)


def test_output_into_a_missing_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.0.0.1\n")
    target = tmp_path / "nowhere" / "out.txt"
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(target)
    )
    assert status == 2
    assert "does not exist" in _one_line_error(err)
    assert not (tmp_path / "nowhere").exists()


def test_output_onto_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.0.0.1\n")
    target = tmp_path / "outdir"
    target.mkdir()
    (target / "keep").write_text("mine")
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(target)
    )
    assert status == 2
    assert "is a directory" in _one_line_error(err)
    assert [p.name for p in target.iterdir()] == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "outdir", "t.txt"]


def test_users_temp_named_file_is_never_touched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.0.0.1\n10.1.2.3\n")
    out = tmp_path / "out.txt"
    mine = tmp_path / ".out.txt.netfast-tmp"
    mine.write_bytes(b"the user's own file")
    status, _, _ = run(capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(out))
    assert status == 0
    assert out.read_text() == "10.0.0.1\t10.0.0.0/8\t100\n10.1.2.3\t10.1.0.0/16\t200\n"
    assert mine.read_bytes() == b"the user's own file"
    # A failing run: the output and the user's file stay as they were, nothing is left behind.
    src.write_text("10.0.0.1\nnot-an-address\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(out)
    )
    assert status == 2 and "line 2" in _one_line_error(err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_long_bad_address_is_shortened(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.0.0.1\n" + "9" * 50_000 + "\n")
    status, _, err = run(capsys, "route", "annotate", str(src), "--table", str(table))
    line = _one_line_error(err)
    assert status == 2 and "line 2" in line and len(line) < 300 and "50,000 characters" in line


def test_overlong_annotate_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"10.0.0.1\n" + b"1" * (20 << 20))
    status, _, err = run(
        capsys, "route", "annotate", str(src), "--table", str(table), "--skip-bad-addresses"
    )
    assert status == 2 and "line 2: line longer than" in _one_line_error(err)


# --- mutation fuzz -----------------------------------------------------------------------------


def _cut_lines(path: Path, n: int) -> bytes:
    with gzip.open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


def _samples(shared: Path) -> list[tuple[str, bytes]]:
    routes, updates = shared / "routes", shared / "bgp-updates"
    out = [
        ("table.txt", _cut_lines(routes / "ipv4-dfz-20260619.txt.gz", 3000)),
        ("pfx2as.txt", _cut_lines(routes / "ipv4-dfz-20160202-caida-pfx2as.txt.gz", 3000)),
        ("nexthop.txt", _cut_lines(routes / "ipv4-fib-20050801-abilene-nexthop.txt.gz", 2000)),
        (
            "updates.bgpdump",
            _cut_lines(updates / "ris-rrc01-updates.20070211.0141.bgpdump-m.txt.gz", 2000),
        ),
    ]
    for name in (
        "ris-rrc01-updates.20070211.0141.mrt.gz",
        "ris-rrc21-updates.20160811.1600.mrt.gz",
    ):
        with gzip.open(updates / name, "rb") as f:
            out.append((name.removesuffix(".gz"), f.read(60_000)))
    return out


_NASTY = [
    b"\xb2",
    "\u0664".encode(),
    b"\0",
    b"\r",
    b"\x0c",
    b"\n",
    b"\t",
    b"|",
    b"/",
    b"010.",
    b":",
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at:at] = rng.choice(_NASTY)
        elif op == 2:
            del buf[at : at + rng.randint(1, 64)]
        elif op == 3:
            del buf[at:]
        elif op == 4 and buf:
            buf[at] = rng.randrange(256)
        else:
            end = min(len(buf), at + rng.randint(1, 200))
            buf[at:at] = buf[at:end] * rng.randint(1, 3)
    return bytes(buf)


def _pack(rng: random.Random, data: bytes) -> bytes:
    """Sometimes compressed, sometimes with the compressed stream mutated too."""
    kind = rng.randrange(4)
    if kind == 0:
        return data
    packed = gzip.compress(data, 1) if kind < 3 else bz2.compress(data, 1)
    return _mutate(rng, packed) if rng.random() < 0.5 else packed


def test_mutated_route_files_never_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    rng = random.Random(17)
    samples = _samples(shared_data)
    deadline = time.monotonic() + 6.0
    runs = 0
    while time.monotonic() < deadline or runs < 2 * len(samples):
        name, data = samples[runs % len(samples)]
        p = tmp_path / f"m{runs}-{name}"
        p.write_bytes(_pack(rng, _mutate(rng, data)))
        extra = ["--skip-bad"] if rng.random() < 0.5 else []
        value = ["--value", rng.choice(["origin", "nexthop", "aspath"])]
        argv = (
            ["route", "stats", "--table", str(p), "--algo", "radix", *extra, *value]
            if runs % 2
            else ["route", "lookup", "--table", str(p), *extra, *value, "8.8.8.8"]
        )
        try:
            status = main(argv)
        except BaseException as exc:  # the failure this test exists to catch
            pytest.fail(f"{argv} raised {type(exc).__name__}: {exc} (file kept at {p})")
        _, err = capsys.readouterr()
        assert status in (0, 2), (argv, err)
        if status == 2:
            assert "Traceback" not in err
            assert err.strip().splitlines()[-1].startswith("netfast: error: "), err
        p.unlink()
        runs += 1


def test_output_mode_is_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.0.0.1\n")
    new = tmp_path / "new.txt"
    fresh = tmp_path / "umask-probe"
    fresh.write_text("")
    assert run(capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(new))[0] == 0
    assert new.stat().st_mode & 0o777 == fresh.stat().st_mode & 0o777
    old = tmp_path / "old.txt"
    old.write_text("x")
    old.chmod(0o640)
    assert run(capsys, "route", "annotate", str(src), "--table", str(table), "-o", str(old))[0] == 0
    assert old.stat().st_mode & 0o777 == 0o640 and old.read_text().startswith("10.0.0.1\t")
