"""Ingest one document: size-check, download, hash, detect, parse, and land it atomically as bronze Parquet."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion_project.config import LocalSourceConfig, S3SourceConfig
from ingestion_project.lib.bronze import LINEAGE_COLUMNS, BronzeVersion, Lineage, columns_of, manifest_row
from ingestion_project.lib.bronze_commit import BronzeObjects, BronzeRoot
from ingestion_project.lib.contracts import ContractOutcome, apply_contract
from ingestion_project.lib.errors import DocumentError, ResourceError, ValidationError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.limits import over_limit
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.parsing import parse_document
from ingestion_project.lib.quality import check_quality
from ingestion_project.lib.spool import Scratch
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
    columns: list[dict[str, str]]  # as bronze holds them (after the contract)
    bronze_path: str
    duration_ms: int
    format_decided_by: str = "content"
    document_columns: list[dict[str, str]] | None = None  # as the document had them (the schema history's)
    contract: ContractOutcome | None = None
    bronze: BronzeObjects | None = None  # the attempt's files, as the ledger's SUCCESS records them

    @property
    def ref(self) -> DocumentRef:
        return self.version.ref


T = TypeVar("T")


def ingest_document(
    version: DocumentVersion,
    source: S3SourceConfig | LocalSourceConfig,
    store: ObjectStore,
    bronze: BronzeRoot,
    *,
    attempt: str,
    record: Callable[[IngestedDocument], T | None],
    still_held: Callable[[], bool] = lambda: True,
    replaces: BronzeObjects | None = None,
) -> tuple[IngestedDocument, T]:
    """Land exactly the pinned ``version`` of one document as bronze and ``record`` it (the ledger's fenced
    SUCCESS); returns the document and what ``record`` returned. Raises a DocumentError if it cannot be landed,
    LeaseLostError when ``record`` refuses it (its files are removed again).

    The document streams: downloaded (and hashed) into scratch space, parsed a block at a time into a Parquet
    file, which is uploaded — memory stays bounded whatever the document's size, and every limit of the source
    is checked on the way. The source object is only read, never modified; the GET is conditional on the pinned
    ETag (SupersededError when the object has moved on). The files are named by ``attempt`` (the lease token) and
    land through ``BronzeRoot.commit``: the data file, the manifest only while ``still_held()``, then ``record``,
    which decides — so a run that lost its lease commits nothing and leaves nothing, even when a PUT of its
    finishes after another run landed the version. ``replaces``: the files of an earlier commit of the version,
    removed once this one is recorded.
    """
    started = time.monotonic()
    ref = version.ref
    limits = source.document_limits()
    if version.size is not None and version.size > limits.object_bytes:
        raise over_limit("object_size", f"{ref.uri} is {version.size:,} bytes", limits.object_bytes, " bytes")
    with Scratch() as scratch:
        spool = scratch.spool()
        info = store.download(
            ref.key, spool, etag=version.etag, max_bytes=limits.object_bytes, version_id=version.version_id
        )
        if spool.size == 0:
            raise ValidationError(f"{ref.uri} is empty (0 bytes)")
        ingested_at = datetime.now(UTC)
        lineage = Lineage(ref, version.etag, spool.sha256, ingested_at)
        try:
            parsed = parse_document(
                spool.open, ref.key, info.content_type, limits=limits, lineage=lineage, out_path=scratch.file("data")
            )
        except DocumentError as error:
            error.content_type = info.content_type  # the dead-letter record names what the store said it was
            raise
        except MemoryError as error:  # pyarrow's ArrowMemoryError is one too
            raise ResourceError(
                f"ran out of memory parsing {ref.uri} ({spool.size:,} bytes): the document needs more memory than "
                "the worker had for it (run_memory_limit); retried in a run by itself"
            ) from error
        contract = None
        columns = parsed.columns
        if not parsed.is_text:
            # Before the quality rules, which then see declared types; a document that breaks it leaves no bronze.
            contract = apply_contract(source.schema_.contract(), scratch.file("data"))
            if contract is not None:
                landed = pq.read_schema(scratch.file("data"))
                columns = [c for c in columns_of(landed) if c["name"] not in LINEAGE_COLUMNS]
        rules = source.quality.rules()
        if rules.active and not parsed.is_text:
            check_quality(rules, scratch.file("data"))  # before anything lands: a failing document leaves no bronze
        # Arrow's allocator keeps what parsing freed for reuse; hand it back before the upload needs memory of its own.
        pa.default_memory_pool().release_unused()
        bronze_version = BronzeVersion(ref, version.etag, parsed.is_text, attempt=attempt)
        bronze_path = bronze.uri(bronze_version.data_key)
        manifest = manifest_row(
            source=ref.source,
            bucket=ref.bucket,
            object_key=ref.shown_key,
            partition_key=ref.partition_key,
            etag=version.etag,
            size_bytes=spool.size,
            sha256=spool.sha256,
            content_type=info.content_type,
            format=str(parsed.format),
            record_count=parsed.record_count,
            columns_json=columns,
            bronze_path=bronze_path,
            last_modified_at=info.last_modified,
            ingested_at=ingested_at,
            discovery_seq=version.seq,
        )
        doc = IngestedDocument(
            version=version,
            info=info,
            sha256=spool.sha256,
            format=str(parsed.format),
            record_count=parsed.record_count,
            is_text=parsed.is_text,
            columns=columns,
            bronze_path=bronze_path,
            duration_ms=0,
            format_decided_by=str(parsed.format_decided_by),
            document_columns=parsed.columns,
            contract=contract,
        )

        def commit(objects: BronzeObjects):
            nonlocal doc
            doc = replace(doc, bronze=objects, duration_ms=int((time.monotonic() - started) * 1000))
            return record(doc)

        recorded = bronze.commit(
            bronze_version, scratch.file("data"), manifest, commit, still_held=still_held, replaces=replaces
        )
    if recorded is None:
        raise LeaseLostError(f"lost the lease on {version.label()} before committing it")
    return doc, recorded
