"""Parquet files annotated in a stream: row groups in, the same rows with their annotation out.

:func:`annotate_parquet` reads the input a batch of rows at a time
(``pyarrow.parquet.ParquetFile.iter_batches``), annotates one column with an
:class:`~netfast.route.arrow.ArrowAnnotator` and writes every input column plus three new ones
(``<column>_prefix``, ``<column>_prefix_len``, ``<column>_value``) with a
``pyarrow.parquet.ParquetWriter`` in a second thread (pyarrow encodes without the GIL, so
reading and annotating one batch overlaps writing the previous one); at most four batches are
alive at once, so memory is bounded by the batch size, not the file.  The caller
gives the output as an open binary file (a temporary file it renames at the end).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from netfast.route.arrow import ArrowAnnotator

__all__ = ["PARQUET_MAGIC", "ParquetInputError", "annotate_parquet", "is_parquet", "new_names"]

PARQUET_MAGIC = b"PAR1"
BATCH_ROWS = 1 << 18


class ParquetInputError(ValueError):
    """The input is not a readable Parquet file, or lacks the column (the message says which)."""


def is_parquet(path: Path) -> bool:
    """Whether ``path`` names a Parquet file (by its first bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def new_names(column: str) -> tuple[str, str, str]:
    return f"{column}_prefix", f"{column}_prefix_len", f"{column}_value"


def annotate_parquet(
    source: Path,
    out: BinaryIO,
    column: str | None,
    annotator: ArrowAnnotator,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Annotate ``column`` of the Parquet file ``source`` into ``out``; returns the rows
    written.  ``column`` None takes the only column of a one-column file.  ``progress`` gets
    the rows of each batch as it is written.

    Raises
    ------
    ParquetInputError
        ``source`` is not Parquet, cannot be read, has no such column (or several and none
        named), already has one of the new names, or holds a column type that is not addresses.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise ParquetInputError(f"{source}: not a readable Parquet file: {exc}") from None
    schema = pf.schema_arrow
    names = schema.names
    if column is None:
        if len(names) != 1:
            raise ParquetInputError(
                f"{source}: {len(names)} columns ({', '.join(names[:8])}): "
                "name the address column with --column"
            )
        column = names[0]
    if column not in names:
        raise ParquetInputError(
            f"{source}: no column {column!r} (columns: {', '.join(names[:20])})"
        )
    taken = [n for n in new_names(column) if n in names]
    if taken:
        raise ParquetInputError(f"{source}: already has a column {taken[0]!r}")
    field = schema.field(column)
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_integer(kind)):  # fmt: skip
        raise ParquetInputError(
            f"{source}: column {column!r} is {field.type}, not address strings or integers"
        )
    p_name, l_name, v_name = new_names(column)
    # Plain strings on disk: the annotator's dictionaries span the whole table, and a Parquet
    # writer given a dictionary column writes all of it with every batch (8x slower here).
    out_schema = schema.append(pa.field(p_name, pa.string()))
    out_schema = out_schema.append(pa.field(l_name, pa.uint8()))
    out_schema = out_schema.append(pa.field(v_name, pa.string()))
    # Dictionary pages for the new text columns (few distinct values) and for input columns
    # that came dictionary-encoded; for the others (ids, addresses: nearly all distinct) a
    # dictionary is built and then dropped, which doubled the writer's time.
    dictionary = [p_name, v_name] + [f.name for f in schema if pa.types.is_dictionary(f.type)]
    rows = 0
    todo: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []

    def write_all(writer: pq.ParquetWriter) -> None:
        # pyarrow encodes without the GIL: this thread writes while the caller's reads and
        # annotates the next batch
        try:
            while (batch := todo.get()) is not None:
                writer.write_batch(batch)
                if progress is not None:
                    progress(batch.num_rows)
        except BaseException as exc:
            failed.append(exc)
            while todo.get() is not None:  # let the reader finish
                pass

    try:
        with pq.ParquetWriter(out, out_schema, use_dictionary=dictionary) as writer:
            thread = threading.Thread(target=write_all, args=(writer,), daemon=True)
            thread.start()
            try:
                for batch in pf.iter_batches(batch_size=batch_rows):
                    if failed:
                        break
                    extra = annotator.annotate(batch.column(column))
                    prefix, length, value = extra.columns
                    arrays = [*batch.columns, prefix.dictionary_decode(), length,
                              value.dictionary_decode()]  # fmt: skip
                    todo.put(pa.RecordBatch.from_arrays(arrays, schema=out_schema))
                    rows += batch.num_rows
            finally:
                todo.put(None)
                thread.join()
            if failed:
                raise failed[0]
    except (pa.ArrowException, OSError) as exc:
        raise ParquetInputError(f"{source}: cannot read after {rows:,} rows: {exc}") from None
    return rows
