"""The annotation benchmark (``netfast bench annotate``): addresses in Parquet mapped to their
prefix and origin AS by netfast, by DuckDB and by a pytricia loop, on the same file in one run.

What is measured
----------------
- The data: a Parquet file of ``rows`` flow records (``id``, ``src_ip`` as text, ``src_u32``
  the same address as uint32, ``bytes``), addresses half inside prefixes of the bundled 2026
  table and half uniform, one in a thousand malformed, written once with a fixed seed.
- netfast, Parquet to Parquet (:func:`netfast.route.parquet.annotate_parquet`): the whole file
  read, annotated and written with every input column and the three new ones, once on the text
  column and once on the uint32 column; and the annotation alone over the column already in
  memory (Arrow), for both.
- DuckDB, range join: the table as its elementary address ranges (each with its longest match,
  ``lo`` sorted), an ``ASOF LEFT JOIN`` of the file's ``src_u32`` on ``lo``, written with
  ``COPY ... TO`` Parquet; the ranges' build is timed apart.
- DuckDB calling netfast (:func:`netfast.route.sql.register_duckdb`): ``COPY (SELECT *,
  netfast_prefix(src_ip), netfast_origin(src_ip) ...) TO`` Parquet.
- Dask: the netfast text run on a local cluster of two worker processes
  (:func:`netfast.route.cluster.annotate_parquet_dask`); the cluster's start and the workers'
  start-up (the table image shipped, each worker's annotator built) are reported apart.
- pytricia: a Python loop of ``get`` over a sample of the uint32 column.

Every figure is rows per second, best of ``rounds``; the results of netfast and DuckDB's range
join are compared row by row on the file (they must agree), pytricia's on its sample.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from netfast.route.arrow import ArrowAnnotator
from netfast.route.parquet import annotate_parquet
from netfast.route.rib import NO_ROUTE, Rib, format_prefix
from netfast.route.table import RoutingTable

STRING_TARGET = 20e6
UINT32_TARGET = 50e6
PYTRICIA_SAMPLE = 100_000


@dataclass
class Row:
    name: str
    rows_per_s: float
    target: float | None = None
    note: str = ""


def make_flows(path: Path, rib: Rib, rows: int, seed: int = 1) -> None:
    """The benchmark's Parquet file (see the module docstring)."""
    rng = np.random.default_rng(seed)
    nets, plens, _ = rib.live_arrays()
    half = rows // 2
    pick = rng.integers(0, len(nets), half)
    offset = rng.integers(0, 2**32, half) % (np.int64(1) << (32 - plens[pick].astype(np.int64)))
    inside = nets[pick].astype(np.int64) + offset
    addrs = np.concatenate([inside, rng.integers(0, 2**32, rows - half)]).astype(np.uint32)
    rng.shuffle(addrs)
    text = _dotted(addrs)
    text[::1000] = "not-an-address"
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "src_ip": pa.array(text, pa.string()),
        "src_u32": addrs,
        "bytes": rng.integers(40, 1500, rows).astype(np.int32),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=1 << 18)


def _dotted(addrs: npt.NDArray[np.uint32]) -> npt.NDArray[Any]:
    """Dotted quads of ``addrs`` (numpy string operations, no per-row Python loop)."""
    a = addrs.astype(np.int64)
    parts = [((a >> s) & 255).astype(str) for s in (24, 16, 8, 0)]
    text = parts[0]
    for part in parts[1:]:
        text = np.char.add(np.char.add(text, "."), part)
    return text.astype(object)


def elementary_ranges(
    table: RoutingTable,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32]]:
    """The address space cut at every prefix's first and one-past-last address: each range's
    first address and its longest match (route id or -1), so an address's match is that of the
    last range starting at or below it."""
    nets, plens, _ = table.rib.live_arrays()
    size = np.int64(1) << (32 - plens.astype(np.int64))
    cuts = np.unique(np.concatenate([[0], nets.astype(np.int64), nets.astype(np.int64) + size]))
    cuts = cuts[cuts < 2**32].astype(np.uint32)
    return cuts, table.lookup_batch(cuts)


