"""Annotation on a cluster: the table shipped to each worker once, partitions annotated there.

A :class:`TableImage` is the table as plain arrays -- every live route's network, length and
value code, and the distinct values (about 10 MB for the 2026 table) -- that pickles in a few
milliseconds.  A worker turns it into an :class:`~netfast.route.arrow.ArrowAnnotator` the first
time it needs one (the RIB and its DXR FIB rebuilt from the arrays: about 0.3 s for 1.17M
routes; the FIB itself is not shipped because its lock-free structures hold raw addresses) and
keeps it for every later partition: :meth:`TableImage.annotator` caches per process by the
image's token.

- Dask: :func:`annotate_dask` maps a Dask DataFrame's partitions (scatter the image with
  ``client.scatter(image, broadcast=True)`` and pass the future, so each worker receives it
  once); :func:`annotate_parquet_dask` is ``netfast route annotate --scheduler ADDR``.
- Spark: :func:`annotate_spark` (``mapInArrow``, the image broadcast).
- Polars: :func:`annotate_polars`.
- Any other engine that calls Python on Arrow record batches: :func:`annotate_record_batch`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from netfast.route.arrow import ArrowAnnotator
from netfast.route.parquet import new_names
from netfast.route.rib import Rib
from netfast.route.table import RoutingTable

__all__ = [
    "TableImage",
    "annotate_dask",
    "annotate_parquet_dask",
    "annotate_polars",
    "annotate_record_batch",
    "annotate_spark",
]

_CACHE: dict[str, tuple[ArrowAnnotator, float]] = {}  # token -> (annotator, build seconds)
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class TableImage:
    """A routing table as arrays, for shipping (see the module docstring)."""

    nets: npt.NDArray[np.uint32]
    plens: npt.NDArray[np.uint8]
    codes: npt.NDArray[np.int32]
    values: tuple[Any, ...]
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, table: RoutingTable) -> TableImage:
        rib = table.rib
        nets, plens, rids = rib.live_arrays()
        return cls(nets.copy(), plens.copy(), rib.value_id[rids].astype(np.int32),
                   tuple(rib.values))  # fmt: skip

    @property
    def nbytes(self) -> int:
        return self.nets.nbytes + self.plens.nbytes + self.codes.nbytes

    def table(self) -> RoutingTable:
        """The table rebuilt (RIB, then its DXR FIB)."""
        rib = Rib(max(1024, len(self.nets)))
        rib.add_many(self.nets, self.plens, list(self.values), self.codes)
        return RoutingTable(rib, "dxr")

    def annotator(self) -> ArrowAnnotator:
        """This process's annotator of the image, built on first use."""
        return self._cached()[0]

    def build_seconds(self) -> float:
        """How long this process took to build its annotator (building it if need be)."""
        return self._cached()[1]

    def _cached(self) -> tuple[ArrowAnnotator, float]:
        with _CACHE_LOCK:
            entry = _CACHE.get(self.token)
            if entry is None:
                t0 = time.perf_counter()
                ann = ArrowAnnotator(self.table())
                entry = _CACHE[self.token] = (ann, time.perf_counter() - t0)
        return entry


def annotate_record_batch(batch: pa.RecordBatch, column: str, image: TableImage) -> pa.RecordBatch:
    """``batch`` with the three columns of ``column``'s annotation appended (plain strings)."""
    extra = image.annotator().annotate(batch.column(column))
    prefix, length, value = extra.columns
    names = [*batch.schema.names, *new_names(column)]
    arrays = [*batch.columns, prefix.dictionary_decode(), length, value.dictionary_decode()]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def annotate_polars(frame: Any, column: str, annotator: ArrowAnnotator) -> Any:
    """A Polars DataFrame with ``column``'s annotation added: the column goes to Arrow and the
    three new ones come back from it without a copy of the addresses (Polars' strings are
    Arrow large strings, which the annotator reads in place)."""
    import polars as pl

    extra = annotator.annotate(frame.get_column(column).to_arrow())
    p_name, l_name, v_name = new_names(column)
    columns = (extra.column(0).dictionary_decode(), extra.column(1),
               extra.column(2).dictionary_decode())  # fmt: skip
    names = (p_name, l_name, v_name)
    return frame.with_columns(
        pl.Series(name, values) for name, values in zip(names, columns, strict=True)
    )


