"""document_discovery_sensor: every new or changed object becomes a partition, and pinned versions go to runs in
batches.

The ledger, not the cursor, is the source of truth: a listed version the ledger lacks is new. Each tick first
reconciles what no run will finish by itself (expired leases, requests no run picked up, removed sources, dead
letters still to write), then lists, then requests every due version — new, handed back after a backoff,
released from a dead run, replayed — in batches of at most ``batch_size`` per source and ``max_runs_per_tick``
runs.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from ingestion_project.core.partitions import documents_partitions
from ingestion_project.core.reconcile import (
    Reconciliation,
    log_reconciliation,
    reconcile_ledger,
    write_dead_letters,
)
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.ingestion.batches import Batch, plan_batches
from ingestion_project.ingestion.discovery import Discovery, ListingState, discover
from ingestion_project.ingestion.jobs import ingest_documents_job


def build_result(found: Discovery, batches: list[Batch], reconciled: Reconciliation | None = None) -> dg.SensorResult:
    """Turn one pass into partition additions + one run request per batch, or a reason to skip; always with the
    cursor, so a listing that spans ticks goes on where it stopped even on a tick that requests nothing (a bare
    SkipReason would keep the previous cursor)."""
    documents = sum(len(batch.rows) for batch in batches)
    cursor = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "listed": found.listed,
            "new": len(found.new),
            "requested": documents,
            "runs": len(batches),
            # Where each source's listing resumes: a few keys per source, never lists of keys.
            "listing": {name: state.as_dict() for name, state in found.listing.items()},
        }
    )
    notes = "".join(f"; listing {name} failed: {reason}" for name, reason in found.errors.items())
    if reconciled and reconciled.summary():
        notes += f"; reconciled: {reconciled.summary()}"
    keys = list(
        dict.fromkeys([v.partition_key for v in found.new] + [r["partition_key"] for b in batches for r in b.rows])
    )
    if not batches:
        if keys:
            return dg.SensorResult(
                dynamic_partitions_requests=[documents_partitions.build_add_request(keys)], cursor=cursor
            )
        return dg.SensorResult(skip_reason=f"No documents to request: {found.summary()}{notes}", cursor=cursor)
    return dg.SensorResult(
        run_requests=[batch.run_request() for batch in batches],
        dynamic_partitions_requests=[documents_partitions.build_add_request(keys)] if keys else [],
        cursor=cursor,
    )


def listing_states(cursor: str | None) -> dict[str, ListingState]:
    """The per-source listing states a previous tick left in the cursor (none from an older or empty cursor)."""
    try:
        raw = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    listing = raw.get("listing") if isinstance(raw, dict) else None
    return {name: ListingState.of(state) for name, state in (listing or {}).items()}


@dg.sensor(
    job=ingest_documents_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists every configured source and requests runs of pinned document versions, in batches.",
)
def document_discovery_sensor(
    context: dg.SensorEvaluationContext, ingestion: IngestionResource, ledger: LedgerResource
) -> dg.SensorResult:
    settings, book = ingestion.settings(), ledger.ledger()
    reconciled = reconcile_ledger(context.instance, settings, book, ingestion.dead_letter_store)
    found = discover(
        settings,
        ingestion.source_store,
        book,
        listing_states(context.cursor),
        dead_letter_prefix=lambda name: ingestion.dead_letter_store(name)[1],
    )
    # After discovery: the dead letters of versions it superseded move to superseded/ in the same tick.
    write_dead_letters(book, ingestion.dead_letter_store, reconciled)
    log_reconciliation(context.log, reconciled)
    for name, reason in found.errors.items():
        context.log.error(f"Listing source '{name}' failed: {reason}")
    for version in found.refused:
        context.log.error(
            f"Refused {version.ref.uri[:300]} (dead-lettered as KeyRefused): its key cannot be a partition"
        )
    if found.errors and len(found.errors) == len(found.listed):
        raise RuntimeError(f"Every source failed to list: {found.errors}")
    batches = plan_batches(settings, book)
    context.log.info(
        f"{found.summary()}; requested {sum(len(b.rows) for b in batches)} version(s) in {len(batches)} run(s)"
    )
    return build_result(found, batches, reconciled)
