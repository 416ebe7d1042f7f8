"""Every exit path reaches a terminal state: the ledger is reconciled with runs that died without finishing.

A run that fails or is canceled leaves the versions it held (or was requested for and never claimed) to the
run-status sensors here; a run killed outright (SIGKILL, the OOM killer) stops renewing its lease, and the
discovery sensor releases its versions once the lease expires and marks the run failed. A released version is
requested again under a new run key: in a smaller batch when the run held others too (halved on each death,
down to one per run), one attempt fewer when it was alone; out of attempts it is QUARANTINED with a dead letter
that says why. Versions of a source removed from the sources file end SKIPPED.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.config import Settings
from ingestion_project.core.dead_letters import StoreFor, record_key, write_pending
from ingestion_project.core.tags import BATCH_TAG
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Failure, Ledger, Status

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
RECONCILER = "ingestion_reconciler"


@dataclass
class Reconciliation:
    """What one reconciliation pass changed, for the sensor's log and skip reason."""

    requeued: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    runs_marked_failed: list[str] = field(default_factory=list)
    dead_letters_written: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(self.requeued)} requeued" if self.requeued else "",
            f"{len(self.quarantined)} quarantined" if self.quarantined else "",
            f"{len(self.skipped)} skipped (source removed)" if self.skipped else "",
            f"{len(self.runs_marked_failed)} dead run(s) marked failed" if self.runs_marked_failed else "",
            f"{self.dead_letters_written} dead-letter record(s) written" if self.dead_letters_written else "",
        ]
        return ", ".join(p for p in parts if p)


def release_rows(
    book: Ledger, settings: Settings, dead_letter_store: StoreFor, rows: list[dict], reason: str, found: Reconciliation
) -> None:
    """Release the versions one run held or was requested for: requeue, quarantine when out of attempts, or skip
    when their source is gone. A row that changed meanwhile (its run recorded an outcome after all) is left alone.

    A run that died holding several versions cannot say which of them killed it: they are requested again in runs
    of half as many (``isolation_limit``), and the loss counts toward ``max_attempts`` only for a version that was
    alone in the run that died. So the batchmates of a document that kills its worker land, and only the killer
    is quarantined. Versions a run was requested for but never claimed did not run: they are requested again as
    they were."""
    held = sum(1 for row in rows if row["status"] == Status.PROCESSING)
    for row in rows:
        label = f"{row['partition_key']}@{row['etag']}"
        if not (settings.has_source(row["source"]) or settings.has_database(row["source"])):
            if book.release(row, f"{reason}; source '{row['source']}' was removed", skip=True):
                found.skipped.append(label)
            continue
        # A database source allows one attempt: its next extraction reads the same rows again.
        source = settings.any_source(row["source"])
        if held > 1 and row["status"] == Status.PROCESSING:
            limit = isolation_limit(held, row.get("batch_limit"))
            shared = f"{reason}; it held {held} versions: requested again in runs of at most {limit}"
            if book.release(row, shared, batch_limit=limit):
                found.requeued.append(label)
            continue
        losses = row["lost_count"] + 1
        if losses < source.max_attempts:
            if book.release(row, reason):
                found.requeued.append(label)
            continue
        message = (
            f"{reason}; runs ended without finishing this version {losses} times (max_attempts {source.max_attempts})"
        )
        failure = Failure(
            error_class="unexpected",
            error_type="WorkerLost",
            message=message,
            traceback=None,
            dlq_key=record_key(
                dead_letter_store(source.name)[1],
                datetime.now(UTC),
                source.name,
                row["bucket"],
                DocumentRef.of_row(row).key,
                row["etag"],
            ),
            max_retries=source.max_replays,
            job_name=RECONCILER,
            attempts=losses,
        )
        if book.release(row, message, quarantine=failure):
            found.quarantined.append(label)


def isolation_limit(held: int, batch_limit: int | None) -> int:
    """How many versions the next run of a version may carry after its run died holding ``held`` versions: half
    as many, halving again on each death, down to one."""
    return max(1, min(held, batch_limit or held) // 2)


def reconcile_run(
    book: Ledger, settings: Settings, dead_letter_store: StoreFor, run: dg.DagsterRun, ended: str
) -> Reconciliation:
    """The versions a finished run still holds, or was requested for and never claimed, are released."""
    found = Reconciliation()
    rows = book.held_by(run.run_id)
    request_key = run.tags.get(BATCH_TAG)
    if request_key:
        rows += book.requested_by(request_key)
    release_rows(book, settings, dead_letter_store, rows, f"run {run.run_id} {ended} before finishing", found)
    write_dead_letters(book, dead_letter_store, found)
    return found


def _has_active_run(instance: dg.DagsterInstance, request_key: str) -> bool:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: request_key}, statuses=ACTIVE_RUN_STATUSES))
    return bool(runs)


def reconcile_ledger(
    instance: dg.DagsterInstance, settings: Settings, book: Ledger, dead_letter_store: StoreFor
) -> Reconciliation:
    """One pass over what no run will finish by itself: removed or restored sources, expired leases (their runs
    are marked failed) and requests no run picked up. Dead-letter objects are written by ``write_dead_letters``."""
    found = Reconciliation()
    for name in sorted(book.sources()):
        if not (settings.has_source(name) or settings.has_database(name)):
            reason = f"source '{name}' was removed from the sources file"
            found.skipped += [f"{r['partition_key']}@{r['etag']}" for r in book.skip_waiting(name, reason)]
        else:
            book.restore_skipped(name)

    by_run: dict[str, list[dict]] = defaultdict(list)
    for row in book.expired_leases():
        by_run[row["run_id"]].append(row)
    for run_id, rows in by_run.items():
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED):
            # The run stopped renewing its lease: its worker is gone. Marking it failed frees its run slot.
            instance.report_run_failed(run, f"Its lease on {len(rows)} document version(s) expired: worker lost.")
            found.runs_marked_failed.append(run_id)
        reason = f"run {run_id} stopped renewing its lease (worker killed or hung)"
        release_rows(book, settings, dead_letter_store, rows, reason, found)

    by_request: dict[str, list[dict]] = defaultdict(list)
    for row in book.stale_requests(timedelta(seconds=settings.request_timeout_seconds)):
        by_request[row["request_key"]].append(row)
    for request_key, rows in by_request.items():
        if not _has_active_run(instance, request_key):
            reason = f"run request {request_key} was not picked up by any run"
            release_rows(book, settings, dead_letter_store, rows, reason, found)
    return found


def write_dead_letters(book: Ledger, dead_letter_store: StoreFor, found: Reconciliation) -> None:
    """Write or move every dead-letter object still pending (a failed PUT, a run that died, a closed record)."""
    written, found.problems = write_pending(book, dead_letter_store)
    found.dead_letters_written = len(written)


def log_reconciliation(log, found: Reconciliation) -> None:
    if found.summary():
        log.warning(f"Reconciled the ledger: {found.summary()}")
    for problem in found.problems:
        log.error(f"Dead-letter record still pending (retried on the next sensor tick): {problem}")
