"""JSON and NDJSON records as flat rows, in two streaming passes and linear time.

The first pass reads every record once to learn the columns (first-seen order) and one type per column; the
second reads them again and writes batches of that exact schema. Nothing holds more than one batch of records,
and the work is proportional to the values present: a document whose records each have different keys costs
what its size says, and its distinct keys are bounded by ``limits.json_keys``.

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

from ingestion_project.lib.bronze import BronzeWriter
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.limits import DocumentLimits, over_limit
from ingestion_project.lib.tabular import check_columns

BATCH_ROWS = 4096
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


class _DecimalText(str):
    """A JSON number with more significant digits than a double keeps: its column stays text, as written."""


def _number(text: str) -> float | str:
    """``parse_float`` of the decoders: a float, or the number's own text when a float would round it."""
    digits = _SIGNIFICANT.sub("", text).lstrip("0")
    return _DecimalText(text) if len(digits) > _FLOAT_DIGITS else float(text)


Records = Callable[[], Iterator[dict[str, Any]]]


def read_json(open_text: Callable[[], BinaryIO], writer: BronzeWriter, limits: DocumentLimits) -> None:
    """A JSON document: an array of objects (one row each) or a single object (one row)."""
    _write(lambda: _json_records(open_text, limits), writer, limits, "JSON")


def read_ndjson(open_text: Callable[[], BinaryIO], writer: BronzeWriter, limits: DocumentLimits) -> None:
    """Newline-delimited JSON: one object per line, blank lines skipped; errors name the line number."""
    _write(lambda: _ndjson_records(open_text, limits), writer, limits, "NDJSON")


def _write(records: Records, writer: BronzeWriter, limits: DocumentLimits, label: str) -> None:
    kinds: dict[str, str] = {}
    keys = min(limits.json_keys, limits.columns)
    count = 0
    for record in records():
        count += 1
        for name, value in record.items():
            kind = _kind(value)
            known = kinds.get(name)
            if known is None:
                if len(kinds) == keys:
                    raise _too_many_keys(label, limits)
                kinds[name] = kind
            elif known != kind:
                kinds[name] = _unify(known, kind)
    if count == 0:
        raise ValidationError("JSON array is empty: no records" if label == "JSON" else f"{label} has no records")
    if not kinds:
        raise ValidationError(f"{label} has no fields: every record is an empty object")
    check_columns(list(kinds), label)
    schema = pa.struct([pa.field(name, _TYPES[kind]) for name, kind in kinds.items()])
    as_text = {name for name, kind in kinds.items() if kind == "string"}
    batch: list[dict[str, Any]] = []
    for record in records():
        batch.append({n: _text(v) if n in as_text and not isinstance(v, str) else v for n, v in record.items()})
        if len(batch) == BATCH_ROWS:
            writer.write(pa.RecordBatch.from_struct_array(pa.array(batch, type=schema)))
            batch = []
    if batch:
        writer.write(pa.RecordBatch.from_struct_array(pa.array(batch, type=schema)))
    writer.close()


def _too_many_keys(label: str, limits: DocumentLimits) -> ValidationError:
    if limits.columns < limits.json_keys:
        return over_limit("columns", f"the {label} records have more than {limits.columns:,} keys", limits.columns)
    return over_limit(
        "json_keys", f"the {label} records have more than {limits.json_keys:,} distinct keys", limits.json_keys
    )


def _kind(value: Any) -> str:
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
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            level.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_record(record: Any, where: str, label: str, limits: DocumentLimits) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValidationError(
            f"{where} is {_describe(record)}; "
            + ("the array must hold objects only" if label == "JSON" else "every line must be a JSON object")
        )
    if _depth(record) > limits.nesting_depth:
        limit = limits.nesting_depth
        raise over_limit("nesting_depth", f"{where} nests deeper than {limit:,} levels", limit)
    return record


def _json_records(open_text: Callable[[], BinaryIO], limits: DocumentLimits) -> Iterator[dict[str, Any]]:
    with open_text() as stream, io.TextIOWrapper(stream, encoding="utf-8") as text:
        array = _ArrayReader(text)
        try:
            if not array.opens():
                document = json.loads(array.rest(), parse_float=_number)
                if not isinstance(document, dict):
                    raise ValidationError(
                        f"JSON document is {_describe(document)}; expected an object or an array of objects"
                    )
                yield _check_record(document, "the JSON document", "JSON", limits)
                return
            for number, item in enumerate(array.items(), start=1):
                yield _check_record(item, f"JSON array element {number}", "JSON", limits)
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
            rest = self._buffer[self._position :]
            stripped = rest.lstrip(" \t\n\r")
            self._position += len(rest) - len(stripped)
            if stripped or not self._fill(self._READ):
                return stripped[:1]

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


def _ndjson_records(open_text: Callable[[], BinaryIO], limits: DocumentLimits) -> Iterator[dict[str, Any]]:
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
            yield _check_record(value, f"NDJSON line {number}", "NDJSON", limits)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return kinds.get(type(value), "an object")
