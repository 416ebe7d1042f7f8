"""Rows of an extraction into a scratch Arrow IPC file, typed as the database declares them.

Each fetch becomes one record batch, hashed as it is written. A value that does not fit its column's Arrow type
(NaN in a ``numeric(12,2)``) is rescued by default: NULL in its column, the value as text in ``_rescued_data`` (a
JSON object per row, as a document's rescue contract writes it); with ``bad_values: fail`` the extraction fails
naming the row, the column and the value.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa

from ingestion_project.lib.bronze import columns_of
from ingestion_project.lib.contracts import RESCUED_COLUMN
from ingestion_project.lib.errors import ValidationError


def arrow_type(kind: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type that keeps a column's values exactly; text for what has none."""
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float):
        return pa.float64()
    if isinstance(kind, sa.Numeric):
        precision, scale = kind.precision, kind.scale or 0
        return pa.decimal128(precision, scale) if precision and precision <= 38 else pa.string()
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if kind.timezone else None)
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.LargeBinary):
        return pa.binary()
    return pa.string()  # text, enums, UUIDs, JSON, intervals, arrays: as text


def _text(value: object) -> str | None:
    """A value of a text column: JSON for dicts and lists (json/jsonb), str() for the rest (UUIDs, intervals...)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


_MISFIT = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)


class RowSpool:
    """Rows into an Arrow IPC file, one record batch per fetch, with a running checksum of the batches. With
    ``rescue``, a value that does not fit its column is NULL there and kept as text in ``_rescued_data``."""

    def __init__(
        self,
        path: str,
        names: list[str],
        types: dict[str, pa.DataType],
        label: str,
        identity: list[int],
        *,
        rescue: bool,
    ):
        if rescue and RESCUED_COLUMN.casefold() in (name.casefold() for name in names):
            raise ValidationError(f"{label}: column {RESCUED_COLUMN} is where bad values are rescued (bad_values)")
        self.path, self.names, self._types = path, names, types
        self.label, self.identity, self.rescue = label, identity, rescue
        self.schema: pa.Schema | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._hash = hashlib.sha256()
        self.rows = 0
        self.bytes = 0
        self.rescued = 0

    def write(self, rows) -> None:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        if self.schema is None:
            fields = [(n, self._type(n, values)) for n, values in zip(self.names, columns, strict=True)]
            self.schema = pa.schema(fields + ([(RESCUED_COLUMN, pa.string())] if self.rescue else []))
            self._writer = pa.ipc.new_file(self.path, self.schema)
        arrays = []
        rescued: dict[int, dict[str, str | None]] = {}
        for field, values in zip(self.schema, columns, strict=False):
            if pa.types.is_string(field.type):
                values = [_text(v) for v in values]
            try:
                arrays.append(pa.array(values, field.type))
            except _MISFIT:
                arrays.append(self._fit(field, values, rows, rescued))
        if self.rescue:
            column = [json.dumps(rescued[i], ensure_ascii=False) if i in rescued else None for i in range(len(rows))]
            arrays.append(pa.array(column, pa.string()))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.schema) as stream:
            stream.write_batch(batch)
        self._hash.update(sink.getvalue())
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def _fit(self, field: pa.Field, values, rows, rescued: dict[int, dict[str, str | None]]) -> pa.Array:
        """The column value by value (only for a batch where some value does not fit): each misfit rescued, or the
        extraction failed naming it."""
        fitted = []
        for index, value in enumerate(values):
            try:
                pa.array([value], field.type)
            except _MISFIT as e:
                if not self.rescue:
                    raise ValidationError(
                        f"{self.label}: row {self.rows + index:,}{self._row_name(rows[index])}, column {field.name}: "
                        f"{_text(value)!r} does not fit {field.type} ({e}); fix the row, or set bad_values: rescue"
                    ) from e
                rescued.setdefault(index, {})[field.name] = _text(value)
                self.rescued += 1
                value = None
            fitted.append(value)
        return pa.array(fitted, field.type)

    def _row_name(self, row) -> str:
        named = ", ".join(f"{self.names[i]}={_text(row[i])}" for i in self.identity)
        return f" ({named})" if named else ""

    def _type(self, name: str, values) -> pa.DataType:
        if name in self._types:
            return self._types[name]
        values = [v if not isinstance(v, dict | list) else _text(v) for v in values]
        try:
            inferred = pa.array(values).type
        except _MISFIT:
            # A NaN among decimals: the type of the others (the NaN is then a misfit); mixed kinds: text.
            finite = [v for v in values if not (isinstance(v, decimal.Decimal) and not v.is_finite())]
            try:
                inferred = pa.array(finite).type
            except _MISFIT:
                return pa.string()
        return pa.string() if pa.types.is_null(inferred) else inferred

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def sha256(self) -> str:
        return self._hash.hexdigest()

    def columns(self) -> list[dict[str, str]]:
        return columns_of(self.schema) if self.schema is not None else []


def batches(spool_path: str) -> Iterator[pa.RecordBatch]:
    """The record batches of a spooled extraction, memory-mapped."""
    with pa.memory_map(spool_path) as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)
