"""A warehouse no single document can break, on the local S3 server and without a schema contract: a value staging
cannot type (`12.50 EUR` in an amount) and a column named like staging's own `_bronze_file` land, and the
warehouse build over them succeeds with every good document's orders in the marts.

One ingestion and one dbt build (each costs seconds), checked by the functions the test calls.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

import dagster as dg
import pytest

from ingestion_project.failures.assets import ingestion_ledger
from ingestion_project.ingestion.assets import raw_documents
from tests.ingestion.test_raw_documents import run_batch, sensor_requests
from tests.transform.conftest import WarehouseBuild, build_warehouse

HEADER = "order_id,customer_id,order_date,status,amount,currency"


def orders(first: int, count: int, *, extra: str = "") -> list[str]:
    return [f"ORD-{n},C{n % 7},2026-11-0{1 + n % 5},placed,{n}.25,USD{extra}" for n in range(first, first + count)]


DOCUMENTS = {
    "01-good.csv": "\n".join([HEADER, *orders(100, 4)]),
    "02-bronze-file-column.csv": "\n".join([HEADER + ",_bronze_file", *orders(200, 3, extra=",from the document")]),
    # Row 1 (numbered from 0) holds the value that does not type; its other nine rows are good.
    "03-poison.csv": "\n".join(
        [HEADER, *orders(300, 1), "ORD-301,C1,2026-11-04,placed,12.50 EUR,EUR", *orders(302, 8)]
    ),
    "04-bad-date.ndjson": "\n".join(
        json.dumps(dict(zip(HEADER.split(","), row.split(","), strict=True)))
        for row in [*orders(400, 2), "ORD-402,C2,soon,placed,1.00,USD"]
    ),
    "05-good.ndjson": "\n".join(
        json.dumps(dict(zip(HEADER.split(","), row.split(","), strict=True))) for row in orders(500, 3)
    ),
}
HELD_BACK = {"03-poison.csv", "04-bad-date.ndjson"}
CUSTOMERS = "\n".join(
    [
        "customer_id,name,email,country,signed_up_at",
        *(f"C{n},Customer {n},c{n}@example.com,DE,2026-01-0{n + 1}" for n in range(7)),
    ]
)
IDS = {key: set(re.findall(r"ORD-\d+", body)) for key, body in DOCUMENTS.items()}


@dataclass(frozen=True)
class Landed:
    book: object
    materializations: dict
    build: WarehouseBuild


@pytest.fixture
def landed(s3_client, resources_for, write_sources, ledger_resource, tmp_path):
    """Ingest the documents without a contract, snapshot the ledger, and build the warehouse once."""
    landing, bronze = f"landing-{uuid.uuid4().hex[:12]}", f"bronze-{uuid.uuid4().hex[:12]}"
    for bucket in (landing, bronze):
        s3_client.create_bucket(Bucket=bucket)
    for key, body in DOCUMENTS.items():
        s3_client.put_object(Bucket=landing, Key=f"orders/{key}", Body=body.encode())
    s3_client.put_object(Bucket=landing, Key="customers/all.csv", Body=CUSTOMERS.encode())
    sources = [
        {"name": "orders", "type": "s3", "bucket": landing, "prefix": "orders/"},
        {"name": "customers", "type": "s3", "bucket": landing, "prefix": "customers/"},
    ]
    resources = resources_for(write_sources(sources, bronze_bucket=bronze))
    path = tmp_path / "warehouse.duckdb"
    with dg.DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as monkeypatch:
        for request in sensor_requests(resources, instance):
            assert run_batch(resources, instance, request).success
        records = instance.fetch_materializations(raw_documents.key, limit=100).records
        materializations = {
            r.asset_materialization.metadata["key"].value: r.asset_materialization.metadata for r in records
        }
        monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(path))
        assert dg.materialize([ingestion_ledger], resources={"ledger": ledger_resource}).success
        build = build_warehouse([f"s3://{bronze}/bronze"], path, monkeypatch)
    yield Landed(ledger_resource.ledger(), materializations, build)
    for bucket in (landing, bronze):
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=bucket, Key=item["Key"])
        s3_client.delete_bucket(Bucket=bucket)


def test_without_a_contract_an_untyped_value_and_a_bronze_file_column_break_no_build(landed: Landed):
    every_document_lands_and_the_build_succeeds_with_the_good_orders(landed)
    a_value_that_does_not_type_holds_its_document_back_and_shows_in_the_rejects(landed)
    a_column_named_bronze_file_lands_renamed_and_the_rename_is_in_the_schema_history(landed)


def every_document_lands_and_the_build_succeeds_with_the_good_orders(landed: Landed):
    statuses = {row["object_key"]: row["status"] for row in landed.book.versions()}
    assert statuses == {**{f"orders/{key}": "SUCCESS" for key in DOCUMENTS}, "customers/all.csv": "SUCCESS"}
    assert landed.build.result.success
    errors = [
        e.check_name
        for e in landed.build.result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert errors == []
    good = set().union(*(IDS[key] for key in DOCUMENTS if key not in HELD_BACK))
    assert {order_id for (order_id,) in landed.build.query("select order_id from fct_orders")} == good
    revenue = landed.build.query("select sum(revenue) from fct_daily_revenue")[0][0]
    expected = sum(Decimal(f"{n[4:]}.25") for n in good)
    assert revenue == expected
    assert landed.build.query("select count(*) from dim_customers") == [(7,)]


def a_value_that_does_not_type_holds_its_document_back_and_shows_in_the_rejects(landed: Landed):
    assert landed.build.query(
        "select dataset, object_key, source_row_number, column_name, rejected_value, document_row_count "
        "from fct_rejected_rows order by object_key"
    ) == [
        ("orders", "orders/03-poison.csv", 1, "amount", "12.50 EUR", 10),
        ("orders", "orders/04-bad-date.ndjson", 2, "order_date", "soon", 3),
    ]
    # Staging keeps every row, flagged; the marts hold the whole version back, not just the bad row.
    flagged = landed.build.query(
        "select object_key, count(*) from stg_bronze__orders where is_rejected_version group by 1 order by 1"
    )
    assert flagged == [("orders/03-poison.csv", 10), ("orders/04-bad-date.ndjson", 3)]
    warned = {
        e.check_name: e
        for e in landed.build.result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("fct_rejected_rows")
    }
    assert not warned["warn_rejected_rows"].passed
    assert warned["warn_rejected_rows"].severity == dg.AssetCheckSeverity.WARN


def a_column_named_bronze_file_lands_renamed_and_the_rename_is_in_the_schema_history(landed: Landed):
    assert landed.build.query(
        "select order_id, _bronze_file_1 from stg_bronze__orders where _bronze_file_1 is not null order by 1"
    ) == [(f"ORD-{n}", "from the document") for n in range(200, 203)]
    changes = landed.build.query(
        "select object_key, renamed_count, cast(columns_renamed as varchar) from fct_schema_changes "
        "where renamed_count > 0"
    )
    assert changes == [("orders/02-bronze-file-column.csv", 1, '[{"from":"_bronze_file","to":"_bronze_file_1"}]')]
    metadata = landed.materializations["orders/02-bronze-file-column.csv"]
    assert metadata["renamed_columns"].value == {"_bronze_file": "_bronze_file_1"}
    assert "renamed_columns" not in landed.materializations["orders/01-good.csv"]
