"""Annotation over Arrow columns and Parquet files, against pytricia on the bundled 2026 table.

Addresses are drawn inside announced prefixes and uniformly, as strings (plain, large,
dictionary-encoded, sliced, with nulls and malformed text) and as integers; every row's prefix,
length and value is compared with pytricia's answer, and the reasons for the nulls are counted.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.route.oracle import pytricia_lookup, pytricia_of, sample_addresses

from netfast.cli import main
from netfast.route.arrow import COLUMNS, ArrowAnnotator, parse_address_array
from netfast.route.loaders import load_default_table
from netfast.route.parquet import annotate_parquet, new_names
from netfast.route.rib import NO_ROUTE, Rib, format_prefix
from netfast.route.table import RoutingTable

GARBAGE = ["", " ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "a.b.c.d",
           "1.2.3.4x", "9999.1.1.1", "1.2.3.-4", "\u0661.2.3.4", "::1", "1.2.3.4/24"]  # fmt: skip


Bundled = tuple[Rib, ArrowAnnotator, Any]


@pytest.fixture(scope="module")
def bundled() -> Bundled:
    rib = load_default_table().rib
    return rib, ArrowAnnotator(RoutingTable(rib, "dxr")), pytricia_of(rib)


def _text(a: int) -> str:
    return str(ipaddress.IPv4Address(a))


def _expected(rib: Rib, pyt: object, addrs: np.ndarray) -> list[tuple[str, int, str] | None]:
    out: list[tuple[str, int, str] | None] = []
    for rid in pytricia_lookup(pyt, addrs).tolist():
        if rid == NO_ROUTE:
            out.append(None)
        else:
            net, plen = rib.prefix_of(rid)
            out.append((format_prefix(net, plen), plen, str(rib.value_of(rid))))
    return out


def _rows(batch: pa.RecordBatch) -> list[tuple[str, int, str] | None]:
    cols = [batch.column(name).to_pylist() for name in COLUMNS]
    return [None if p is None else (p, n, v) for p, n, v in zip(*cols, strict=True)]


def test_strings_and_integers_equal_pytricia_with_reasons_counted(bundled: Bundled) -> None:
    rib, _, pyt = bundled
    ann = ArrowAnnotator(RoutingTable(rib, "dxr"))
    addrs = sample_addresses(rib, 20_000, seed=5)
    expected = _expected(rib, pyt, addrs)
    texts: list[str | None] = [_text(a) for a in addrs.tolist()]
    rng = np.random.default_rng(6)
    bad = rng.choice(len(texts), 600, replace=False)
    for k, i in enumerate(bad.tolist()):
        texts[i] = None if k % 3 == 0 else GARBAGE[k % len(GARBAGE)]
        expected[i] = None
    got = _rows(ann.annotate(pa.array(texts, pa.string())))
    assert got == expected
    st = ann.stats
    assert st.rows == len(texts) and st.null == 200 and st.malformed == 400
    assert st.annotated == sum(e is not None for e in expected)
    assert st.rows == st.annotated + st.null + st.malformed + st.no_route
    # the same addresses as integers, as large strings, dictionary-encoded, chunked
    ints = _rows(ann.annotate(pa.array(addrs, pa.uint32())))
    assert ints == _expected(rib, pyt, addrs)
    large = pa.array(texts, pa.large_string())
    assert _rows(ann.annotate(large)) == expected
    assert _rows(ann.annotate(pa.array(texts).dictionary_encode())) == expected
    chunked = pa.chunked_array([pa.array(texts[:777]), pa.array(texts[777:])])
    assert _rows(ann.annotate(chunked)) == expected


def test_sliced_arrays_keep_their_offset(bundled: Bundled) -> None:
    rib, ann, pyt = bundled
    addrs = sample_addresses(rib, 500, seed=9)
    texts = [_text(a) for a in addrs.tolist()]
    texts[10] = None  # type: ignore[call-overload]
    arr = pa.array(texts)
    exp = _expected(rib, pyt, addrs)
    exp[10] = None
    for lo, hi in ((3, 500), (10, 11), (11, 999), (0, 0)):
        assert _rows(ann.annotate(arr.slice(lo, hi - lo))) == exp[lo:hi]


@given(st.lists(st.one_of(st.integers(0, 2**32 - 1).map(_text), st.sampled_from(GARBAGE),
                          st.none(), st.text(max_size=20)), max_size=50))  # fmt: skip
def test_parse_is_strict_like_ipaddress(texts: list[str | None]) -> None:
    addrs, status = parse_address_array(pa.array(texts, pa.string()))
    for text, a, s in zip(texts, addrs.tolist(), status.tolist(), strict=True):
        if text is None:
            assert s == 1
            continue
        stripped = text.strip(" \t")
        try:
            want = int(ipaddress.IPv4Address(stripped)) if stripped.isascii() else None
        except ValueError:
            want = None
        assert (s, a) == ((0, want) if want is not None else (2, 0)), text


def test_integers_out_of_range_nulls_and_bad_types(bundled: Bundled) -> None:
    _, ann, _ = bundled
    addrs, status = parse_address_array(pa.array([-1, 0, 2**32 - 1, 2**32, None], pa.int64()))
    assert status.tolist() == [2, 0, 0, 2, 1]
    assert addrs.tolist()[:3] == [0, 0, 2**32 - 1]
    with pytest.raises(TypeError, match="strings or integers, not double"):
        ann.annotate(pa.array([1.5]))


def _flows(path: Path, rib: Rib, n: int, seed: int = 3) -> tuple[list[str | None], np.ndarray]:
    addrs = sample_addresses(rib, n // 2, seed)
    texts: list[str | None] = [_text(a) for a in addrs.tolist()]
    texts[::97] = ["bogus"] * len(texts[::97])
    texts[5::101] = [None] * len(texts[5::101])
    table = pa.table({"id": np.arange(len(texts)), "src_ip": pa.array(texts),
                      "bytes": np.arange(len(texts)) % 1500})  # fmt: skip
    pq.write_table(table, path, row_group_size=4096)
    return texts, addrs


def test_parquet_to_parquet_keeps_the_columns_and_equals_pytricia(
    bundled: Bundled, tmp_path: Path
) -> None:
    rib, _, pyt = bundled
    src = tmp_path / "flows.parquet"
    texts, addrs = _flows(src, rib, 30_000)
    out = tmp_path / "out.parquet"
    assert main(["route", "annotate", str(src), "-o", str(out), "--column", "src_ip"]) == 0
    result = pq.read_table(out)
    names = new_names("src_ip")
    assert result.column_names == ["id", "src_ip", "bytes", *names]
    assert result.column("src_ip").to_pylist() == texts
    assert result.column("id").to_pylist() == list(range(len(texts)))
    exp = _expected(rib, pyt, addrs)
    for i, t in enumerate(texts):
        if t is None or t == "bogus":
            exp[i] = None
    cols = [result.column(n).to_pylist() for n in names]
    got = [None if p is None else (p, n, v) for p, n, v in zip(*cols, strict=True)]
    assert got == exp


def test_parquet_stream_stays_within_a_memory_bound(bundled: Bundled, tmp_path: Path) -> None:
    """A file several times the bound is annotated batch by batch: Arrow's allocations stay
    under the bound the whole run."""
    rib, ann, _ = bundled
    src = tmp_path / "big.parquet"
    _flows(src, rib, 400_000)
    size = pq.ParquetFile(src).metadata.num_rows * 16  # at least the decoded text of the column
    bound = 24 << 20
    assert size > bound / 4
    peak = [0]

    def watch(_rows: int) -> None:
        peak[0] = max(peak[0], pa.total_allocated_bytes())

    with open(tmp_path / "out.parquet", "wb") as out:
        rows = annotate_parquet(src, out, "src_ip", ann, batch_rows=20_000, progress=watch)
    assert rows == 400_000
    assert 0 < peak[0] < bound, peak[0]


@pytest.mark.parametrize(
    ("argv_extra", "message"),
    [
        (["--column", "nope"], "no column 'nope' (columns: id, src_ip, bytes)"),
        ([], "3 columns (id, src_ip, bytes): name the address column with --column"),
        (["--column", "bytes", "-o", "{out}"], None),
        (["--column", "src_ip"], "Parquet input needs -o FILE"),
    ],
)
def test_parquet_errors_name_the_file_and_write_nothing(
    bundled: Bundled,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv_extra: list[str],
    message: str | None,
) -> None:
    rib, _, _ = bundled
    src = tmp_path / "flows.parquet"
    _flows(src, rib, 2000)
    out = tmp_path / "out.parquet"
    extra = [a.replace("{out}", str(out)) for a in argv_extra]
    if "-o" not in extra and message != "Parquet input needs -o FILE":
        extra += ["-o", str(out)]
    status = main(["route", "annotate", str(src), *extra])
    if message is None:  # integers are addresses too
        assert status == 0 and out.exists()
        return
    assert status == 2
    err = capsys.readouterr().err
    assert str(src) in err and message in err
    assert sorted(os.listdir(tmp_path)) == ["flows.parquet"]


def test_a_damaged_parquet_file_leaves_the_old_output(
    bundled: Bundled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rib, _, _ = bundled
    src = tmp_path / "flows.parquet"
    _flows(src, rib, 20_000)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2] + b"\0" * 64 + data[len(data) // 2 + 64 :])
    out = tmp_path / "out.parquet"
    out.write_bytes(b"the user's file")
    status = main(["route", "annotate", str(src), "-o", str(out), "--column", "src_ip"])
    assert status == 2
    assert str(src) in capsys.readouterr().err
    assert out.read_bytes() == b"the user's file"
    assert sorted(os.listdir(tmp_path)) == ["flows.parquet", "out.parquet"]


def test_duckdb_functions_equal_the_annotator(bundled: Bundled, tmp_path: Path) -> None:
    import duckdb

    from netfast.route.sql import FUNCTIONS, register_duckdb

    rib, _, pyt = bundled
    src = tmp_path / "flows.parquet"
    texts, addrs = _flows(src, rib, 20_000)
    con = duckdb.connect()
    ann = register_duckdb(con, RoutingTable(rib, "dxr"))
    got = con.execute(
        f"SELECT netfast_prefix(src_ip), netfast_prefix_len(src_ip), netfast_origin(src_ip) "
        f"FROM '{src}' ORDER BY id"
    ).fetchall()
    exp = _expected(rib, pyt, addrs)
    for i, t in enumerate(texts):
        if t is None or t == "bogus":
            exp[i] = None
    assert [None if p is None else (p, n, v) for p, n, v in got] == exp
    assert ann.stats.rows == 3 * len(texts)  # three functions, each over every row
    assert ann.stats.null == 3 * texts.count(None)
    assert set(FUNCTIONS) == {"netfast_prefix", "netfast_prefix_len", "netfast_origin"}
    (row,) = con.execute("SELECT netfast_origin(NULL), netfast_origin('1.2.3')").fetchall()
    assert row == (None, None)


@pytest.mark.slow
def test_dask_cluster_of_two_workers_equals_the_single_process(
    bundled: Bundled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real local cluster (two worker processes): the table reaches each worker once, both
    take partitions, and the output equals the single-process run row by row."""
    from distributed import LocalCluster

    rib, _, _ = bundled
    src = tmp_path / "flows.parquet"
    _flows(src, rib, 40_000)
    single = tmp_path / "single.parquet"
    assert main(["route", "annotate", str(src), "-o", str(single), "--column", "src_ip"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        out = tmp_path / "parts"
        argv = ["route", "annotate", str(src), "-o", str(out), "--column", "src_ip",
                "--scheduler", cluster.scheduler_address]  # fmt: skip
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "on 2 workers" in err and "shipped" in err
        assert main(argv) == 2  # the folder exists now: refused, left as it is
        assert "exists" in capsys.readouterr().err
    ours = pq.read_table(out).sort_by("id")
    ref = pq.read_table(single)
    for name in ref.column_names:
        assert ours.column(name).to_pylist() == ref.column(name).to_pylist(), name
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".netfast-tmp")]


