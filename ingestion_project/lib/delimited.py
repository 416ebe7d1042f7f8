"""CSV and TSV, streamed: pyarrow's streaming reader into the bronze writer, a block at a time.

Columns are read as strings and typed from the first block (``BLOCK_BYTES``) only where the type keeps every value
exactly (lib/lossless.py): ``08123`` stays a string. When a later block holds a value the type would not keep, the
document is read again with that column as strings, so no value is ever lost or altered; after ``MAX_REREADS``
such surprises every column is read as strings.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion_project.lib.bronze import BronzeWriter
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.limits import DocumentLimits, LimitExceeded, over_limit
from ingestion_project.lib.lossless import TypeDrift, infer, typed_batch
from ingestion_project.lib.tabular import check_columns

BLOCK_BYTES = 8 * 1024 * 1024
MAX_REREADS = 3
_PREVIEW_CHARS = 80
_STRADDLING = "straddling object straddles two block boundaries"


def read_delimited(
    open_text: Callable[[], BinaryIO],
    writer: BronzeWriter,
    limits: DocumentLimits,
    *,
    delimiter: str,
    label: str,
) -> None:
    """Read CSV or TSV (header row first) from ``open_text()`` into ``writer``; a ValidationError names the row,
    line or limit that is wrong. ``open_text`` returns a fresh, checked stream of the content each time."""
    with open_text() as stream:
        _check_header_width(stream.peek(min(limits.line_bytes, BLOCK_BYTES)), delimiter, label, limits)
    strings: set[str] = set()
    for _ in range(MAX_REREADS + 2):
        writer.restart()
        try:
            _stream_into(open_text, writer, delimiter, label, limits, strings)
            return
        except TypeDrift as drift:
            # Every column as strings once the types have surprised us too often: slower to type later, lossless.
            strings = {"*"} if len(strings) >= MAX_REREADS else strings | {drift.column}
        except pa.ArrowInvalid as e:
            raise _parse_error(e, open_text, delimiter, label, limits) from e
    raise AssertionError("unreachable: the last reread has every column as strings")


def _stream_into(
    open_text: Callable[[], BinaryIO],
    writer: BronzeWriter,
    delimiter: str,
    label: str,
    limits: DocumentLimits,
    strings: set[str],
    *,
    threads: bool = True,
    on_invalid: Callable[[pacsv.InvalidRow], str] | None = None,
) -> None:
    block = max(BLOCK_BYTES, min(limits.line_bytes + 1, 2**31 - 1))
    parse_options = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)
    with open_text() as head:
        header = _header(head, delimiter)
    # Every column read as text, and typed here only where no value changes (see lib/lossless.py).
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header})
    with open_text() as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=block),
            parse_options=parse_options,
            convert_options=convert,
        )
        names = reader.schema.names
        if len(names) > limits.columns:
            raise over_limit("columns", f"the {label} header has {len(names):,} columns", limits.columns)
        check_columns(names, f"{label} header", refuse_reserved=False)
        types: dict[str, pa.DataType] | None = None
        for batch in reader:
            if types is None:
                types = {
                    name: pa.string() if "*" in strings or name in strings else infer(column)
                    for name, column in zip(names, batch.columns, strict=True)
                }
            writer.write(typed_batch(batch, types))
    if writer.close() == 0:
        raise ValidationError(f"{label} has a header row but no data rows")


def _header(stream: BinaryIO, delimiter: str) -> list[str]:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    return next(csv.reader(text, delimiter=delimiter), [])


def _check_header_width(head: bytes, delimiter: str, label: str, limits: DocumentLimits) -> None:
    # Counted before pyarrow sees the header: a million-column header makes it allocate per column.
    first, newline, _ = head.partition(b"\n")
    if first.count(delimiter.encode()) + 1 <= limits.columns:
        return
    fields = next(csv.reader(io.StringIO(first.decode("utf-8", "replace")), delimiter=delimiter), [])
    if len(fields) > limits.columns:
        # Without its end in `head`, the header goes on: the last field may be cut, and more follow.
        count = f"{len(fields):,}" if newline else f"more than {len(fields) - 1:,}"
        raise over_limit("columns", f"the {label} header has {count} columns", limits.columns)


def _parse_error(
    error: pa.ArrowInvalid, open_text: Callable[[], BinaryIO], delimiter: str, label: str, limits: DocumentLimits
) -> ValidationError:
    if _STRADDLING in str(error):
        return LimitExceeded(
            f"{label} has a row longer than the limit of {limits.line_bytes:,} bytes (limits.line_length)",
            "line_length",
        )
    # The multi-threaded reader does not number rows: read once more on one thread to say where.
    invalid: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    try:
        scratch = _Discard()
        _stream_into(open_text, scratch, delimiter, label, limits, {"*"}, threads=False, on_invalid=on_invalid)
    except pa.ArrowInvalid:
        pass
    if invalid:
        return _ragged_row_error(invalid[0], open_text, label)
    return ValidationError(f"{label} could not be parsed: {error}")


class _Discard(BronzeWriter):
    """A writer that keeps nothing, for a second read that only looks for the bad row."""

    def __init__(self) -> None:
        self.rows = 0
        self.schema = None

    def restart(self) -> None:
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows

    def close(self) -> int:
        return self.rows


def _ragged_row_error(row: pacsv.InvalidRow, open_text: Callable[[], BinaryIO], label: str) -> ValidationError:
    preview = row.text[:_PREVIEW_CHARS] + ("…" if len(row.text) > _PREVIEW_CHARS else "")
    where = f"line {_line_of_row(open_text, row.number, row.text)}" if row.number and row.number > 0 else "a row"
    return ValidationError(
        f"{label} {where} has {row.actual_columns} fields but the header has {row.expected_columns}: {preview!r}"
    )


def _line_of_row(open_text: Callable[[], BinaryIO], row_number: int, row_text: str) -> int:
    # pyarrow counts rows (header = 1), not lines: blank lines and quoted newlines shift them apart. A row is
    # never before its own row number in lines, so the first matching line from there on is the row.
    first_line = row_text.split("\n", 1)[0].rstrip("\r")
    with open_text() as stream:
        for index, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8", newline=""), start=1):
            if index >= row_number and line.rstrip("\r\n") == first_line:
                return index
    return row_number
