"""Schema contracts end to end, on the local S3 server: a drifting series of orders documents and the poison value
"12.50 EUR" are ingested under each mode, and the warehouse built over what landed succeeds with every good
document's orders in the marts."""

from __future__ import annotations

import json
import re
import uuid

import dagster as dg
import pytest

from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.lib.versions import DocumentVersion
from tests.ingestion.test_raw_documents import run_batch, sensor_requests
from tests.transform.conftest import build_warehouse

HEADER = "order_id,customer_id,order_date,status,amount,currency"


def version_of(book, key: str) -> DocumentVersion:
    return DocumentVersion.from_row(next(row for row in book.versions() if row["object_key"] == key))


def orders(first: int, count: int, *, extra: str = "") -> list[str]:
    return [f"ORD-{n},C{n % 7},2026-11-0{1 + n % 5},placed,{n}.25,USD{extra}" for n in range(first, first + count)]


# The drifting series, in upload order: as declared; a column added; a column removed; a value that does not fit.
DOCUMENTS = {
    "01-declared.csv": "\n".join([HEADER, *orders(100, 4)]),
    "02-added.csv": "\n".join([HEADER + ",tip", *orders(200, 4, extra=",1.50")]),
    "03-removed.csv": "\n".join([HEADER.removesuffix(",currency"), *(r.removesuffix(",USD") for r in orders(300, 4))]),
    "04-poison.csv": "\n".join([HEADER, "ORD-400,C1,2026-11-04,placed,12.50 EUR,EUR", *orders(401, 9)]),
    "05-declared.ndjson": "\n".join(
        json.dumps(dict(zip(HEADER.split(","), row.split(","), strict=True))) for row in orders(500, 3)
    ),
}
CUSTOMERS = "\n".join(
    [
        "customer_id,name,email,country,signed_up_at",
        *(f"C{n},Customer {n},c{n}@example.com,DE,2026-01-0{n + 1}" for n in range(7)),
    ]
)
COLUMNS = {
    "order_id": "string",
    "customer_id": "string",
    "order_date": "date",
    "status": "string",
    "amount": "decimal(12,2)",
    "currency": "string",
}
IDS = {key: set(re.findall(r"ORD-\d+", body)) for key, body in DOCUMENTS.items()}

# mode -> the documents that fail (all others land)
FAILING = {
    "evolve": {"04-poison.csv"},
    "rescue": set(),
    "freeze": {"02-added.csv", "03-removed.csv", "04-poison.csv"},
    "discard": {"04-poison.csv"},
}


@pytest.fixture
def landed(request, s3_client, fresh_bucket, write_sources, resources_for, ledger_resource, tmp_path, monkeypatch):
    """Ingest the series under a contract in ``request.param`` mode; build the warehouse over the bronze."""
    mode = request.param
    bronze_bucket = f"bronze-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bronze_bucket)
    for key, body in DOCUMENTS.items():
        s3_client.put_object(Bucket=fresh_bucket, Key=f"orders/{key}", Body=body.encode())
    s3_client.put_object(Bucket=fresh_bucket, Key="customers/all.csv", Body=CUSTOMERS.encode())
    source = {
        "name": "orders",
        "type": "s3",
        "bucket": fresh_bucket,
        "prefix": "orders/",
        "schema": {"mode": mode, "columns": COLUMNS},
    }
    customers = {"name": "customers", "type": "s3", "bucket": fresh_bucket, "prefix": "customers/"}
    resources = resources_for(write_sources([source, customers], bronze_bucket=bronze_bucket))
    with dg.DagsterInstance.ephemeral() as instance:
        for request_ in sensor_requests(resources, instance):
            run_batch(resources, instance, request_)
        records = instance.fetch_materializations(raw_documents.key, limit=100).records
        materializations = {
            r.asset_materialization.metadata["key"].value: r.asset_materialization.metadata for r in records
        }
    build = build_warehouse([f"s3://{bronze_bucket}/bronze"], tmp_path / "warehouse.duckdb", monkeypatch)
    yield mode, ledger_resource.ledger(), materializations, build
    s3_client.delete_bucket(Bucket=bronze_bucket)


