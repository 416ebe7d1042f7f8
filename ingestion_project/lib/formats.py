"""Format detection: which parser reads a document, decided from its bytes first, then its name and content type.

Content decides where it is clear: Parquet's magic, binary signatures, JSON and NDJSON syntax, and lines with a
consistent number of tab- or comma-separated fields — so a CSV uploaded without an extension, which a store labels
`text/plain`, is read as CSV. The name and the content type break ties: a `.md`, `.txt` or `.log` document whose
lines happen to hold the same number of commas stays text, a `.csv` whose content could be TSV stays CSV, and a
document whose content looks like plain text is read as its name or content type says (a one-column CSV). The
extension wins over the content type, which object stores often set to a generic value. `detect()` says which
signal decided; the materialization shows it.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import dataclass
from itertools import islice
from pathlib import PurePosixPath

from ingestion_project.lib.decoding import transcode_utf16
from ingestion_project.lib.errors import UnsupportedFormatError

PARQUET_MAGIC = b"PAR1"


class DocumentFormat(enum.StrEnum):
    """The formats a document can be ingested as; the value is what the manifest's `format` column holds."""

    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    NDJSON = "ndjson"
    PARQUET = "parquet"
    TEXT = "text"

    @property
    def is_tabular(self) -> bool:
        """True for formats parsed into rows; TEXT is parsed into chunks."""
        return self is not DocumentFormat.TEXT


_EXTENSIONS = {
    ".csv": DocumentFormat.CSV,
    ".tsv": DocumentFormat.TSV,
    ".tab": DocumentFormat.TSV,
    ".json": DocumentFormat.JSON,
    ".ndjson": DocumentFormat.NDJSON,
    ".jsonl": DocumentFormat.NDJSON,
    ".parquet": DocumentFormat.PARQUET,
    ".txt": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
    ".md": DocumentFormat.TEXT,
    ".markdown": DocumentFormat.TEXT,
    ".log": DocumentFormat.TEXT,
}
# Generic types (application/octet-stream, binary/octet-stream, application/gzip) are deliberately absent:
# they say nothing about the format, so detection falls through to sniffing.
_CONTENT_TYPES = {
    "text/csv": DocumentFormat.CSV,
    "application/csv": DocumentFormat.CSV,
    "text/tab-separated-values": DocumentFormat.TSV,
    "application/json": DocumentFormat.JSON,
    "text/json": DocumentFormat.JSON,
    "application/x-ndjson": DocumentFormat.NDJSON,
    "application/ndjson": DocumentFormat.NDJSON,
    "application/jsonl": DocumentFormat.NDJSON,
    "application/vnd.apache.parquet": DocumentFormat.PARQUET,
    "application/x-parquet": DocumentFormat.PARQUET,
    "text/plain": DocumentFormat.TEXT,
    "text/markdown": DocumentFormat.TEXT,
    "text/x-markdown": DocumentFormat.TEXT,
}
_BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"PK\x05\x06", "ZIP archive"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x1f\x8b", "gzip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"\x28\xb5\x2f\xfd", "zstd archive"),
    (b"\x7fELF", "ELF executable"),
)
# Control bytes that do not occur in text; tab, newlines, form feed and ESC (ANSI colours in logs) do.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\v\f\r\x1b") + b"\x7f"
_PRINTABLE_ASCII = bytes(range(32, 127)) + b"\t\n\r"
_MAX_CONTROL_RATIO = 0.1
_SNIFF_ROWS = 50


class DecidedBy(enum.StrEnum):
    """Which signal decided a document's format."""

    CONTENT = "content"
    EXTENSION = "extension"
    CONTENT_TYPE = "content type"


@dataclass(frozen=True)
class Detection:
    format: DocumentFormat
    decided_by: DecidedBy


def detect_format(key: str, content_type: str | None, head: bytes) -> DocumentFormat:
    """The format of a document (see ``detect``)."""
    return detect(key, content_type, head).format


