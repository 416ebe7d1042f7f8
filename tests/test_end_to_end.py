"""Upload → discovery sensor → batch ingestion runs → bronze on S3 → warehouse sensor → dbt build → marts, for real.

Runs the same pass as `make demo` against the session's local S3 server, with the shipped sources file: each run
the sensor requests is launched with the request's run config (its pinned versions) and tags. What each run pinned
is read back from the instance, as the UI shows it.
"""

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from devtools.demo import PassReport, run_pass
from devtools.seed import DEFAULT_SAMPLES_DIR, seed
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.ingestion.batches import BATCH_TAG, DOCUMENTS_TAG, SOURCE_TAG
from ingestion_project.lib.keys import DocumentRef

ORDERS_DIR = DEFAULT_SAMPLES_DIR / "landing" / "orders"
BROKEN = ("landing", "orders/2026-11-05-broken.csv")
BROKEN_PARTITION = DocumentRef("orders", *BROKEN).partition_key
ASSET = dg.AssetKey("raw_documents")


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


def amount(row: dict) -> Decimal | None:
    """The row's amount; None for one the orders contract rescues (it does not fit decimal(12,2))."""
    try:
        return Decimal(str(row["amount"]))
    except ArithmeticError:
        return None


def eligible_revenue(rows: list[dict]) -> Decimal:
    eligible = (amount(r) for r in rows if r["status"] not in ("cancelled", "returned"))
    return sum((a for a in eligible if a is not None), Decimal("0"))


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
    from devtools.workspace import workspace_definitions

    defs = workspace_definitions()

    home = tmp_path / "dagster"
    home.mkdir()
    overrides = {"telemetry": {"enabled": False}, **instance_config}
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        yield defs, instance, uploaded, tmp_path / "warehouse.duckdb"


def batch_runs(instance: dg.DagsterInstance, report: PassReport) -> dict[str, dg.DagsterRun]:
    """The run launched for each request of the pass, found by its batch tag."""
    runs = {}
    for run_key in report.requested:
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: run_key}))
        runs[run_key] = run
    return runs


def pinned(run: dg.DagsterRun) -> list[dict]:
    return run.run_config["ops"]["raw_documents"]["config"]["versions"]


def assert_every_upload_pinned_once_in_one_batch_per_source(runs: dict[str, dg.DagsterRun], etags: dict) -> None:
    versions = [v for run in runs.values() for v in pinned(run)]
    assert Counter((v["bucket"], v["key"]) for v in versions) == Counter(dict.fromkeys(etags, 1))
    assert {(v["bucket"], v["key"]): v["etag"] for v in versions} == {k: e.strip('"') for k, e in etags.items()}
    for run in runs.values():
        assert {v["source"] for v in pinned(run)} == {run.tags[SOURCE_TAG]}
        assert run.tags[DOCUMENTS_TAG] == str(len(pinned(run)))
    # The samples are far below a batch: one run per source.
    assert sorted(run.tags[SOURCE_TAG] for run in runs.values()) == sorted({v["source"] for v in versions})


