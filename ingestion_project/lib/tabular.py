"""Readers for the tabular formats: CSV/TSV, JSON, NDJSON and Parquet into a flat pyarrow.Table.

Every failure is a ValidationError saying what is wrong and where; pyarrow's own errors are kept as the cause.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion_project.lib.bronze import LINEAGE_COLUMNS
from ingestion_project.lib.errors import ValidationError

_MAX_BLOCK_SIZE = 2**31 - 1
_PREVIEW_CHARS = 80


def check_columns(names: Sequence[str], label: str) -> None:
    """Reject empty, duplicate and reserved (lineage) column names.

    Names are compared ignoring case because dbt reads bronze with DuckDB, whose identifiers ignore case.
    """
    reserved = {name.casefold() for name in LINEAGE_COLUMNS}
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        folded = name.casefold()
        if not name.strip():
            raise ValidationError(f"{label}: column {position} has an empty name")
        if folded in reserved:
            raise ValidationError(
                f"{label}: column {position} is named {name!r}, which is reserved for the lineage columns "
                f"({', '.join(LINEAGE_COLUMNS)})"
            )
        if folded in seen:
            raise ValidationError(
                f"{label}: column {position} ({name!r}) duplicates the name of column {seen[folded]} "
                "(names must be unique, ignoring case)"
            )
        seen[folded] = position


def read_delimited(body: bytes, text: str, *, delimiter: str, label: str) -> pa.Table:
    """Read CSV or TSV (header row first) with pyarrow; `text` is the same content decoded, to name lines."""
    invalid_rows: list[pacsv.InvalidRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        invalid_rows.append(row)
        return "error"

    parse_options = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid_row)
    # One block for the whole document, so column types are inferred from every value rather than the first
    # block's, which would fail on a later block that does not fit.
    read_options = pacsv.ReadOptions(use_threads=False, block_size=min(len(body) + 1, _MAX_BLOCK_SIZE))
    try:
        table = pacsv.read_csv(pa.BufferReader(body), read_options=read_options, parse_options=parse_options)
    except pa.ArrowException as e:
        if invalid_rows:
            raise _ragged_row_error(invalid_rows[0], text, label) from e
        raise ValidationError(f"{label} could not be parsed: {e}") from e
    check_columns(table.column_names, f"{label} header")
    if table.num_rows == 0:
        raise ValidationError(f"{label} has a header row but no data rows")
    return table


def _ragged_row_error(row: pacsv.InvalidRow, text: str, label: str) -> ValidationError:
    preview = row.text[:_PREVIEW_CHARS] + ("…" if len(row.text) > _PREVIEW_CHARS else "")
    where = f"line {_line_of_row(text, row.number, row.text)}" if row.number and row.number > 0 else "a row"
    return ValidationError(
        f"{label} {where} has {row.actual_columns} fields but the header has {row.expected_columns}: {preview!r}"
    )


def _line_of_row(text: str, row_number: int, row_text: str) -> int:
    # pyarrow counts rows (header = 1), not lines: blank lines and quoted newlines shift them apart. A row is
    # never before its own row number in lines, so the first matching line from there on is the row.
    first_line = row_text.split("\n", 1)[0].rstrip("\r")
    for index, line in enumerate(text.split("\n")[row_number - 1 :], start=row_number):
        if line.rstrip("\r") == first_line:
            return index
    return row_number


def read_json(text: str) -> pa.Table:
    """Read a JSON document: an array of objects (one row each) or a single object (one row)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError(f"JSON syntax error at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except RecursionError as e:
        raise ValidationError("JSON is nested too deeply to read") from e
    if isinstance(document, dict):
        return records_to_table([document], "JSON")
    if not isinstance(document, list):
        raise ValidationError(f"JSON document is {_kind(document)}; expected an object or an array of objects")
    if not document:
        raise ValidationError("JSON array is empty: no records")
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise ValidationError(f"JSON array element {number} is {_kind(item)}; the array must hold objects only")
    return records_to_table(document, "JSON")


def read_ndjson(text: str) -> pa.Table:
    """Read newline-delimited JSON: one object per line, blank lines skipped; errors name the line number."""
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValidationError(f"NDJSON line {number}, column {e.colno}: invalid JSON: {e.msg}") from e
        except RecursionError as e:
            raise ValidationError(f"NDJSON line {number} is nested too deeply to read") from e
        if not isinstance(value, dict):
            raise ValidationError(f"NDJSON line {number} is {_kind(value)}; every line must be a JSON object")
        records.append(value)
    if not records:
        raise ValidationError("NDJSON has no records: every line is blank")
    return records_to_table(records, "NDJSON")


def records_to_table(records: Sequence[dict[str, Any]], label: str) -> pa.Table:
    """JSON objects as a flat table: columns in first-seen order, missing keys null, nested values as JSON.

    Types are inferred by pyarrow per column; a column whose values mix types (1 and "one") becomes strings.
    """
    columns: dict[str, list[Any]] = {}
    for index, record in enumerate(records):
        for name in record:
            if name not in columns:
                columns[name] = [None] * index
        for name, values in columns.items():
            values.append(_flat(record.get(name)))
    if not columns:
        raise ValidationError(f"{label} has no fields: every record is an empty object")
    check_columns(list(columns), label)
    return pa.table({name: _column(values) for name, values in columns.items()})


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _column(values: list[Any]) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # Mixed types, or an integer beyond int64: keep every value, as its JSON text.
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())
    # An all-null column has no type to write; string keeps bronze schemas readable by DuckDB.
    return array.cast(pa.string()) if pa.types.is_null(array.type) else array


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return kinds.get(type(value), "an object")


def read_parquet(data: bytes) -> pa.Table:
    """Read a Parquet file; a truncated or corrupt file, or one without rows, is a ValidationError."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as e:
        raise ValidationError(f"not a valid Parquet file ({len(data):,} bytes; truncated or corrupt?): {e}") from e
    check_columns(table.column_names, "Parquet")
    if table.num_rows == 0:
        raise ValidationError("Parquet file has no rows")
    return table
