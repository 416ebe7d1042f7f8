"""Ingest one document: size-check, download, hash, detect, parse, and land it atomically as bronze Parquet."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
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
from ingestion_project.lib.errors import DocumentError, ValidationError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.parsing import parse_document
from ingestion_project.lib.versions import DocumentVersion


class LeaseLostError(Exception):
    """The run no longer holds the version: another run owns its outcome, so nothing is committed."""


@dataclass(frozen=True)
class IngestedDocument:
    """What landing one document version produced."""

    version: DocumentVersion
    info: ObjectInfo
    sha256: str
    format: str
    record_count: int
    is_text: bool
    columns: list[dict[str, str]]
    bronze_path: str
    duration_ms: int

    @property
    def ref(self) -> DocumentRef:
        return self.version.ref


def ingest_document(
    version: DocumentVersion,
    source: S3SourceConfig | LocalSourceConfig,
    store: ObjectStore,
    bronze: tuple[ObjectStore, str],
    still_held: Callable[[], bool] = lambda: True,
) -> IngestedDocument:
    """Land exactly the pinned ``version`` of one document as bronze; raise a DocumentError if it cannot be.

    The source object is only read, never modified; the GET is conditional on the pinned ETag (SupersededError
    when the object has moved on). The data file is written before the manifest, and the manifest — the commit —
    only while ``still_held()``, so a run that lost its lease commits nothing.
    """
    started = time.monotonic()
    ref = version.ref
    if version.size is not None and version.size > source.max_object_bytes:
        raise ValidationError(
            f"{ref.uri} is {version.size:,} bytes, over the {source.max_object_bytes:,}-byte limit "
            f"of source '{source.name}'"
        )
    data, info = store.read(
        ref.key, etag=version.etag, max_bytes=source.max_object_bytes, version_id=version.version_id
    )
    if not data:
        raise ValidationError(f"{ref.uri} is empty (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        parsed = parse_document(data, ref.key, info.content_type, max_decompressed_bytes=source.max_decompressed_bytes)
    except DocumentError as error:
        error.content_type = info.content_type  # the dead-letter record names what the store said it was
        raise

    ingested_at = datetime.now(UTC)
    bronze_version = BronzeVersion(ref, version.etag, parsed.is_text)
    bronze_store, prefix = bronze
    in_root = (lambda key: f"{prefix}/{key}") if prefix else (lambda key: key)
    table = with_lineage(parsed.table, ref, version.etag, sha256, ingested_at)
    bronze_path = bronze_store.write_atomic(
        in_root(bronze_version.data_key), to_parquet_bytes(table), PARQUET_CONTENT_TYPE
    )
    columns = columns_of(parsed.table)
    manifest = manifest_row(
        source=ref.source,
        bucket=ref.bucket,
        object_key=ref.key,
        partition_key=ref.partition_key,
        etag=version.etag,
        size_bytes=len(data),
        sha256=sha256,
        content_type=info.content_type,
        format=str(parsed.format),
        record_count=parsed.record_count,
        columns_json=columns,
        bronze_path=bronze_path,
        last_modified_at=info.last_modified,
        ingested_at=ingested_at,
        discovery_seq=version.seq,
    )
    if not still_held():
        raise LeaseLostError(f"lost the lease on {version.label()} before committing it")
    bronze_store.write_atomic(in_root(bronze_version.manifest_key), to_parquet_bytes(manifest), PARQUET_CONTENT_TYPE)
    return IngestedDocument(
        version=version,
        info=info,
        sha256=sha256,
        format=str(parsed.format),
        record_count=parsed.record_count,
        is_text=parsed.is_text,
        columns=columns,
        bronze_path=bronze_path,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
