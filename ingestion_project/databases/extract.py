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

How rows are typed and a value that does not fit is rescued: rows.py; how watermarks are kept: watermarks.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingestion_project.config import DatabaseTableConfig
from ingestion_project.databases.rows import RowSpool, arrow_type, batches
from ingestion_project.databases.watermarks import decode, kept, low_water
from ingestion_project.lib.bronze import BronzeWriter, Lineage
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
        return {column.name: arrow_type(column.type) for column in self.reflected.columns}


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
            low = low_water(since, spec.watermark_lag)
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
        writer = RowSpool(spool_path, names, relation.types(), spec.label, identity, rescue=spec.bad_values == "rescue")
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
            high = max(high, decode(since))
        watermark = kept(spec.label, spec.watermark, high)
    return Extraction(writer.rows, writer.sha256(), writer.bytes, writer.columns(), watermark, writer.rescued)


def _identity_columns(names: Sequence[str], spec: DatabaseTableConfig) -> list[int]:
    """Positions of the columns that name a row in a message: the primary key, else the watermark column."""
    folded = [name.casefold() for name in names]
    missing = [column for column in spec.primary_key if column.casefold() not in folded]
    if missing:
        raise ValidationError(f"{spec.label} has no column {', '.join(missing)} of its primary_key")
    wanted = spec.primary_key or ((spec.watermark,) if spec.watermark else ())
    return [folded.index(column.casefold()) for column in wanted if column.casefold() in folded]


def _high_water(connection: Connection, relation: _Relation, low: object) -> tuple[object, dict]:
    query = f"select max({relation.watermark}) from {relation.sql}"
    params: dict = {}
    if low is not None:
        params["low"] = low
        query += f" where {relation.watermark} > :low"
    high = connection.execute(sa.text(query), params).scalar()
    return high, {**params, "high": high}


def write_bronze(spool_path: str, lineage: Lineage, out_path: str, *, max_rows: int) -> int:
    """The spooled rows as a bronze Parquet file with the lineage columns; the number of rows written."""
    # The extraction's own _rescued_data (bad_values: rescue) lands as it is; a table column so named was refused.
    writer = BronzeWriter(out_path, lineage, numbered=True, max_rows=max_rows, keep=("_rescued_data",))
    try:
        for batch in batches(spool_path):
            writer.write(batch)
        return writer.close()
    finally:
        writer.discard()
