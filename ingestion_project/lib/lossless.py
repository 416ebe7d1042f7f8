"""Typing text columns only where no information is lost: bronze keeps what the file said.

A delimited file's columns are read as strings and typed here, column by column, with the first type in
``CANDIDATES`` whose every value reads back exactly: an integer is a canonical decimal within 64 bits (no leading
zero, no sign but ``-``), a float has at most 15 significant digits (which a double always reproduces), a boolean
is ``true`` or ``false``, a date is ``YYYY-MM-DD``. Anything else — the zip code ``08123``, a 20-digit id, a
17-digit decimal, ``1e5``, ``TRUE``, a timestamp with its offset — stays a string, for the contract or staging to
type. An empty value is null in a typed column and stays an empty string in a string column.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Digits a double reproduces for any decimal written with at most this many (DBL_DIG).
FLOAT_DIGITS = 15


# Tried in this order; the first that keeps every value of a column is its type.
CANDIDATES = (pa.int64(), pa.float64(), pa.bool_(), pa.date32())
# What a string → double cast accepts beyond plain decimals: 1e5, +1.5, nan, inf, Infinity.
_NOT_PLAIN_DECIMAL = ("e", "E", "n", "N", "+")


class TypeDrift(Exception):  # noqa: N818 - a signal to read again, not an error
    """A column typed from an earlier block has a value that type would not keep: read it as strings."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def infer(values: pa.Array) -> pa.DataType:
    """The first candidate type that keeps every value of a string column; string when none does (or when every
    value is empty, which says nothing about the type)."""
    if pc.all(pc.equal(values, "")).as_py() in (True, None):
        return pa.string()
    return next((type_ for type_ in CANDIDATES if convert(values, type_) is not None), pa.string())


def convert(values: pa.Array, type_: pa.DataType) -> pa.Array | None:
    """The string column as ``type_``, or None when a value would not read back exactly.

    Checked with Arrow's cast (strict about syntax and range) and a few whole-column literal tests rather than
    a regular expression per value: this runs on every block of every delimited document.
    """
    if type_ == pa.string():
        return values
    present = pc.not_equal(values, "")
    text = pc.if_else(present, values, pa.scalar(None, pa.string()))
    if type_ == pa.bool_():
        ok = pc.all(pc.is_in(text, value_set=pa.array(["true", "false"]), skip_nulls=True)).as_py() is not False
        return pc.equal(text, "true") if ok else None
    try:
        typed = pc.cast(text, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not the type's syntax, an int64 overflow, 2026-02-30
        return None
    if type_ == pa.date32():
        lengths = pc.utf8_length(text)
        return typed if pc.min(lengths).as_py() in (10, None) and pc.max(lengths).as_py() in (10, None) else None
    if _any(pc.starts_with(text, "+")) or _has_leading_zero(text):
        return None
    if type_ == pa.float64():
        if any(_any(pc.match_substring(text, marker)) for marker in _NOT_PLAIN_DECIMAL):
            return None
        if not _within_float_digits(text):
            return None
    return typed


def _any(mask: pa.Array) -> bool:
    return pc.any(mask).as_py() is True


def _has_leading_zero(text: pa.Array) -> bool:
    """Any value like 007, -07, 0x10 or -0 (not 0, 0.5, -0.5): its zeros or sign would not survive a number."""
    suspects = pc.filter(text, pc.or_(pc.starts_with(text, "0"), pc.starts_with(text, "-0")))
    if len(suspects) == 0:
        return False
    unsigned = pc.utf8_ltrim(suspects, "-")
    zero_led = pc.and_(pc.greater(pc.utf8_length(unsigned), 1), pc.invert(pc.starts_with(unsigned, "0.")))
    return _any(pc.or_(zero_led, pc.equal(suspects, "-0")))


def _within_float_digits(text: pa.Array) -> bool:
    """At most FLOAT_DIGITS significant digits in every value (leading zeros of a fraction do not count)."""
    long = pc.filter(text, pc.greater(pc.utf8_length(text), FLOAT_DIGITS + 1))  # sign and point included
    if len(long) == 0:
        return True
    digits = pc.utf8_length(pc.replace_substring_regex(long, r"^-?0?\.?0*|[^0-9]", ""))
    return pc.max(digits).as_py() <= FLOAT_DIGITS


def typed_batch(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    """``batch`` (string columns) with each column as ``types`` says; raises TypeDrift for the first column whose
    values that type would not keep."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        converted = convert(column, types[name])
        if converted is None:
            raise TypeDrift(name)
        columns.append(converted)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
