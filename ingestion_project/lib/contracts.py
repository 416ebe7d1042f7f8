"""Schema contracts per source: what a document's columns must be, and what happens when they are not.

A contract (``schema:`` in the sources file) declares columns, optionally typed, and a mode for everything else:

- ``evolve``: columns the contract does not declare land as they are; declared columns are cast to their type.
- ``rescue``: undeclared columns, and values that do not fit their declared type, go into ``_rescued_data`` (a
  JSON object per row, ``{"column": "value as the document had it"}``, without empty values); the row is kept.
- ``freeze``: a document with undeclared or missing columns, or a value that does not fit, is rejected.
- ``discard``: undeclared columns are dropped; what was dropped is counted and recorded.

Outside ``rescue``, a value that does not fit its declared type rejects the document (a ContractError naming the
column, the row and the value): nothing is ever turned into NULL silently. A declared column a document lacks is
NULL in its rows (``freeze`` rejects it). Names match ignoring case; bronze uses the declared spelling.

The contract is applied to the parsed bronze file before it lands, so a value like ``12.50 EUR`` in a decimal
column is decided at ingestion and never reaches — and never breaks — the warehouse build.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion_project.lib.bronze import LINEAGE_COLUMNS
from ingestion_project.lib.errors import ContractError

RESCUED_COLUMN = "_rescued_data"
_BATCH_ROWS = 64 * 1024
_EXAMPLES = 3
_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")
_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "varchar": pa.string(),
    "text": pa.string(),
    "integer": pa.int64(),
    "int": pa.int64(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
TYPE_NAMES = (*_TYPES, "decimal(p,s)")


class Mode(StrEnum):
    EVOLVE = "evolve"
    RESCUE = "rescue"
    FREEZE = "freeze"
    DISCARD = "discard"


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type of a declared column type (``string``, ``integer``, ``decimal(12,2)``, ...)."""
    name = declared.strip().lower()
    if name in _TYPES:
        return _TYPES[name]
    match = _DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"{declared!r}: a decimal needs 1 <= precision <= 38 and scale <= precision")
        return pa.decimal128(precision, scale)
    raise ValueError(f"{declared!r} is not a column type (use one of: {', '.join(TYPE_NAMES)})")


@dataclass(frozen=True)
class Contract:
    mode: Mode = Mode.EVOLVE
    columns: Mapping[str, str | None] = field(default_factory=dict)  # name -> declared type (None: as it lands)

    @property
    def active(self) -> bool:
        return bool(self.columns) or self.mode is not Mode.EVOLVE


@dataclass
class ContractOutcome:
    """What applying a contract to one document did; recorded with the version's schema and on its
    materialization."""

    mode: str
    missing_columns: list[str] = field(default_factory=list)  # declared, absent: NULL in bronze
    unexpected_columns: list[str] = field(default_factory=list)  # not declared: kept, rescued or discarded
    rescued_rows: int = 0
    rescued_values: int = 0  # declared values that did not fit their type (rescue)
    discarded_values: int = 0  # non-null values of the discarded columns (discard)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.missing_columns:
            parts.append(f"missing {', '.join(self.missing_columns)} (null)")
        if self.unexpected_columns:
            fate = {"evolve": "kept", "rescue": "rescued", "discard": "discarded"}.get(self.mode, "")
            parts.append(f"{fate} undeclared {', '.join(self.unexpected_columns)}")
        if self.rescued_values:
            parts.append(f"{self.rescued_values:,} value(s) that did not fit rescued")
        if self.rescued_rows:
            parts.append(f"{self.rescued_rows:,} row(s) with _rescued_data")
        if self.discarded_values:
            parts.append(f"{self.discarded_values:,} value(s) discarded")
        return f"{self.mode}: " + ("; ".join(parts) or "as declared")


def apply_contract(contract: Contract, path: str) -> ContractOutcome | None:
    """Rewrite the bronze file at ``path`` to the contract, in place; None when there is no file (no rows).

    Raises ContractError when the document breaks it (``freeze``: any difference; other modes: a value that does
    not fit outside ``rescue``).
    """
    if not contract.active or not os.path.exists(path):
        return None
    source = pq.ParquetFile(path)
    plan = _Plan(contract, source.schema_arrow)
    outcome = ContractOutcome(str(contract.mode), plan.missing, plan.unexpected)
    if contract.mode is Mode.FREEZE and (plan.missing or plan.unexpected):
        raise ContractError(plan.frozen_message())
    tmp = f"{path}.contract"
    try:
        with pq.ParquetWriter(tmp, plan.schema, compression="zstd") as writer:
            row = 0
            for batch in source.iter_batches(batch_size=_BATCH_ROWS, use_threads=False):
                writer.write_table(plan.convert(batch, row, outcome))
                row += batch.num_rows
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    return outcome


