"""dead_letter_hook: when an ingestion step fails for good, every failed document gets a dead-letter record."""

import traceback
from datetime import UTC, datetime

import dagster as dg

from ingestion_project.failures.classes import error_class
from ingestion_project.failures.dead_letters import build_record, record_key, write_record
from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.lib.keys import DocumentRef


def failed_documents(error: BaseException | None) -> list[dict] | None:
    """The per-document failures the asset attached to its dg.Failure, or None if it failed another way."""
    if isinstance(error, dg.Failure):
        value = error.metadata.get("failed_documents")
        if value is not None:
            return list(value.value)
    return None


def _run_partition_keys(context: dg.HookContext) -> list[str]:
    tags = context.instance.get_run_by_id(context.run_id).tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and end:
        return documents_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(start, end), dynamic_partitions_store=context.instance
        )
    return []


def _whole_step_failures(context: dg.HookContext, error: BaseException | None) -> list[dict]:
    """The step died outside the per-document handling (e.g. a resource failed): every document failed with it."""
    documents = []
    book = context.resources.ledger.ledger()
    for partition_key in _run_partition_keys(context):
        ref = DocumentRef.from_partition_key(partition_key)
        known = book.latest_version(ref.source, ref.bucket, ref.key) or {}
        documents.append(
            {
                "partition_key": partition_key,
                "source": ref.source,
                "bucket": ref.bucket,
                "key": ref.key,
                "etag": known.get("etag"),
                "error_class": error_class(error) if error else "unexpected",
                "error_type": type(error).__name__ if error else "StepFailure",
                "error_message": str(error) if error else "the step failed without an exception",
                "error_traceback": "".join(traceback.format_exception(error)) if error else None,
            }
        )
    return documents


@dg.failure_hook(required_resource_keys={"ingestion", "ledger"})
def dead_letter_hook(context: dg.HookContext) -> None:
    """Write one dead-letter record per failed document and mark its ledger row FAILED with the reason."""
    error = context.op_exception
    documents = failed_documents(error)
    if documents is None:
        documents = _whole_step_failures(context, error)
    ingestion, book = context.resources.ingestion, context.resources.ledger.ledger()
    failed_at = datetime.now(UTC)
    for document in documents:
        if not document.get("source"):
            context.log.error(f"Cannot dead-letter {document['partition_key']}: not a document partition key")
            continue
        source = ingestion.settings().source(document["source"])
        etag = document.get("etag") or "unknown"
        version = {"source": source.name, "bucket": document["bucket"], "object_key": document["key"], "etag": etag}
        book.fail_in_flight(
            version,
            context.run_id,
            error_class=document["error_class"],
            error_type=document["error_type"],
            message=document["error_message"] or "",
        )
        row = book.get(version) or {}
        store, prefix = ingestion.dead_letter_store(source.name)
        existing = book.open_dead_letter_keys(version)
        # One open record per version: a replay that fails again updates it rather than adding another.
        key = (
            existing[0]
            if existing
            else record_key(prefix, failed_at, source.name, document["bucket"], document["key"], etag)
        )
        record = build_record(
            document,
            failed_at=failed_at,
            run_id=context.run_id,
            job_name=context.job_name,
            retry_count=row.get("retry_count", 0),
            max_retries=source.max_replays,
        )
        uri = write_record(store, key, record)
        book.upsert_dead_letter(
            {
                **version,
                "dlq_key": key,
                "partition_key": document["partition_key"],
                "size_bytes": document.get("size"),
                "content_type": document.get("content_type"),
                "error_class": record["error"]["class"],
                "error_type": record["error"]["type"],
                "error_message": (record["error"]["message"] or "")[:4000],
                "failed_at": failed_at,
                "run_id": context.run_id,
                "retry_count": record["retry_count"],
                "max_retries": record["max_retries"],
            }
        )
        context.log.warning(f"Dead-lettered {document['partition_key']} ({record['error']['type']}) at {uri}")
