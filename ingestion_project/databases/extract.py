"""Extract one table (or query) of a database source into bronze, in batches.

An extraction streams the rows (a server-side cursor, ``batch_rows`` at a time) into a scratch Arrow file while
hashing them, then writes that file as bronze Parquet with the lineage columns, exactly like a document's. Nothing
reaches bronze until the last row has been read, so an extraction that fails halfway leaves no partial bronze.

Incremental loads read the rows whose watermark column is above the table's watermark and at most the greatest
value the extraction saw when it started; the first extraction (and the one after a reset) reads everything up to
that value. Rows committed later with a value at or below it are not seen — unless the table has a
``watermark_lag``: then each extraction starts that far below the watermark, reading the rows of that window
again (staging keeps one row per primary key). Rows whose watermark is NULL are read only by full loads. Numeric
watermarks are kept exactly, as decimal text.

A value that does not fit its column's Arrow type (NaN in a ``numeric(12,2)``) is rescued by default: NULL in its
column, the value as text in ``_rescued_data`` (a JSON object per row, as a document's rescue contract writes it);
with ``bad_values: fail`` the extraction fails naming the row, the column and the value.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingestion_project.config import DatabaseTableConfig
from ingestion_project.lib.bronze import BronzeWriter, Lineage, columns_of
from ingestion_project.lib.contracts import RESCUED_COLUMN
from ingestion_project.lib.errors import TransientError, ValidationError
from ingestion_project.lib.ledger import Watermark
from ingestion_project.lib.tabular import check_columns

_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, sa.exc.DisconnectionError)


@dataclass(frozen=True)
class Extraction:
    """What one extraction read: rows, their checksum, columns, and the watermark to keep once it lands."""

    rows: int
    sha256: str
    bytes_read: int  # of the rows as Arrow data
    columns: list[dict[str, str]]
    watermark: Watermark | None  # None: a full load, or nothing new
    rescued_values: int = 0  # values that did not fit their column, kept in _rescued_data


def extraction_id(load: str, run_id: str, at: datetime | None = None) -> str:
    """The extraction's "ETag": when it started, its load and its run — ordered as the extractions were."""
    at = at or datetime.now(UTC)
    return f"{at:%Y%m%dT%H%M%S%fZ}-{load}-{run_id[:8]}"


def classified(error: Exception) -> Exception:
    """A database error as a failure class: connection trouble is transient; the rest (no such table or column,
    a value the driver refuses) is the source's fault and is not retried."""
    if isinstance(error, _TRANSIENT):
        return TransientError(f"database unavailable: {_first_line(error)}")
    if isinstance(error, sa.exc.DBAPIError | sa.exc.NoSuchTableError | sa.exc.ArgumentError):
        return ValidationError(f"the database refused the extraction: {_first_line(error)}")
    return error


def _first_line(error: Exception) -> str:
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]


class _Relation:
    """The table or query an extraction reads, as SQL, with its watermark column."""

    def __init__(self, connection: Connection, spec: DatabaseTableConfig):
        quote = connection.dialect.identifier_preparer.quote
        self.reflected: sa.Table | None = None
        if spec.query:
            self.sql = f"({spec.query.strip().rstrip(';')}) as extracted"
        else:
            schema, _, name = (spec.table or spec.name).rpartition(".")
            self.reflected = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=connection)
            self.sql = ".".join(quote(part) for part in (schema, name) if part)
        self.watermark = quote(spec.watermark) if spec.watermark else None

    def types(self) -> dict[str, pa.DataType]:
        """Arrow types of a reflected table's columns ({} for a query: inferred from its rows)."""
        if self.reflected is None:
            return {}
        return {column.name: _arrow_type(column.type) for column in self.reflected.columns}


