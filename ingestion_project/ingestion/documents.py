"""Ingest one document: size-check, download, hash, detect, parse, and land it atomically as bronze Parquet."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ingestion_project.config import LocalSourceConfig, S3SourceConfig
from ingestion_project.lib.bronze import (
    PARQUET_CONTENT_TYPE,
    BronzeVersion,
    columns_of,
    manifest_row,
    to_parquet_bytes,
    with_lineage,
)
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.parsing import parse_document


@dataclass(frozen=True)
class IngestedDocument:
    """What landing one document version produced."""

    ref: DocumentRef
    info: ObjectInfo
    sha256: str
    format: str
    record_count: int
    is_text: bool
    columns: list[dict[str, str]]
    bronze_path: str
    duration_ms: int


def ingest_document(
    ref: DocumentRef,
    info: ObjectInfo,
    source: S3SourceConfig | LocalSourceConfig,
    store: ObjectStore,
    bronze: tuple[ObjectStore, str],
) -> IngestedDocument:
    """Land the version ``info`` (from a HEAD) of one document as bronze; raise a DocumentError if it cannot be.

    The source object is only read, never modified; reading is conditional on ``info.etag``. The data file is
    written before the manifest, so a manifest row always points at a complete data file.
    """
    started = time.monotonic()
    if info.size == 0:
        raise ValidationError(f"{ref.uri} is empty (0 bytes)")
    if info.size > source.max_object_bytes:
        raise ValidationError(
            f"{ref.uri} is {info.size:,} bytes, over the {source.max_object_bytes:,}-byte limit "
            f"of source '{source.name}'"
        )
    data = store.read(ref.key, etag=info.etag, max_bytes=source.max_object_bytes)
    sha256 = hashlib.sha256(data).hexdigest()
    parsed = parse_document(data, ref.key, info.content_type, max_decompressed_bytes=source.max_decompressed_bytes)

    ingested_at = datetime.now(UTC)
    version = BronzeVersion(ref, info.etag, parsed.is_text)
    bronze_store, prefix = bronze
    in_root = (lambda key: f"{prefix}/{key}") if prefix else (lambda key: key)
    table = with_lineage(parsed.table, ref, info.etag, sha256, ingested_at)
    bronze_path = bronze_store.write_atomic(in_root(version.data_key), to_parquet_bytes(table), PARQUET_CONTENT_TYPE)
    columns = columns_of(parsed.table)
    manifest = manifest_row(
        source=ref.source,
        bucket=ref.bucket,
        object_key=ref.key,
        partition_key=ref.partition_key,
        etag=info.etag,
        size_bytes=info.size,
        sha256=sha256,
        content_type=info.content_type,
        format=str(parsed.format),
        record_count=parsed.record_count,
        columns_json=columns,
        bronze_path=bronze_path,
        last_modified_at=info.last_modified,
        ingested_at=ingested_at,
    )
    bronze_store.write_atomic(in_root(version.manifest_key), to_parquet_bytes(manifest), PARQUET_CONTENT_TYPE)
    return IngestedDocument(
        ref=ref,
        info=info,
        sha256=sha256,
        format=str(parsed.format),
        record_count=parsed.record_count,
        is_text=parsed.is_text,
        columns=columns,
        bronze_path=bronze_path,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
