"""document_discovery_sensor: every new or changed object becomes a partition and a run."""

import json
from datetime import UTC, datetime

import dagster as dg

from ingestion_project.ingestion.discovery import Discovery, discover
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.ingestion.resources import IngestionResource, LedgerResource


def build_result(found: Discovery) -> dg.SensorResult | dg.SkipReason:
    """Turn one discovery pass into partition additions + one run per new version, or a reason to skip."""
    cursor = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "listed": found.listed,
            "new": len(found.new),
        }
    )
    failing = "".join(f"; listing {name} failed: {reason}" for name, reason in found.errors.items())
    if not found.new:
        return dg.SkipReason(f"No new or changed documents: {found.summary()}{failing}")
    keys = list(dict.fromkeys(v.ref.partition_key for v in found.new))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=v.run_key,
                partition_key=v.ref.partition_key,
                tags={"ingestion/source": v.ref.source, "ingestion/etag": v.info.etag},
            )
            for v in found.new
        ],
        dynamic_partitions_requests=[documents_partitions.build_add_request(keys)],
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
    found = discover(ingestion.settings(), ingestion.source_store, ledger.ledger())
    for name, reason in found.errors.items():
        context.log.error(f"Listing source '{name}' failed: {reason}")
    if found.errors and len(found.errors) == len(found.listed):
        raise RuntimeError(f"Every source failed to list: {found.errors}")
    context.log.info(found.summary())
    return build_result(found)
