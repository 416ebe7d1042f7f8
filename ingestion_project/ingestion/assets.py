"""raw_documents: every discovered document, validated, parsed and landed as bronze Parquet."""

import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from ingestion_project.failures.classes import error_class, limits_for, next_delay
from ingestion_project.failures.dead_letters import resolve_dead_letters
from ingestion_project.ingestion.documents import IngestedDocument, ingest_document
from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.ingestion.resources import IngestionResource, LedgerResource
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger

_MAX_SCHEMA_COLUMNS = 100


class IngestConfig(dg.Config):
    force: bool = False
    """Re-ingest versions the ledger already has as succeeded, skipped or quarantined."""


@dataclass
class DocumentFailure:
    """One document that failed in this attempt, with what the dead-letter record needs."""

    partition_key: str
    ref: DocumentRef | None
    etag: str | None
    size: int | None
    content_type: str | None
    error: BaseException

    @property
    def error_class(self) -> str:
        return error_class(self.error)

    def as_metadata(self, attempts: int) -> dict:
        ref = self.ref
        return {
            "partition_key": self.partition_key,
            "source": ref.source if ref else None,
            "bucket": ref.bucket if ref else None,
            "key": ref.key if ref else None,
            "etag": self.etag,
            "size": self.size,
            "content_type": self.content_type,
            "error_class": self.error_class,
            "error_type": type(self.error).__name__,
            "error_message": str(self.error),
            "error_traceback": "".join(traceback.format_exception(self.error))[-8000:],
            "attempts": attempts,
        }


def materialization_metadata(doc: IngestedDocument) -> dict[str, object]:
    """Small per-document metadata: identity, content hash, shape and where bronze landed."""
    count_label = "chunks" if doc.is_text else "rows"
    columns = [dg.TableColumn(c["name"], c["type"]) for c in doc.columns[:_MAX_SCHEMA_COLUMNS]]
    return {
        "source": doc.ref.source,
        "bucket": doc.ref.bucket,
        "key": doc.ref.key,
        "etag": doc.info.etag,
        "size_bytes": dg.MetadataValue.int(doc.info.size),
        "sha256": doc.sha256,
        "format": doc.format,
        count_label: dg.MetadataValue.int(doc.record_count),
        "dagster/row_count": dg.MetadataValue.int(doc.record_count),
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "bronze_path": dg.MetadataValue.path(doc.bronze_path),
        "duration_ms": dg.MetadataValue.int(doc.duration_ms),
    }


def _version(ref: DocumentRef, etag: str) -> dict[str, str]:
    return {
        "source": ref.source,
        "bucket": ref.bucket,
        "object_key": ref.key,
        "etag": etag,
        "partition_key": ref.partition_key,
    }


def _land(
    context: dg.AssetExecutionContext, partition_key: str, ingestion: IngestionResource, book: Ledger, force: bool
) -> IngestedDocument | None:
    """Claim, ingest and record one partition's document; None when another run holds or finished it."""
    ref, info = DocumentRef.from_partition_key(partition_key), None
    settings = ingestion.settings()
    source = settings.source(ref.source)
    store = ingestion.source_store(ref.source)
    try:
        info = store.head(ref.key)
    except Exception as error:
        known = book.latest_version(ref.source, ref.bucket, ref.key)
        etag = known["etag"] if known else "unknown"
        stale_after = timedelta(seconds=settings.processing_timeout_seconds)
        claim = book.claim(_version(ref, etag), context.run_id, stale_after=stale_after)
        if not claim.claimed:
            # Another run holds or finished this version: its outcome, not ours, decides the document's fate.
            context.log.info(f"Skipping {partition_key}@{etag} ({error}): {claim.status} in run {claim.run_id}")
            return None
        book.mark_failed(
            _version(ref, etag), context.run_id, error=error, error_class=error_class(error), duration_ms=0
        )
        raise DocumentFailureError(DocumentFailure(partition_key, ref, etag, None, None, error)) from error
    version = _version(ref, info.etag)
    claim = book.claim(
        version, context.run_id, stale_after=timedelta(seconds=settings.processing_timeout_seconds), force=force
    )
    if not claim.claimed:
        context.log.info(f"Skipping {partition_key}@{info.etag}: {claim.status} in run {claim.run_id}")
        return None
    started = time.monotonic()
    try:
        doc = ingest_document(ref, info, source, store, ingestion.bronze_store(ref.source))
    except Exception as error:
        duration = int((time.monotonic() - started) * 1000)
        book.mark_failed(version, context.run_id, error=error, error_class=error_class(error), duration_ms=duration)
        failure = DocumentFailure(partition_key, ref, info.etag, info.size, info.content_type, error)
        raise DocumentFailureError(failure) from error
    book.mark_success(
        version,
        context.run_id,
        sha256=doc.sha256,
        records=doc.record_count,
        bytes_read=info.size,
        duration_ms=doc.duration_ms,
    )
    resolved = resolve_dead_letters(*ingestion.dead_letter_store(ref.source), book, version)
    if resolved:
        context.log.info(f"Replay of {partition_key} succeeded; dead-letter record(s) moved to {', '.join(resolved)}")
    return doc


