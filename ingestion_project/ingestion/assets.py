"""raw_documents: every discovered document, validated, parsed and landed as bronze Parquet."""

import time

import dagster as dg

from ingestion_project.ingestion.documents import IngestedDocument, ingest_document
from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.ingestion.resources import IngestionResource, LedgerResource
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger

_MAX_SCHEMA_COLUMNS = 100


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


def _land(
    context: dg.AssetExecutionContext, partition_key: str, ingestion: IngestionResource, book: Ledger
) -> IngestedDocument:
    """Ingest one partition's document and record its fate in the ledger."""
    ref = DocumentRef.from_partition_key(partition_key)
    store = ingestion.source_store(ref.source)
    info = store.head(ref.key)
    version = {
        "source": ref.source,
        "bucket": ref.bucket,
        "object_key": ref.key,
        "etag": info.etag,
        "partition_key": partition_key,
    }
    book.mark_processing(version, context.run_id)
    started = time.monotonic()
    try:
        doc = ingest_document(
            ref, info, ingestion.settings().source(ref.source), store, ingestion.bronze_store(ref.source)
        )
    except Exception as error:
        book.mark_failed(version, error=error, duration_ms=int((time.monotonic() - started) * 1000))
        raise
    book.mark_success(
        version,
        sha256=doc.sha256,
        records=doc.record_count,
        bytes_read=info.size,
        duration_ms=doc.duration_ms,
    )
    return doc


@dg.asset(
    partitions_def=documents_partitions,
    group_name="ingestion",
    kinds={"s3", "parquet"},
    owners=["team:data-platform"],
    output_required=False,
)
def raw_documents(context: dg.AssetExecutionContext, ingestion: IngestionResource, ledger: LedgerResource):
    """Each discovered document, validated, hashed, parsed and written atomically as bronze Parquet."""
    book = ledger.ledger()
    failed: dict[str, str] = {}
    for partition_key in context.partition_keys:
        try:
            doc = _land(context, partition_key, ingestion, book)
        # One document's failure, whatever it is, must not stop or fail the others in this run.
        except Exception as error:  # noqa: BLE001
            failed[partition_key] = f"{type(error).__name__}: {error}"
            context.log.error(f"Document {partition_key} failed: {failed[partition_key]}")
            continue
        context.log.info(f"Landed {doc.ref.uri} ({doc.format}, {doc.record_count} records) at {doc.bronze_path}")
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=partition_key, metadata=materialization_metadata(doc)
        )
    if failed:
        lines = "\n".join(f"- {key}: {reason}" for key, reason in failed.items())
        raise dg.Failure(
            description=f"{len(failed)} of {len(context.partition_keys)} document(s) failed:\n{lines}",
            metadata={"failed_documents": dg.MetadataValue.json(failed)},
        )