def extract(
    engine: Engine,
    spec: DatabaseTableConfig,
    since: Watermark | None,
    spool_path: str,
    *,
    max_rows: int,
) -> Extraction:
    """Read the rows of ``spec`` (after ``since`` for an incremental load) into an Arrow file at ``spool_path``."""
    with engine.connect() as connection:
        relation = _Relation(connection, spec)
        where, params, high = "", {}, None
        if spec.load == "incremental":
            low = _low_water(since, spec.watermark_lag)
            high, params = _high_water(connection, relation, low)
            if high is None:  # nothing above the watermark (less its lag)
                return Extraction(0, hashlib.sha256().hexdigest(), 0, [], None)
            where = f" where {relation.watermark} <= :high"
            where += f" and {relation.watermark} > :low" if low is not None else f" or {relation.watermark} is null"
            where += f" order by {relation.watermark}"
        result = connection.execution_options(stream_results=True, yield_per=spec.batch_rows).execute(
            sa.text(f"select * from {relation.sql}{where}"), params
        )
        names = list(result.keys())
        check_columns(names, f"{spec.label}")
        identity = _identity_columns(names, spec)
        writer = _Spool(spool_path, names, relation.types(), spec.label, identity, rescue=spec.bad_values == "rescue")
        try:
            for rows in result.partitions():
                if writer.rows + len(rows) > max_rows:
                    raise ValidationError(f"{spec.label} has more than {max_rows:,} rows to extract (limits.rows)")
                writer.write(rows)
        finally:
            writer.close()
    watermark = None
    if high is not None:
        if since is not None:  # a lag re-reads below the watermark: it never moves the watermark back
            high = max(high, _decode(since))
        kind = _kind(high, spec.watermark)
        watermark = Watermark(spec.label, spec.watermark, _encode(high, kind), kind)
    return Extraction(writer.rows, writer.sha256(), writer.bytes, writer.columns(), watermark, writer.rescued)


def _identity_columns(names: Sequence[str], spec: DatabaseTableConfig) -> list[int]:
    """Positions of the columns that name a row in a message: the primary key, else the watermark column."""
    folded = [name.casefold() for name in names]
    missing = [column for column in spec.primary_key if column.casefold() not in folded]
    if missing:
        raise ValidationError(f"{spec.label} has no column {', '.join(missing)} of its primary_key")
    wanted = spec.primary_key or ((spec.watermark,) if spec.watermark else ())
    return [folded.index(column.casefold()) for column in wanted if column.casefold() in folded]


def _low_water(since: Watermark | None, lag: float | None) -> object:
    """Where an incremental extraction starts reading (exclusive): the watermark, less the lag if there is one."""
    if since is None:
        return None
    low = _decode(since)
    if lag is None:
        return low
    if isinstance(low, datetime | date):
        return low - timedelta(seconds=lag)
    if isinstance(low, int) and float(lag).is_integer():
        return low - int(lag)
    return decimal.Decimal(low) - decimal.Decimal(str(lag))


def _high_water(connection: Connection, relation: _Relation, low: object) -> tuple[object, dict]:
    query = f"select max({relation.watermark}) from {relation.sql}"
    params: dict = {}
    if low is not None:
        params["low"] = low
        query += f" where {relation.watermark} > :low"
    high = connection.execute(sa.text(query), params).scalar()
    return high, {**params, "high": high}


def _kind(value: object, column: str | None) -> str:
    """How a watermark value is kept: "timestamp" (ISO 8601), "integer" or "numeric" (exact decimal text)."""
    if isinstance(value, datetime | date):
        return "timestamp"
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    if isinstance(value, decimal.Decimal | float):
        if not decimal.Decimal(str(value)).is_finite():
            raise ValidationError(f"the watermark column {column} holds {value}: a watermark must be a finite number")
        return "numeric"
    raise ValidationError(f"a watermark must be a timestamp or a number column, not {type(value).__name__}")


def _encode(value: object, kind: str) -> str:
    if kind == "timestamp":
        return value.isoformat()
    if kind == "integer":
        return str(value)
    return format(decimal.Decimal(str(value)), "f")  # 2.5 stays "2.5"; 1E+30 is written out


def _decode(watermark: Watermark) -> object:
    if watermark.value_type == "integer":
        return int(watermark.value)
    if watermark.value_type == "numeric":
        return decimal.Decimal(watermark.value)
    return datetime.fromisoformat(watermark.value)


def _arrow_type(kind: sa.types.TypeEngine) -> pa.DataType:
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


class _Spool:
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


def write_bronze(spool_path: str, lineage: Lineage, out_path: str, *, max_rows: int) -> int:
    """The spooled rows as a bronze Parquet file with the lineage columns; the number of rows written."""
    writer = BronzeWriter(out_path, lineage, numbered=True, max_rows=max_rows)
    try:
        for batch in batches(spool_path):
            writer.write(batch)
        return writer.close()
    finally:
        writer.discard()
