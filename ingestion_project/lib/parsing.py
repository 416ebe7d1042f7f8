"""Parse one document's bytes into a pyarrow.Table: rows for tabular formats, chunks for text.

Cells that start with `=`, `+`, `-` or `@` (spreadsheet formulas) are kept verbatim as data. Bronze is not a
spreadsheet: rewriting values here would corrupt them for every consumer, and escaping belongs to whatever
exports data to a spreadsheet.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import pyarrow as pa

from ingestion_project.lib.decoding import decode_utf8, gunzip, is_gzip, transcode_utf16
from ingestion_project.lib.errors import UnsupportedFormatError, ValidationError
from ingestion_project.lib.formats import DocumentFormat, detect_format
from ingestion_project.lib.tabular import read_delimited, read_json, read_ndjson, read_parquet
from ingestion_project.lib.text_chunks import chunk_table, normalize_newlines

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed document: rows for tabular formats, or for TEXT chunk_index, text, char_start, char_end."""

    format: DocumentFormat
    table: pa.Table

    @property
    def is_text(self) -> bool:
        """Whether `table` holds text chunks rather than rows."""
        return self.format is DocumentFormat.TEXT

    @property
    def record_count(self) -> int:
        """Rows for tabular documents, chunks for text."""
        return self.table.num_rows


def parse_document(data: bytes, key: str, content_type: str | None, *, max_decompressed_bytes: int) -> ParsedDocument:
    """Detect the format of a document and parse it, validating it on the way.

    gzip content is decompressed first (refusing to produce more than max_decompressed_bytes), and a `.gz`
    suffix on the key is ignored for detection. A UTF-8 byte-order mark is dropped; UTF-16 with a byte-order
    mark is transcoded to UTF-8. Raises ValidationError (UnsupportedFormatError for binary or unknown content)
    with a message that says what is wrong and, where it can, on which line or row. Cell values are kept
    verbatim, spreadsheet formulas included (see the module docstring).
    """
    if is_gzip(data):
        data = gunzip(data, max_bytes=max_decompressed_bytes)
    data = transcode_utf16(data)
    _check_not_empty(data)
    document_format = detect_format(key, content_type, data[:HEAD_BYTES])
    if document_format is DocumentFormat.PARQUET:
        return ParsedDocument(document_format, read_parquet(data))
    # Detection saw only the head; a NUL further on still means this is not text.
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UnsupportedFormatError(f"binary content (NUL byte at byte offset {nul}) in a {document_format} document")
    text = decode_utf8(data)
    body = data.removeprefix(codecs.BOM_UTF8)
    match document_format:
        case DocumentFormat.CSV:
            table = read_delimited(body, text, delimiter=",", label="CSV")
        case DocumentFormat.TSV:
            table = read_delimited(body, text, delimiter="\t", label="TSV")
        case DocumentFormat.JSON:
            table = read_json(text)
        case DocumentFormat.NDJSON:
            table = read_ndjson(text)
        case DocumentFormat.TEXT:
            table = _text_chunks(text)
    return ParsedDocument(document_format, table)


def _check_not_empty(data: bytes) -> None:
    if not data:
        raise ValidationError("empty document: 0 bytes")
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise ValidationError(f"empty document: only whitespace ({len(data):,} bytes)")


def _text_chunks(text: str) -> pa.Table:
    text = normalize_newlines(text)
    # Unicode whitespace (no-break spaces, ideographic spaces) counts as empty too, which bytes.strip misses.
    if not text.strip():
        raise ValidationError("empty document: only whitespace")
    return chunk_table(text)
