"""document_discovery_sensor: every new or changed object becomes a partition and a run.

The ledger, not the cursor, is the source of truth: a listed version the ledger lacks is new; besides those, the
sensor requests versions the ledger holds as DISCOVERED but no run has picked up (a replay, a requeued version
whose worker died, a tick whose runs were never launched).
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.ingestion.discovery import Discovery, discover
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.ingestion.resources import IngestionResource, LedgerResource
from ingestion_project.lib.ledger import run_key_for


def _request(partition_key: str, source: str, etag: str, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=partition_key,
        tags={"ingestion/source": source, "ingestion/etag": etag},
    )


def build_result(found: Discovery, pending: list[dict] | None = None) -> dg.SensorResult | dg.SkipReason:
    """Turn one pass into partition additions + one run per version to ingest, or a reason to skip."""
    pending = pending or []
    cursor = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "listed": found.listed,
            "new": len(found.new),
            "again": len(pending),
        }
    )
    failing = "".join(f"; listing {name} failed: {reason}" for name, reason in found.errors.items())
    if not found.new and not pending:
        return dg.SkipReason(f"No new or changed documents: {found.summary()}{failing}")
    requests = [_request(v.ref.partition_key, v.ref.source, v.info.etag, v.run_key) for v in found.new]
    requests += [_request(r["partition_key"], r["source"], r["etag"], run_key_for(r)) for r in pending]
    keys = list(dict.fromkeys(v.ref.partition_key for v in found.new))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[documents_partitions.build_add_request(keys)] if keys else [],
        cursor=cursor,
    )


@dg.sensor(
    job=ingest_documents_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists every configured source and requests one run per new or changed document.",
)
def document_discovery_sensor(
    context: dg.SensorEvaluationContext, ingestion: IngestionResource, ledger: LedgerResource
) -> dg.SensorResult | dg.SkipReason:
    settings, book = ingestion.settings(), ledger.ledger()
    found = discover(settings, ingestion.source_store, book)
    for name, reason in found.errors.items():
        context.log.error(f"Listing source '{name}' failed: {reason}")
    if found.errors and len(found.errors) == len(found.listed):
        raise RuntimeError(f"Every source failed to list: {found.errors}")
    stale_after = timedelta(seconds=settings.processing_timeout_seconds)
    for row in book.requeue_stale(stale_after):
        context.log.warning(
            f"Requeued {row['partition_key']}@{row['etag']}: run {row['run_id']} stopped while processing it"
        )
    pending = book.take_pending_requests(stale_after)
    context.log.info(f"{found.summary()}; {len(pending)} requested again (replays, requeues)")
    return build_result(found, pending)
