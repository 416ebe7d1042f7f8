"""A ledger snapshot as the `ingestion_ledger` asset writes it: tables `ledger.processed_files` and
`ledger.dead_letters` in the warehouse.

Three sources. `orders/2026-01.csv` was overwritten: its first ETag succeeded, its second is still processing
(leased by its run). `orders` has a broken file (failed, open dead letter), an excluded one (skipped) and a new one
(discovered). `invoices` has a scan that ran out of replays (quarantined dead letter), a file that failed
transiently and succeeded on replay (resolved dead letter) and one that failed transiently and waits for a replay
(open). `notes` is a local source (empty bucket); its draft was overwritten before it was ingested: the first ETag
is superseded, the second waits for a run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

PROCESSED_FILES_COLUMNS = {
    "id": "bigint",
    "source": "varchar",
    "bucket": "varchar",
    "object_key": "varchar",
    "etag": "varchar",
    "partition_key": "varchar",
    "size_bytes": "bigint",
    "modified_at": "timestamptz",
    "sha256": "varchar",
    "status": "varchar",
    "discovered_at": "timestamptz",
    "requested_at": "timestamptz",
    "processing_started_at": "timestamptz",
    "processed_at": "timestamptz",
    "records_ingested": "bigint",
    "bytes_read": "bigint",
    "duration_ms": "bigint",
    "error_class": "varchar",
    "error_type": "varchar",
    "error_message": "varchar",
    "retry_count": "integer",
    "run_id": "varchar",
    # 0002: pinned versions, leases, hand-backs and lost runs.
    "version_id": "varchar",
    "lease_token": "varchar",
    "lease_expires_at": "timestamptz",
    "not_before": "timestamptz",
    "tries": "integer",
    "lost_count": "integer",
    "request_key": "varchar",
    "request_count": "integer",
    "error_traceback": "varchar",
    # 0006: objects are indexed by a hash of source, bucket and key.
    "key_hash": "varchar",
    # 0007: the batch limit and the shared deaths after a run died holding the version with others.
    "batch_limit": "integer",
    "shared_losses": "integer",
    # 0008: when its partition of raw_documents was retired; 0009: when the row last changed.
    "partition_retired_at": "timestamptz",
    "updated_at": "timestamptz",
    # 0010: the committed bronze of a SUCCESS version, and when it was last verified.
    "bronze_manifest_key": "varchar",
    "bronze_manifest_bytes": "bigint",
    "bronze_manifest_sha256": "varchar",
    "bronze_data_key": "varchar",
    "bronze_data_bytes": "bigint",
    "bronze_data_sha256": "varchar",
    "bronze_verified_at": "timestamptz",
    "snapshot_at": "timestamptz",
}
DEAD_LETTERS_COLUMNS = {
    "dlq_key": "varchar",
    "source": "varchar",
    "bucket": "varchar",
    "object_key": "varchar",
    "etag": "varchar",
    "size_bytes": "bigint",
    "content_type": "text",  # TEXT in the ledger since 0002 (a Content-Type can be long); VARCHAR in DuckDB
    "partition_key": "varchar",
    "error_class": "varchar",
    "error_type": "varchar",
    "error_message": "varchar",
    "failed_at": "timestamptz",
    "run_id": "varchar",
    "retry_count": "integer",
    "max_retries": "integer",
    "state": "varchar",
    "closed_at": "timestamptz",
    # 0002: the row is written first; stored_key is where its JSON object is so far.
    "stored_key": "varchar",
    "error_traceback": "varchar",
    "attempts": "integer",
    "job_name": "varchar",
    "key_hash": "varchar",  # 0006
    "is_resolved": "boolean",
    "snapshot_at": "timestamptz",
}
SNAPSHOT_AT = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
# One row per snapshot: when it ran (the ledger sources' freshness), how, and what it copied.
SNAPSHOT_LOG_COLUMNS = {
    "snapshot_at": "timestamptz",
    "mode": "varchar",
    "versions": "bigint",
    "schema_versions": "bigint",
    "dead_letters": "bigint",
}
# Longer than the 255 characters content_type held before 0002.
LONG_CONTENT_TYPE = "text/csv; charset=utf-8; " + "; ".join(f"x-param-{i}=value-{i}" for i in range(20))

# What the marts must show.
SCHEMA_VERSIONS_COLUMNS = {
    "id": "bigint",
    "source": "varchar",
    "bucket": "varchar",
    "object_key": "varchar",
    "etag": "varchar",
    "recorded_at": "timestamp with time zone",
    "fingerprint": "varchar",
    "columns_json": "varchar",
    "previous_fingerprint": "varchar",
    "columns_added": "varchar",
    "columns_removed": "varchar",
    "columns_retyped": "varchar",
    "contract_json": "varchar",
    "key_hash": "varchar",  # 0006
    "snapshot_at": "timestamp with time zone",
}


def schema_versions() -> list[dict]:
    """The orders source's schema history: a first schema, the same again with a value its contract rescued, then a
    column added and one retyped."""
    rescued = {"mode": "rescue", "missing_columns": [], "unexpected_columns": [], "rescued_rows": 2}
    rescued |= {"rescued_values": 2, "discarded_values": 0}
    first = [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "double"}]
    drifted = [*first[:1], {"name": "amount", "type": "string"}, {"name": "tip", "type": "double"}]

    def row(row_id, key, etag, columns, previous, fingerprint, added=(), retyped=(), contract=None):
        return {
            "id": row_id,
            "source": "orders",
            "bucket": "landing",
            "object_key": key,
            "etag": etag,
            "recorded_at": _at(f"2026-02-0{row_id}T10:00:00+00:00"),
            "fingerprint": fingerprint,
            "columns_json": json.dumps(columns),
            "previous_fingerprint": previous,
            "columns_added": json.dumps(list(added)),
            "columns_removed": "[]",
            "columns_retyped": json.dumps(list(retyped)),
            "contract_json": None if contract is None else json.dumps(contract),
            "key_hash": _key_hash("orders", "landing", key),
            "snapshot_at": _at("2026-02-05T00:00:00+00:00"),
        }

    return [
        row(1, "orders/a.csv", "a1", first, None, "f" * 64),
        row(2, "orders/b.csv", "b1", first, "f" * 64, "f" * 64, contract=rescued),
        row(
            3,
            "orders/c.csv",
            "c1",
            drifted,
            "f" * 64,
            "d" * 64,
            ["tip"],
            [{"name": "amount", "from": "double", "to": "string"}],
        ),
    ]


EXPECTED_CONSERVATION = [
    # source, discovered, succeeded, failed, skipped, superseded, quarantined, in flight, duplicated, balanced
    ("invoices", 3, 1, 1, 0, 0, 1, 0, 0, True),
    ("notes", 3, 1, 0, 0, 1, 0, 1, 0, True),  # both ETags of guides/draft.md
    ("orders", 6, 2, 1, 1, 0, 0, 2, 0, True),  # both ETags of orders/2026-01.csv
]
EXPECTED_FAILURES = [
    # source, error class, error type, UTC day, failures, open, resolved, quarantined
    ("invoices", "transient", "ReadTimeoutError", "2026-02-02", 2, 1, 1, 0),
    ("invoices", "validation", "UnsupportedFormatError", "2026-02-02", 1, 0, 0, 1),
    ("orders", "validation", "CsvShapeError", "2026-11-05", 1, 1, 0, 0),  # failed at 00:30 +01:00
]
EXPECTED_BACKLOG = [
    # source, status, in flight, documents
    ("invoices", "FAILED", False, 1),
    ("invoices", "QUARANTINED", False, 1),
    ("invoices", "SUCCESS", False, 1),
    ("notes", "DISCOVERED", True, 1),  # the second ETag of guides/draft.md; the superseded first one no longer counts
    ("notes", "SUCCESS", False, 1),
    ("orders", "DISCOVERED", True, 1),
    ("orders", "FAILED", False, 1),
    ("orders", "PROCESSING", True, 1),  # the second ETag of orders/2026-01.csv; the first one no longer counts
    ("orders", "SKIPPED", False, 1),
    ("orders", "SUCCESS", False, 1),
]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _key_hash(source: str, bucket: str, key: str) -> str:
    return hashlib.sha256(f"{source}\0{bucket}\0{key}".encode()).hexdigest()


def _version(row_id: int, source: str, bucket: str, key: str, etag: str, status: str, discovered: str, **facts: Any):
    """One processed_files row; `facts` sets the other columns."""
    row = dict.fromkeys(PROCESSED_FILES_COLUMNS)
    row.update(
        id=row_id,
        source=source,
        bucket=bucket,
        object_key=key,
        etag=etag,
        partition_key=f"{source}:{bucket}/{key}",
        key_hash=_key_hash(source, bucket, key),
        size_bytes=1000 + row_id,
        modified_at=_at(discovered),
        status=status,
        discovered_at=_at(discovered),
        retry_count=0,
        tries=0,
        lost_count=0,
        request_count=0,
        snapshot_at=SNAPSHOT_AT,
    )
    if status != "DISCOVERED":
        row.update(
            requested_at=_at(discovered),
            processing_started_at=_at(discovered),
            run_id=f"run-{row_id}",
            request_key=f"{source}:{row_id}-{row_id}:1:{row_id:012x}",
            request_count=1,
        )
    if status == "PROCESSING":
        row.update(lease_token=f"{row_id:032x}", lease_expires_at=_at(discovered) + timedelta(minutes=1))
    if status in ("SUCCESS", "FAILED", "QUARANTINED", "SUPERSEDED"):
        row.update(processed_at=_at(discovered))
    row.update(facts)
    return row


def _dead_letter(dlq_key: str, version: dict, failed: str, state: str = "open", **facts: Any) -> dict:
    """One dead_letters row for a processed_files row; closed (resolved, quarantined) a minute after failing."""
    row = dict.fromkeys(DEAD_LETTERS_COLUMNS)
    row.update({name: version[name] for name in ("source", "bucket", "object_key", "key_hash", "etag", "size_bytes")})
    row.update(
        dlq_key=dlq_key,
        partition_key=version["partition_key"],
        error_class=version["error_class"],
        error_type=version["error_type"],
        error_message=version["error_message"],
        error_traceback=version["error_traceback"],
        failed_at=_at(failed),
        run_id=version["run_id"],
        job_name="ingest_documents",
        attempts=version["tries"] + 1,
        retry_count=version["retry_count"],
        max_retries=3,
        state=state,
        closed_at=None if state == "open" else _at(failed) + timedelta(minutes=1),
        stored_key=dlq_key,  # written where the row says
        is_resolved=state == "resolved",
        snapshot_at=SNAPSHOT_AT,
    )
    row.update(facts)
    return row


def processed_files() -> list[dict]:
    """Every processed_files row of the fixture, one per document version."""
    return [
        _version(1, "orders", "landing", "orders/2026-01.csv", "e1a", "SUCCESS", "2026-01-31T10:00:00+00:00"),
        _version(2, "orders", "landing", "orders/2026-01.csv", "e1b", "PROCESSING", "2026-02-01T09:00:00+00:00"),
        _version(3, "orders", "landing", "orders/2026-02.ndjson", "f1", "SUCCESS", "2026-02-01T09:05:00+00:00"),
        _version(
            4,
            "orders",
            "landing",
            "orders/2026-11-05-broken.csv",
            "b1",
            "FAILED",
            "2026-11-05T23:00:00+00:00",
            error_class="validation",
            error_type="CsvShapeError",
            error_message="CSV line 4 has 8 fields but the header has 6",
            error_traceback="Traceback (most recent call last):\nCsvShapeError: CSV line 4 has 8 fields",
        ),
        _version(5, "orders", "landing", "orders/2026-11-06.csv", "g1", "DISCOVERED", "2026-11-06T11:59:00+00:00"),
        _version(6, "orders", "landing", "orders/huge.csv", "h1", "SKIPPED", "2026-11-06T08:00:00+00:00"),
        _version(
            7,
            "invoices",
            "landing",
            "invoices/scan.pdf",
            "q1",
            "QUARANTINED",
            "2026-02-02T07:00:00+00:00",
            error_class="validation",
            error_type="UnsupportedFormatError",
            error_message="binary content (PDF) is not a supported document format",
            error_traceback="Traceback (most recent call last):\nUnsupportedFormatError: binary content (PDF)",
        ),
        _version(
            8,
            "invoices",
            "landing",
            "invoices/2026-02.json",
            "i1",
            "SUCCESS",
            "2026-02-02T07:30:00+00:00",
            retry_count=1,  # a success clears the error columns; its resolved dead letter keeps the error
        ),
        _version(
            9,
            "invoices",
            "landing",
            "invoices/2026-03.json",
            "i2",
            "FAILED",
            "2026-02-02T08:00:00+00:00",
            retry_count=3,
            tries=4,
            error_class="transient",
            error_type="ReadTimeoutError",
            error_message="Read timeout on endpoint URL",
            error_traceback="Traceback (most recent call last):\nReadTimeoutError: Read timeout on endpoint URL",
        ),
        _version(10, "notes", "", "guides/ops runbook.md", "t1", "SUCCESS", "2026-02-01T09:05:00+00:00"),
        # Requested, then overwritten before a run claimed it: superseded when the new ETag was discovered.
        _version(
            11,
            "notes",
            "",
            "guides/draft.md",
            "t0",
            "SUPERSEDED",
            "2026-11-06T10:00:00+00:00",
            processing_started_at=None,
            run_id=None,
            processed_at=_at("2026-11-06T11:00:00+00:00"),
            error_message="ETag t0 was replaced by t2 before it was ingested",
        ),
        _version(12, "notes", "", "guides/draft.md", "t2", "DISCOVERED", "2026-11-06T11:00:00+00:00"),
    ]


def dead_letters(versions: list[dict]) -> list[dict]:
    """The dead-letter records of the fixture's failed, quarantined and replayed versions."""
    by_id = {version["id"]: version for version in versions}
    return [
        # 23:30 UTC on November 5, already November 6 in the writer's time zone: failures are per UTC day.
        _dead_letter(
            "dlq/ingestion/2026/11/05/orders__broken__b1.json",
            by_id[4],
            "2026-11-06T00:30:00+01:00",
            content_type=LONG_CONTENT_TYPE,
        ),
        # Out of replays: moved to quarantined/, the ledger row is QUARANTINED.
        _dead_letter(
            "dlq/quarantined/ingestion/2026/02/02/invoices__scan__q1.json",
            by_id[7],
            "2026-02-02T07:00:05+00:00",
            state="quarantined",
        ),
        # Replayed successfully afterwards: moved to resolved/, the ledger row is SUCCESS now.
        _dead_letter(
            "dlq/resolved/ingestion/2026/02/02/invoices__2026-02__i1.json",
            by_id[8],
            "2026-02-02T07:31:00+00:00",
            state="resolved",
            retry_count=0,
            error_class="transient",
            error_type="ReadTimeoutError",
            error_message="Read timeout on endpoint URL",
            error_traceback="Traceback (most recent call last):\nReadTimeoutError: Read timeout on endpoint URL",
            attempts=5,
        ),
        _dead_letter("dlq/ingestion/2026/02/02/invoices__2026-03__i2.json", by_id[9], "2026-02-02T08:01:00+00:00"),
    ]


