"""Database sources as Dagster assets: one asset per table or query of each `databases:` entry of the sources file,
an extraction job per source and its schedule.

Each extraction is recorded in the ledger like a document version — source, ``bucket`` (the database type), the
table as its key and an extraction id as its ETag — leased to its run, and ends SUCCESS (rows, checksum, schema,
and the new watermark, in one transaction) or FAILED with a dead letter. Connection trouble is retried with
backoff inside the run; a failed extraction is not replayed: the next one starts from the same watermark, and
supersedes it (its dead letter closes). ``reset_watermark`` in the asset's run config forgets the watermark first,
so that extraction is full.
"""

import os
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import Field

from ingestion_project.config import DatabaseTableConfig, PostgresSourceConfig, Settings
from ingestion_project.core.dead_letters import record_key, write_pending
from ingestion_project.core.failure_classes import error_class, limits_for, next_delay
from ingestion_project.core.heartbeat import Heartbeat
from ingestion_project.core.keys import table_asset_key
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.databases.extract import classified, extract, extraction_id, write_bronze
from ingestion_project.lib.bronze import BronzeVersion, Lineage, manifest_row
from ingestion_project.lib.bronze_commit import BronzeObjects, BronzeRoot
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Failure, Ledger
from ingestion_project.lib.spool import Scratch
from ingestion_project.lib.versions import DocumentVersion

DATABASES_GROUP = "databases"
DEFAULT_MAX_ROWS = 50_000_000
T = TypeVar("T")


class ExtractionConfig(dg.Config):
    """Run config of a database extraction."""

    reset_watermark: bool = Field(
        default=False,
        description=(
            "Forget the table's watermark before extracting, so this extraction reads every row (a full load); "
            "staging keeps the newest row of each key, so rows read again are not counted twice."
        ),
    )


def database_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    return [_table_asset(source, table) for source in settings.databases for table in source.tables]


def database_jobs(settings: Settings) -> list:
    return [
        dg.define_asset_job(
            f"extract_{source.name}",
            selection=dg.AssetSelection.assets(*(table_asset_key(source.name, t.name) for t in source.tables)),
            description=f"Extract every table of the database source {source.name} into bronze.",
        )
        for source in settings.databases
    ]


def database_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [_schedule(source) for source in settings.databases if source.schedule]


def _schedule(source: PostgresSourceConfig) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"extract_{source.name}_schedule",
        job_name=f"extract_{source.name}",
        cron_schedule=source.schedule,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Extracts {source.name} on its schedule; incremental tables read only what is new.",
    )
    def extract_on_schedule(context: dg.ScheduleEvaluationContext):
        # Without its connection URL the source cannot be reached: say so on the tick rather than fail runs.
        if not os.environ.get(source.url_env):
            return dg.SkipReason(f"{source.url_env} is not set: the database source {source.name} has no URL")
        return dg.RunRequest()

    return extract_on_schedule


def _table_asset(source: PostgresSourceConfig, table: DatabaseTableConfig) -> dg.AssetsDefinition:
    what = f"query {table.name}" if table.query else f"table {table.label}"
    load = f"incremental on {table.watermark}" if table.load == "incremental" else "full"
    if table.watermark_lag:
        load += f" with watermark_lag {table.watermark_lag:g} (primary key {', '.join(table.primary_key)})"

    @dg.asset(
        key=table_asset_key(source.name, table.name),
        group_name=DATABASES_GROUP,
        kinds={source.type, "parquet"},
        description=f"The {what} of the database source {source.name}, extracted into bronze ({load}).",
        metadata={
            "source": source.name,
            "table": table.label,
            "load": table.load,
            "watermark": table.watermark or "",
            "primary_key": ", ".join(table.primary_key),
            "bad_values": table.bad_values,
        },
    )
    def extract_table(
        context: dg.AssetExecutionContext,
        config: ExtractionConfig,
        ingestion: IngestionResource,
        ledger: LedgerResource,
    ) -> dg.MaterializeResult:
        return run_extraction(context, config, ingestion, ledger.ledger(), source.name, table.name)

    return extract_table


