"""JSON and NDJSON records as flat rows, in two streaming passes and linear time.

The first pass reads every record once to learn the columns (first-seen order) and one type per column; the
second reads them again and writes batches of that exact schema. Nothing holds more than one batch of records,
and the Python work is proportional to the values present, not rows × every key seen: a batch is gathered column
by column, and a column with few values in it is a chunked array of its runs of values between slices of one
shared all-null array (see ``_Batch``). What stays proportional to rows × keys is Parquet's own encoding of the
nulls, in C. A document's distinct keys are bounded by ``limits.json_keys``.

Column types: a column of only integers (within 64 bits) is int64, of integers and decimals double, of booleans
bool; anything else — mixed kinds, nested objects or arrays, integers beyond 64 bits — is a string column, with
nested values as compact JSON text and other non-strings as their JSON text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from ingestion_project.lib.bronze import BronzeWriter
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.limits import DocumentLimits, over_limit
from ingestion_project.lib.tabular import check_columns

# A batch (one row group, unless the writer joins several) closes at whichever comes first. Rows of few keys make
# large row groups; values bound the Python objects held.
BATCH_ROWS = 64 * 1024
BATCH_VALUES = 1024 * 1024
# A column with values in fewer than 1 of this many rows of a batch is built from its runs of values; so is any
# column past the first BATCH_PADDED_CELLS rows of padded (null-filled) arrays, which bounds a batch's memory when
# many columns each have values in a few percent of the rows.
_SPARSE = 64
BATCH_PADDED_CELLS = 8 * 1024 * 1024
_INT64 = (-(2**63), 2**63 - 1)
_TYPES = {
    "null": pa.string(),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "wide_int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
}
# Integers a double holds exactly, and the significant digits a double always reproduces (DBL_DIG).
_EXACT_IN_DOUBLE = 10**15
_FLOAT_DIGITS = 15
_SIGNIFICANT = re.compile(r"[eE].*$|[^0-9]")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


class _DecimalText(str):
    """A JSON number with more significant digits than a double keeps: its column stays text, as written."""


def _number(text: str) -> float | str:
    """``parse_float`` of the decoders: a float, or the number's own text when a float would round it."""
    if len(text) <= _FLOAT_DIGITS + 1:  # a point or an exponent is one of its characters: few enough digits
        return float(text)
    digits = _SIGNIFICANT.sub("", text).lstrip("0")
    return _DecimalText(text) if len(digits) > _FLOAT_DIGITS else float(text)


Records = Callable[[bool], Iterator[dict[str, Any]]]  # called with whether to check each record's nesting


def read_json(open_text: Callable[[], BinaryIO], writer: BronzeWriter, limits: DocumentLimits) -> None:
    """A JSON document: an array of objects (one row each) or a single object (one row)."""
    _write(lambda check: _json_records(open_text, limits, check), writer, limits, "JSON")


def read_ndjson(open_text: Callable[[], BinaryIO], writer: BronzeWriter, limits: DocumentLimits) -> None:
    """Newline-delimited JSON: one object per line, blank lines skipped; errors name the line number."""
    _write(lambda check: _ndjson_records(open_text, limits, check), writer, limits, "NDJSON")


def _write(records: Records, writer: BronzeWriter, limits: DocumentLimits, label: str) -> None:
    kinds: dict[str, str] = {}
    keys = min(limits.json_keys, limits.columns)
    count = 0
    for record in records(True):
        count += 1
        for name, value in record.items():
            kind = _KIND_OF_TYPE.get(type(value)) or _kind(value)
            known = kinds.get(name)
            if known == kind:
                continue
            if known is None:
                if len(kinds) == keys:
                    raise _too_many_keys(label, limits)
                kinds[name] = kind
            else:
                kinds[name] = _unify(known, kind)
    if count == 0:
        raise ValidationError("JSON array is empty: no records" if label == "JSON" else f"{label} has no records")
    if not kinds:
        raise ValidationError(f"{label} has no fields: every record is an empty object")
    check_columns(list(kinds), label, refuse_reserved=False)
    types = {name: _TYPES[kind] for name, kind in kinds.items()}
    as_text = {name for name, kind in kinds.items() if kind == "string"}
    batch = _Batch(types, as_text)
    for record in records(False):  # the same records: checked in the first pass
        batch.add(record)
        if batch.full:
            writer.write(batch.flush())
    if batch.rows:
        writer.write(batch.flush())
    writer.close()


