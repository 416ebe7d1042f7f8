"""Parse one document into bronze: detect its format from its first bytes, then stream it through the reader of
that format into a BronzeWriter — rows for tabular formats, chunks for text.

Cells that start with `=`, `+`, `-` or `@` (spreadsheet formulas) are kept verbatim as data. Bronze is not a
spreadsheet: rewriting values here would corrupt them for every consumer, and escaping belongs to whatever
exports data to a spreadsheet.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from ingestion_project.lib.bronze import BronzeWriter, Lineage, columns_of
from ingestion_project.lib.decoding import decoded, guarded, is_gzip
from ingestion_project.lib.delimited import read_delimited
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.formats import DecidedBy, DocumentFormat, detect
from ingestion_project.lib.json_records import read_json, read_ndjson
from ingestion_project.lib.limits import DocumentLimits
from ingestion_project.lib.memory import checkpoint
from ingestion_project.lib.tabular import read_parquet
from ingestion_project.lib.text_chunks import chunk_batches

HEAD_BYTES = 64 * 1024
_SCAN_BYTES = 1024 * 1024

Opener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class ParsedDocument:
    """What a document was parsed as: its format, rows (chunks for text) and data columns."""

    format: DocumentFormat
    record_count: int
    columns: list[dict[str, str]]  # as landed; a column renamed because its name was reserved has "renamed_from"
    format_decided_by: DecidedBy = DecidedBy.CONTENT  # which signal decided the format

    @property
    def is_text(self) -> bool:
        """Whether the rows are text chunks (chunk_index, text, char_start, char_end) rather than records."""
        return self.format is DocumentFormat.TEXT


def parse_document(
    raw: Opener, key: str, content_type: str | None, *, limits: DocumentLimits, lineage: Lineage, out_path: str
) -> ParsedDocument:
    """Detect the format of a document and stream it into a bronze Parquet file at ``out_path``.

    ``raw()`` opens the downloaded bytes (any number of times). gzip content is decompressed within
    ``limits.decompressed_bytes``, and a `.gz` suffix on the key is ignored for detection. A UTF-8 byte-order
    mark is dropped; UTF-16 with a byte-order mark is transcoded to UTF-8. Raises ValidationError
    (UnsupportedFormatError for binary or unknown content, LimitExceeded over a limit) with a message that says
    what is wrong and, where it can, on which line or row.
    """
    content: Opener = partial(_decoded, raw, limits)
    with content() as stream:
        head = stream.read(HEAD_BYTES)
        if not head.strip():
            _reject_blank(head, stream)
    detection = detect(key, content_type, head)
    document_format = detection.format
    writer = _Budgeted(
        BronzeWriter(out_path, lineage, numbered=document_format is not DocumentFormat.TEXT, max_rows=limits.rows)
    )
    try:
        if document_format is DocumentFormat.PARQUET:
            _read_parquet(raw, content, writer, limits, out_path)
        else:
            _read_text_format(document_format, content, writer, limits)
    finally:
        writer.discard()  # after close() there is nothing left to discard; after a failure, the encoder stops
    return ParsedDocument(document_format, writer.rows, columns_of(writer.schema, writer.renamed), detection.decided_by)


class _Budgeted:
    """The bronze writer, with every batch checked against the run's memory budget first (lib/memory.py)."""

    def __init__(self, writer: BronzeWriter):
        self._writer = writer

    def write(self, batch) -> None:
        checkpoint(batch.nbytes)
        self._writer.write(batch)

    def __getattr__(self, name: str):
        return getattr(self._writer, name)


def _decoded(raw: Opener, limits: DocumentLimits) -> BinaryIO:
    return decoded(raw(), limits)


def _reject_blank(head: bytes, stream: BinaryIO) -> None:
    size = len(head)
    while chunk := stream.read(_SCAN_BYTES):
        if chunk.strip():
            return
        size += len(chunk)
    if size == 0:
        raise ValidationError("empty document: 0 bytes")
    raise ValidationError(f"empty document: only whitespace ({size:,} bytes)")


def _read_parquet(raw: Opener, content: Opener, writer: BronzeWriter, limits: DocumentLimits, out_path: str) -> None:
    with raw() as stream:
        compressed = is_gzip(stream.read(2))
    if not compressed:
        with raw() as stream:
            size = stream.seek(0, io.SEEK_END)
            stream.seek(0)
            read_parquet(stream, size, writer, limits)
        return
    # A gzipped Parquet file: the reader needs to seek, so decompress it (within the limit) beside the output.
    with tempfile.TemporaryFile(dir=os.path.dirname(out_path) or ".") as plain, content() as stream:
        shutil.copyfileobj(stream, plain, _SCAN_BYTES)
        size = plain.tell()
        plain.seek(0)
        read_parquet(plain, size, writer, limits)


def _read_text_format(
    document_format: DocumentFormat, content: Opener, writer: BronzeWriter, limits: DocumentLimits
) -> None:
    # JSON documents may be one long line; every other text format is held to limits.line_length.
    max_line = limits.decompressed_bytes if document_format is DocumentFormat.JSON else limits.line_bytes
    text: Opener = lambda: guarded(content(), what=f"a {document_format} document", max_line=max_line)  # noqa: E731
    match document_format:
        case DocumentFormat.CSV:
            read_delimited(text, writer, limits, delimiter=",", label="CSV")
        case DocumentFormat.TSV:
            read_delimited(text, writer, limits, delimiter="\t", label="TSV")
        case DocumentFormat.JSON:
            read_json(text, writer, limits)
        case DocumentFormat.NDJSON:
            read_ndjson(text, writer, limits)
        case DocumentFormat.TEXT:
            with io.TextIOWrapper(text(), encoding="utf-8", newline=None) as lines:
                for batch in chunk_batches(lines):
                    writer.write(batch)
            # Unicode whitespace (no-break spaces, ideographic spaces) counts as empty too, which bytes.strip misses.
            if writer.close() == 0:
                raise ValidationError("empty document: only whitespace")
