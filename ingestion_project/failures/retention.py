"""Partition retention: Dagster holds the partitions of documents that may still need it, the ledger holds history.

Every document version is a partition of `raw_documents` while it is in flight, FAILED or QUARANTINED, and for
`partitions.retain` (default 30 days, overridable per source) after its last version landed. Past that, and
whenever the live partitions exceed `partitions.max` (default 100,000, Dagster's guidance per asset), the oldest
landed documents lose their partition, a batch at a time, through Dagster's API. The ledger, bronze and the marts
keep every version; a key that returns gets its partition back when the discovery sensor finds its new version.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.config import Settings
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.lib.ledger import Ledger, RetirablePartition

# Partitions retired per ledger query and Dagster batch; a pass stops after MAX_BATCHES and goes on next time.
RETIRE_BATCH = 1000
MAX_BATCHES = 50


@dataclass
class RetentionPass:
    """What one pass retired (by age and over the count limit) and gave back (in use again meanwhile)."""

    by_age: list[str] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    live_after: int = 0

    def summary(self) -> str:
        return (
            f"retired {len(self.by_age)} partition(s) past their retention and {len(self.over_limit)} over the "
            f"limit; {len(self.restored)} given back (a new version arrived meanwhile); {self.live_after:,} live"
        )


def retire_partitions(
    settings: Settings,
    book: Ledger,
    *,
    delete: Callable[[str], None],
    add: Callable[[list[str]], None],
    now: datetime | None = None,
    batch: int = RETIRE_BATCH,
    max_batches: int = MAX_BATCHES,
) -> RetentionPass:
    """One retention pass: mark documents retired in the ledger, then delete their Dagster partitions.

    The ledger is marked first, each document only while every one of its versions is landed; a version
    discovered between that and the deletion gets its partition back at the end of the pass.
    """
    now = now or datetime.now(UTC)
    done = RetentionPass()
    names = [source.name for source in settings.sources]
    batches = 0

    def retire(candidates: list[RetirablePartition], into: list[str]) -> list[RetirablePartition]:
        marked = book.retire_partitions(candidates)
        for partition in marked:
            delete(partition.partition_key)
        into.extend(p.partition_key for p in marked)
        return marked

    retired: list[RetirablePartition] = []
    for name in names:
        cutoff = now - timedelta(seconds=settings.retain_seconds(name))
        while batches < max_batches:
            candidates = book.retirable_partitions(name, cutoff, batch)
            batches += 1
            retired += retire(candidates, done.by_age)
            if len(candidates) < batch:
                break
    excess = book.live_partition_count(names) - settings.partitions.max
    while excess > 0 and batches < max_batches:
        # The oldest landed documents of all sources first, whatever their age.
        pool = sorted(
            (c for name in names for c in book.retirable_partitions(name, None, min(excess, batch))),
            key=lambda c: (c.last_processed_at or now, c.key_hash),
        )[: min(excess, batch)]
        batches += 1
        if not pool:
            break
        marked = retire(pool, done.over_limit)
        retired += marked
        excess -= len(marked)
    in_use = book.partitions_in_use([p.key_hash for p in retired])
    done.restored = [p.partition_key for p in retired if p.key_hash in in_use]
    if done.restored:
        add(done.restored)
    done.live_after = book.live_partition_count(names)
    return done


@dg.op(description="Retire the partitions of raw_documents whose documents have all landed and aged out.")
def retire_document_partitions(
    context: dg.OpExecutionContext, ingestion: IngestionResource, ledger: LedgerResource
) -> dg.Output[dict]:
    instance = context.instance
    done = retire_partitions(
        ingestion.settings(),
        ledger.ledger(),
        delete=lambda key: instance.delete_dynamic_partition(documents_partitions.name, key),
        add=lambda keys: instance.add_dynamic_partitions(documents_partitions.name, keys),
    )
    context.log.info(done.summary())
    return dg.Output(
        {"by_age": len(done.by_age), "over_limit": len(done.over_limit), "restored": len(done.restored)},
        metadata={
            "retired_by_age": dg.MetadataValue.int(len(done.by_age)),
            "retired_over_limit": dg.MetadataValue.int(len(done.over_limit)),
            "given_back": dg.MetadataValue.int(len(done.restored)),
            "live_partitions": dg.MetadataValue.int(done.live_after),
        },
    )


@dg.job(description="Partition retention for raw_documents: the ledger keeps every version, Dagster the recent ones.")
def partition_retention_job():
    retire_document_partitions()


partition_retention_schedule = dg.ScheduleDefinition(
    name="partition_retention_schedule",
    job=partition_retention_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly partition retention of raw_documents (partitions.retain and partitions.max).",
)