def run_extraction(
    context: dg.AssetExecutionContext,
    config: ExtractionConfig,
    ingestion: IngestionResource,
    book: Ledger,
    source_name: str,
    table_name: str,
) -> dg.MaterializeResult:
    settings = ingestion.settings()
    source = settings.database(source_name)
    spec = source.table(table_name)
    run_id = context.run.run_id
    row = _extraction_row(book, source, spec, run_id)
    lease_time = timedelta(seconds=settings.lease_seconds)
    lease = book.claim([row["id"]], run_id, lease_time)
    if not lease.rows:
        raise dg.Failure(f"extraction {row['etag']} of {spec.label} is no longer this run's", allow_retries=False)
    started = time.monotonic()
    with Heartbeat(book, lease.token, lease_time, context.log):
        try:
            if config.reset_watermark:
                forgotten = book.reset_watermark(source.name, spec.label)
                context.log.warning(f"Watermark of {spec.label} reset (was {forgotten.value if forgotten else 'none'})")
            since = book.watermark(source.name, spec.label) if spec.load == "incremental" else None

            def record(landed: dict, objects: BronzeObjects) -> list[dict] | None:
                # The commit: the fenced SUCCESS names this attempt's files as the extraction's.
                return book.succeed(
                    row["id"],
                    lease.token,
                    sha256=landed["sha256"],
                    records=landed["rows"],
                    bytes_read=landed["bytes"],
                    duration_ms=int((time.monotonic() - started) * 1000),
                    columns=landed["columns"],
                    watermark=landed["watermark"],
                    bronze=objects,
                )

            landed, closed = _land(ingestion, source, spec, row, since, attempt=lease.token, record=record)
        except Exception as error:  # noqa: BLE001 - every failure is recorded before the step fails
            _failed(context, ingestion, book, source, row, lease.token, error)
    if closed is None:
        raise dg.Failure(f"lost the lease on extraction {row['etag']} before recording it", allow_retries=False)
    if landed["rescued_values"]:
        context.log.warning(
            f"{spec.label}: {landed['rescued_values']} value(s) did not fit their column's type; they landed as NULL "
            "with the value kept in _rescued_data (bad_values: rescue)"
        )
    watermark = landed["watermark"] or since
    return dg.MaterializeResult(
        metadata={
            "table": spec.label,
            "load": "full (watermark reset)"
            if config.reset_watermark
            else ("full" if since is None else "incremental"),
            "extraction": row["etag"],
            "rows": dg.MetadataValue.int(landed["rows"]),
            "dagster/row_count": dg.MetadataValue.int(landed["rows"]),
            "bytes": dg.MetadataValue.int(landed["bytes"]),
            "sha256": landed["sha256"],
            "rescued_values": dg.MetadataValue.int(landed["rescued_values"]),
            "watermark": "" if watermark is None else f"{watermark.column_name} = {watermark.value}",
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c["name"], c["type"]) for c in landed["columns"]]
            ),
            "bronze_path": dg.MetadataValue.path(landed["bronze_path"]),
        }
    )


def _extraction_row(book: Ledger, source: PostgresSourceConfig, spec: DatabaseTableConfig, run_id: str) -> dict:
    """This run's extraction of the table: the one it already holds (a step retry), or a new one. Recording a new
    one supersedes the table's earlier FAILED extraction: its dead letter closes, as this one reads its rows."""
    for row in book.held_by(run_id):
        if (row["source"], row["object_key"]) == (source.name, spec.label):
            return row
    etag = extraction_id(spec.load, run_id)
    version = DocumentVersion(DocumentRef(source.name, source.bucket, spec.label), etag)
    book.record_discovered([version])
    return book.get(version)


