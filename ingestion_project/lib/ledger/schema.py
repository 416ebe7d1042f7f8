"""Tables of the processed-files ledger. Alembic migrations (``migrations/``) create and evolve them."""

from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa


class UtcDateTime(sa.TypeDecorator):
    """Timestamps in UTC on every dialect: SQLite has no time zones, so store naive UTC and hand back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _now() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()
# On PostgreSQL the ledger lives in its own schema of the server dagster-postgres uses (schema_translate_map).
POSTGRES_SCHEMA = "ingestion"


class Status(StrEnum):
    DISCOVERED = "DISCOVERED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    SUPERSEDED = "SUPERSEDED"
    QUARANTINED = "QUARANTINED"


IN_FLIGHT = (Status.DISCOVERED, Status.PROCESSING)
# Every version ends in exactly one of these; FAILED always with an open dead letter.
TERMINAL = (Status.SUCCESS, Status.FAILED, Status.SKIPPED, Status.SUPERSEDED, Status.QUARANTINED)

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
    sa.Column("modified_at", UtcDateTime()),
    sa.Column("sha256", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("discovered_at", UtcDateTime(), nullable=False),
    sa.Column("requested_at", UtcDateTime()),
    sa.Column("processing_started_at", UtcDateTime()),
    sa.Column("processed_at", UtcDateTime()),
    sa.Column("records_ingested", sa.BigInteger),
    sa.Column("bytes_read", sa.BigInteger),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("error_class", sa.String(16)),
    sa.Column("error_type", sa.String(128)),
    sa.Column("error_message", sa.Text),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", sa.String(64)),
    # 0002: pinned versions, leases, hand-backs and lost runs.
    sa.Column("version_id", sa.Text),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_expires_at", UtcDateTime()),
    sa.Column("not_before", UtcDateTime()),
    sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lost_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("request_key", sa.Text),
    sa.Column("request_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_traceback", sa.Text),
    # 0006: objects are indexed by lib/keys.key_hash, never by object_key (the key's readable text, any length).
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("key_hash", "etag", name="uq_processed_files_key_hash"),
    # 0007: after a run died holding this version with others, at most this many versions in its next run
    # (NULL: the source's batch size); deaths in a shared run, which do not count toward max_attempts.
    sa.Column("batch_limit", sa.Integer),
    sa.Column("shared_losses", sa.Integer, nullable=False, server_default="0"),
    # 0008: when this version's partition of raw_documents was retired from Dagster (NULL: live, or never had one).
    sa.Column("partition_retired_at", UtcDateTime()),
    sa.Index("ix_processed_files_live_partitions", "source", "partition_retired_at", "processed_at"),
    # 0009: when the row last changed, set on every insert and update, so the warehouse snapshot copies only what
    # changed since the last one.
    sa.Column("updated_at", UtcDateTime(), default=_now, onupdate=_now),
    sa.Index("ix_processed_files_updated", "updated_at"),
    # 0010: the committed bronze of a SUCCESS version — the attempt's manifest and data file (keys relative to the
    # bronze root), their size and sha256 — and when the integrity check last found them intact.
    sa.Column("bronze_manifest_key", sa.Text),
    sa.Column("bronze_manifest_bytes", sa.BigInteger),
    sa.Column("bronze_manifest_sha256", sa.String(64)),
    sa.Column("bronze_data_key", sa.Text),
    sa.Column("bronze_data_bytes", sa.BigInteger),
    sa.Column("bronze_data_sha256", sa.String(64)),
    sa.Column("bronze_verified_at", UtcDateTime()),
    sa.Index("ix_processed_files_status_requested", "status", "requested_at"),
    sa.Index("ix_processed_files_status_started", "status", "processing_started_at"),
    sa.Index("ix_processed_files_source_status", "source", "status"),
    sa.Index("ix_processed_files_status_lease", "status", "lease_expires_at"),
    sa.Index("ix_processed_files_request_key", "request_key"),
    sa.Index("ix_processed_files_status_verified", "status", "bronze_verified_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("dlq_key", sa.Text, primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("etag", sa.String(255), nullable=False),
    sa.Column("partition_key", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("content_type", sa.Text),
    sa.Column("error_class", sa.String(16), nullable=False),
    sa.Column("error_type", sa.String(128), nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("failed_at", UtcDateTime(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("retry_count", sa.Integer, nullable=False),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open, resolved, quarantined, superseded
    sa.Column("closed_at", UtcDateTime()),
    # 0002: the row is written before the JSON object; stored_key is where the object is now (NULL: not yet
    # written). A later pass writes or moves the object until stored_key = dlq_key.
    sa.Column("stored_key", sa.Text),
    sa.Column("error_traceback", sa.Text),
    sa.Column("attempts", sa.Integer),
    sa.Column("job_name", sa.String(255)),
    sa.Column("key_hash", sa.String(64), nullable=False),  # 0006
    sa.Index("ix_dead_letters_state", "state"),
    sa.Index("ix_dead_letters_key_hash", "key_hash", "etag"),
)

# 0003: the schema of every document version that landed, and its change against the source's previous one.
schema_versions = sa.Table(
    "schema_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("etag", sa.String(255), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("columns_json", sa.Text, nullable=False),  # [{"name", "type"}] as bronze holds them
    sa.Column("previous_fingerprint", sa.String(64)),  # the source's schema before this one; NULL: the first
    sa.Column("columns_added", sa.Text, nullable=False),  # JSON lists against the previous schema
    sa.Column("columns_removed", sa.Text, nullable=False),
    sa.Column("columns_retyped", sa.Text, nullable=False),  # [{"name", "from", "to"}]
    # 0004: what the source's schema contract did (lib/contracts.ContractOutcome as JSON); NULL: no contract
    sa.Column("contract_json", sa.Text),
    sa.Column("key_hash", sa.String(64), nullable=False),  # 0006
    sa.UniqueConstraint("key_hash", "etag", name="uq_schema_versions_key_hash"),
    sa.Index("ix_schema_versions_source", "source", "id"),
)

# 0005: how far each incremental database extraction has read (its table's greatest watermark value so far).
watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("column_name", sa.String(255), nullable=False),
    sa.Column("value", sa.Text, nullable=False),  # ISO 8601 for a timestamp, exact decimal text for a number
    sa.Column("value_type", sa.String(16), nullable=False),  # "timestamp" | "integer" | "numeric"
    sa.Column("etag", sa.String(255), nullable=False),  # the extraction that set it
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("source", "table_name", name="uq_watermarks_table"),
)