def detect(key: str, content_type: str | None, head: bytes) -> Detection:
    """Decide the format of a document from its first bytes, object key and reported content type, and say which
    of them decided.

    `head` is the first few KB of the (already decompressed) content, or the whole document. A trailing `.gz`
    on the key is ignored. Raises UnsupportedFormatError for binary content (NUL bytes, control bytes, known
    binary signatures such as PNG, PDF or ZIP), naming what was seen.
    """
    by_extension, by_content_type = _from_extension(key), _from_content_type(content_type)
    declared = by_extension or by_content_type
    declared_by = DecidedBy.EXTENSION if by_extension else DecidedBy.CONTENT_TYPE
    if head.startswith(PARQUET_MAGIC) and b"\x00" in head[len(PARQUET_MAGIC) :]:
        return Detection(DocumentFormat.PARQUET, DecidedBy.CONTENT)
    for signature, name in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise _binary(f"{name} signature", key)
    if declared is DocumentFormat.PARQUET:
        # Leave a damaged Parquet file to the Parquet reader, whose error says more than "binary".
        return Detection(declared, declared_by)
    sample = transcode_utf16(head)
    _reject_binary(sample, key)
    sniffed = _sniff_text(_text_of(sample))
    json_like = (DocumentFormat.JSON, DocumentFormat.NDJSON)
    delimited = (DocumentFormat.CSV, DocumentFormat.TSV)
    if sniffed in json_like:
        # A tie between the two JSON forms goes to the name (a broken NDJSON line must be reported as one), except
        # that JSON whose content is one object per line is NDJSON.
        if declared in json_like and declared is not sniffed and declared is not DocumentFormat.JSON:
            return Detection(declared, declared_by)
        return Detection(sniffed, DecidedBy.CONTENT)
    if sniffed in delimited:
        # Ties: prose named as text, or a delimited file named for the other delimiter. A generic text/plain
        # label is no evidence: stores give it to anything uploaded without a content type.
        generic = declared_by is DecidedBy.CONTENT_TYPE and _media_type(content_type) == "text/plain"
        if declared in (*delimited, DocumentFormat.TEXT) and declared is not sniffed and not generic:
            return Detection(declared, declared_by)
        return Detection(sniffed, DecidedBy.CONTENT)
    if declared is not None:
        return Detection(declared, declared_by)
    return Detection(sniffed, DecidedBy.CONTENT)


def _extension(key: str) -> str:
    name = PurePosixPath(key).name.lower().removesuffix(".gz")
    return PurePosixPath(name).suffix


def _from_extension(key: str) -> DocumentFormat | None:
    return _EXTENSIONS.get(_extension(key))


def _from_content_type(content_type: str | None) -> DocumentFormat | None:
    if not content_type:
        return None
    return _CONTENT_TYPES.get(_media_type(content_type))


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _binary(what: str, key: str) -> UnsupportedFormatError:
    extension = _extension(key)
    named = f"a document named {extension}" if extension else "a document without a file extension"
    return UnsupportedFormatError(f"binary content ({what}) in {named}")


def _reject_binary(sample: bytes, key: str) -> None:
    if b"\x00" in sample:
        raise _binary(f"NUL bytes{_utf16_hint(sample)}", key)
    control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if sample and control / len(sample) > _MAX_CONTROL_RATIO:
        raise _binary(f"{control / len(sample):.0%} control bytes", key)


def _utf16_hint(sample: bytes) -> str:
    # ASCII text in UTF-16 has a NUL in every other byte; a missing byte-order mark is the usual culprit.
    even, odd = sample[0::2], sample[1::2]
    nuls, other = (even, odd) if even.count(0) > odd.count(0) else (odd, even)
    printable = len(other) - len(other.translate(None, _PRINTABLE_ASCII))
    if other and other.count(0) == 0 and nuls.count(0) > len(nuls) / 2 and printable > len(other) * 0.9:
        return ", looks like UTF-16 without a byte-order mark"
    return ""


def _text_of(sample: bytes) -> str:
    # The head may end in the middle of a character, so sniffing never fails on decoding.
    return sample.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _sniff_text(text: str) -> DocumentFormat:
    start = text.lstrip()[:1]
    after = text.lstrip()[1:].lstrip()[:1]
    # Look one character further so markdown like "[link](...)" or "{{template}}" is not taken for JSON.
    if start == "[" and after in ("{", "[", "]", '"'):
        return DocumentFormat.JSON
    if start == "{" and after in ('"', "}"):
        return DocumentFormat.NDJSON if _looks_like_ndjson(text) else DocumentFormat.JSON
    if _consistent_fields(text, "\t"):
        return DocumentFormat.TSV
    if _consistent_fields(text, ","):
        return DocumentFormat.CSV
    return DocumentFormat.TEXT


def _looks_like_ndjson(text: str) -> bool:
    """Whether two or more lines are JSON objects and every line is, bar a last one cut off by the head."""
    lines = [line for line in text.split("\n") if line.strip()]
    cut_off = not text.endswith("\n") and len(lines) <= _SNIFF_ROWS
    objects = 0
    for number, line in enumerate(lines[:_SNIFF_ROWS], start=1):
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # deep nesting is for the real parser to report
            if cut_off and number == len(lines):
                break
            return False
        if not isinstance(value, dict):
            return False
        objects += 1
    return objects >= 2


def _consistent_fields(text: str, delimiter: str) -> bool:
    """Whether a header and at least one row have the same number (two or more) of fields, as do all the first
    rows but a last one cut short by the head."""
    try:
        rows = [row for row in islice(csv.reader(io.StringIO(text), delimiter=delimiter), _SNIFF_ROWS) if row]
    except csv.Error:
        return False
    if len(rows) < 2 or len(rows[0]) < 2:
        return False
    width = len(rows[0])
    complete = all(len(row) == width for row in rows[:-1]) and len(rows[-1]) <= width
    return complete and sum(len(row) == width for row in rows) >= 2
