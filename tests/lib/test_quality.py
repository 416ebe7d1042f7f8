"""Quality rules on a document's parsed rows: each passes on good rows and fails on bad ones, naming the rule."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.errors import QualityError, ValidationError
from ingestion_project.lib.quality import QualityRules, check_quality

ORDERS = pa.table(
    {
        "order_id": ["O-1", "O-2", "O-3"],
        "status": ["placed", "shipped", "placed"],
        "amount": [10.5, 0.0, 99.0],
        "note": ["a", "", None],
    }
)


@pytest.fixture
def bronze(tmp_path):
    def write(table: pa.Table = ORDERS) -> str:
        path = str(tmp_path / "data.parquet")
        pq.write_table(table, path)
        return path

    return write


@pytest.mark.parametrize(
    "rules",
    [
        QualityRules(required_columns=("order_id", "amount")),
        QualityRules(not_null=("order_id", "amount")),
        QualityRules(unique=(("order_id",), ("order_id", "status"))),
        QualityRules(accepted_values={"status": ("placed", "shipped")}),
        QualityRules(ranges={"amount": (0, 100)}),
        QualityRules(ranges={"amount": (None, 99)}),
        QualityRules(min_rows=3),
    ],
    ids=["required", "not-null", "unique", "accepted", "range", "max-only", "min-rows"],
)
def test_good_rows_pass_each_rule(bronze, rules):
    check_quality(rules, bronze())


@pytest.mark.parametrize(
    ("rules", "rule", "message"),
    [
        (
            QualityRules(required_columns=("order_id", "customer_id")),
            "required_columns",
            "missing column(s) customer_id",
        ),
        (QualityRules(not_null=("note",)), "not_null", "column note has 2 empty value(s) (first at row 1)"),
        (QualityRules(unique=(("status",),)), "unique", "1 value(s) of (status) occur more than once"),
        (QualityRules(accepted_values={"status": ("placed",)}), "accepted_values", "1 value(s) outside ['placed']"),
        (
            QualityRules(ranges={"amount": (1, None)}),
            "ranges",
            "column amount has 1 value(s) outside [1, ] (first at row 1)",
        ),
        (QualityRules(ranges={"status": (0, 1)}), "ranges", "column status is not numeric"),
        (QualityRules(min_rows=4), "min_rows", "3 rows, fewer than 4"),
    ],
    ids=["required", "not-null", "unique", "accepted", "range", "not-numeric", "min-rows"],
)
def test_a_broken_rule_is_a_quality_error_naming_it(bronze, rules, rule, message):
    with pytest.raises(QualityError, match=r"^quality rule " + rule) as info:
        check_quality(rules, bronze())
    assert message in str(info.value)
    assert info.value.rule == rule
    assert isinstance(info.value, ValidationError)  # never retried


def test_no_rules_are_inactive():
    assert not QualityRules().active
    assert QualityRules(min_rows=1).active
