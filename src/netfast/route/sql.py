"""SQL functions over the routing table for DuckDB: ``netfast_origin(addr)`` and friends.

:func:`register_duckdb` registers three vectorized (Arrow) functions on a DuckDB connection,
each backed by one :class:`~netfast.route.arrow.ArrowAnnotator` (the table is compiled once, in
the connection's process)::

    import duckdb
    from netfast.route.sql import register_duckdb

    con = duckdb.connect()
    register_duckdb(con)              # the bundled 2026 table; or register_duckdb(con, table)
    con.sql("SELECT src_ip, netfast_origin(src_ip) AS asn, netfast_prefix(src_ip) AS prefix "
            "FROM 'flows.parquet'")

- ``netfast_prefix(VARCHAR) -> VARCHAR``: the longest matching prefix (``198.18.0.0/15``);
- ``netfast_prefix_len(VARCHAR) -> UTINYINT``: its length;
- ``netfast_origin(VARCHAR) -> VARCHAR``: the route's value (the origin AS in the bundled table).

Each is NULL for a NULL, a malformed address or one without a route; ``annotator.stats`` counts
the rows by reason.  DuckDB hands a function a chunk of rows at a time (2,048 by default), so a
query calling two of them parses each address twice: use ``netfast.route.arrow`` directly on the
Arrow table when that matters.
"""

from __future__ import annotations

from typing import Any

from netfast.route.arrow import ArrowAnnotator
from netfast.route.table import RoutingTable

__all__ = ["FUNCTIONS", "register_duckdb"]

#: SQL name -> (output column of the annotator, DuckDB return type).
FUNCTIONS = {
    "netfast_prefix": ("prefix", "VARCHAR"),
    "netfast_prefix_len": ("prefix_len", "UTINYINT"),
    "netfast_origin": ("value", "VARCHAR"),
}


def register_duckdb(con: Any, table: RoutingTable | None = None) -> ArrowAnnotator:
    """Register :data:`FUNCTIONS` on the DuckDB connection ``con``, over ``table`` (default:
    the bundled 2026 table); returns the annotator behind them."""
    import pyarrow as pa

    if table is None:
        from netfast.route.loaders import load_default_table

        table = RoutingTable(load_default_table().rib, "dxr")
    annotator = ArrowAnnotator(table)

    def function(column: str) -> Any:
        def run(addresses: Any) -> Any:  # DuckDB evaluates the annotations: plain Any
            out = annotator.annotate(addresses).column(column)
            return out.dictionary_decode() if pa.types.is_dictionary(out.type) else out

        return run

    for name, (column, returns) in FUNCTIONS.items():
        con.create_function(
            name, function(column), ["VARCHAR"], returns, type="arrow", null_handling="special",
            side_effects=False,
        )  # fmt: skip
    return annotator
