"""Row Structs -> one Arrow table per store table, built column by column (stack-notes §3: column
batches are ~100x faster than executemany). Backend-neutral: ClickHouse can take the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate, chain
from typing import Any

import msgspec
import pyarrow as pa

from openpanel_lite.storage.columns import TABLES, Column, LogicalType, arrow_schema

_ArrayBuilder = Callable[[Sequence[Any], Column], pa.Array]


def _plain(values: Sequence[Any], col: Column) -> pa.Array:
    return pa.array(values, type=col.arrow_type)


def _uuid(values: Sequence[Any], col: Column) -> pa.Array:
    storage = pa.array([v.bytes for v in values], type=pa.binary(16))
    return pa.ExtensionArray.from_storage(col.arrow_type, storage)


def _string_map(values: Sequence[Any], col: Column) -> pa.Array:
    # TRICKY: pa.array() over a list of dicts builds the map entry by entry in Python and is the
    # slow part of a batch; flattening keys/values and passing offsets is several times faster.
    offsets = pa.array(list(accumulate((len(m) for m in values), initial=0)), type=pa.int32())
    keys = pa.array(list(chain.from_iterable(m.keys() for m in values)), type=pa.string())
    items = pa.array(list(chain.from_iterable(m.values() for m in values)), type=pa.string())
    return pa.MapArray.from_arrays(offsets, keys, items, type=col.arrow_type)


def _string_array(values: Sequence[Any], col: Column) -> pa.Array:
    offsets = pa.array(list(accumulate((len(a) for a in values), initial=0)), type=pa.int32())
    flat = pa.array(list(chain.from_iterable(values)), type=pa.string())
    return pa.ListArray.from_arrays(offsets, flat, type=col.arrow_type)


_BUILDERS: dict[LogicalType, _ArrayBuilder] = {
    LogicalType.UUID: _uuid,
    LogicalType.STRING_MAP: _string_map,
    LogicalType.STRING_ARRAY: _string_array,
}


def to_arrow(table: str, rows: Sequence[msgspec.Struct]) -> pa.Table:
    """The rows of one table as an Arrow table whose columns follow storage/columns.py.

    Raises (ValueError, TypeError, OverflowError, pa.ArrowException) on values that do not fit
    their column, e.g. a negative revenue or a naive string where a datetime belongs.
    """
    columns = TABLES[table]
    # astuple + zip(*) transposes rows to columns in C; per-column getattr loops are slower.
    transposed = list(zip(*(msgspec.structs.astuple(r) for r in rows), strict=True))
    if not transposed:
        transposed = [() for _ in columns]
    if len(transposed) != len(columns):
        raise ValueError(f"{table}: rows have {len(transposed)} fields, the table has {len(columns)} columns")
    arrays = [
        _BUILDERS.get(col.type, _plain)(values, col) for col, values in zip(columns, transposed, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(table))
