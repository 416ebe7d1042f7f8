"""dbt build over bronze written to disk: the marts, the latest-version logic, the checks, empty bronze."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ingestion_project.transform.assets import warehouse_dbt_assets
from tests.transform import bronze_fixture
from tests.transform.conftest import WarehouseBuild, build_warehouse

MARTS = ("fct_document_versions", "fct_daily_ingestion", "dim_customers", "fct_orders", "fct_daily_revenue")


def test_daily_revenue_excludes_cancelled_returned_and_replaced_orders(built_warehouse: WarehouseBuild):
    rows = built_warehouse.query(
        "select order_date, order_count, revenue, customer_count from fct_daily_revenue order by order_date"
    )

    assert {day: (orders, revenue, customers) for day, orders, revenue, customers in rows} == (
        bronze_fixture.EXPECTED_DAILY_REVENUE
    )


def test_orders_come_only_from_the_latest_version_of_each_document(built_warehouse: WarehouseBuild):
    orders = dict(built_warehouse.query("select order_id, etag from fct_orders"))

    assert set(orders) == bronze_fixture.EXPECTED_ORDER_IDS
    assert "ORD-1003" not in orders  # only in the first version of orders/2026-01.csv
    assert "ORD-9999" not in orders  # only in a newer data file whose manifest never landed
    # e1a finished ingesting after e1b, but e1b is the object's newer version (LastModified): e1b wins.
    assert orders["ORD-1001"] == "e1b"
    assert built_warehouse.query("select amount, status from fct_orders where order_id = 'ORD-1001'") == [
        (Decimal("120.00"), "delivered")
    ]


def test_orders_files_with_different_column_types_share_one_schema(built_warehouse: WarehouseBuild):
    columns = dict(
        built_warehouse.query(
            "select column_name, data_type from information_schema.columns where table_name = 'fct_orders'"
        )
    )

    assert columns["order_date"] == "DATE"
    assert columns["amount"] == "DECIMAL(12,2)"
    assert built_warehouse.query("select amount from fct_orders where order_id = 'ORD-2001'") == [(Decimal("200.00"),)]


def test_customers_mart_joins_current_orders(built_warehouse: WarehouseBuild):
    rows = built_warehouse.query(
        "select customer_id, order_count, lifetime_revenue from dim_customers order by customer_id"
    )

    assert rows == [
        ("C001", 2, Decimal("135.00")),
        ("C002", 2, Decimal("200.00")),
        ("C003", 2, Decimal("30.25")),
    ]


def test_document_versions_flag_only_the_newest_version_as_latest(built_warehouse: WarehouseBuild):
    rows = built_warehouse.query(
        "select object_key, etag, is_latest_version from fct_document_versions order by object_key, etag"
    )

    assert rows == [
        ("customers/customers.json", "c1", True),
        ("guides/ops runbook.md", "t1", True),
        ("orders/2026-01.csv", "e1a", False),
        ("orders/2026-01.csv", "e1b", True),
        ("orders/2026-02.ndjson", "f1-2", True),
    ]
    [(version_id,)] = built_warehouse.query("select document_version_id from fct_document_versions where etag = 'e1b'")
    [(expected,)] = built_warehouse.query("select md5('orders|landing|orders/2026-01.csv|e1b')")
    assert version_id == expected


def test_daily_ingestion_sums_documents_bytes_and_records_per_source_and_day(built_warehouse: WarehouseBuild):
    rows = built_warehouse.query(
        "select source, cast(ingested_date as varchar), document_count, size_bytes, record_count "
        "from fct_daily_ingestion order by 1, 2"
    )

    assert rows == [
        ("customers", "2026-01-31", 1, 1003, 3),
        ("notes", "2026-02-01", 1, 1002, 2),
        ("orders", "2026-02-01", 3, 3009, 9),  # the slow first January version finished on Feb 1 too
    ]


def test_text_chunks_are_read_from_a_second_root(built_warehouse: WarehouseBuild):
    rows = built_warehouse.query("select source, chunk_index from stg_bronze__text_chunks order by chunk_index")

    assert rows == [("notes", 0), ("notes", 1)]


def test_dbt_tests_are_reported_as_passing_asset_checks(built_warehouse: WarehouseBuild):
    evaluations = built_warehouse.result.get_asset_check_evaluations()
    by_name = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations}

    assert built_warehouse.result.success
    assert len(evaluations) == len(warehouse_dbt_assets.check_keys)  # every dbt test ran as a check
    assert all(by_name.values()), [name for name, passed in by_name.items() if not passed]
    assert by_name[("fct_orders", "unique_fct_orders_order_id")]
    assert by_name[("fct_orders", "relationships_fct_orders_customer_id__customer_id__ref_dim_customers_")]
    assert by_name[("fct_daily_revenue", "assert_daily_revenue_matches_eligible_orders")]
    assert by_name[("fct_orders", "assert_order_amounts_are_not_negative")]


def test_every_model_is_materialized(built_warehouse: WarehouseBuild):
    materialized = {m.asset_key.to_user_string() for m in built_warehouse.result.get_asset_materialization_events()}

    assert materialized >= set(MARTS) | {"stg_bronze__orders", "stg_bronze__text_chunks"}


@pytest.mark.parametrize("with_empty_root", [True, False], ids=["empty-root", "no-roots"])
def test_empty_bronze_builds_empty_marts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_empty_root: bool):
    roots = [str(tmp_path / "bronze")] if with_empty_root else []
    (tmp_path / "bronze").mkdir()

    build = build_warehouse(roots, tmp_path / "nested" / "warehouse.duckdb", monkeypatch)

    assert build.result.success
    assert all(e.passed for e in build.result.get_asset_check_evaluations())
    for mart in MARTS:
        assert build.query(f"select count(*) from {mart}") == [(0,)]
    assert build.query(
        "select data_type from information_schema.columns where table_name = 'fct_orders' and column_name = 'amount'"
    ) == [("DECIMAL(12,2)",)]


def test_latest_version_follows_last_modified_then_discovery_order_not_ingestion_time(
    built_warehouse: WarehouseBuild,
):
    rows = built_warehouse.query(
        "select etag, discovery_seq, is_latest_version from fct_document_versions "
        "where object_key = 'orders/2026-01.csv' order by etag"
    )
    assert rows == [("e1a", 1, False), ("e1b", 3, True)]  # e1a was ingested last, and is still not the latest
    # customers' manifest predates discovery_seq: read as null, the build still works.
    assert built_warehouse.query("select discovery_seq from fct_document_versions where source = 'customers'") == [
        (None,)
    ]