@pytest.mark.parametrize("landed", list(FAILING), indirect=True)
def test_each_mode_decides_the_drifting_series_at_ingestion_and_the_warehouse_builds(landed):
    mode, book, materializations, build = landed
    outcomes = {row["object_key"].removeprefix("orders/"): row for row in book.versions() if row["source"] == "orders"}
    failed = {key for key, row in outcomes.items() if row["status"] == "FAILED"}
    assert failed == FAILING[mode]
    assert {key for key, row in outcomes.items() if row["status"] == "SUCCESS"} == set(DOCUMENTS) - failed
    for key in failed:  # a validation failure, dead-lettered with the reason, never retried
        assert (outcomes[key]["error_class"], outcomes[key]["error_type"], outcomes[key]["tries"]) == (
            "validation",
            "ContractError",
            0,
        )
    letters = {letter["object_key"].removeprefix("orders/"): letter for letter in book.dead_letter_rows()}
    assert set(letters) == failed
    if "04-poison.csv" in failed:
        assert "column amount is declared decimal(12,2)" in letters["04-poison.csv"]["error_message"]
        assert "'12.50 EUR'" in letters["04-poison.csv"]["error_message"]

    # The build succeeds with every good document's orders in the marts.
    assert build.result.success
    expected = set().union(*(IDS[key] for key in DOCUMENTS if key not in failed))
    assert {order_id for (order_id,) in build.query("select order_id from fct_orders")} == expected
    errors = [
        e.check_name
        for e in build.result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert not errors
    # The contract is recorded with each landed version's schema, and shown on its materialization.
    contracts = {
        row["object_key"].removeprefix("orders/"): json.loads(row["contract_json"])
        for row in book.schema_version_rows()
        if row["source"] == "orders"
    }
    assert set(contracts) == set(DOCUMENTS) - failed
    assert {c["mode"] for c in contracts.values()} == {mode}
    assert materializations["orders/01-declared.csv"]["contract"].value == f"{mode}: as declared"
    declared = book.schema_version(DocumentVersion.from_row(outcomes["01-declared.csv"]))
    assert json.loads(declared["contract_json"])["rescued_rows"] == 0
    # What each mode did with the drift, in staging and in the records (one ingestion and build per mode).
    MODE_CHECKS.get(mode, lambda *_: None)(book, materializations, build)


def evolve_lets_a_new_column_reach_staging(book, materializations, build):
    assert build.query("select order_id, tip from stg_bronze__orders where tip is not null order by 1") == [
        (f"ORD-{n}", "1.5") for n in range(200, 204)
    ]
    assert build.query("select count(*) from stg_bronze__orders where currency is null") == [(4,)]  # 03-removed
    assert "kept undeclared tip" in materializations["orders/02-added.csv"]["contract"].value


def rescue_keeps_the_poison_row_with_its_value_in_rescued_data(book, materializations, build):
    assert build.query("select amount, rescued_data from stg_bronze__orders where order_id = 'ORD-400'") == [
        (None, '{"amount": "12.50 EUR"}')
    ]
    rescued = build.query("select rescued_data from stg_bronze__orders where order_id like 'ORD-2%' order by 1")
    assert rescued == [('{"tip": "1.5"}',)] * 4
    assert materializations["orders/04-poison.csv"]["rescued_rows"].value == 1
    # The schema history keeps the document's own columns (amount as text; what it is retyped against depends on
    # which version landed before it), and what the contract did with it.
    poison = book.schema_version(version_of(book, "orders/04-poison.csv"))
    assert {c["name"]: c["type"] for c in json.loads(poison["columns_json"])}["amount"] == "string"
    assert json.loads(poison["contract_json"])["rescued_values"] == 1


def discard_drops_the_new_column_and_records_how_much(book, materializations, build):
    columns = {
        name
        for (name,) in build.query(
            "select column_name from information_schema.columns where table_name = 'stg_bronze__orders'"
        )
    }
    assert "tip" not in columns
    assert materializations["orders/02-added.csv"]["discarded_values"].value == 4
    added = book.schema_version(version_of(book, "orders/02-added.csv"))
    assert json.loads(added["contract_json"])["unexpected_columns"] == ["tip"]


MODE_CHECKS = {
    "evolve": evolve_lets_a_new_column_reach_staging,
    "rescue": rescue_keeps_the_poison_row_with_its_value_in_rescued_data,
    "discard": discard_drops_the_new_column_and_records_how_much,
}
