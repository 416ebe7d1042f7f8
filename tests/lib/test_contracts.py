"""Schema contracts on a drifting series of documents: each mode against added, removed and retyped columns, and
the poison value ("12.50 EUR" in a decimal column)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.contracts import RESCUED_COLUMN, Contract, Mode, apply_contract, arrow_type
from ingestion_project.lib.errors import ContractError, ValidationError

DECLARED = {"order_id": "string", "amount": "decimal(12,2)", "currency": "string"}
LINEAGE = {"_source": "orders", "_row_number": None}


def bronze(tmp_path, **columns) -> str:
    """A parsed bronze file with ``columns`` and the lineage columns, as parsing leaves it."""
    rows = len(next(iter(columns.values())))
    table = pa.table(
        {**columns, "_source": pa.array(["orders"] * rows), "_row_number": pa.array(range(1, rows + 1), pa.int64())}
    )
    path = str(tmp_path / "data.parquet")
    pq.write_table(table, path)
    return path


# The drifting series: as declared; a column added; a column removed; a column retyped by a poison value.
AS_DECLARED = {"order_id": ["A", "B"], "amount": [10.5, 3.0], "currency": ["USD", "USD"]}
ADDED = {**AS_DECLARED, "tip": [1.0, None]}
REMOVED = {"order_id": ["A", "B"], "amount": [10.5, 3.0]}
RETYPED = {"order_id": ["A", "B"], "amount": ["12.50 EUR", "3.00"], "currency": ["USD", "USD"]}


def landed(path: str) -> dict[str, list]:
    table = pq.read_table(path)
    return {name: table.column(name).to_pylist() for name in table.column_names if name not in LINEAGE}


@pytest.mark.parametrize("mode", list(Mode))
def test_a_document_as_declared_lands_typed_in_every_mode(tmp_path, mode):
    path = bronze(tmp_path, **AS_DECLARED)
    outcome = apply_contract(Contract(mode, DECLARED), path)
    data = landed(path)
    assert data["amount"] == [Decimal("10.50"), Decimal("3.00")]
    assert pq.read_schema(path).field("amount").type == pa.decimal128(12, 2)
    assert (outcome.missing_columns, outcome.unexpected_columns, outcome.rescued_rows) == ([], [], 0)
    assert (RESCUED_COLUMN in data) == (mode is Mode.RESCUE)
    assert pq.read_table(path).column("_row_number").to_pylist() == [1, 2]  # lineage untouched


def test_evolve_keeps_an_added_column_and_nulls_a_removed_one(tmp_path):
    path = bronze(tmp_path, **ADDED)
    outcome = apply_contract(Contract(Mode.EVOLVE, DECLARED), path)
    assert landed(path)["tip"] == [1.0, None]
    assert outcome.unexpected_columns == ["tip"]
    path = bronze(tmp_path, **REMOVED)
    outcome = apply_contract(Contract(Mode.EVOLVE, DECLARED), path)
    assert landed(path)["currency"] == [None, None]
    assert pq.read_schema(path).field("currency").type == pa.string()
    assert outcome.missing_columns == ["currency"]


def test_rescue_moves_undeclared_columns_and_misfits_into_rescued_data_and_keeps_every_row(tmp_path):
    path = bronze(tmp_path, **ADDED)
    outcome = apply_contract(Contract(Mode.RESCUE, DECLARED), path)
    data = landed(path)
    assert "tip" not in data
    assert [None if v is None else json.loads(v) for v in data[RESCUED_COLUMN]] == [{"tip": "1"}, None]
    assert (outcome.unexpected_columns, outcome.rescued_rows) == (["tip"], 1)

    path = bronze(tmp_path, **RETYPED)
    outcome = apply_contract(Contract(Mode.RESCUE, DECLARED), path)
    data = landed(path)
    assert data["order_id"] == ["A", "B"]  # the row is kept
    assert data["amount"] == [None, Decimal("3.00")]
    assert json.loads(data[RESCUED_COLUMN][0]) == {"amount": "12.50 EUR"}  # as the document had it
    assert data[RESCUED_COLUMN][1] is None
    assert (outcome.rescued_values, outcome.rescued_rows) == (1, 1)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (ADDED, "schema contract (freeze) broken: undeclared column(s) tip"),
        (REMOVED, "schema contract (freeze) broken: missing declared column(s) currency"),
        (RETYPED, "column amount is declared decimal(12,2), but value(s) do not fit it (first at row 1; at least 1)"),
    ],
)
def test_freeze_rejects_every_difference_naming_the_columns(tmp_path, columns, message):
    path = bronze(tmp_path, **columns)
    before = pq.read_table(path)
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        apply_contract(Contract(Mode.FREEZE, DECLARED), path)
    assert isinstance(raised.value, ValidationError)  # never retried, dead-lettered
    assert pq.read_table(path).equals(before)  # nothing half-written


def test_discard_drops_undeclared_columns_and_counts_their_values(tmp_path):
    path = bronze(tmp_path, **ADDED, note=["x", "y"])
    outcome = apply_contract(Contract(Mode.DISCARD, DECLARED), path)
    assert set(landed(path)) == {"order_id", "amount", "currency"}
    assert outcome.unexpected_columns == ["tip", "note"]
    assert outcome.discarded_values == 3  # tip has one value, note two
    assert "discarded undeclared tip, note" in outcome.describe()


@pytest.mark.parametrize("mode", [Mode.EVOLVE, Mode.DISCARD])
def test_a_value_that_does_not_fit_rejects_the_document_outside_rescue(tmp_path, mode):
    path = bronze(tmp_path, **RETYPED)
    with pytest.raises(ContractError, match=r"column amount is declared decimal\(12,2\).*'12.50 EUR'"):
        apply_contract(Contract(mode, DECLARED), path)


def test_values_are_read_as_the_document_wrote_them(tmp_path):
    path = bronze(
        tmp_path,
        zip=["08123", "00001"],
        when=["2026-11-01", " 2026-11-02 "],
        at=["2026-11-01T10:00:00Z", "2026-11-01T12:00:00+02:00"],
        paid=["true", "False"],
        amount=["12.505", ""],
    )
    contract = Contract(
        Mode.RESCUE,
        {"zip": "string", "when": "date", "at": "timestamptz", "paid": "boolean", "amount": "decimal(12,2)"},
    )
    apply_contract(contract, path)
    data = landed(path)
    assert data["zip"] == ["08123", "00001"]  # leading zeros kept
    assert data["when"] == [date(2026, 11, 1), date(2026, 11, 2)]
    assert [v.replace(tzinfo=None) for v in data["at"]] == [datetime(2026, 11, 1, 10), datetime(2026, 11, 1, 10)]
    assert data["paid"] == [True, False]
    # 12.505 does not fit two decimals (it would be rounded): rescued, not rounded; a blank is NULL, not a misfit.
    assert data["amount"] == [None, None]
    assert json.loads(data[RESCUED_COLUMN][0]) == {"amount": "12.505"}
    assert data[RESCUED_COLUMN][1] is None


def test_declared_names_match_ignoring_case_and_land_as_declared(tmp_path):
    path = bronze(tmp_path, Order_ID=["A"], AMOUNT=["1.5"], currency=["USD"])
    outcome = apply_contract(Contract(Mode.FREEZE, DECLARED), path)
    assert landed(path) == {"order_id": ["A"], "amount": [Decimal("1.50")], "currency": ["USD"]}
    assert outcome.unexpected_columns == []


def test_a_column_declared_without_a_type_lands_as_it_came(tmp_path):
    path = bronze(tmp_path, order_id=["A"], amount=[1.5], currency=["USD"])
    apply_contract(Contract(Mode.FREEZE, {"order_id": None, "amount": None, "currency": None}), path)
    assert pq.read_schema(path).field("amount").type == pa.float64()


def test_nothing_is_done_without_a_contract_or_without_rows(tmp_path):
    path = bronze(tmp_path, **ADDED)
    before = pq.read_table(path)
    assert apply_contract(Contract(), path) is None
    assert pq.read_table(path).equals(before)
    assert apply_contract(Contract(Mode.FREEZE, DECLARED), str(tmp_path / "none.parquet")) is None


@pytest.mark.parametrize(
    ("declared", "expected"),
    [("decimal(12,2)", pa.decimal128(12, 2)), ("NUMERIC(5)", pa.decimal128(5, 0)), ("bigint", pa.int64())],
)
def test_declared_types(declared, expected):
    assert arrow_type(declared) == expected


@pytest.mark.parametrize("declared", ["money", "decimal(40,2)", "decimal(2,3)"])
def test_an_unknown_type_is_refused(declared):
    with pytest.raises(ValueError, match="not a column type|a decimal needs"):
        arrow_type(declared)
