"""Quality gates per source, checked on a document's parsed rows before they land: a document that breaks a rule
fails with a QualityError naming the rule, the column and an example, and goes to the dead-letter queue."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion_project.lib.errors import QualityError

_EXAMPLES = 3


@dataclass(frozen=True)
class QualityRules:
    required_columns: Sequence[str] = ()
    not_null: Sequence[str] = ()  # an empty string counts as missing too
    unique: Sequence[Sequence[str]] = ()  # each a key: one column or several
    accepted_values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)  # (min, max), inclusive
    min_rows: int = 0

    @property
    def active(self) -> bool:
        return (
            bool(self.required_columns or self.not_null or self.unique or self.accepted_values or self.ranges)
            or self.min_rows > 0
        )

    def columns(self) -> set[str]:
        return {
            *self.required_columns,
            *self.not_null,
            *(c for key in self.unique for c in key),
            *self.accepted_values,
            *self.ranges,
        }


def check_quality(rules: QualityRules, path: str) -> None:
    """Raise QualityError for the first rule the rows of the bronze file at ``path`` break (no file: no rows)."""
    names = set(pq.read_schema(path).names) if os.path.exists(path) else set()
    missing = [c for c in dict.fromkeys([*rules.required_columns, *rules.columns()]) if c not in names]
    if missing:
        raise QualityError(f"quality rule required_columns: missing column(s) {', '.join(missing)}", "required_columns")
    rows = pq.ParquetFile(path).metadata.num_rows if os.path.exists(path) else 0
    if rows < rules.min_rows:
        raise QualityError(f"quality rule min_rows: {rows:,} rows, fewer than {rules.min_rows:,}", "min_rows")
    if not rules.columns() or rows == 0:
        return
    table = pq.read_table(path, columns=sorted(rules.columns()))
    for name in rules.not_null:
        _not_null(table.column(name), name)
    for key in rules.unique:
        _unique(table, list(key))
    for name, values in rules.accepted_values.items():
        _accepted(table.column(name), name, values)
    for name, (low, high) in rules.ranges.items():
        _in_range(table.column(name), name, low, high)


def _fail(rule: str, name: str, what: str, bad: pa.Array, rows: pa.Array | None = None) -> QualityError:
    examples = ", ".join(repr(v) for v in bad.slice(0, _EXAMPLES).to_pylist())
    where = f" (first at row {rows[0].as_py():,})" if rows is not None and len(rows) else ""
    return QualityError(f"quality rule {rule}: column {name} {what}{where}: {examples}".rstrip(": "), rule)


def _missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    missing = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing = pc.or_(missing, pc.equal(pc.utf8_trim_whitespace(column), ""))
    return pc.fill_null(missing, True)


def _not_null(column: pa.ChunkedArray, name: str) -> None:
    missing = _missing(column)
    count = pc.sum(pc.cast(missing, pa.int64())).as_py() or 0
    if count:
        first = pc.indices_nonzero(missing)
        raise QualityError(
            f"quality rule not_null: column {name} has {count:,} empty value(s) (first at row {first[0].as_py():,})",
            "not_null",
        )


def _unique(table: pa.Table, key: list[str]) -> None:
    counts = table.select(key).group_by(key).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    if repeated.num_rows:
        example = {c: repeated.column(c)[0].as_py() for c in key}
        raise QualityError(
            f"quality rule unique: {repeated.num_rows:,} value(s) of ({', '.join(key)}) occur more than once, "
            f"e.g. {example} {repeated.column('count_all')[0].as_py()} times",
            "unique",
        )


def _accepted(column: pa.ChunkedArray, name: str, values: Sequence[str]) -> None:
    text = pc.cast(column, pa.string())
    outside = pc.and_(pc.invert(pc.is_in(text, value_set=pa.array(list(values), pa.string()))), pc.is_valid(text))
    bad = pc.filter(text, outside)
    if len(bad):
        raise _fail(
            "accepted_values",
            name,
            f"has {len(bad):,} value(s) outside {list(values)}",
            bad.combine_chunks(),
            pc.indices_nonzero(pc.fill_null(outside, False)),
        )


def _in_range(column: pa.ChunkedArray, name: str, low: float | None, high: float | None) -> None:
    try:
        numbers = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise QualityError(f"quality rule ranges: column {name} is not numeric ({column.type})", "ranges") from None
    outside = pc.fill_null(
        pc.or_(
            pc.less(numbers, low) if low is not None else pc.is_null(numbers, nan_is_null=False),
            pc.greater(numbers, high) if high is not None else pc.is_null(numbers, nan_is_null=False),
        ),
        False,
    )
    bad = pc.filter(column, outside)
    if len(bad):
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        raise _fail(
            "ranges",
            name,
            f"has {len(bad):,} value(s) outside {bounds}",
            bad.combine_chunks(),
            pc.indices_nonzero(outside),
        )
