"""`netfast bench annotate --quick`: every competitor measured on one file, results compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from netfast.bench import annotate as ab
from netfast.cli import main
from netfast.route.loaders import load_default_table
from netfast.route.table import RoutingTable


def test_elementary_ranges_give_every_address_its_longest_match() -> None:
    rib = load_default_table().rib
    table = RoutingTable(rib, "dxr")
    lo, rid = ab.elementary_ranges(table)
    assert lo[0] == 0 and np.all(np.diff(lo.astype(np.int64)) > 0)
    rng = np.random.default_rng(4)
    addrs = rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32)
    at = np.searchsorted(lo, addrs, side="right") - 1
    assert np.array_equal(rid[at], table.lookup_batch(addrs))


def test_make_flows_file(tmp_path: Path) -> None:
    rib = load_default_table().rib
    ab.make_flows(tmp_path / "f.parquet", rib, 5000)
    t = pq.read_table(tmp_path / "f.parquet")
    assert t.column_names == ["id", "src_ip", "src_u32", "bytes"]
    texts, ints = t.column("src_ip").to_pylist(), t.column("src_u32").to_pylist()
    assert texts[0] == texts[1000] == "not-an-address"
    assert texts[1] == ".".join(str((ints[1] >> s) & 255) for s in (24, 16, 8, 0))


@pytest.mark.slow
def test_cli_quick_run_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "annotate.json"
    assert main(["bench", "annotate", "--quick", "--rows", "50000", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "DuckDB, ASOF range join" in text and "pytricia" in text
    data = json.loads(out.read_text())
    assert data["netfast_equals_duckdb_join"] and data["netfast_equals_pytricia_sample"]
    names = [r["name"] for r in data["rows"]]
    assert len(names) == 8 and all(r["rows_per_s"] > 0 for r in data["rows"])
    assert data["file_rows"] == 50_000