class DocumentFailureError(Exception):
    def __init__(self, failure: DocumentFailure):
        super().__init__(str(failure.error))
        self.failure = failure


def _retry_or_fail(context: dg.AssetExecutionContext, failures: list[DocumentFailure], ingestion: IngestionResource):
    """Retry the step while a retryable failure has tries left; otherwise fail for the dead-letter hook."""
    attempt = context.retry_number
    retryable = []
    for failure in failures:
        if failure.ref is None:
            continue
        limits = limits_for(ingestion.settings().source(failure.ref.source).retries, failure.error_class)
        if limits and attempt < limits.max_retries:
            retryable.append((failure, limits))
    if retryable:
        delay = max(next_delay(limits, attempt) for _, limits in retryable)
        for failure, limits in retryable:
            context.log.warning(
                f"retry document={failure.partition_key} try={attempt + 1} max_tries={limits.max_retries + 1} "
                f"error={type(failure.error).__name__}: {failure.error} next_delay={delay}s"
            )
        raise dg.RetryRequested(max_retries=max(limits.max_retries for _, limits in retryable), seconds_to_wait=delay)
    lines = "\n".join(f"- {f.partition_key}: {type(f.error).__name__}: {f.error}" for f in failures)
    raise dg.Failure(
        description=f"{len(failures)} of {len(context.partition_keys)} document(s) failed:\n{lines}",
        metadata={"failed_documents": dg.MetadataValue.json([f.as_metadata(attempt + 1) for f in failures])},
        allow_retries=False,
    )


@dg.asset(
    partitions_def=documents_partitions,
    group_name="ingestion",
    kinds={"s3", "parquet"},
    owners=["team:data-platform"],
    output_required=False,
)
def raw_documents(
    context: dg.AssetExecutionContext, config: IngestConfig, ingestion: IngestionResource, ledger: LedgerResource
):
    """Each discovered document, validated, hashed, parsed and written atomically as bronze Parquet."""
    book = ledger.ledger()
    failures: list[DocumentFailure] = []
    for partition_key in context.partition_keys:
        try:
            doc = _land(context, partition_key, ingestion, book, config.force)
        except DocumentFailureError as failed:
            failures.append(failed.failure)
            context.log.error(f"Document {partition_key} failed: {type(failed.failure.error).__name__}: {failed}")
            continue
        # One document's failure, whatever it is, must not stop or fail the others in this run.
        except Exception as error:  # noqa: BLE001
            failures.append(DocumentFailure(partition_key, None, None, None, None, error))
            context.log.error(f"Document {partition_key} failed: {type(error).__name__}: {error}")
            continue
        if doc is None:
            continue
        context.log.info(f"Landed {doc.ref.uri} ({doc.format}, {doc.record_count} records) at {doc.bronze_path}")
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=partition_key, metadata=materialization_metadata(doc)
        )
    if failures:
        _retry_or_fail(context, failures, ingestion)