class _Plan:
    """How the columns of one document map onto the contract."""

    def __init__(self, contract: Contract, schema: pa.Schema):
        self.contract = contract
        self.mode = contract.mode
        by_fold = {name.casefold(): name for name in schema.names}
        self.lineage = [name for name in schema.names if name in LINEAGE_COLUMNS]
        # declared name -> (name in the document or None, target type or None)
        self.declared: dict[str, tuple[str | None, pa.DataType | None]] = {
            name: (by_fold.get(name.casefold()), None if kind is None else arrow_type(kind))
            for name, kind in contract.columns.items()
        }
        self.missing = [name for name, (found, _) in self.declared.items() if found is None]
        known = {found for found, _ in self.declared.values() if found is not None} | set(self.lineage)
        self.unexpected = [name for name in schema.names if name not in known]
        fields = []
        for name, (found, target) in self.declared.items():
            kind = target or (schema.field(found).type if found is not None else pa.string())
            fields.append(pa.field(name, kind))
        if self.mode is Mode.EVOLVE:
            fields += [schema.field(name) for name in self.unexpected]
        if self.mode is Mode.RESCUE:
            fields.append(pa.field(RESCUED_COLUMN, pa.string()))
        fields += [schema.field(name) for name in self.lineage]
        self.schema = pa.schema(fields)

    def frozen_message(self) -> str:
        parts = []
        if self.unexpected:
            parts.append(f"undeclared column(s) {', '.join(self.unexpected)}")
        if self.missing:
            parts.append(f"missing declared column(s) {', '.join(self.missing)}")
        return f"schema contract (freeze) broken: {'; '.join(parts)}"

    def convert(self, batch: pa.RecordBatch, first_row: int, outcome: ContractOutcome) -> pa.Table:
        rows = batch.num_rows
        columns: list[pa.Array] = []
        rescued: dict[str, tuple[pa.Array, pa.Array | None]] = {}  # column -> (original values, which rows)
        for name, (found, target) in self.declared.items():
            kind = self.schema.field(name).type
            if found is None:
                columns.append(pa.nulls(rows, kind))
                continue
            values = batch.column(found)
            if target is None:
                columns.append(values)
                continue
            converted, bad = _convert(values, target)
            if bad is not None:
                if self.mode is not Mode.RESCUE:
                    raise self._misfit(name, values, bad, first_row, target)
                rescued[name] = (values, bad)
                outcome.rescued_values += pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
            columns.append(converted)
        for name in self.unexpected:
            values = batch.column(name)
            if self.mode is Mode.EVOLVE:
                columns.append(values)
            elif self.mode is Mode.DISCARD:
                outcome.discarded_values += len(values) - values.null_count
            else:
                rescued[name] = (values, None)
        if self.mode is Mode.RESCUE:
            data, count = _rescued_json(rows, rescued)
            columns.append(data)
            outcome.rescued_rows += count
        columns += [batch.column(name) for name in self.lineage]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _misfit(self, name: str, values: pa.Array, bad: pa.Array, first_row: int, target: pa.DataType):
        where = pc.indices_nonzero(bad)
        examples = ", ".join(repr(v) for v in pc.take(_as_text(values), where.slice(0, _EXAMPLES)).to_pylist())
        declared = self.contract.columns[name]
        return ContractError(
            f"schema contract ({self.mode}): column {name} is declared {declared}, but value(s) do not fit it "
            f"(first at row {first_row + where[0].as_py() + 1:,}; at least {len(where):,}): {examples}"
        )


def _as_text(values: pa.Array) -> pa.Array:
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_dictionary(values.type):
        return pc.cast(values, pa.string())
    if pa.types.is_nested(values.type):
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values.to_pylist()],
            pa.string(),
        )
    return pc.cast(values, pa.string())


def _convert(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """``values`` as ``target``, and which of them did not fit (None: all did). Values go through their text, so a
    number is read as the document wrote it; blank text is NULL."""
    if values.type == target:
        return values, None
    text = _as_text(values)
    if target == pa.string():
        return text, None
    text = pc.utf8_trim_whitespace(text)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some value does not fit: find which, one at a time (only for a block that has one).
    out, bad = [], []
    for value in text.to_pylist():
        if value is None:
            out.append(None)
            bad.append(False)
            continue
        try:
            out.append(pc.cast(pa.array([value], pa.string()), target)[0].as_py())
            bad.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
            bad.append(True)
    return pa.array(out, target), pa.array(bad, pa.bool_())


def _rescued_json(rows: int, rescued: Mapping[str, tuple[pa.Array, pa.Array | None]]) -> tuple[pa.Array, int]:
    """One JSON object per row of what was rescued from it (NULL where nothing was), and how many rows had some."""
    if not rescued:
        return pa.nulls(rows, pa.string()), 0
    lists = {}
    for name, (values, which) in rescued.items():
        original = values.to_pylist() if pa.types.is_nested(values.type) else _as_text(values).to_pylist()
        keep = which.to_pylist() if which is not None else [True] * rows
        lists[name] = [v if k else None for v, k in zip(original, keep, strict=True)]
    out: list[str | None] = []
    count = 0
    for index in range(rows):
        # An empty value (a CSV's empty field) is nothing to rescue.
        found = {name: values[index] for name, values in lists.items() if values[index] not in (None, "")}
        if found:
            out.append(json.dumps(found, ensure_ascii=False, default=str))
            count += 1
        else:
            out.append(None)
    return pa.array(out, pa.string()), count
