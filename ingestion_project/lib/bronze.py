"""The bronze layout: where a document version lands, and the Parquet written there.

See docs/architecture.md ("Bronze layout") — dbt reads exactly these paths and columns. Paths are built only from
the source name, a sanitized slug plus hash of the key, a sanitized ETag and the attempt (the lease that wrote
them), so an object key never becomes a path component as it is, and two attempts at one version never write the
same object: the ledger's SUCCESS says which attempt's files are the version's (lib/bronze_commit.py).
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion_project.lib.keys import DocumentRef, key_bytes
from ingestion_project.lib.limits import over_limit

LINEAGE_COLUMNS = ("_source", "_object_key", "_etag", "_sha256", "_ingested_at", "_row_number")
# Names a document's own column cannot land under: the lineage columns, the contract's rescue column, and the
# column staging reads each row's file into (dbt_project/macros/bronze_relation.sql). Compared ignoring case, as
# DuckDB does; a document column with one of them is renamed (see ``landing_names``).
RESERVED_COLUMNS = (*LINEAGE_COLUMNS, "_rescued_data", "_bronze_file")
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_TIMESTAMP = pa.timestamp("us", tz="UTC")
ROW_GROUP_BYTES = 32 * 1024 * 1024

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


def landing_names(names: list[str], keep: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """The names a document's columns land under, and the renames (document name → landed name).

    A column named like a reserved column gets the first free suffix ``_1``, ``_2``, … that no reserved name and
    no other column of the document has (ignoring case), so it can collide with nothing in bronze or staging.
    ``keep``: reserved columns the platform itself put there (a database extraction's ``_rescued_data``).
    """
    reserved = {name.casefold() for name in RESERVED_COLUMNS} - {name.casefold() for name in keep}
    taken = reserved | {name.casefold() for name in names}
    landed, renamed = [], {}
    for name in names:
        if name.casefold() in reserved:
            suffix = 1
            while f"{name}_{suffix}".casefold() in taken:
                suffix += 1
            renamed[name] = f"{name}_{suffix}"
            taken.add(renamed[name].casefold())
        landed.append(renamed.get(name, name))
    return landed, renamed


def doc_id(bucket: str, key: str) -> str:
    """A stable, filesystem-safe id for an object: a readable slug of the key plus a hash of bucket + key."""
    digest = hashlib.sha256(f"{bucket}\0".encode() + key_bytes(key)).hexdigest()[:16]
    slug = _UNSAFE.sub("_", key[-48:]).strip("._") or "doc"
    return f"{slug}-{digest}"


def safe_etag(etag: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", etag.strip('"')) or "none"


def safe_attempt(attempt: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", attempt)[:ATTEMPT_CHARS] or "none"


# An attempt's id in a bronze name: the first characters of its lease token (hex), enough to tell attempts apart.
ATTEMPT_CHARS = 16


@dataclass(frozen=True)
class BronzeVersion:
    """The bronze keys of one attempt at one document version, relative to a bronze root.

    ``attempt`` (the lease token of the run that writes them) is part of both names, so a run that lost its lease
    and finishes a PUT late writes beside the new holder's files, never over them. None: the layout before
    attempts were named (manifests written then are still read).
    """

    ref: DocumentRef
    etag: str
    is_text: bool
    attempt: str | None = None

    @property
    def _dir(self) -> str:
        return f"{self.ref.source}/{doc_id(self.ref.bucket, self.ref.key)}"

    @property
    def _tail(self) -> str:
        attempt = "" if self.attempt is None else f".{safe_attempt(self.attempt)}"
        return f"{self._dir}/{safe_etag(self.etag)}{attempt}.parquet"

    @property
    def dataset(self) -> str:
        """``text`` or ``tables/<source>``: where the data file lives, and which staging model reads it."""
        return "text" if self.is_text else f"tables/{self.ref.source}"

    @property
    def data_key(self) -> str:
        return f"{'text' if self.is_text else 'tables'}/{self._tail}"

    @property
    def manifest_key(self) -> str:
        return f"documents/{self._tail}"

    def attempt_prefixes(self) -> tuple[str, str]:
        """Key prefixes under which every attempt's manifest and data file of this version lie."""
        etag = safe_etag(self.etag)
        return f"documents/{self._dir}/{etag}.", f"{'text' if self.is_text else 'tables'}/{self._dir}/{etag}."


@dataclass(frozen=True)
class Lineage:
    """What every bronze data row carries about the version it came from."""

    ref: DocumentRef
    etag: str
    sha256: str
    ingested_at: datetime

    def columns(self, rows: int, first_row: int | None) -> dict[str, pa.Array]:
        """The lineage columns of ``rows`` rows: constants built in Arrow, and row numbers from ``first_row``
        (None for text chunks, which number themselves)."""
        # Dictionary arrays of one value: a byte per row in memory, however long the key, and one dictionary page
        # per column chunk in Parquet (read back as plain strings). A string array would copy the value per row,
        # which for a document of tiny rows is many times the document's own size.
        zeros = pa.repeat(pa.scalar(0, pa.int8()), rows)
        columns = {
            name: pa.DictionaryArray.from_arrays(zeros, pa.array([value], pa.string()))
            for name, value in (
                ("_source", self.ref.source),
                ("_object_key", self.ref.shown_key),
                ("_etag", self.etag),
                ("_sha256", self.sha256),
            )
        }
        columns["_ingested_at"] = pa.repeat(pa.scalar(self.ingested_at, _TIMESTAMP), rows)
        if first_row is not None:
            ones = pa.repeat(pa.scalar(1, pa.int64()), rows)
            columns["_row_number"] = pc.add(pc.cumulative_sum(ones), first_row - 1)
        return columns


class BronzeWriter:
    """Streams record batches into one bronze Parquet file with the lineage columns, a row group at a time.

    At most ``max_rows`` rows (``limits.rows``): one more is a LimitExceeded. Batches are buffered up to
    ROW_GROUP_BYTES of Arrow data, so memory stays bounded and row groups stay large enough to read fast. Row
    groups are encoded and compressed on a thread of their own while the parser reads on, so the two overlap.
    """

    def __init__(self, path: str, lineage: Lineage, *, numbered: bool, max_rows: int, keep: Sequence[str] = ()):
        self.path = path
        self._keep = tuple(keep)  # reserved columns the platform added itself: they land under their own name
        self._lineage = lineage
        self._numbered = numbered
        self._max_rows = max_rows
        self._encoder: _Encoder | None = None
        self.restart()

    def restart(self) -> None:
        """Forget everything written so far (a parser re-reads the document with other column types)."""
        self.discard()
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self.rows = 0
        self.schema: pa.Schema | None = None  # of the data columns, under their landed names
        self.renamed: dict[str, str] = {}  # document column name → landed name, where a name was reserved
        self._names: list[str] = []

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows: a record batch, or a table (whose columns may be chunked, as sparse JSON columns are)."""
        if batch.num_rows == 0:
            return
        if self.rows + batch.num_rows > self._max_rows:
            raise over_limit("rows", f"the document has more than {self._max_rows:,} rows", self._max_rows)
        if self.schema is None:
            self._names, self.renamed = landing_names(batch.schema.names, self._keep)
        lineage = self._lineage.columns(batch.num_rows, self.rows if self._numbered else None)
        full = pa.Table.from_arrays([*batch.columns, *lineage.values()], names=[*self._names, *lineage])
        if self.schema is None:
            self.schema = pa.schema(
                [field.with_name(name) for field, name in zip(batch.schema, self._names, strict=True)]
            )
            self._encoder = _Encoder(self.path, full.schema)
        self.rows += batch.num_rows
        self._buffer.append(full)
        # Memory the rows hold. A table's chunks may share buffers (sparse JSON columns slice one all-null array):
        # each buffer counts once, so sparse batches still fill large row groups (and nbytes, which sizes every
        # slice, would cost more than building them).
        self._buffered += full.get_total_buffer_size() if isinstance(batch, pa.Table) else full.nbytes
        if self._buffered >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._encoder.put(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0

    def close(self) -> int:
        """Finish the file; the number of data rows written (0: no file was written)."""
        if self._encoder is not None:
            self._flush()
            self._encoder.close()
            self._encoder = None
        return self.rows

    def discard(self) -> None:
        """Stop writing without finishing the file (the document failed); safe to call at any time."""
        if self._encoder is not None:
            self._encoder.abandon()
            self._encoder = None


class _Encoder:
    """A ParquetWriter fed through a short queue by the parsing thread: at most two row groups wait."""

    def __init__(self, path: str, schema: pa.Schema):
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="bronze-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None and not self._abandoned:
                try:
                    self._writer.write_table(table, row_group_size=2**31 - 1)
                except BaseException as error:  # noqa: BLE001 - handed to the parsing thread, which raises it
                    self._error = error

    def put(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(table)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        self._abandoned = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join()
        self._writer.close()


def columns_of(schema: pa.Schema, renamed: dict[str, str] | None = None) -> list[dict[str, str]]:
    """``[{"name", "type"}]`` of a schema; a column ``renamed`` at landing also says its document name
    (``renamed_from``), which the schema history keeps."""
    original = {landed: name for name, landed in (renamed or {}).items()}
    return [
        {"name": field.name, "type": str(field.type)}
        | ({"renamed_from": original[field.name]} if field.name in original else {})
        for field in schema
    ]


def manifest_row(**values: object) -> pa.Table:
    """The one-row manifest of a document version; ``values`` are the MANIFEST_SCHEMA columns."""
    values = dict(values)
    values["columns_json"] = json.dumps(values["columns_json"], ensure_ascii=False)
    return pa.Table.from_pylist([values], schema=MANIFEST_SCHEMA)


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
