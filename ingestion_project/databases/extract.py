"""Extract one table (or query) of a database source into bronze, in batches.

An extraction streams the rows (a server-side cursor, ``batch_rows`` at a time) into a scratch Arrow file while
hashing them, then writes that file as bronze Parquet with the lineage columns, exactly like a document's. Nothing
reaches bronze until the last row has been read, so an extraction that fails halfway leaves no partial bronze.

Incremental loads read the rows whose watermark column is above the table's watermark and at most the greatest
value the extraction saw when it started; the first extraction (and the one after a reset) reads everything up to
that value. Rows committed later with a value at or below it are not seen: give the watermark column a value
assigned at commit (or a sequence) where that matters. Rows whose watermark is NULL are read only by full loads.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingestion_project.config import DatabaseTableConfig
from ingestion_project.lib.bronze import BronzeWriter, Lineage, columns_of
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
            high, params = _high_water(connection, relation, since)
            if high is None:  # nothing above the watermark
                return Extraction(0, hashlib.sha256().hexdigest(), 0, [], None)
            where = f" where {relation.watermark} <= :high"
            where += f" and {relation.watermark} > :low" if since is not None else f" or {relation.watermark} is null"
            where += f" order by {relation.watermark}"
        result = connection.execution_options(stream_results=True, yield_per=spec.batch_rows).execute(
            sa.text(f"select * from {relation.sql}{where}"), params
        )
        names = list(result.keys())
        check_columns(names, f"{spec.label}")
        writer = _Spool(spool_path, names, relation.types())
        try:
            for rows in result.partitions():
                if writer.rows + len(rows) > max_rows:
                    raise ValidationError(f"{spec.label} has more than {max_rows:,} rows to extract (limits.rows)")
                writer.write(rows)
        finally:
            writer.close()
    watermark = None
    if high is not None:
        watermark = Watermark(spec.label, spec.watermark, _encode(high), _kind(high))
    return Extraction(writer.rows, writer.sha256(), writer.bytes, writer.columns(), watermark)


def _high_water(connection: Connection, relation: _Relation, since: Watermark | None) -> tuple[object, dict]:
    query = f"select max({relation.watermark}) from {relation.sql}"
    params: dict = {}
    if since is not None:
        params["low"] = _decode(since)
        query += f" where {relation.watermark} > :low"
    high = connection.execute(sa.text(query), params).scalar()
    return high, {**params, "high": high}


def _kind(value: object) -> str:
    if isinstance(value, datetime | date):
        return "timestamp"
    if isinstance(value, int | decimal.Decimal) and not isinstance(value, bool):
        return "integer"
    raise ValidationError(f"a watermark must be a timestamp or an integer column, not {type(value).__name__}")


def _encode(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(int(value))


def _decode(watermark: Watermark) -> object:
    if watermark.value_type == "integer":
        return int(watermark.value)
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


class _Spool:
    """Rows into an Arrow IPC file, one record batch per fetch, with a running checksum of the batches."""

    def __init__(self, path: str, names: list[str], types: dict[str, pa.DataType]):
        self.path, self.names, self._types = path, names, types
        self.schema: pa.Schema | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._hash = hashlib.sha256()
        self.rows = 0
        self.bytes = 0

    def write(self, rows) -> None:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        if self.schema is None:
            self.schema = pa.schema([(n, self._type(n, values)) for n, values in zip(self.names, columns, strict=True)])
            self._writer = pa.ipc.new_file(self.path, self.schema)
        arrays = []
        for field, values in zip(self.schema, columns, strict=True):
            if pa.types.is_string(field.type):
                values = [_text(v) for v in values]
            try:
                arrays.append(pa.array(values, field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise ValidationError(
                    f"column {field.name} no longer fits {field.type} after row {self.rows:,}: {e}"
                ) from e
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.schema) as stream:
            stream.write_batch(batch)
        self._hash.update(sink.getvalue())
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def _type(self, name: str, values) -> pa.DataType:
        if name in self._types:
            return self._types[name]
        inferred = pa.array([v if not isinstance(v, dict | list) else _text(v) for v in values]).type
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