def test_polars_and_record_batches_equal_the_annotator(bundled: Bundled) -> None:
    import polars as pl

    from netfast.route.cluster import TableImage, annotate_polars, annotate_record_batch

    rib, ann, pyt = bundled
    addrs = sample_addresses(rib, 3000, seed=11)
    texts: list[str | None] = [_text(a) for a in addrs.tolist()]
    texts[7] = None
    texts[8] = "bogus"
    exp = _expected(rib, pyt, addrs)
    exp[7] = exp[8] = None
    frame = pl.DataFrame({"id": range(len(texts)), "src_ip": texts})
    out = annotate_polars(frame, "src_ip", ann)
    assert out.columns == ["id", "src_ip", *new_names("src_ip")]
    rows = out.select(new_names("src_ip")).rows()
    assert [None if p is None else (p, n, v) for p, n, v in rows] == exp
    assert out.get_column("src_ip").to_list() == texts
    # the record-batch form, through a shipped image (rebuilt tables answer the same)
    image = TableImage.of(RoutingTable(rib, "dxr"))
    batch = annotate_record_batch(pa.record_batch({"src_ip": pa.array(texts)}), "src_ip", image)
    cols = [batch.column(n).to_pylist() for n in new_names("src_ip")]
    assert [None if p is None else (p, n, v) for p, n, v in zip(*cols, strict=True)] == exp
    assert image.annotator() is image.annotator()  # built once per process


@pytest.mark.slow
def test_spark_local_session_equals_the_single_process(
    bundled: Bundled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real local Spark (two executor threads, Python workers on this interpreter): the
    mapInArrow form's output equals the single-process run row by row."""
    import sys

    from pyspark.sql import SparkSession

    from netfast.route.cluster import TableImage, annotate_spark

    rib, _, _ = bundled
    src = tmp_path / "flows.parquet"
    _flows(src, rib, 20_000)
    single = tmp_path / "single.parquet"
    assert main(["route", "annotate", str(src), "-o", str(single), "--column", "src_ip"]) == 0
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        image = TableImage.of(RoutingTable(rib, "dxr"))
        frame = spark.read.parquet(str(src)).repartition(2)
        out = tmp_path / "spark"
        annotate_spark(frame, "src_ip", image).write.parquet(str(out))
    finally:
        spark.stop()
    ours = pq.read_table(out).sort_by("id")
    ref = pq.read_table(single)
    assert ours.num_rows == ref.num_rows
    for name in ref.column_names:
        assert ours.column(name).to_pylist() == ref.column(name).to_pylist(), name
    assert ours.schema.field("src_ip_prefix_len").type == pa.int8()