def _snapshot_log(versions: list[dict], letters: list[dict], schemas) -> dict:
    return {
        "snapshot_at": SNAPSHOT_AT,
        "mode": "full",
        "versions": len(versions),
        "schema_versions": len(list(schemas)),
        "dead_letters": len(letters),
    }


def write_ledger(path: Path, versions: list[dict], letters: list[dict], schemas: list[dict] = ()) -> None:
    """Create the `ledger` tables in the DuckDB file at `path` with these rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema if not exists ledger")
        for table, columns, rows in (
            ("processed_files", PROCESSED_FILES_COLUMNS, versions),
            ("dead_letters", DEAD_LETTERS_COLUMNS, letters),
            ("schema_versions", SCHEMA_VERSIONS_COLUMNS, list(schemas)),
            ("snapshot_log", SNAPSHOT_LOG_COLUMNS, [_snapshot_log(versions, letters, schemas)]),
        ):
            definition = ", ".join(f"{name} {data_type}" for name, data_type in columns.items())
            connection.execute(f"create or replace table ledger.{table} ({definition})")
            placeholders = ", ".join("?" for _ in columns)
            if not rows:
                continue
            connection.executemany(
                f"insert into ledger.{table} values ({placeholders})",
                [[row.get(name) for name in columns] for row in rows],
            )
