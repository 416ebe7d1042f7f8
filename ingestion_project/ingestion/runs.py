"""One ingestion run: lease the pinned versions, land each, and record each outcome fenced by the lease.

The run holds a lease on what it claimed and renews it from a heartbeat thread while it works. Every outcome is
written with the lease token, so a run that lost its lease (it was too slow to renew, or presumed dead and
released) records nothing. Retryable failures are retried inside the run when the backoff is short; a longer
backoff hands the version back to the ledger with a not-before time, so the wait holds no run slot.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

from ingestion_project.config import Settings
from ingestion_project.core.dead_letters import record_key, write_pending
from ingestion_project.core.failure_classes import RESOURCE, error_class, limits_for, next_delay
from ingestion_project.core.heartbeat import Heartbeat
from ingestion_project.core.resources import IngestionResource
from ingestion_project.ingestion.documents import IngestedDocument, LeaseLostError, ingest_document
from ingestion_project.lib.bronze_commit import BronzeObjects, BronzeRoot
from ingestion_project.lib.errors import DocumentError, SupersededError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import SOURCE_REMOVED, Failure, Lease, Ledger, Status
from ingestion_project.lib.memory import MemoryBudget
from ingestion_project.lib.schemas import SchemaChange
from ingestion_project.lib.versions import DocumentVersion

_MAX_SCHEMA_COLUMNS = 100
# Dagster's own ceiling on step retries; each version's tries are bounded by its failure class in the ledger.
STEP_RETRY_CEILING = 100


def materialization_metadata(doc: IngestedDocument) -> dict[str, object]:
    """Small per-document metadata: identity, content hash, shape and where bronze landed."""
    count_label = "chunks" if doc.is_text else "rows"
    columns = [dg.TableColumn(c["name"], c["type"]) for c in doc.columns[:_MAX_SCHEMA_COLUMNS]]
    return {
        "source": doc.ref.source,
        "bucket": doc.ref.bucket,
        "key": doc.ref.shown_key,
        "etag": doc.version.etag,
        "size_bytes": dg.MetadataValue.int(doc.info.size),
        "sha256": doc.sha256,
        "format": doc.format,
        # Content first; the name or the content type only where the content was ambiguous.
        "format_decided_by": doc.format_decided_by,
        count_label: dg.MetadataValue.int(doc.record_count),
        "dagster/row_count": dg.MetadataValue.int(doc.record_count),
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "bronze_path": dg.MetadataValue.path(doc.bronze_path),
        "duration_ms": dg.MetadataValue.int(doc.duration_ms),
        **contract_metadata(doc),
        **renamed_metadata(doc),
    }


def renamed_metadata(doc: IngestedDocument) -> dict[str, object]:
    """The document's columns that landed under another name, because theirs is reserved (lib/bronze.py)."""
    renamed = {c["renamed_from"]: c["name"] for c in doc.document_columns or () if "renamed_from" in c}
    return {"renamed_columns": dg.MetadataValue.json(renamed)} if renamed else {}


def contract_metadata(doc: IngestedDocument) -> dict[str, object]:
    """What the source's schema contract did to the document, when it has one."""
    if doc.contract is None:
        return {}
    outcome = doc.contract
    return {
        "contract": outcome.describe(),
        "rescued_rows": dg.MetadataValue.int(outcome.rescued_rows),
        "discarded_values": dg.MetadataValue.int(outcome.discarded_values),
    }


def schema_metadata(schema: dict | None) -> dict[str, object]:
    """The version's schema fingerprint and its change against the source's previous schema."""
    if schema is None:
        return {}
    change = SchemaChange(
        added=json.loads(schema["columns_added"]),
        removed=json.loads(schema["columns_removed"]),
        retyped=json.loads(schema["columns_retyped"]),
        first=schema["previous_fingerprint"] is None,
    )
    return {"schema_fingerprint": schema["fingerprint"][:16], "schema_change": change.describe()}


@dataclass(frozen=True)
class Outcome:
    """How one version ended in this attempt; ``kind`` is also the tally's label."""

    kind: str
    version: DocumentVersion
    doc: IngestedDocument | None = None
    message: str = ""
    delay: float | None = None
    closed_letters: int = 0
    schema: dict | None = None  # the version's row in the schema history, once it landed


