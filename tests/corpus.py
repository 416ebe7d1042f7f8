"""A corpus of bad (and tricky-but-good) documents, as data: what each one must do to the ingestion of one document.

Each :class:`Case` is an object key, its exact bytes, and the expected fate: ``"SUCCESS"`` (lands in bronze, with
``format`` and ``records`` when given) or ``"FAILED"`` with the class name of the error from
:mod:`ingestion_project.lib.errors` and a fragment its message must contain. Messages are matched without the
location prefix a store adds (``s3://bucket/key`` or ``source:key``), so one corpus serves local folders and S3.

The expectations hold only under these source limits; put them into the sources file (adding ``type`` and
``path`` or ``bucket``)::

    CORPUS_SOURCE = {"name": "corpus", "include": ["*"], "max_object_size": "64KiB", "max_decompressed_size": "1MiB"}

Consequently every body that is meant to reach the parser is under 64 KiB — including the "single huge line" (a
63,000-character line, split hard into chunks) and the gzip bomb (a few KB that inflate past 1 MiB). Cases marked
``s3_only`` have keys a filesystem cannot hold as they are (``..`` escaping the root, ``//``, a 1,024-byte path
component, a leading ``/``); the local-folder test skips them, an S3 test uses them. The local S3 server
(SeaweedFS 4.x) does not keep all of them either: it refuses ``../../etc/passwd.csv`` (InvalidRequest) and the
1,024-byte single-component key (KeyTooLongError), and stores ``s3://x/y.csv`` and ``/absolute/path.csv`` but lists
them as ``s3:/x/y.csv`` and ``absolute/path.csv``. A case with ``known_bug`` states the intended fate, which the code
does not meet yet; tests mark it xfail (strict), so fixing the code makes them say so.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion_project.lib.text_chunks import CHUNK_CHARS

CORPUS_SOURCE = {"name": "corpus", "include": ["*"], "max_object_size": "64KiB", "max_decompressed_size": "1MiB"}
MAX_OBJECT_BYTES = 64 * 1024
MAX_DECOMPRESSED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One document of the corpus and its expected fate."""

    name: str
    key: str
    body: bytes
    expect: Literal["SUCCESS", "FAILED"]
    error_class: str | None = None
    message: str | None = None
    s3_only: bool = False
    format: str | None = None  # for SUCCESS: the manifest's `format`
    records: int | None = None  # for SUCCESS: rows, or chunks for text
    known_bug: str | None = None  # why the code does not meet the expectation yet (tests mark the case xfail)


def _ok(name: str, key: str, body: bytes, format: str, records: int, *, s3_only: bool = False) -> Case:
    return Case(name, key, body, "SUCCESS", format=format, records=records, s3_only=s3_only)


def _bad(name: str, key: str, body: bytes, error_class: str, message: str, *, known_bug: str | None = None) -> Case:
    return Case(name, key, body, "FAILED", error_class, message, known_bug=known_bug)


VALID_CSV = b"id,name,amount\n1,alice,10.50\n2,bob,3.25\n"
FORMULA_CELLS = ("=SUM(A1:A9)", '=HYPERLINK("http://example.invalid","x")', "+1+1", "-2+3", "@SUM(1,1)")
DUPLICATE_CASES = ("duplicate_content_first", "duplicate_content_second")


def _formula_csv() -> bytes:
    rows = "".join(f'{n},"{cell.replace(chr(34), chr(34) * 2)}"\n' for n, cell in enumerate(FORMULA_CELLS, 1))
    return f"id,formula\n{rows}".encode()


