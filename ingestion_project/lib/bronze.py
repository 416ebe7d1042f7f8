"""The bronze layout: where a document version lands, and the Parquet written there.

See docs/architecture.md ("Bronze layout") — dbt reads exactly these paths and columns. Paths are built only from
the source name, a sanitized slug plus hash of the key, and a sanitized ETag, so an object key never becomes a
path component as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion_project.lib.keys import DocumentRef

LINEAGE_COLUMNS = ("_source", "_object_key", "_etag", "_sha256", "_ingested_at", "_row_number")
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_TIMESTAMP = pa.timestamp("us", tz="UTC")

MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("bucket", pa.string()),
        ("object_key", pa.string()),
        ("partition_key", pa.string()),
        ("etag", pa.string()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("content_type", pa.string()),
        ("format", pa.string()),
        ("record_count", pa.int64()),
        ("columns_json", pa.string()),
        ("bronze_path", pa.string()),
        ("last_modified_at", _TIMESTAMP),
        ("ingested_at", _TIMESTAMP),
        # The version's discovery order (its ledger row id): with last_modified_at, how dbt picks the latest.
        ("discovery_seq", pa.int64()),
    ]
)


def doc_id(bucket: str, key: str) -> str:
    """A stable, filesystem-safe id for an object: a readable slug of the key plus a hash of bucket + key."""
    digest = hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()[:16]
    slug = _UNSAFE.sub("_", key[-48:]).strip("._") or "doc"
    return f"{slug}-{digest}"


def safe_etag(etag: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", etag.strip('"')) or "none"


@dataclass(frozen=True)
class BronzeVersion:
    """The bronze keys of one document version, relative to a bronze root."""

    ref: DocumentRef
    etag: str
    is_text: bool

    @property
    def _tail(self) -> str:
        return f"{self.ref.source}/{doc_id(self.ref.bucket, self.ref.key)}/{safe_etag(self.etag)}.parquet"

    @property
    def data_key(self) -> str:
        return f"{'text' if self.is_text else 'tables'}/{self._tail}"

    @property
    def manifest_key(self) -> str:
        return f"documents/{self._tail}"


def with_lineage(table: pa.Table, ref: DocumentRef, etag: str, sha256: str, ingested_at: datetime) -> pa.Table:
    """Append the lineage columns every bronze data row carries."""
    rows = table.num_rows
    lineage = {
        "_source": pa.array([ref.source] * rows, pa.string()),
        "_object_key": pa.array([ref.key] * rows, pa.string()),
        "_etag": pa.array([etag] * rows, pa.string()),
        "_sha256": pa.array([sha256] * rows, pa.string()),
        "_ingested_at": pa.array([ingested_at] * rows, _TIMESTAMP),
    }
    if "chunk_index" not in table.column_names:
        lineage["_row_number"] = pa.array(range(rows), pa.int64())
    for name, column in lineage.items():
        table = table.append_column(name, column)
    return table


def columns_of(table: pa.Table) -> list[dict[str, str]]:
    return [{"name": field.name, "type": str(field.type)} for field in table.schema]


def manifest_row(**values: object) -> pa.Table:
    """The one-row manifest of a document version; ``values`` are the MANIFEST_SCHEMA columns."""
    values = dict(values)
    values["columns_json"] = json.dumps(values["columns_json"], ensure_ascii=False)
    return pa.Table.from_pylist([values], schema=MANIFEST_SCHEMA)


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