@dataclass
class RunTally:
    """What this attempt did with the versions it was given."""

    counts: Counter = field(default_factory=Counter)
    retry_delays: list[float] = field(default_factory=list)
    closed_letters: int = 0

    def summary(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items())) or "nothing to do"


class IngestionRun:
    """The work of one run (one step attempt) of ``raw_documents``."""

    def __init__(self, context: dg.AssetExecutionContext, ingestion: IngestionResource, book: Ledger):
        self.context = context
        self.ingestion = ingestion
        self.book = book
        self.settings: Settings = ingestion.settings()
        self.lease = timedelta(seconds=self.settings.lease_seconds)
        self.tally = RunTally()
        self.ids: list[int] = []
        self.budget = MemoryBudget(None)

    @property
    def run_id(self) -> str:
        return self.context.run.run_id

    def pin_partitions(self, partition_keys: Sequence[str]) -> list[DocumentVersion]:
        """Versions for a run started on partitions (the UI's Materialize, a backfill): each object's current
        version (a HEAD), or the latest version the ledger knows when the HEAD fails."""
        versions = []
        for partition_key in partition_keys:
            ref = DocumentRef.from_partition_key(partition_key)
            if not self.settings.has_source(ref.source):
                self.context.log.warning(f"{partition_key}: source '{ref.source}' is not in the sources file")
                self.tally.counts["source removed"] += 1
                continue
            try:
                info = self.ingestion.source_store(ref.source).head(ref.key)
            except DocumentError as error:
                known = self.book.latest_version(ref.source, ref.bucket, ref.key)
                if known is None:
                    raise dg.Failure(f"{partition_key}: no version to ingest: {error}", allow_retries=False) from error
                versions.append(DocumentVersion.from_row(known))
                continue
            versions.append(DocumentVersion(ref, info.etag, info.version_id, info.size, info.last_modified, seq=None))
        return versions

    def land(self, versions: Sequence[DocumentVersion], *, claimable: Sequence[str], planned: bool) -> Iterator:
        """Claim ``versions`` and land each one this run wins; yields a materialization per landed document.

        Documents are landed by a few threads, so one document's downloads and uploads overlap another's event
        writes; events are yielded in claim order. ``planned``: Dagster already planned these partitions (a
        partition run). Otherwise (a batch run pinned by the sensor) a failed document's partition is planned here,
        right before it fails, so that the run's failure marks exactly the failed documents' partitions as failed.
        """
        rows = self.book.ensure([v for v in versions if v.seq is None])
        ids = [v.seq for v in versions if v.seq is not None] + [row["id"] for row in rows]
        self.ids = ids
        if not ids:
            return
        lease = self.book.claim(ids, self.run_id, self.lease, claimable=claimable)
        if len(set(ids)) > len(lease.rows):
            self.tally.counts["not claimed (held or finished elsewhere)"] += len(set(ids)) - len(lease.rows)
        if not lease.rows:
            return
        self.ingestion.warm_up()  # one S3 client for every thread
        with (
            Heartbeat(self.book, lease.token, self.lease, self.context.log),
            MemoryBudget(self.settings.run_memory_bytes) as self.budget,
            ThreadPoolExecutor(self.settings.documents_in_flight, thread_name_prefix="document") as pool,
        ):
            outcomes = [pool.submit(self._process, lease, row) for row in lease.rows]
            try:
                for outcome in outcomes:
                    yield from self._report(outcome.result(), planned)
            finally:
                for outcome in outcomes:
                    outcome.cancel()  # the step is failing or being interrupted: start nothing new
        if self.budget.enforced:
            self.context.log.info(
                f"Memory: peak {self.budget.peak_over_baseline / 2**20:,.0f} MiB over the run's start, budget "
                f"{self.settings.run_memory_bytes / 2**20:,.0f} MiB; {self.budget.cancellations} document(s) stopped"
            )
        if self.tally.closed_letters:
            self._move_closed_letters()

    def _move_closed_letters(self) -> None:
        """Move the records this run closed (a replay that succeeded, a version superseded) to their prefix. Best
        effort: the ledger already says where they belong, and the discovery sensor finishes what fails here."""
        written, problems = write_pending(self.book, self.ingestion.dead_letter_store)
        for uri in written:
            self.context.log.info(f"Dead-letter record moved to {uri}")
        for problem in problems:
            self.context.log.warning(f"Dead-letter record not moved yet (the discovery sensor retries it): {problem}")

    def _process(self, lease: Lease, row: dict) -> Outcome:
        """Land one version and record its outcome in the ledger (in a worker thread: no logging, no events)."""
        version = DocumentVersion.from_row(row)
        if not self.settings.has_source(version.source):
            reason = f"source '{version.source}' was removed from the sources file"
            self.book.skip(row["id"], lease.token, reason, error_type=SOURCE_REMOVED)
            return Outcome("skipped (source removed)", version, message=reason)
        source = self.settings.source(version.source)

        def record(doc: IngestedDocument) -> list[dict] | None:
            # The commit: the fenced SUCCESS names this attempt's files as the version's.
            return self.book.succeed(
                row["id"],
                lease.token,
                sha256=doc.sha256,
                records=doc.record_count,
                bytes_read=doc.info.size,
                duration_ms=doc.duration_ms,
                columns=doc.document_columns if doc.document_columns is not None else doc.columns,
                contract=None if doc.contract is None else doc.contract.as_dict(),
                bronze=doc.bronze,
            )

        try:
            with self.budget.reserve(version.partition_key, version.size):
                doc, closed = ingest_document(
                    version,
                    source,
                    self.ingestion.source_store(version.source),
                    BronzeRoot(*self.ingestion.bronze_store(version.source)),
                    attempt=lease.token,
                    record=record,
                    still_held=lambda: self.book.holds(row["id"], lease.token),
                    replaces=BronzeObjects.from_row(row),
                )
        except SupersededError as error:
            closed = self.book.supersede(row["id"], lease.token, str(error))
            if closed is None:
                return Outcome("lease lost", version, message=f"lost the lease on {version.label()}")
            return Outcome("superseded", version, message=str(error), closed_letters=len(closed))
        except LeaseLostError as error:
            return Outcome("lease lost", version, message=str(error))
        # One document's failure, whatever it is, must not stop or fail the others in this run.
        except Exception as error:  # noqa: BLE001
            return self._failed(lease, row, version, error)
        schema = self.book.schema_version(version)
        return Outcome("landed", version, doc=doc, closed_letters=len(closed), schema=schema)

    def _failed(self, lease: Lease, row: dict, version: DocumentVersion, error: Exception) -> Outcome:
        source = self.settings.source(version.source)
        failure_class = error_class(error)
        limits = limits_for(source.retries, failure_class)
        described = f"{type(error).__name__}: {error}"
        if limits and row["tries"] < limits.max_retries:
            tries = self.book.record_try(
                row["id"], lease.token, error_class=failure_class, error_type=type(error).__name__, message=str(error)
            )
            if tries is None:
                return Outcome("lease lost", version, message=f"lost the lease on {version.label()}")
            delay = next_delay(limits, tries - 1)
            retry = (
                f"retry document={version.partition_key} try={tries} max_tries={limits.max_retries + 1} "
                f"error={described} next_delay={delay}s"
            )
            # A resource failure is retried in a run by itself: its batchmates may be what used the memory up.
            alone = failure_class == RESOURCE
            if delay <= self.settings.max_in_run_backoff_seconds and not alone:
                return Outcome("retrying in this run", version, message=retry, delay=delay)
            self.book.hand_back(row["id"], lease.token, datetime.now(UTC) + timedelta(seconds=delay), alone=alone)
            return Outcome("handed back for a later run", version, message=retry)
        failure = Failure(
            error_class=failure_class,
            error_type=type(error).__name__,
            message=str(error) or type(error).__name__,
            traceback="".join(traceback.format_exception(error))[-8000:],
            dlq_key=record_key(
                self.ingestion.dead_letter_store(version.source)[1],
                datetime.now(UTC),
                version.source,
                version.ref.bucket,
                version.ref.key,
                version.etag,
            ),
            max_retries=source.max_replays,
            job_name=self.context.job_name,
            content_type=getattr(error, "content_type", None),
            attempts=row["tries"] + 1,
        )
        if not self.book.fail(row["id"], lease.token, failure):
            return Outcome("lease lost", version, message=f"lost the lease on {version.label()} before recording it")
        return Outcome("failed", version, message=described)

    def _report(self, outcome: Outcome, planned: bool) -> Iterator:
        """The events and log lines of one outcome (in the step's own thread)."""
        self.tally.counts[outcome.kind] += 1
        self.tally.closed_letters += outcome.closed_letters
        version = outcome.version
        if outcome.kind == "landed":
            yield dg.AssetMaterialization(
                asset_key=self.context.asset_key,
                partition=version.partition_key,
                metadata={**materialization_metadata(outcome.doc), **schema_metadata(outcome.schema)},
            )
        elif outcome.kind == "failed":
            self.context.log.error(f"Document {version.partition_key} failed: {outcome.message}")
            if not planned:
                self._plan(version.partition_key)
            yield self._observation(version, "FAILED", outcome.message)
        elif outcome.kind == "superseded":
            yield self._observation(version, "SUPERSEDED", outcome.message)
        elif outcome.kind in ("retrying in this run", "handed back for a later run"):
            self.context.log.warning(outcome.message)
            if outcome.delay is not None:
                self.tally.retry_delays.append(outcome.delay)
        elif outcome.message:
            self.context.log.warning(outcome.message)

    def _observation(self, version: DocumentVersion, status: str, reason: str) -> dg.AssetObservation:
        """Shown on the partition's events, so its page says what happened without opening the run."""
        return dg.AssetObservation(
            asset_key=self.context.asset_key,
            partition=version.partition_key,
            metadata={"status": status, "etag": version.etag, "reason": reason[:2000]},
        )

    def _plan(self, partition_key: str) -> None:
        # A batch run targets no partition: planning the failed document's partition in this run is what lets
        # the run's failure show that partition, and only that one, as failed.
        step = self.context.get_step_execution_context().step.key
        event = DagsterEvent.build_asset_materialization_planned_event(
            self.context.job_name,
            step,
            AssetMaterializationPlannedData(self.context.asset_key, partition=partition_key),
        )
        self.context.instance.report_dagster_event(event, self.run_id, logging.DEBUG)

    def finish(self) -> None:
        """End the attempt: retry the step for short backoffs; fail it (for the hook) if a document failed."""
        self.context.log.info(f"Documents: {self.tally.summary()}")
        if self.tally.retry_delays:
            raise dg.RetryRequested(max_retries=STEP_RETRY_CEILING, seconds_to_wait=max(self.tally.retry_delays))
        ids = self.ids
        failed = self.book.failed_in_run(self.run_id, ids) if ids else []
        if failed:
            lines = "\n".join(f"- {r['partition_key']}: {r['error_type']}: {r['error_message']}" for r in failed[:50])
            more = f"\n… and {len(failed) - 50} more" if len(failed) > 50 else ""
            raise dg.Failure(
                description=f"{len(failed)} of {len(ids)} document(s) failed and were dead-lettered:\n{lines}{more}",
                metadata={"failed_documents": dg.MetadataValue.json([r["partition_key"] for r in failed[:500]])},
                allow_retries=False,
            )


def claimable_for(force: bool, partition_run: bool) -> tuple[str, ...]:
    """Which statuses a run may claim: a batch takes what the sensor requested; a run started on partitions (a
    person's Materialize, a backfill) also ingests FAILED and QUARANTINED versions again, with fresh tries — the
    person decided the cause is fixed; ``force`` re-ingests finished ones too."""
    if force:
        return (Status.DISCOVERED, Status.FAILED, Status.SUCCESS, Status.SKIPPED, Status.SUPERSEDED, Status.QUARANTINED)
    return (Status.DISCOVERED, Status.FAILED, Status.QUARANTINED) if partition_run else (Status.DISCOVERED,)