class _Batch:
    """Records gathered column by column, into a table of every column the document has.

    A record costs the keys it has: each value goes to its column's list with its row number. When the batch
    closes, a column with values in most rows becomes one array; a sparse one becomes a chunked array of its runs
    of values between slices of one shared all-null array, and a column without values is that null array
    alone, so memory and time follow the values present, not rows × every key of the document. A batch closes
    at BATCH_ROWS rows or BATCH_VALUES values, whichever comes first.
    """

    def __init__(self, types: dict[str, pa.DataType], as_text: set[str]):
        self._types = types
        self._as_text = as_text
        self._columns: dict[str, tuple[list[int], list[Any]]] = {}
        self.rows = 0
        self._values = 0

    def add(self, record: dict[str, Any]) -> None:
        row, columns = self.rows, self._columns
        for name, value in record.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = ([], [])
            column[0].append(row)
            column[1].append(value)
        self.rows = row + 1
        self._values += len(record)

    @property
    def full(self) -> bool:
        return self.rows >= BATCH_ROWS or self._values >= BATCH_VALUES

    def flush(self) -> pa.Table:
        rows, columns = self.rows, self._columns
        nulls: dict[pa.DataType, pa.Array] = {}
        arrays, padded = [], BATCH_PADDED_CELLS
        for name, type_ in self._types.items():
            if type_ not in nulls:
                nulls[type_] = pa.nulls(rows, type_)
            column = columns.get(name)
            if column is not None and name in self._as_text:
                column = (column[0], [v if v is None or isinstance(v, str) else _text(v) for v in column[1]])
            if column is None:
                arrays.append(nulls[type_])
            elif len(column[0]) == rows:
                arrays.append(pa.array(column[1], type=type_))
            elif len(column[0]) * _SPARSE >= rows and padded >= rows:
                padded -= rows
                arrays.append(_dense(column, rows, type_))
            else:
                arrays.append(_runs(column, rows, type_, nulls[type_]))
        self._columns, self.rows, self._values = {}, 0, 0
        return pa.Table.from_arrays(arrays, names=list(self._types))


def _dense(column: tuple[list[int], list[Any]], rows: int, type_: pa.DataType) -> pa.Array:
    present, values = column
    array = pa.array(values, type=type_)
    mask = pc.is_in(pa.array(range(rows), pa.int32()), value_set=pa.array(present, pa.int32()))
    return pc.replace_with_mask(pa.nulls(rows, type_), mask, array)


def _runs(column: tuple[list[int], list[Any]], rows: int, type_: pa.DataType, nulls: pa.Array) -> pa.ChunkedArray:
    """A sparse column as its runs of consecutive values, with zero-copy slices of ``nulls`` between them."""
    present, values = column
    array = pa.array(values, type=type_)
    chunks, row, start = [], 0, 0
    for end in range(1, len(present) + 1):
        if end < len(present) and present[end] == present[end - 1] + 1:
            continue
        first = present[start]
        if first > row:
            chunks.append(nulls.slice(0, first - row))
        chunks.append(array.slice(start, end - start))
        row, start = present[end - 1] + 1, end
    if row < rows:
        chunks.append(nulls.slice(0, rows - row))
    return pa.chunked_array(chunks, type=type_)


def _too_many_keys(label: str, limits: DocumentLimits) -> ValidationError:
    if limits.columns < limits.json_keys:
        return over_limit("columns", f"the {label} records have more than {limits.columns:,} keys", limits.columns)
    return over_limit(
        "json_keys", f"the {label} records have more than {limits.json_keys:,} distinct keys", limits.json_keys
    )


# The kind of a value by its exact type, where that alone decides (integers depend on their size).
_KIND_OF_TYPE = {type(None): "null", bool: "bool", float: "float", str: "string", _DecimalText: "string"}


def _kind(value: Any) -> str:
    if type(value) is int and -_EXACT_IN_DOUBLE < value < _EXACT_IN_DOUBLE:
        return "int"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            return "string"
        return "int" if -_EXACT_IN_DOUBLE < value < _EXACT_IN_DOUBLE else "wide_int"
    if isinstance(value, float):
        return "float"
    return "string"


def _unify(a: str, b: str) -> str:
    if a == "null":
        return b
    if b == "null":
        return a
    if {a, b} == {"int", "wide_int"}:
        return "wide_int"
    # A float column holds an integer exactly only below 10**15: wider ones keep the column as text.
    return "float" if {a, b} == {"int", "float"} else "string"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(value)


def _depth(value: Any) -> int:
    """How deep a JSON value nests (a scalar is 0, ``[]`` is 1), without recursion."""
    if not isinstance(value, dict | list):
        return 0
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        deepest = max(deepest, depth)
        children = [c for c in (item.values() if isinstance(item, dict) else item) if type(c) in _CONTAINERS]
        level.extend((child, depth + 1) for child in children)
    return deepest


_CONTAINERS = (dict, list)  # what the decoders make of JSON objects and arrays


def _check_record(record: Any, where: str, label: str, limits: DocumentLimits, check: bool) -> dict[str, Any]:
    if not check:
        return record
    if not isinstance(record, dict):
        raise ValidationError(
            f"{where} is {_describe(record)}; "
            + ("the array must hold objects only" if label == "JSON" else "every line must be a JSON object")
        )
    if _depth(record) > limits.nesting_depth:
        limit = limits.nesting_depth
        raise over_limit("nesting_depth", f"{where} nests deeper than {limit:,} levels", limit)
    return record