def _gzip_bomb() -> bytes:
    # 4 MiB of rows inflate past the 1 MiB limit from 12 KB of gzip; mtime=0 keeps the bytes stable.
    return gzip.compress(b"id,payload\n" + b"1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" * (4 * 1024 * 1024 // 33), mtime=0)


def _truncated_parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(200)), "name": [f"row {n}" for n in range(200)]}), sink)
    data = sink.getvalue()
    return data[: len(data) // 2]


def _one_huge_line(chars: int) -> bytes:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit "
    return (words * (chars // len(words) + 1))[:chars].encode()


def _key_of_1024_bytes(folders: int) -> str:
    """A key of exactly 1,024 UTF-8 bytes, mostly two-byte letters: `folders` folders of 200 bytes, then a name."""
    prefix = "".join("ü" * 100 + "/" for _ in range(folders))
    rest = 1024 - len(prefix.encode()) - len(".csv")
    return prefix + "a" * (rest % 2) + "é" * (rest // 2) + ".csv"


HUGE_LINE_CHARS = 63_000
LONG_KEY_NESTED = _key_of_1024_bytes(folders=5)
LONG_KEY_FLAT = _key_of_1024_bytes(folders=0)

CASES: list[Case] = [
    _bad("empty", "empty.csv", b"", "ValidationError", "is empty (0 bytes)"),
    _bad("whitespace_only", "blank.csv", b" \r\n\t\n  \n", "ValidationError", "empty document: only whitespace"),
    _bad("header_only_csv", "header-only.csv", b"id,name,amount\n", "ValidationError", "has a header row but no data"),
    _bad(
        "ragged_csv",
        "ragged.csv",
        b"id,name,amount\n1,alice,10.50\n2,bob,3.25,extra\n",
        "ValidationError",
        "CSV line 3 has 4 fields but the header has 3",
    ),
    _bad(
        "invalid_utf8",
        "latin1.csv",
        "id,name\n1,café\n".encode("latin-1"),
        "ValidationError",
        "not valid UTF-8 at byte offset 13 (line 2)",
    ),
    _ok("utf8_with_bom", "bom.csv", codecs.BOM_UTF8 + VALID_CSV, "csv", 2),
    _ok(
        "utf16_with_bom", "utf16.csv", codecs.BOM_UTF16_LE + "id,name\n1,Zoë\n2,Jürgen\n".encode("utf-16-le"), "csv", 2
    ),
    _bad(
        "utf16_without_bom",
        "utf16-no-bom.csv",
        "id,name\n1,x\n".encode("utf-16-le"),
        "UnsupportedFormatError",
        "looks like UTF-16 without a byte-order mark",
    ),
    _bad(
        "json_syntax_error",
        "broken.json",
        b'[{"id": 1},\n {"id": 2,}]\n',
        "ValidationError",
        "JSON syntax error at line 2, column 11",
    ),
    _bad("json_not_objects", "numbers.json", b"[1, 2, 3]\n", "ValidationError", "JSON array element 1 is a number"),
    _bad(
        "json_nested_too_deeply",
        "deep.json",
        b"[" * 20_000 + b"]" * 20_000,
        "LimitExceeded",
        "nests too deeply to read, over the limit of 64 (limits.nesting_depth)",
    ),
    _bad(
        "ndjson_one_bad_line",
        "events.ndjson",
        b'{"id": 1}\n{"id": 2}\n{"id": 3,\n{"id": 4}\n',
        "ValidationError",
        "NDJSON line 3",
    ),
    _ok(
        "single_huge_line",
        "huge-line.txt",
        _one_huge_line(HUGE_LINE_CHARS),
        "text",
        math.ceil(HUGE_LINE_CHARS / CHUNK_CHARS),
    ),
    _ok("gzip_csv", "orders.csv.gz", gzip.compress(VALID_CSV, mtime=0), "csv", 2),
    _bad("gzip_bomb", "bomb.csv.gz", _gzip_bomb(), "LimitExceeded", "decompresses to more than the limit of 1,048,576"),
    _bad(
        "truncated_gzip",
        "cut.csv.gz",
        gzip.compress(VALID_CSV * 50, mtime=0)[:-30],
        "ValidationError",
        "truncated gzip stream",
    ),
    _bad(
        "over_size_limit",
        "big.csv",
        b"id,payload\n" + b"1,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" * 1_700,
        "LimitExceeded",
        "over the limit of 65,536 bytes (limits.object_size)",
    ),
    _bad(
        "binary_png_named_csv",
        "picture.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89",
        "UnsupportedFormatError",
        "binary content (PNG image signature) in a document named .csv",
    ),
    _bad(
        "binary_noise_named_csv",
        "noise.csv",
        bytes((n * 151 + 7) % 256 for n in range(4096)),
        "UnsupportedFormatError",
        "binary content (NUL bytes) in a document named .csv",
    ),
    _bad(
        "zip_named_json",
        "archive.json",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20,
        "UnsupportedFormatError",
        "binary content (ZIP archive signature)",
    ),
    _bad(
        "truncated_parquet",
        "table.parquet",
        _truncated_parquet(),
        "ValidationError",
        "not a valid Parquet file",
    ),
    _bad(
        "duplicate_column_names",
        "dup-columns.csv",
        b"id,ID\n1,2\n",
        "ValidationError",
        "column 2 ('ID') duplicates the name of column 1",
    ),
    # Lands with the column renamed to _source_1 (lib/bronze.landing_names), the rename in the schema history.
    _ok("reserved_column_name", "reserved.csv", b"id,_source\n1,x\n", "csv", 1),
    _ok(DUPLICATE_CASES[0], "dup/first.csv", VALID_CSV, "csv", 2),
    _ok(DUPLICATE_CASES[1], "dup/copy of first.csv", VALID_CSV, "csv", 2),
    _ok("formula_cells", "formulas.csv", _formula_csv(), "csv", len(FORMULA_CELLS)),
    _ok("hostile_key_parent_traversal", "../../etc/passwd.csv", VALID_CSV, "csv", 2, s3_only=True),
    _ok("hostile_key_leading_slash", "/absolute/path.csv", VALID_CSV, "csv", 2, s3_only=True),
    _ok("hostile_key_s3_uri", "s3://x/y.csv", VALID_CSV, "csv", 2, s3_only=True),
    _ok("hostile_key_1024_bytes_flat", LONG_KEY_FLAT, VALID_CSV, "csv", 2, s3_only=True),
    _ok("hostile_key_1024_bytes_nested", LONG_KEY_NESTED, VALID_CSV, "csv", 2),
    _ok("hostile_key_control_chars_and_dots", "ctl/tab\there\nline\x01\x1b[31m...red.....csv", VALID_CSV, "csv", 2),
    _ok("hostile_key_dot_folder", "..hidden/x.csv", VALID_CSV, "csv", 2),
    _ok("hostile_key_dots_unicode_space", "a...b/ü space.csv", VALID_CSV, "csv", 2),
    _ok("hostile_key_partition_syntax", "q1,q2/[a|b]%41...csv", VALID_CSV, "csv", 2),
]