def _land(
    ingestion: IngestionResource,
    source: PostgresSourceConfig,
    spec: DatabaseTableConfig,
    row: dict,
    since,
    *,
    attempt: str,
    record: Callable[[dict, BronzeObjects], T | None],
) -> tuple[dict, T | None]:
    """Extract into scratch space, then commit the data file and the manifest as documents do (``BronzeRoot.commit``:
    named by ``attempt``, and ``record`` — the fenced SUCCESS — decides). Returns what landed and what ``record``
    returned (None: the lease was lost, and the attempt's files are removed)."""
    version = DocumentVersion.from_row(row)
    engine = sa.create_engine(source.url(), pool_pre_ping=True)
    try:
        with Scratch() as scratch:
            extraction = extract(engine, spec, since, scratch.file("rows.arrow"), max_rows=DEFAULT_MAX_ROWS)
            ingested_at = datetime.now(UTC)
            lineage = Lineage(version.ref, version.etag, extraction.sha256, ingested_at)
            data = scratch.file("data.parquet")
            if extraction.rows:
                write_bronze(scratch.file("rows.arrow"), lineage, data, max_rows=DEFAULT_MAX_ROWS)
            else:  # nothing new (or an empty table): an empty file keeps the layout whole
                pq.write_table(pa.table({}), data)
            bronze = BronzeVersion(version.ref, version.etag, is_text=False, attempt=attempt)
            root = BronzeRoot(*ingestion.bronze_store(source.name))
            bronze_path = root.uri(bronze.data_key)
            manifest = manifest_row(
                source=source.name,
                bucket=source.bucket,
                object_key=spec.label,
                partition_key=version.ref.partition_key,
                etag=version.etag,
                size_bytes=extraction.bytes_read,
                sha256=extraction.sha256,
                content_type="application/vnd.apache.arrow.file",
                format="database",
                record_count=extraction.rows,
                columns_json=extraction.columns,
                bronze_path=bronze_path,
                last_modified_at=ingested_at,
                ingested_at=ingested_at,
                discovery_seq=version.seq,
            )
            landed = {
                "rows": extraction.rows,
                "sha256": extraction.sha256,
                "bytes": extraction.bytes_read,
                "columns": extraction.columns,
                "watermark": extraction.watermark,
                "rescued_values": extraction.rescued_values,
                "bronze_path": bronze_path,
            }
            recorded = root.commit(bronze, data, manifest, lambda objects: record(landed, objects))
    finally:
        engine.dispose()
    return landed, recorded


def _failed(
    context: dg.AssetExecutionContext,
    ingestion: IngestionResource,
    book: Ledger,
    source: PostgresSourceConfig,
    row: dict,
    token: str,
    error: Exception,
) -> None:
    """Retry what may pass (within this run, with backoff); otherwise FAILED with a dead letter, then fail."""
    as_class = classified(error)
    failure_class = error_class(as_class)
    limits = limits_for(source.retries, failure_class)
    described = f"{type(error).__name__}: {as_class}"
    retries = context.retry_number
    if limits is not None and retries < limits.max_retries:
        book.record_try(row["id"], token, error_class=failure_class, error_type=type(error).__name__, message=described)
        delay = next_delay(limits, retries)
        context.log.warning(f"Extraction of {row['object_key']} failed ({described}); retry {retries + 1} in {delay}s")
        raise dg.RetryRequested(max_retries=limits.max_retries, seconds_to_wait=delay) from error
    store, prefix = ingestion.dead_letter_store(source.name)
    failure = Failure(
        error_class=failure_class,
        error_type=type(error).__name__,
        message=described,
        traceback="".join(traceback.format_exception(error)),
        dlq_key=record_key(prefix, datetime.now(UTC), source.name, row["bucket"], row["object_key"], row["etag"]),
        max_retries=source.max_replays,
        job_name=context.run.job_name,
        attempts=retries + 1,
    )
    book.fail(row["id"], token, failure)
    write_pending(book, ingestion.dead_letter_store, run_id=None)
    raise dg.Failure(
        description=f"extraction of {row['object_key']} failed ({failure_class}): {described}",
        metadata={"failure_class": failure_class, "dead_letter": failure.dlq_key},
        allow_retries=False,
    ) from error
