"""Bronze integrity: every SUCCESS version's committed manifest and data file exist with the size and sha256 its
commit recorded — checked a bounded number at a time, least recently verified first (``bronze_verified_at`` is the
cursor), by the `bronze_is_intact` check and a line of `make health`.

A missing or altered file is reported and, when repairing: the version goes back to DISCOVERED so the sensor
requests it again, when its source still has that version; or else it is lost — FAILED with an open dead letter
that says why (a database extraction cannot be read again either). Either way it stays in exactly one state. An
intact version's files of other attempts (a run that lost its lease and died before it could remove them) are
swept once they are older than a few leases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.core.dead_letters import record_key, write_pending
from ingestion_project.core.keys import RAW_DOCUMENTS
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.lib.bronze import BronzeVersion
from ingestion_project.lib.bronze_commit import BronzeObjects, BronzeRoot
from ingestion_project.lib.errors import DocumentError
from ingestion_project.lib.ledger import BRONZE_LOST, Failure, Ledger
from ingestion_project.lib.versions import DocumentVersion

# Versions verified per evaluation, and bytes read at most: the check's cost stays bounded however large bronze is.
DEFAULT_LIMIT = 200
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# Another attempt's files older than this many leases belong to no live run: swept.
STALE_LEASES = 3
LOST_ERROR_CLASS = "external"


@dataclass(frozen=True)
class Finding:
    partition_key: str
    problem: str
    action: str  # "re-ingest" | "lost" | "reported" | "unreadable"


@dataclass
class IntegrityReport:
    checked: int = 0
    intact: int = 0
    bytes_read: int = 0
    swept: int = 0
    findings: list[Finding] = field(default_factory=list)

    def of(self, action: str) -> list[str]:
        return [f.partition_key for f in self.findings if f.action == action]

    def summary(self) -> str:
        if not self.findings:
            return f"{self.intact} of {self.checked} checked version(s) intact"
        broken = ", ".join(f"{f.partition_key}: {f.problem} ({f.action})" for f in self.findings[:5])
        return f"{len(self.findings)} of {self.checked} checked version(s) not intact: {broken}"


def verify_bronze(
    book: Ledger,
    ingestion: IngestionResource,
    *,
    limit: int = DEFAULT_LIMIT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    repair: bool = True,
    job_name: str = "bronze_is_intact",
) -> IntegrityReport:
    """Verify up to ``limit`` SUCCESS versions (and about ``max_bytes``) against what their commit recorded; with
    ``repair``, send broken ones back to DISCOVERED or mark them lost, and sweep lost attempts' files."""
    settings = ingestion.settings()
    report = IntegrityReport()
    verified: list[int] = []
    for row in book.bronze_to_verify(limit):
        if report.bytes_read >= max_bytes:
            break
        objects = BronzeObjects.from_row(row)
        try:
            root = BronzeRoot(*ingestion.bronze_store(row["source"]))
        except KeyError:
            continue  # its source left the sources file: nothing to land it again with
        report.checked += 1
        try:
            problem = root.problem(objects)
        except DocumentError as error:  # the store is unreachable: say so, verify it next time
            report.findings.append(Finding(row["partition_key"], f"{type(error).__name__}: {error}", "unreadable"))
            continue
        report.bytes_read += objects.manifest_bytes + objects.data_bytes
        if problem is None:
            report.intact += 1
            verified.append(row["id"])
            if repair:
                report.swept += _sweep(root, row, objects, settings.lease_seconds)
            continue
        if not repair:
            report.findings.append(Finding(row["partition_key"], problem, "reported"))
            continue
        action = _repair(book, ingestion, row, problem, job_name)
        report.findings.append(Finding(row["partition_key"], problem, action))
    if repair:
        book.bronze_verified(verified)
        if report.of("lost"):
            write_pending(book, ingestion.dead_letter_store)
    return report


def _sweep(root: BronzeRoot, row: dict, objects: BronzeObjects, lease_seconds: int) -> int:
    version = BronzeVersion(DocumentVersion.from_row(row).ref, row["etag"], objects.data_key.startswith("text/"))
    older_than = datetime.now(UTC) - timedelta(seconds=STALE_LEASES * lease_seconds)
    swept = 0
    for key in root.stale_attempts(version, objects, older_than):
        root.store.delete(root.key(key))
        swept += 1
    return swept


def _source_still_has(ingestion: IngestionResource, row: dict) -> str | None:
    """None when the source still has exactly this version (it can be landed again); else why not."""
    settings = ingestion.settings()
    if not settings.has_source(row["source"]):
        return f"source '{row['source']}' is a database extraction or no longer configured"
    try:
        info = ingestion.source_store(row["source"]).head(row["object_key"])
    except DocumentError as error:
        return f"the source no longer has the object ({error})"
    if info.etag != row["etag"]:
        return f"the source now has ETag {info.etag}, not {row['etag']}"
    return None


def _repair(book: Ledger, ingestion: IngestionResource, row: dict, problem: str, job_name: str) -> str:
    gone = _source_still_has(ingestion, row)
    if gone is None:
        reason = f"bronze lost after SUCCESS ({problem}); the source still has the version: landing it again"
        return "re-ingest" if book.bronze_lost(row, reason) else "reported"
    message = f"bronze lost after SUCCESS ({problem}), and it cannot be landed again: {gone}"
    settings = ingestion.settings()
    source = settings.source(row["source"]) if settings.has_source(row["source"]) else None
    failure = Failure(
        error_class=LOST_ERROR_CLASS,
        error_type=BRONZE_LOST,
        message=message,
        traceback=f"no exception: found by {job_name}, which compared bronze with the commit: {problem}",
        dlq_key=record_key(
            ingestion.dead_letter_store(row["source"])[1],
            datetime.now(UTC),
            row["source"],
            row["bucket"],
            row["object_key"],
            row["etag"],
        ),
        max_retries=source.max_replays if source is not None else 0,
        job_name=job_name,
    )
    return "lost" if book.bronze_lost(row, message, failure=failure) else "reported"


@dg.asset_check(
    asset=RAW_DOCUMENTS,
    name="bronze_is_intact",
    description=(
        "Every SUCCESS version's committed manifest and data file exist with the size and sha256 recorded at "
        "commit (a bounded number per evaluation, least recently verified first). A broken one is landed again "
        "from its source, or marked lost with a dead letter when the source no longer has it."
    ),
)
def bronze_is_intact(ingestion: IngestionResource, ledger: LedgerResource) -> dg.AssetCheckResult:
    report = verify_bronze(ledger.ledger(), ingestion)
    return dg.AssetCheckResult(
        passed=not report.findings,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.summary(),
        metadata={
            "checked": dg.MetadataValue.int(report.checked),
            "intact": dg.MetadataValue.int(report.intact),
            "bytes_read": dg.MetadataValue.int(report.bytes_read),
            "re_ingested": dg.MetadataValue.json(report.of("re-ingest")[:50]),
            "lost": dg.MetadataValue.json(report.of("lost")[:50]),
            "problems": dg.MetadataValue.json({f.partition_key: f.problem for f in report.findings[:20]}),
            "lost_attempt_files_swept": dg.MetadataValue.int(report.swept),
        },
    )
