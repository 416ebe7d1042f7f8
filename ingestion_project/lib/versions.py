"""One version of one document: what a run request pins and the ledger records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestion_project.lib.keys import DocumentRef


@dataclass(frozen=True)
class DocumentVersion:
    """A document (source, bucket, key) at one ETag, with the S3 version id where the bucket has one.

    ``seq`` is the version's ledger row id: its discovery order. ``size`` and ``last_modified`` are as listed.
    """

    ref: DocumentRef
    etag: str
    version_id: str | None = None
    size: int | None = None
    last_modified: datetime | None = None
    seq: int | None = None

    @property
    def source(self) -> str:
        return self.ref.source

    @property
    def partition_key(self) -> str:
        return self.ref.partition_key

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return self.ref.source, self.ref.bucket, self.ref.key, self.etag

    def label(self) -> str:
        return f"{self.ref.partition_key}@{self.etag}"

    def as_row(self) -> dict[str, Any]:
        """The ledger columns this version fills when it is first recorded."""
        return {
            "source": self.ref.source,
            "bucket": self.ref.bucket,
            "object_key": self.ref.shown_key,
            "key_hash": self.ref.key_hash,
            "etag": self.etag,
            "partition_key": self.ref.partition_key,
            "version_id": self.version_id,
            "size_bytes": self.size,
            "modified_at": self.last_modified,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DocumentVersion:
        """The version of a ledger row, with its exact key (``object_key`` is only its readable form)."""
        return cls(
            ref=DocumentRef.of_row(row),
            etag=row["etag"],
            version_id=row.get("version_id"),
            size=row.get("size_bytes"),
            last_modified=row.get("modified_at"),
            seq=row.get("id"),
        )

    def as_config(self) -> dict[str, Any]:
        """What a run request carries to pin this version (see ``PinnedVersion``)."""
        return {
            "seq": self.seq,
            "source": self.ref.source,
            "bucket": self.ref.bucket,
            "key": self.ref.key,
            "etag": self.etag,
            "version_id": self.version_id,
            "size": self.size,
        }
