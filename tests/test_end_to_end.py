"""Upload → discovery sensor → ingestion runs → bronze on S3 → warehouse sensor → dbt build → marts, for real.

Runs the same pass as `make demo` against the session's local S3 server, with the shipped sources file.
"""

import csv
import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion_project.devtools.demo import run_pass
from ingestion_project.devtools.seed import DEFAULT_SAMPLES_DIR, seed

ORDERS_DIR = DEFAULT_SAMPLES_DIR / "landing" / "orders"


def sample_orders() -> list[dict]:
    """The good sample orders, read independently of the pipeline."""
    rows: list[dict] = []
    for path in sorted(ORDERS_DIR.iterdir()):
        if "broken" in path.name:
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".csv", ".tsv"):
            rows += csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ",")
        elif path.suffix == ".ndjson":
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows += json.loads(text)
    return rows


def eligible_revenue(rows: list[dict]) -> Decimal:
    return sum((Decimal(str(r["amount"])) for r in rows if r["status"] not in ("cancelled", "returned")), Decimal("0"))


@pytest.fixture
def pipeline(s3_client, tmp_path, monkeypatch):
    yield from _pipeline(s3_client, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'ledger.sqlite'}", {})


@pytest.fixture
def postgres_pipeline(s3_client, tmp_path, monkeypatch, postgres_url):
    # Production shape: Dagster's storage (dagster-postgres) and the ledger (schema "ingestion") on one server.
    storage = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    yield from _pipeline(s3_client, tmp_path, monkeypatch, postgres_url, storage)


def _pipeline(s3_client, tmp_path, monkeypatch, ledger_url: str, instance_config: dict):
    monkeypatch.setenv("INGESTION_LEDGER_URL", ledger_url)
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("INGESTION_SOURCES_FILE", raising=False)
    for bucket in ("landing", "docs", "bronze"):
        # The shipped sources file names these buckets; start each test from empty ones.
        if bucket in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}:
            s3_client.delete_bucket(Bucket=bucket)
    uploaded = seed(s3_client, DEFAULT_SAMPLES_DIR)
    from ingestion_project.definitions import defs

    home = tmp_path / "dagster"
    home.mkdir()
    overrides = {"telemetry": {"enabled": False}, **instance_config}
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        yield defs, instance, uploaded, tmp_path / "warehouse.duckdb"


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_samples_flow_from_upload_to_marts(pipeline, s3_client):
    defs, instance, uploaded, warehouse = pipeline
    etags_before = {key: s3_client.head_object(Bucket=b, Key=key)["ETag"] for b, key in uploaded}

    report = run_pass(defs, instance)

    assert len(report.requested) == len(uploaded) == 8
    assert list(report.failures) == ["orders:landing/orders/2026-11-05-broken.csv"]
    assert "CSV line 4 has 8 fields but the header has 6" in report.failures[report.requested[4]]
    assert report.warehouse_succeeded and report.checks and all(report.checks.values())
    manifests = s3_client.list_objects_v2(Bucket="bronze", Prefix="bronze/documents/")["Contents"]
    assert len(manifests) == 7
    # Sources are only read: every sample is still there, unchanged.
    assert {key: s3_client.head_object(Bucket=b, Key=key)["ETag"] for b, key in uploaded} == etags_before

    orders = sample_orders()
    [(order_count, revenue)] = query(warehouse, "select sum(order_count), sum(revenue) from fct_daily_revenue")
    assert order_count == len(orders) == 30
    assert revenue == eligible_revenue(orders)
    assert query(warehouse, "select count(*) from dim_customers") == [(8,)]
    versions = query(warehouse, "select source, object_key from fct_document_versions order by 1, 2")
    assert ("notes", "notes/2026/release notes – ü.md") in versions
    assert len(versions) == 7


def test_overwritten_document_is_reprocessed_once_and_replaces_its_rows(pipeline, s3_client):
    defs, instance, _, warehouse = pipeline
    first = run_pass(defs, instance)
    assert first.warehouse_succeeded

    unchanged = run_pass(defs, instance)
    assert unchanged.requested == [] and "0 new or changed, 8 already known" in unchanged.skip_reason

    s3_client.put_object(
        Bucket="landing",
        Key="orders/2026-11-01.csv",
        Body=b"order_id,customer_id,order_date,status,amount,currency\nORD-1001,C001,2026-11-01,placed,5.00,USD\n",
    )
    second = run_pass(defs, instance)
    assert second.requested == ["orders:landing/orders/2026-11-01.csv"]
    assert second.failures == {} and second.warehouse_succeeded

    assert query(warehouse, "select order_count, revenue from fct_daily_revenue where order_date = '2026-11-01'") == [
        (1, Decimal("5.00"))
    ]
    versions = query(
        warehouse,
        "select count(*), count(*) filter (where is_latest_version) from fct_document_versions "
        "where object_key = 'orders/2026-11-01.csv'",
    )
    assert versions == [(2, 1)]


def test_sensor_and_runs_on_a_dagster_postgres_instance(postgres_pipeline, postgres_url):
    import sqlalchemy as sa

    defs, instance, uploaded, warehouse = postgres_pipeline
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    report = run_pass(defs, instance)
    assert len(report.requested) == len(uploaded)
    assert list(report.failures) == ["orders:landing/orders/2026-11-05-broken.csv"]
    assert report.warehouse_succeeded
    assert len(instance.get_materialized_partitions(dg.AssetKey("raw_documents"))) == 7
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("select status, count(*) from ingestion.processed_files group by status")).all()
        )
        letters = conn.execute(sa.text("select object_key, error_class, state from ingestion.dead_letters")).all()
    engine.dispose()
    assert statuses == {"SUCCESS": 7, "FAILED": 1}
    assert letters == [("orders/2026-11-05-broken.csv", "validation", "open")]
    assert query(
        warehouse, "select source, discovered_count, is_balanced from fct_ingestion_conservation order by 1"
    ) == [
        ("customers", 1, True),
        ("notes", 2, True),
        ("orders", 5, True),
    ]
