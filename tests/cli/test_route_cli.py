"""`netfast route lookup / annotate / stats` on small tables and on the bundled one."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from netfast.cli import main

TABLE = "# a tiny table\n10.0.0.0/8\t100\n10.1.0.0/16\t200\n10.1.2.0/24\t300\n0.0.0.0/0\tdefault\n"


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gzip.compress(TABLE.encode()))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("algo", ["dxr", "stride", "stride-fast", "radix", "lctrie"])
def test_lookup(capsys: pytest.CaptureFixture[str], table: Path, algo: str) -> None:
    status, out, _ = run(
        capsys, "route", "lookup", "10.1.2.3", "10.1.3.1", "10.2.0.0", "11.0.0.1",
        "--table", str(table), "--algo", algo,
    )  # fmt: skip
    assert status == 0
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│")]
    got = {a.strip(): (p.strip(), v.strip()) for a, p, v in rows}
    assert got == {
        "10.1.2.3": ("10.1.2.0/24", "300"),
        "10.1.3.1": ("10.1.0.0/16", "200"),
        "10.2.0.0": ("10.0.0.0/8", "100"),
        "11.0.0.1": ("0.0.0.0/0", "default"),
    }


def test_lookup_bundled_table(capsys: pytest.CaptureFixture[str]) -> None:
    import pytricia

    from netfast.route.loaders import default_table_path

    status, out, _ = run(capsys, "route", "lookup", "8.8.8.8", "193.0.14.129")
    assert status == 0
    # Oracle: pytricia over the same bundled file.
    pyt = pytricia.PyTricia(32)
    with gzip.open(default_table_path(), "rt") as f:
        for line in f:
            if not line.startswith("#"):
                prefix, value = line.rstrip("\n").split("\t")
                pyt[prefix] = value
    for addr in ("8.8.8.8", "193.0.14.129"):
        assert f"{pyt.get_key(addr)}" in out and pyt[addr] in out


def test_bad_inputs(capsys: pytest.CaptureFixture[str], table: Path, tmp_path: Path) -> None:
    status, _, err = run(capsys, "route", "lookup", "10.1.2", "--table", str(table))
    assert status == 2 and "'10.1.2' is not an IPv4 address" in err
    status, _, err = run(
        capsys, "route", "lookup", "1.2.3.4", "--algo", "nope", "--table", str(table)
    )
    assert status == 2 and "unknown FIB algorithm 'nope'" in err
    bad = tmp_path / "bad.txt"
    bad.write_text("10.0.0.0/8\t1\n10.0.0.1/24\t2\n")
    status, _, err = run(capsys, "route", "lookup", "10.0.0.1", "--table", str(bad))
    assert status == 2 and "bad.txt: line 2:" in err and "host bits" in err
    status, out, err = run(capsys, "route", "lookup", "10.0.0.1", "--table", str(bad), "--skip-bad")
    assert status == 0 and "skipped 1" in err and "10.0.0.0/8" in out
    status, _, err = run(capsys, "route", "lookup", "1.1.1.1", "--table", str(tmp_path / "no"))
    assert status == 2 and "no such file" in err


def test_annotate_lines(capsys: pytest.CaptureFixture[str], table: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.1.2.3\n\n# comment\n10.9.9.9\n11.1.1.1\n")
    out = tmp_path / "out.tsv"
    status, _, err = run(
        capsys, "route", "annotate", str(src), "-o", str(out), "--table", str(table)
    )
    assert status == 0 and "annotated 3 addresses" in err
    assert out.read_text().splitlines() == [
        "10.1.2.3\t10.1.2.0/24\t300",
        "10.9.9.9\t10.0.0.0/8\t100",
        "11.1.1.1\t0.0.0.0/0\tdefault",
    ]


def test_annotate_bad_address_keeps_old_output(
    capsys: pytest.CaptureFixture[str], table: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("10.1.2.3\n10.1.2.300\n")
    out = tmp_path / "out.tsv"
    out.write_text("precious\n")
    status, _, err = run(
        capsys, "route", "annotate", str(src), "-o", str(out), "--table", str(table)
    )
    assert status == 2 and "line 2: '10.1.2.300' is not an IPv4 address" in err
    assert out.read_text() == "precious\n"  # never partially overwritten
    assert not list(tmp_path.glob(".out.tsv*"))
    status, _, err = run(
        capsys, "route", "annotate", str(src), "-o", str(out), "--table", str(table),
        "--skip-bad-addresses",
    )  # fmt: skip
    assert status == 0 and "1 malformed" in err
    assert out.read_text().splitlines()[1] == "10.1.2.300\tinvalid\t-"


def test_annotate_csv(capsys: pytest.CaptureFixture[str], table: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("name,ip\na,10.1.2.3\nb,10.200.0.1\n")
    status, out, _ = run(
        capsys, "route", "annotate", str(src), "--column", "ip", "--table", str(table)
    )
    assert status == 0
    assert out.splitlines() == [
        "name,ip,prefix,value",
        "a,10.1.2.3,10.1.2.0/24,300",
        "b,10.200.0.1,10.0.0.0/8,100",
    ]
    status, out, _ = run(
        capsys, "route", "annotate", str(src), "--column", "9", "--table", str(table)
    )
    assert status == 2


def test_stats(capsys: pytest.CaptureFixture[str], table: Path) -> None:
    status, out, _ = run(capsys, "route", "stats", "--table", str(table))
    assert status == 0
    for name in ("dxr", "stride", "stride-fast", "radix", "lctrie"):
        assert name in out
    assert "/16" in out and "/24" in out