def assert_only_the_broken_sample_failed(report: PassReport, runs: dict[str, dg.DagsterRun]) -> None:
    """One run failed: the one carrying the broken sample, naming it (and only it) and its reason."""
    [(run_key, description)] = report.failures.items()
    assert BROKEN in {(v["bucket"], v["key"]) for v in pinned(runs[run_key])}
    assert description.startswith(f"1 of {len(pinned(runs[run_key]))} document(s) failed")
    assert f"{BROKEN_PARTITION}: ValidationError: CSV line 4 has 8 fields but the header has 6" in description
    assert all(run.is_success for key, run in runs.items() if key != run_key)


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_samples_flow_from_upload_through_batch_runs_to_marts(pipeline, s3_client):
    defs, instance, uploaded, warehouse = pipeline
    etags_before = {key: s3_client.head_object(Bucket=b, Key=key)["ETag"] for b, key in uploaded}

    report = run_pass(defs, instance)

    runs = batch_runs(instance, report)
    assert len(uploaded) == 10
    assert_every_upload_pinned_once_in_one_batch_per_source(runs, {(b, key): etags_before[key] for b, key in uploaded})
    assert_only_the_broken_sample_failed(report, runs)
    assert report.warehouse_succeeded and report.checks and all(report.checks.values())
    # Warnings, not failures: the rescued amount (null, under the 5 % that would stop the build) and its currency.
    assert sorted(report.warnings) == [
        "stg_bronze__orders:accepted_values_stg_bronze__orders_currency__USD",
        "stg_bronze__orders:null_percentage_stg_bronze__orders_amount",
    ]
    # Per document, the partition says what happened, though its whole batch run failed.
    partitions = [
        DocumentRef(v["source"], v["bucket"], v["key"]).partition_key for r in runs.values() for v in pinned(r)
    ]
    status = instance.get_status_by_partition(ASSET, partitions, documents_partitions)
    assert {p for p, s in status.items() if s == dg.AssetPartitionStatus.FAILED} == {BROKEN_PARTITION}
    assert {p for p, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED} == set(partitions) - {
        BROKEN_PARTITION
    }
    manifests = s3_client.list_objects_v2(Bucket="bronze", Prefix="bronze/documents/")["Contents"]
    assert len(manifests) == 9
    # Sources are only read: every sample is still there, unchanged.
    assert {key: s3_client.head_object(Bucket=b, Key=key)["ETag"] for b, key in uploaded} == etags_before

    orders = sample_orders()
    [(order_count, revenue)] = query(warehouse, "select sum(order_count), sum(revenue) from fct_daily_revenue")
    assert order_count == len(orders) == 37
    assert revenue == eligible_revenue(orders)
    # The orders contract rescued the drifting file's new column and the amount "12.50 EUR": the rows are there.
    rescued = query(warehouse, "select order_id, amount, rescued_data from stg_bronze__orders where rescued_data <> ''")
    assert sorted(rescued) == [
        ("ORD-1035", Decimal("88.00"), '{"coupon": "WELCOME10"}'),
        ("ORD-1037", Decimal("19.90"), '{"coupon": "FREESHIP"}'),
        ("ORD-1038", None, '{"amount": "12.50 EUR"}'),
    ]
    assert query(warehouse, "select count(*) from dim_customers") == [(8,)]
    versions = query(warehouse, "select source, object_key from fct_document_versions order by 1, 2")
    assert ("notes", "notes/2026/release notes – ü.md") in versions
    assert len(versions) == 9


def test_overwritten_document_is_reprocessed_once_and_replaces_its_rows(pipeline, s3_client):
    defs, instance, _, warehouse = pipeline
    first = run_pass(defs, instance)
    assert first.warehouse_succeeded

    unchanged = run_pass(defs, instance)
    assert unchanged.requested == [] and "0 new or changed, 10 already known" in unchanged.skip_reason

    s3_client.put_object(
        Bucket="landing",
        Key="orders/2026-11-01.csv",
        Body=b"order_id,customer_id,order_date,status,amount,currency\nORD-1001,C001,2026-11-01,placed,5.00,USD\n",
    )
    new_etag = s3_client.head_object(Bucket="landing", Key="orders/2026-11-01.csv")["ETag"].strip('"')
    second = run_pass(defs, instance)
    [run] = batch_runs(instance, second).values()
    assert [(v["bucket"], v["key"], v["etag"]) for v in pinned(run)] == [("landing", "orders/2026-11-01.csv", new_etag)]
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


def test_sensor_and_batch_runs_on_a_dagster_postgres_instance(postgres_pipeline, postgres_url, s3_client):
    import sqlalchemy as sa

    defs, instance, uploaded, warehouse = postgres_pipeline
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    etags = {(bucket, key): s3_client.head_object(Bucket=bucket, Key=key)["ETag"] for bucket, key in uploaded}
    report = run_pass(defs, instance)
    runs = batch_runs(instance, report)
    assert_every_upload_pinned_once_in_one_batch_per_source(runs, etags)
    assert_only_the_broken_sample_failed(report, runs)
    assert report.warehouse_succeeded
    assert len(instance.get_materialized_partitions(dg.AssetKey("raw_documents"))) == 9
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("select status, count(*) from ingestion.processed_files group by status")).all()
        )
        letters = conn.execute(sa.text("select object_key, error_class, state from ingestion.dead_letters")).all()
    engine.dispose()
    assert statuses == {"SUCCESS": 9, "FAILED": 1}
    assert letters == [("orders/2026-11-05-broken.csv", "validation", "open")]
    assert query(
        warehouse, "select source, discovered_count, is_balanced from fct_ingestion_conservation order by 1"
    ) == [
        ("customers", 1, True),
        ("notes", 2, True),
        ("orders", 7, True),
    ]