def _json_records(open_text: Callable[[], BinaryIO], limits: DocumentLimits, check: bool) -> Iterator[dict[str, Any]]:
    with open_text() as stream, io.TextIOWrapper(stream, encoding="utf-8") as text:
        array = _ArrayReader(text)
        try:
            if not array.opens():
                document = json.loads(array.rest(), parse_float=_number)
                if not isinstance(document, dict):
                    raise ValidationError(
                        f"JSON document is {_describe(document)}; expected an object or an array of objects"
                    )
                yield _check_record(document, "the JSON document", "JSON", limits, check)
                return
            for number, item in enumerate(array.items(), start=1):
                yield _check_record(item, f"JSON array element {number}", "JSON", limits, check)
        except json.JSONDecodeError as e:
            line, column = array.where(e)
            raise ValidationError(f"JSON syntax error at line {line}, column {column}: {e.msg}") from e
        except RecursionError as e:
            raise over_limit("nesting_depth", "the JSON document nests too deeply to read", limits.nesting_depth) from e


class _ArrayReader:
    """The elements of a top-level JSON array, one at a time, from a text stream.

    Each element is decoded by the standard library (exact errors, integers of any size) from a window of the
    text that grows (doubling) until the element fits, so memory follows the largest element, not the document.
    """

    _READ = 1024 * 1024

    def __init__(self, text: io.TextIOBase):
        self._text = text
        self._decoder = json.JSONDecoder(parse_float=_number)
        self._buffer = ""
        self._position = 0
        self._eof = False
        self._lines_before = 0  # newlines before the window
        self._column_before = 0  # characters after the last of them, before the window

    def opens(self) -> bool:
        """Whether the document is an array (its "[" is then consumed)."""
        if self._peek() == "[":
            self._position += 1
            return True
        return False

    def rest(self) -> str:
        while self._fill(self._READ):
            pass
        return self._buffer[self._position :]

    def items(self) -> Iterator[Any]:
        if self._peek() == "]":
            self._position += 1
            self._expect_end()
            return
        while True:
            yield self._element()
            # The usual case in one step: a comma, and the next element within the window.
            between = _COMMA.match(self._buffer, self._position)
            if between is not None and between.end() < len(self._buffer):
                self._position = between.end()
                continue
            separator = self._peek()
            self._position += 1
            if separator == "]":
                self._expect_end()
                return
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", self._buffer, self._position - 1)
            self._peek()

    def _element(self) -> Any:
        size = self._READ
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError:
                if not self._fill(size):
                    raise
                size *= 2
                continue
            # A value that ends where the window ends may go on ("12" of "123"): decide with more text.
            if end == len(self._buffer) and self._fill(size):
                continue
            self._position = end
            return value

    def _peek(self) -> str:
        """The next non-whitespace character (not consumed), or "" at the end."""
        while True:
            # Matched in place: slicing off the rest of the window for each element would copy it every time.
            self._position = _WHITESPACE.match(self._buffer, self._position).end()
            if self._position < len(self._buffer) or not self._fill(self._READ):
                return self._buffer[self._position : self._position + 1]

    def _expect_end(self) -> None:
        if self._peek():
            raise json.JSONDecodeError("Extra data", self._buffer, self._position)

    def _fill(self, size: int) -> bool:
        if self._eof:
            return False
        consumed = self._buffer[: self._position]
        newlines = consumed.count("\n")
        self._lines_before += newlines
        self._column_before = (
            len(consumed) - consumed.rfind("\n") - 1 if newlines else self._column_before + len(consumed)
        )
        more = self._text.read(size)
        self._eof = not more
        self._buffer = self._buffer[self._position :] + more
        self._position = 0
        return bool(more)

    def where(self, error: json.JSONDecodeError) -> tuple[int, int]:
        """Line and column (from 1) in the document of an error in the window."""
        if error.doc is not self._buffer:
            return error.lineno, error.colno
        newlines = self._buffer.count("\n", 0, error.pos)
        if newlines:
            return self._lines_before + newlines + 1, error.pos - self._buffer.rfind("\n", 0, error.pos)
        return self._lines_before + 1, self._column_before + error.pos + 1


def _ndjson_records(open_text: Callable[[], BinaryIO], limits: DocumentLimits, check: bool) -> Iterator[dict[str, Any]]:
    with open_text() as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line, parse_float=_number)
            except json.JSONDecodeError as e:
                raise ValidationError(f"NDJSON line {number}, column {e.colno}: invalid JSON: {e.msg}") from e
            except RecursionError as e:
                raise over_limit(
                    "nesting_depth", f"NDJSON line {number} nests too deeply to read", limits.nesting_depth
                ) from e
            yield _check_record(value, f"NDJSON line {number}", "NDJSON", limits, check)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return kinds.get(type(value), "an object")
