"""The processed-files ledger: one row per document version (source, bucket, key, ETag) and its fate.

The discovery sensor asks it which listed versions are new; the ingestion asset records processing, success and
failure in it. SQLite by default (a file under DAGSTER_HOME), any SQLAlchemy URL otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()


class Status(StrEnum):
    DISCOVERED = "DISCOVERED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


processed_files = sa.Table(
    "processed_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("etag", sa.String(255), nullable=False),
    sa.Column("partition_key", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("modified_at", sa.DateTime(timezone=True)),
    sa.Column("sha256", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("processing_started_at", sa.DateTime(timezone=True)),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("records_ingested", sa.BigInteger),
    sa.Column("bytes_read", sa.BigInteger),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("error_type", sa.String(128)),
    sa.Column("error_message", sa.Text),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", sa.String(64)),
    sa.UniqueConstraint("source", "bucket", "object_key", "etag", name="uq_processed_files_version"),
    sa.Index("ix_processed_files_source_status", "source", "status"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def create_ledger_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so the sensor and runs can share the file."""
    engine = sa.create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    metadata.create_all(engine)
    return engine


class Ledger:
    """Reads and writes processed_files rows."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def known_versions(self, source: str, bucket: str, keys: Sequence[str]) -> set[tuple[str, str]]:
        """The (key, etag) pairs among ``keys`` that the ledger already holds, in one query per call."""
        if not keys:
            return set()
        t = processed_files.c
        query = sa.select(t.object_key, t.etag).where(
            t.source == source, t.bucket == bucket, t.object_key.in_(list(set(keys)))
        )
        with self.engine.connect() as conn:
            return {(row.object_key, row.etag) for row in conn.execute(query)}

    def record_discovered(self, rows: Iterable[dict]) -> int:
        """Insert DISCOVERED rows (source, bucket, object_key, etag, partition_key, size_bytes, modified_at)."""
        rows = [{**row, "status": Status.DISCOVERED, "discovered_at": _now()} for row in rows]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(processed_files.insert(), rows)
        return len(rows)

    def _upsert(self, version: dict, **values: object) -> None:
        t = processed_files.c
        match = (
            (t.source == version["source"])
            & (t.bucket == version["bucket"])
            & (t.object_key == version["object_key"])
            & (t.etag == version["etag"])
        )
        with self.engine.begin() as conn:
            if conn.execute(processed_files.update().where(match).values(**values)).rowcount == 0:
                conn.execute(processed_files.insert().values(**version, discovered_at=_now(), **values))

    def mark_processing(self, version: dict, run_id: str) -> None:
        """``version``: source, bucket, object_key, etag, partition_key (inserted if the sensor never saw it)."""
        self._upsert(version, status=Status.PROCESSING, processing_started_at=_now(), run_id=run_id)

    def mark_success(self, version: dict, *, sha256: str, records: int, bytes_read: int, duration_ms: int) -> None:
        self._upsert(
            version,
            status=Status.SUCCESS,
            processed_at=_now(),
            sha256=sha256,
            records_ingested=records,
            bytes_read=bytes_read,
            duration_ms=duration_ms,
            error_type=None,
            error_message=None,
        )

    def mark_failed(self, version: dict, *, error: BaseException, duration_ms: int) -> None:
        self._upsert(
            version,
            status=Status.FAILED,
            processed_at=_now(),
            error_type=type(error).__name__,
            error_message=str(error)[:4000],
            duration_ms=duration_ms,
        )

    def status_counts(self) -> dict[tuple[str, str], int]:
        """{(source, status): documents}."""
        t = processed_files.c
        query = sa.select(t.source, t.status, sa.func.count()).group_by(t.source, t.status)
        with self.engine.connect() as conn:
            return {(source, status): count for source, status, count in conn.execute(query)}

    def versions(self, source: str | None = None) -> list[dict]:
        query = sa.select(processed_files).order_by(processed_files.c.id)
        if source:
            query = query.where(processed_files.c.source == source)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