def annotate_spark(frame: Any, column: str, image: TableImage) -> Any:
    """A Spark DataFrame with ``column``'s annotation added (``mapInArrow``: Spark hands each
    Python worker Arrow record batches); the image is broadcast, so each executor receives it
    once, and a reused Python worker keeps its annotator.  Spark has no unsigned bytes: the
    prefix length is a ``tinyint``."""
    from pyspark.sql.types import ByteType, StringType, StructField, StructType

    p_name, l_name, v_name = new_names(column)
    schema = StructType([
        *frame.schema.fields,
        StructField(p_name, StringType()),
        StructField(l_name, ByteType()),
        StructField(v_name, StringType()),
    ])  # fmt: skip
    shipped = frame.sparkSession.sparkContext.broadcast(image)

    def run(batches: Any) -> Any:
        img = shipped.value
        for batch in batches:
            out = annotate_record_batch(batch, column, img)
            lengths = out.column(l_name).cast(pa.int8())
            yield out.set_column(out.schema.get_field_index(l_name), l_name, lengths)

    return frame.mapInArrow(run, schema)


def _partition(frame: Any, column: str, image: TableImage) -> Any:
    import pandas as pd

    extra = image.annotator().annotate(pa.array(frame[column], from_pandas=True))
    p_name, l_name, v_name = new_names(column)
    out = frame.copy(deep=False)
    out[p_name] = pd.array(extra.column(0).dictionary_decode(), dtype="string[pyarrow]")
    lengths = extra.column(1).to_pandas(types_mapper={pa.uint8(): pd.UInt8Dtype()}.get)
    out[l_name] = pd.array(lengths, dtype="UInt8")
    out[v_name] = pd.array(extra.column(2).dictionary_decode(), dtype="string[pyarrow]")
    return out


def annotate_dask(frame: Any, column: str, image: Any) -> Any:
    """A Dask DataFrame with ``column``'s annotation added to every partition; ``image`` is a
    :class:`TableImage` or a future of one (``client.scatter(image, broadcast=True)``)."""
    import pandas as pd

    p_name, l_name, v_name = new_names(column)
    meta = frame._meta.assign(**{
        p_name: pd.Series(dtype="string[pyarrow]"),
        l_name: pd.Series(dtype="UInt8"),
        v_name: pd.Series(dtype="string[pyarrow]"),
    })  # fmt: skip
    return frame.map_partitions(_partition, column, image, meta=meta)


def _warm(image: TableImage) -> float:
    return image.build_seconds()


def _worker_stats() -> dict[str, Any]:
    out = {}
    for token, (ann, seconds) in _CACHE.items():
        out[token] = {"pid": os.getpid(), "rows": ann.stats.rows, "build_seconds": seconds}
    return out


def annotate_parquet_dask(
    source: Path, destination: Path, column: str, table: RoutingTable, scheduler: str
) -> dict[str, Any]:
    """Annotate ``column`` of the Parquet file or folder ``source`` on the Dask cluster at
    ``scheduler`` into the folder ``destination`` (written beside it under a temporary name,
    then renamed: a failed run leaves nothing there).  Returns what the run did: rows, seconds
    (the run after every worker has its annotator), the image's size, the start-up (shipping
    the image and building the annotators) and each worker's build time."""
    import dask.dataframe as dd
    from distributed import Client

    image = TableImage.of(table)
    tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.netfast-tmp")
    with Client(scheduler) as client:
        t0 = time.perf_counter()
        shipped = client.scatter(image, broadcast=True)
        # every worker builds its annotator now, so the run below is steady state and the
        # start-up cost is reported on its own
        addresses = list(client.scheduler_info()["workers"])
        warm = [client.submit(_warm, shipped, workers=[a], allow_other_workers=False, pure=False)
                for a in addresses]  # fmt: skip
        client.gather(warm)
        ship = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            frame = dd.read_parquet(str(source), split_row_groups=True)
            annotate_dask(frame, column, shipped).to_parquet(str(tmp), write_index=False)
            os.replace(tmp, destination)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - t0
        workers = client.run(_worker_stats)
    rows = sum(s["rows"] for per in workers.values() for s in per.values() if s)
    return {"rows": rows, "seconds": seconds, "image_bytes": image.nbytes, "ship_seconds": ship,
            "workers": workers}  # fmt: skip