def _best(fn: Callable[[], int], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def measure(
    rib: Rib,
    rows: int = 4_000_000,
    rounds: int = 2,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    """Every figure of the module docstring; also returns facts about the run."""
    import duckdb

    from netfast.route.sql import register_duckdb

    say = progress or (lambda _m: None)
    table = RoutingTable(rib, "dxr")
    t0 = time.perf_counter()
    annotator = ArrowAnnotator(table)
    facts: dict[str, Any] = {"annotator_build_s": time.perf_counter() - t0, "file_rows": rows}
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="netfast-bench-annotate-") as tmp_name:
        tmp = Path(tmp_name)
        flows = tmp / "flows.parquet"
        say(f"writing {rows:,} rows of flows")
        make_flows(flows, rib, rows)
        facts["file_bytes"] = flows.stat().st_size

        def parquet_run(column: str) -> Callable[[], int]:
            def run() -> int:
                with open(tmp / f"nf-{column}.parquet", "wb") as f:
                    return annotate_parquet(flows, f, column, annotator)

            return run

        say("netfast: Parquet to Parquet, text addresses")
        out.append(Row("netfast, Parquet -> Parquet, text", _best(parquet_run("src_ip"), rounds),
                       STRING_TARGET))  # fmt: skip
        say("netfast: Parquet to Parquet, uint32 addresses")
        out.append(Row("netfast, Parquet -> Parquet, uint32", _best(parquet_run("src_u32"), rounds),
                       UINT32_TARGET))  # fmt: skip
        loaded = pq.read_table(flows, columns=["src_ip", "src_u32"])
        for column, kind in (("src_ip", "text"), ("src_u32", "uint32")):
            arr = loaded.column(column)
            say(f"netfast: in memory, {kind}")

            def in_memory(a: pa.ChunkedArray = arr) -> int:
                return annotator.annotate(a).num_rows

            out.append(Row(f"netfast, Arrow column in memory, {kind}", _best(in_memory, rounds)))

        say("DuckDB: building the range table")
        t0 = time.perf_counter()
        lo, rid = elementary_ranges(table)
        n_routes = rib.route_count
        prefix_text = [format_prefix(*rib.prefix_of(r)) for r in range(n_routes)]
        value_text = [str(rib.value_of(r)) for r in range(n_routes)]
        has = rid != NO_ROUTE
        safe = np.where(has, rid, 0)
        ranges = pa.table({
            "lo": lo,
            "prefix": pa.array(np.array(prefix_text, dtype=object)[safe], pa.string(),
                               mask=~has),
            "origin": pa.array(np.array(value_text, dtype=object)[safe], pa.string(),
                               mask=~has),
        })  # fmt: skip
        con = duckdb.connect()
        con.register("ranges_arrow", ranges)
        con.execute("CREATE TABLE ranges AS SELECT * FROM ranges_arrow ORDER BY lo")
        facts["duckdb_ranges"] = len(lo)
        facts["duckdb_ranges_build_s"] = time.perf_counter() - t0
        join_out = tmp / "duck-join.parquet"
        query = (
            f"COPY (SELECT f.*, r.prefix AS src_prefix, r.origin AS src_origin "
            f"FROM '{flows}' f ASOF LEFT JOIN ranges r ON f.src_u32 >= r.lo ORDER BY f.id) "
            f"TO '{join_out}' (FORMAT PARQUET)"
        )

        def copy(sql: str) -> Callable[[], int]:
            def run() -> int:
                con.execute(sql)
                return rows

            return run

        say("DuckDB: ASOF range join")
        out.append(Row("DuckDB, ASOF range join, Parquet -> Parquet", _best(copy(query), rounds)))
        register_duckdb(con, table)
        udf_out = tmp / "duck-udf.parquet"
        udf_query = (
            f"COPY (SELECT *, netfast_prefix(src_ip) AS src_prefix, netfast_origin(src_ip) AS "
            f"src_origin FROM '{flows}') TO '{udf_out}' (FORMAT PARQUET)"
        )

        say("DuckDB calling netfast_prefix / netfast_origin")
        out.append(Row("DuckDB + netfast SQL functions, Parquet -> Parquet",
                       _best(copy(udf_query), rounds)))  # fmt: skip

        say("Dask: a local cluster of two worker processes")
        out.append(_dask_row(flows, tmp, table, facts))

        say("checking netfast against the range join")
        ours = pq.read_table(
            tmp / "nf-src_u32.parquet", columns=["src_u32_prefix", "src_u32_value"]
        )
        theirs = pq.read_table(join_out, columns=["src_prefix", "src_origin"])
        agree = ours.column(0).to_pylist() == theirs.column(0).to_pylist() and (
            ours.column(1).to_pylist() == theirs.column(1).to_pylist()
        )
        facts["netfast_equals_duckdb_join"] = agree

        say("pytricia loop")
        import pytricia

        pyt = pytricia.PyTricia(32)
        for net, plen, r in rib.items():
            pyt.insert(net, plen, r)
        sample = loaded.column("src_u32").to_numpy()[:PYTRICIA_SAMPLE].tolist()

        def loop() -> int:
            get = pyt.get
            for a in sample:
                get(a)
            return len(sample)

        got = np.array([pyt.get(a, NO_ROUTE) for a in sample], np.int64)
        mine = table.lookup_batch(np.array(sample, np.uint32)).astype(np.int64)
        facts["netfast_equals_pytricia_sample"] = bool(np.array_equal(got, mine))

        out.append(Row("pytricia, Python loop (uint32 sample)", _best(loop, rounds),
                       note=f"{len(sample):,} rows"))  # fmt: skip
    return out, facts


def _dask_row(flows: Path, tmp: Path, table: RoutingTable, facts: dict[str, Any]) -> Row:
    """Parquet to a folder of parts on a local Dask cluster of two worker processes (one thread
    each), the cluster's start and the workers' start-up (the image shipped, each annotator
    built: into ``facts``) apart."""
    from distributed import LocalCluster

    from netfast.route.cluster import annotate_parquet_dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        done = annotate_parquet_dask(flows, tmp / "dask-parts", "src_ip", table,
                                     cluster.scheduler_address)  # fmt: skip
    builds = [w["build_seconds"] for per in done["workers"].values() for w in per.values()]
    facts["dask_image_bytes"] = done["image_bytes"]
    facts["dask_ship_seconds"] = done["ship_seconds"]
    facts["dask_worker_build_seconds"] = builds
    facts["dask_rows_per_worker"] = [
        w["rows"] for per in done["workers"].values() for w in per.values()
    ]
    return Row("Dask, 2 local workers, Parquet -> Parquet parts, text",
               done["rows"] / done["seconds"])  # fmt: skip


def to_json(rows: list[Row], facts: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {**meta, **facts, "rows": [asdict(r) for r in rows]}
