"""Database sources against a real PostgreSQL, landing in the local S3 server's bronze: full and incremental loads
(inserts and updates after the watermark), a watermark reset, an integer and a numeric watermark, a custom query,
a value that does not fit its type (rescued, or a failure naming it), rows committed late below the watermark
(watermark_lag), and failures that leave no partial bronze — each checked against the source table."""

from __future__ import annotations

import decimal
import io
import json

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ingestion_project.core.keys import table_asset_key
from ingestion_project.databases.assets import database_assets
from ingestion_project.transform.assets import WarehouseTranslator
from tests.transform.conftest import build_warehouse

URL_ENV = "SHOP_DATABASE_URL"
PAYMENTS = """
    create table payments (
        id bigserial primary key,
        order_id text not null,
        amount numeric(12, 2) not null,
        status text not null,
        updated_at timestamptz not null default now()
    )
"""


@pytest.fixture
def shop(postgres_url, monkeypatch):
    """The source database: a payments table of 250 rows, and its URL in the environment the sources file names."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(PAYMENTS))
        conn.execute(
            sa.text(
                "insert into payments (order_id, amount, status, updated_at) "
                "select 'ORD-' || n, n * 1.25, 'paid', timestamptz '2026-11-01 00:00+00' + n * interval '1 minute' "
                "from generate_series(1, 250) as n"
            )
        )
    monkeypatch.setenv(URL_ENV, postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def landing(s3_env, s3_client, fresh_bucket, write_sources, resources_for, tmp_path):
    """Definitions for a sources file with the `shop` database source (``tables``), bronze in a fresh bucket."""

    def setup(*tables: dict):
        inbox = tmp_path / "unused-inbox"
        inbox.mkdir(exist_ok=True)
        path = write_sources(
            [{"name": "inbox", "type": "local", "path": str(inbox)}],
            bronze_bucket=fresh_bucket,
            databases=[
                {"name": "shop", "type": "postgres", "url_env": URL_ENV, "tables": list(tables), "retries": FAST}
            ],
        )
        resources = resources_for(path)
        settings = resources["ingestion"].settings()
        return resources, {a.key: a for a in database_assets(settings)}

    return setup


FAST = {
    "transient": {"max_retries": 2, "delay_seconds": 0.1, "max_delay_seconds": 0.2},
    "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
}
INCREMENTAL = {"name": "payments", "table": "public.payments", "load": "incremental", "watermark": "updated_at"}


def extract(resources, assets, table="payments", instance=None, **config):
    key = table_asset_key("shop", table)
    run_config = {"ops": {assets[key].op.name: {"config": config}}} if config else None
    return dg.materialize(
        [assets[key]], resources=resources, instance=instance, run_config=run_config, raise_on_error=False
    )


def bronze_rows(s3_client, bucket, path: str) -> list[dict]:
    key = path.removeprefix(f"s3://{bucket}/")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def metadata(result) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def data_keys(s3_client, bucket) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="bronze/tables/shop/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_full_load_lands_every_row_as_bronze_and_records_it_like_a_document(
    shop, landing, s3_client, fresh_bucket, ledger_resource
):
    resources, assets = landing({"name": "payments", "load": "full"})
    result = extract(resources, assets)
    assert result.success
    facts = metadata(result)
    rows = bronze_rows(s3_client, fresh_bucket, facts["bronze_path"])
    with shop.connect() as conn:
        source = conn.execute(sa.text("select id, order_id, amount from payments order by id")).all()
    assert [(r["id"], r["order_id"], r["amount"]) for r in rows] == [tuple(r) for r in source]
    assert {r["_object_key"] for r in rows} == {"payments"} and rows[0]["_row_number"] == 0  # 0-based, as for documents
    [row] = ledger_resource.ledger().versions()
    assert (row["status"], row["records_ingested"], row["bucket"], row["object_key"]) == (
        "SUCCESS",
        250,
        "postgres",
        "payments",
    )
    assert row["sha256"] == facts["sha256"] and len(row["sha256"]) == 64
    # The schema history holds the extraction's columns, as for a document.
    [schema] = ledger_resource.ledger().schema_version_rows()
    assert [c["name"] for c in json.loads(schema["columns_json"])] == [
        "id",
        "order_id",
        "amount",
        "status",
        "updated_at",
        "_rescued_data",  # bad_values: rescue (the default); NULL in every row here
    ]
    assert {r["_rescued_data"] for r in rows} == {None}
    assert {c["name"]: c["type"] for c in json.loads(schema["columns_json"])}["amount"] == "decimal128(12, 2)"
    # A manifest commits it, in the same layout as documents.
    manifests = s3_client.list_objects_v2(Bucket=fresh_bucket, Prefix="bronze/documents/shop/")["KeyCount"]
    assert manifests == 1


def test_incremental_loads_read_what_is_new_after_the_watermark(
    shop, landing, s3_client, fresh_bucket, ledger_resource
):
    resources, assets = landing(INCREMENTAL)
    book = ledger_resource.ledger()
    with dg.DagsterInstance.ephemeral() as instance:
        first = extract(resources, assets, instance=instance)
        assert metadata(first)["rows"] == 250  # the first extraction is full
        assert book.watermark("shop", "public.payments").value == "2026-11-01T04:10:00+00:00"

        with shop.begin() as conn:  # 3 inserts and 2 updates after the watermark
            conn.execute(
                sa.text(
                    "insert into payments (order_id, amount, status, updated_at) values "
                    "('ORD-901', 9.00, 'pending', '2026-11-02 10:00+00'), "
                    "('ORD-902', 9.50, 'pending', '2026-11-02 10:01+00'), "
                    "('ORD-903', 9.75, 'pending', '2026-11-02 10:02+00')"
                )
            )
            conn.execute(
                sa.text(
                    "update payments set status = 'refunded', updated_at = '2026-11-02 11:00+00' where id in (7, 8)"
                )
            )
        second = extract(resources, assets, instance=instance)
        rows = bronze_rows(s3_client, fresh_bucket, metadata(second)["bronze_path"])
        assert sorted(r["order_id"] for r in rows) == ["ORD-7", "ORD-8", "ORD-901", "ORD-902", "ORD-903"]
        assert {r["status"] for r in rows if r["id"] in (7, 8)} == {"refunded"}
        assert book.watermark("shop", "public.payments").value == "2026-11-02T11:00:00+00:00"

        third = extract(resources, assets, instance=instance)  # nothing new
        assert metadata(third)["rows"] == 0
        assert book.watermark("shop", "public.payments").value == "2026-11-02T11:00:00+00:00"

        reset = extract(resources, assets, instance=instance, reset_watermark=True)
        assert metadata(reset)["rows"] == 253  # every row again
        assert metadata(reset)["load"] == "full (watermark reset)"
    statuses = [(r["status"], r["records_ingested"]) for r in book.versions()]
    assert statuses == [("SUCCESS", 250), ("SUCCESS", 5), ("SUCCESS", 0), ("SUCCESS", 253)]


def test_an_integer_watermark_and_a_custom_query(shop, landing, s3_client, fresh_bucket, ledger_resource):
    query = "select id, order_id, amount from payments where status = 'paid'"
    resources, assets = landing(
        {"name": "paid", "query": query, "load": "incremental", "watermark": "id", "batch_rows": 64}
    )
    first = extract(resources, assets, table="paid")
    assert metadata(first)["rows"] == 250
    assert ledger_resource.ledger().watermark("shop", "query:paid").value == "250"
    with shop.begin() as conn:
        conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-999', 1, 'paid')"))
        conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-998', 1, 'failed')"))
    second = extract(resources, assets, table="paid")
    assert [r["order_id"] for r in bronze_rows(s3_client, fresh_bucket, metadata(second)["bronze_path"])] == ["ORD-999"]
    # The watermark is the query's: the failed payment (252) is not among its rows.
    assert ledger_resource.ledger().watermark("shop", "query:paid").value == "251"


def test_an_extraction_that_fails_halfway_leaves_no_bronze_and_is_dead_lettered(
    shop, landing, s3_client, fresh_bucket, ledger_resource
):
    # Row 200 divides by zero: the server fails the query after the first batches have been fetched.
    query = "select id, order_id, 100 / (200 - id) as ratio from payments order by id"
    resources, assets = landing({"name": "ratios", "query": query, "batch_rows": 50})
    result = extract(resources, assets, table="ratios")
    assert not result.success
    assert data_keys(s3_client, fresh_bucket) == []  # nothing landed, not even the batches before the error
    book = ledger_resource.ledger()
    [row] = book.versions()
    assert (row["status"], row["error_class"], row["tries"]) == ("FAILED", "validation", 0)
    assert "division by zero" in row["error_message"]
    [letter] = book.dead_letter_rows()
    assert letter["state"] == "open"
    record = json.loads(s3_client.get_object(Bucket=fresh_bucket, Key=letter["dlq_key"])["Body"].read())
    assert record["object"]["key"] == "query:ratios"

    # Fixed, the next extraction supersedes the failed one and closes its dead letter.
    with shop.begin() as conn:
        conn.execute(sa.text("delete from payments where id = 200"))
    assert extract(resources, assets, table="ratios").success
    assert [r["status"] for r in book.versions()] == ["SUPERSEDED", "SUCCESS"]
    assert [letter["state"] for letter in book.dead_letter_rows()] == ["superseded"]


def test_an_unreachable_database_is_retried_then_dead_lettered_as_transient(
    landing, ledger_resource, monkeypatch, s3_client, fresh_bucket
):
    resources, assets = landing({"name": "payments"})
    monkeypatch.setenv(URL_ENV, "postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")
    result = extract(resources, assets)
    assert not result.success
    [row] = ledger_resource.ledger().versions()
    assert (row["status"], row["error_class"], row["tries"]) == ("FAILED", "transient", 2)
    assert data_keys(s3_client, fresh_bucket) == []
    assert ledger_resource.ledger().watermark("shop", "payments") is None


def test_the_warehouse_has_the_current_rows_of_the_source_table(
    shop, landing, s3_client, fresh_bucket, tmp_path, monkeypatch
):
    resources, assets = landing(INCREMENTAL)
    with dg.DagsterInstance.ephemeral() as instance:
        assert extract(resources, assets, instance=instance).success
        with shop.begin() as conn:
            conn.execute(sa.text("update payments set status = 'refunded', updated_at = now() where id <= 10"))
            conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-777', 7, 'pending')"))
        assert extract(resources, assets, instance=instance).success
    build = build_warehouse([f"s3://{fresh_bucket}/bronze"], tmp_path / "warehouse.duckdb", monkeypatch)
    assert build.result.success
    with shop.connect() as conn:
        source = {tuple(r) for r in conn.execute(sa.text("select id, order_id, amount, status from payments"))}
    staged = {tuple(r) for r in build.query("select payment_id, order_id, amount, status from stg_shop__payments")}
    assert staged == source
    assert len(staged) == 251


def test_each_table_is_an_asset_that_the_dbt_source_depends_on(landing, monkeypatch):
    monkeypatch.setenv(URL_ENV, "postgresql://unused")
    _, assets = landing(INCREMENTAL)
    assert list(assets) == [dg.AssetKey(["database", "shop", "payments"])]
    props = {"resource_type": "source", "source_name": "database_shop", "name": "payments"}
    assert WarehouseTranslator().get_asset_key(props) == dg.AssetKey(["database", "shop", "payments"])


def test_a_nan_amount_is_rescued_and_the_rows_after_it_land(
    shop, landing, s3_client, fresh_bucket, tmp_path, monkeypatch
):
    amounts = {"name": "amounts", "query": "select id, amount * 2 as doubled from payments"}
    resources, assets = landing({**INCREMENTAL, "primary_key": "id"}, amounts)
    with dg.DagsterInstance.ephemeral() as instance:
        assert extract(resources, assets, instance=instance).success
        with shop.begin() as conn:  # numeric(12, 2) takes NaN; no Arrow decimal can hold it
            conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-NAN', 'NaN', 'paid')"))
        # A query's types are inferred from its rows: the NaN does not turn the column into text either.
        query = extract(resources, assets, table="amounts", instance=instance)
        assert query.success and metadata(query)["rescued_values"] == 1
        doubled = {c.name: c.type for c in metadata(query)["dagster/column_schema"].columns}["doubled"]
        assert doubled.startswith("decimal128")
        [nan] = [r for r in bronze_rows(s3_client, fresh_bucket, metadata(query)["bronze_path"]) if r["id"] == 251]
        assert (nan["doubled"], json.loads(nan["_rescued_data"])) == (None, {"doubled": "NaN"})
        second = extract(resources, assets, instance=instance)
        assert second.success
        assert metadata(second)["rescued_values"] == 1
        [row] = bronze_rows(s3_client, fresh_bucket, metadata(second)["bronze_path"])
        assert (row["order_id"], row["amount"]) == ("ORD-NAN", None)
        assert json.loads(row["_rescued_data"]) == {"amount": "NaN"}
        with shop.begin() as conn:  # later rows are not held up by it
            conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-LATER', 3, 'paid')"))
        third = extract(resources, assets, instance=instance)
        assert [r["order_id"] for r in bronze_rows(s3_client, fresh_bucket, metadata(third)["bronze_path"])] == [
            "ORD-LATER"
        ]
    build = build_warehouse([f"s3://{fresh_bucket}/bronze"], tmp_path / "warehouse.duckdb", monkeypatch)
    assert build.result.success
    staged = dict(build.query("select order_id, amount from stg_shop__payments where order_id like 'ORD-%'"))
    assert len(staged) == 252 and staged["ORD-LATER"] == 3 and staged["ORD-NAN"] is None
    [(rescued,)] = build.query("select rescued_data from stg_shop__payments where rescued_data is not null")
    assert json.loads(rescued) == {"amount": "NaN"}


def test_with_bad_values_fail_a_nan_fails_the_extraction_naming_row_and_column_until_it_is_fixed(
    shop, landing, s3_client, fresh_bucket, ledger_resource
):
    resources, assets = landing({**INCREMENTAL, "primary_key": "id", "bad_values": "fail"})
    with dg.DagsterInstance.ephemeral() as instance:
        assert extract(resources, assets, instance=instance).success
        with shop.begin() as conn:
            conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-NAN', 'NaN', 'paid')"))
            conn.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-OK', 4, 'paid')"))
        assert not extract(resources, assets, instance=instance).success
        book = ledger_resource.ledger()
        failed = book.versions()[-1]
        assert (failed["status"], failed["error_class"]) == ("FAILED", "validation")
        assert "row 0 (id=251), column amount: 'NaN' does not fit decimal128(12, 2)" in failed["error_message"]
        assert book.watermark("shop", "public.payments").value == "2026-11-01T04:10:00+00:00"  # not moved
        with shop.begin() as conn:  # the row fixed at the source: the next extraction reads it and what followed
            conn.execute(sa.text("update payments set amount = 0, updated_at = now() where order_id = 'ORD-NAN'"))
        fixed = extract(resources, assets, instance=instance)
        assert fixed.success
    rows = bronze_rows(s3_client, fresh_bucket, metadata(fixed)["bronze_path"])
    assert sorted(r["order_id"] for r in rows) == ["ORD-NAN", "ORD-OK"]
    assert [r["status"] for r in book.versions()] == ["SUCCESS", "SUPERSEDED", "SUCCESS"]
    assert [letter["state"] for letter in book.dead_letter_rows()] == ["superseded"]


def test_a_numeric_watermark_keeps_its_exact_value_and_unchanged_rows_are_not_read_again(
    postgres_url, shop, landing, s3_client, fresh_bucket, ledger_resource
):
    with shop.begin() as conn:
        conn.execute(sa.text("create table readings (id bigserial primary key, seq numeric(10, 1) not null)"))
        conn.execute(sa.text("insert into readings (seq) values (1.0), (2.0), (2.5)"))
    resources, assets = landing({"name": "readings", "load": "incremental", "watermark": "seq"})
    book = ledger_resource.ledger()
    assert metadata(extract(resources, assets, table="readings"))["rows"] == 3
    watermark = book.watermark("shop", "readings")
    assert (watermark.value, watermark.value_type) == ("2.5", "numeric")
    assert metadata(extract(resources, assets, table="readings"))["rows"] == 0  # 2.5 is not read again
    with shop.begin() as conn:
        conn.execute(sa.text("insert into readings (seq) values (2.6)"))
    again = extract(resources, assets, table="readings")
    assert [r["seq"] for r in bronze_rows(s3_client, fresh_bucket, metadata(again)["bronze_path"])] == [
        decimal.Decimal("2.6")
    ]
    assert book.watermark("shop", "readings").value == "2.6"


@pytest.mark.parametrize("lag", [None, "5m"])
def test_a_row_committed_late_below_the_watermark_is_read_with_a_watermark_lag(
    lag, postgres_url, shop, landing, s3_client, fresh_bucket, ledger_resource, tmp_path, monkeypatch
):
    table = {**INCREMENTAL, "primary_key": ["id"], **({"watermark_lag": lag} if lag else {})}
    resources, assets = landing(table)
    book = ledger_resource.ledger()
    late = sa.create_engine(postgres_url)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            assert extract(resources, assets, instance=instance).success
            # A transaction takes its updated_at (now(): when it began), and commits after the next extraction.
            with late.connect() as slow:
                transaction = slow.begin()
                slow.execute(sa.text("insert into payments (order_id, amount, status) values ('ORD-LATE', 5, 'paid')"))
                with shop.begin() as conn:
                    conn.execute(
                        sa.text("insert into payments (order_id, amount, status) values ('ORD-QUICK', 6, 'paid')")
                    )
                between = extract(resources, assets, instance=instance)
                transaction.commit()
            high = book.watermark("shop", "public.payments").value
            after = extract(resources, assets, instance=instance)
            assert book.watermark("shop", "public.payments").value == high  # a lag never moves it back
    finally:
        late.dispose()
    read_between = {r["order_id"] for r in bronze_rows(s3_client, fresh_bucket, metadata(between)["bronze_path"])}
    assert "ORD-QUICK" in read_between and "ORD-LATE" not in read_between
    read_after = (
        {r["order_id"] for r in bronze_rows(s3_client, fresh_bucket, metadata(after)["bronze_path"])}
        if metadata(after)["rows"]
        else set()
    )
    if lag is None:
        # Without a lag the late row is never read: its watermark is below what the extraction between had read.
        assert read_after == set()
        return
    assert read_after == {"ORD-LATE", "ORD-QUICK"}  # the window below the watermark, read again
    build = build_warehouse([f"s3://{fresh_bucket}/bronze"], tmp_path / "warehouse.duckdb", monkeypatch)
    assert build.result.success
    with shop.connect() as conn:
        source = {tuple(r) for r in conn.execute(sa.text("select id, order_id, amount, status from payments"))}
    staged = build.query("select payment_id, order_id, amount, status from stg_shop__payments")
    assert len(staged) == len(source) == 252  # one row per payment, though the window was read twice
    assert set(staged) == source
