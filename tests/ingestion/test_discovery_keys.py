"""Discovery that one object cannot stop: hostile names, a listing that spans ticks, and ticks that race.

The real discovery sensor, ticked as the daemon ticks it, over local folders and a ledger on SQLite and on
PostgreSQL (there with Dagster's own storage on PostgreSQL too, as in production)."""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import threading
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from devtools.ticks import skip_message, tick_sensor
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.core.resources import IngestionResource, LedgerResource, S3Resource
from ingestion_project.failures.assets import failed_documents_are_dead_lettered, ingestion_ledger, ledger_is_conserved
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.discovery import MAX_PARTITION_KEY_BYTES, refusal
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Status, is_balanced
from ingestion_project.lib.versions import DocumentVersion
from tests.transform.conftest import build_warehouse

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
ORDERS = "order_id,amount\nORD-1,10.50\nORD-2,3.25\n"
UNDECODABLE = b"caf\xe9-\xff.csv"


@pytest.fixture
def postgres_instance(tmp_path, postgres_url, monkeypatch):
    """A Dagster instance of the production configuration, its storage on PostgreSQL (the ledger's server)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """(ledger resource, Dagster instance): SQLite and an ephemeral instance, or PostgreSQL for both."""
    if request.param == "sqlite":
        with dg.DagsterInstance.ephemeral() as instance:
            yield LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"), instance
        return
    yield LedgerResource(url=request.getfixturevalue("postgres_url")), request.getfixturevalue("postgres_instance")


def incompressible(size: int, seed: int) -> str:
    """A relative path of ``size`` bytes in folders of 200 random letters (a repetitive one would compress)."""
    rng = random.Random(seed)
    parts = ["".join(rng.choices(string.ascii_letters, k=200)) for _ in range(size // 201 + 1)]
    return "/".join(parts)[: size - 4] + ".csv"


def write(folder: Path, key: str | bytes, body: str = ORDERS) -> str:
    """Write the file ``key`` (bytes: a name that need not be UTF-8) under ``folder``; its key as listed."""
    raw = key if isinstance(key, bytes) else key.encode()
    path = os.path.join(os.fsencode(folder), raw)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(body.encode())
    return os.fsdecode(raw)


def added(result) -> list[str]:
    return [key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys]


def pinned(result) -> list[dict]:
    return [v for r in result.run_requests or [] for v in r.run_config["ops"]["raw_documents"]["config"]["versions"]]


def test_hostile_names_stop_no_tick_each_lands_or_is_refused_once_and_every_other_source_goes_on(
    tmp_path, inbox, write_sources, backend, monkeypatch
):
    ledger_resource, instance = backend
    drop = tmp_path / "drop"
    drop.mkdir()
    good, odd, scratch_like = write(inbox, "good.csv"), write(inbox, UNDECODABLE), write(inbox, ".tmp-report.csv")
    too_long = write(inbox, incompressible(3020, 1))  # over S3's 1,024 bytes (and PostgreSQL's btree rows)
    # 760 bytes, but escaped ("%" → "%25") a 2,300-byte partition key: more than Dagster's storage can index.
    escapes = write(inbox, "/".join(["%" * 250] * 3) + ".csv")
    other = write(drop, "b.csv")
    sources = [
        {"name": "inbox", "type": "local", "path": str(inbox), "include": ["*.csv"]},
        {"name": "drop", "type": "local", "path": str(drop)},
    ]
    resources = {"ingestion": _ingestion(write_sources(sources)), "ledger": ledger_resource}
    book = ledger_resource.ledger()

    first = tick_sensor(document_discovery_sensor, instance, resources)
    landing = {DocumentRef("inbox", "", k).partition_key for k in (good, odd, scratch_like)}
    assert set(added(first)) == landing | {DocumentRef("drop", "", other).partition_key}
    assert set(instance.get_dynamic_partitions(documents_partitions.name)) == set(added(first))
    assert sorted(v["key"] for v in pinned(first)) == sorted([good, odd, scratch_like, other])

    rows = {DocumentVersion.from_row(r).ref.key: r for r in book.versions()}
    assert set(rows) == {good, odd, scratch_like, too_long, escapes, other}
    refused = {key: rows[key] for key in (too_long, escapes)}
    for row in refused.values():
        assert (row["status"], row["error_class"], row["error_type"]) == (Status.FAILED, "validation", "KeyRefused")
    assert "longer than the 1,024 bytes S3 allows" in refused[too_long]["error_message"]
    assert f"longer than the {MAX_PARTITION_KEY_BYTES:,} bytes" in refused[escapes]["error_message"]
    assert f"The key, escaped: {too_long[:200]}… (3,020 characters)" in refused[too_long]["error_message"]
    assert f"The key, escaped: {'%25' * 66}" in refused[escapes]["error_message"]
    letters = {letter["key_hash"]: letter for letter in book.open_dead_letters()}
    assert set(letters) == {row["key_hash"] for row in refused.values()}
    assert all(letter["stored_key"] == letter["dlq_key"] for letter in letters.values())  # written this tick
    records = [json.loads(p.read_text()) for p in (tmp_path / "dlq").rglob("*.json")]
    assert sorted(r["error"]["type"] for r in records) == ["KeyRefused", "KeyRefused"]
    assert {r["object"]["key"] for r in records} == {too_long, escapes}

    # The next ticks list them again and record nothing more; conservation stays balanced.
    second = tick_sensor(document_discovery_sensor, instance, resources, first.cursor)
    third = tick_sensor(document_discovery_sensor, instance, resources, second.cursor)
    assert "0 new or changed, 6 already known" in skip_message(second)
    assert skip_message(third) is not None
    assert len(book.versions()) == 6 and len(book.dead_letter_rows()) == 2
    assert all(is_balanced(figures) for figures in book.conservation().values())

    # Every requested document lands, the undecodable name included, read from exactly its file.
    for request in first.run_requests:
        run = dg.materialize(
            [raw_documents],
            resources=resources,
            instance=instance,
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )
        assert run.success
    statuses = {DocumentVersion.from_row(r).ref.key: r["status"] for r in book.versions()}
    assert statuses == {**dict.fromkeys([good, odd, scratch_like, other], Status.SUCCESS), **refused_status(refused)}
    [manifest] = [
        row
        for path in (tmp_path / "bronze" / "documents" / "inbox").rglob("*.parquet")
        for row in pq.read_table(path).to_pylist()
        if row["partition_key"] == DocumentRef("inbox", "", odd).partition_key
    ]
    assert manifest["object_key"] == "caf\\xe9-\\xff.csv"
    data = pq.read_table(manifest["bronze_path"])
    assert data.column("order_id").to_pylist() == ["ORD-1", "ORD-2"]
    assert set(data.column("_object_key").to_pylist()) == {"caf\\xe9-\\xff.csv"}
    # The ledger's own checks: every version in one state, each once, every FAILED one dead-lettered.
    assert ledger_is_conserved(ledger=ledger_resource).passed
    assert failed_documents_are_dead_lettered(ledger=ledger_resource).passed

    # The warehouse builds, with every landed document in the marts and the refusals among the failures.
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(warehouse))
    assert dg.materialize([ingestion_ledger], resources={"ledger": ledger_resource}).success
    build = build_warehouse([str(tmp_path / "bronze")], warehouse, monkeypatch)
    assert build.result.success
    marts = build.query("select source, object_key from fct_document_versions where is_latest_version")
    assert sorted(marts) == sorted(
        [("drop", "b.csv"), ("inbox", ".tmp-report.csv"), ("inbox", "caf\\xe9-\\xff.csv"), ("inbox", "good.csv")]
    )
    failures = build.query("select error_type, sum(failure_count) from fct_ingestion_failures group by 1")
    assert failures == [("KeyRefused", 2)]


def refused_status(refused: dict[str, dict]) -> dict[str, str]:
    return dict.fromkeys(refused, Status.FAILED)


def _ingestion(sources_file: str) -> IngestionResource:
    return IngestionResource(s3=S3Resource(), sources_file=sources_file)


def test_dagster_on_postgresql_indexes_a_partition_key_of_the_limit_but_not_a_longer_one(postgres_instance):
    """Why partition keys are held to MAX_PARTITION_KEY_BYTES: one longer key fails the whole request."""
    instance = postgres_instance
    at_limit = DocumentRef("inbox", "", incompressible(MAX_PARTITION_KEY_BYTES - len("inbox:/"), 2)).partition_key
    assert len(at_limit.encode()) == MAX_PARTITION_KEY_BYTES
    instance.add_dynamic_partitions(documents_partitions.name, [at_limit])
    over = DocumentRef("inbox", "", incompressible(2800, 3)).partition_key
    with pytest.raises(Exception, match="index row size"):
        instance.add_dynamic_partitions(documents_partitions.name, ["inbox:/fine.csv", over])
    assert instance.get_dynamic_partitions(documents_partitions.name) == [at_limit]


def tick_as_the_daemon(resources, instance, cursor: str | None):
    """One tick; the cursor the daemon keeps after it (a bare SkipReason keeps the previous one)."""
    result = tick_sensor(document_discovery_sensor, instance, resources, cursor)
    kept = result.cursor if isinstance(result, dg.SensorResult) and result.cursor is not None else cursor
    return result, kept


def listed(cursor: str) -> int:
    return json.loads(cursor)["listed"]["inbox"]


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_a_listing_longer_than_a_ticks_budget_advances_on_ticks_that_request_nothing_and_finds_a_new_key(
    inbox, write_sources, resources_for, mode
):
    for i in range(2500):
        (inbox / f"f{i:05d}.csv").write_text("x\n1\n")
    source = {"name": "inbox", "type": "local", "path": str(inbox), "listing": {"mode": mode, "full_every": "1h"}}
    # A budget so small that every tick lists one page (a tick always lists at least one).
    resources = resources_for(write_sources([source], listing_budget_seconds=0.001))
    with dg.DagsterInstance.ephemeral() as instance:
        cursor, pages = None, []
        for _ in range(6):
            result, cursor = tick_as_the_daemon(resources, instance, cursor)
            pages.append(listed(cursor))
            if "resume" not in json.loads(cursor)["listing"]["inbox"]:
                break
        assert pages == [1000, 1000, 500]  # every key of the first full listing, each new

        # A late key, past the first page's worth of known keys (and before the incremental watermark).
        (inbox / "f02400-late.csv").write_text("x\n2\n")
        if mode == "incremental":  # an hour later: the periodic full listing is due
            state = json.loads(cursor)
            state["listing"]["inbox"]["full_at"] = "2000-01-01T00:00:00+00:00"
            cursor = json.dumps(state)
        ticks, resumes = [], []
        for _ in range(6):
            result, cursor = tick_as_the_daemon(resources, instance, cursor)
            ticks.append(result)
            resumes.append(json.loads(cursor)["listing"]["inbox"].get("resume"))
            if pinned(result):
                break
    assert [skip_message(t) is not None for t in ticks] == [True, True, False]  # two ticks that request nothing
    assert resumes == ["f00999.csv", "f01999.csv", None]  # ...and still carry the listing on
    assert [v["key"] for v in pinned(ticks[-1])] == ["f02400-late.csv"]
    assert "listing of inbox resumes next tick" in skip_message(ticks[0])


def test_two_ticks_at_once_on_postgresql_record_and_request_each_new_file_once(
    inbox, write_sources, postgres_url, postgres_instance
):
    keys = [write(inbox, f"new/{i:05d}.csv", "x\n1\n") for i in range(3000)]
    source = {"name": "inbox", "type": "local", "path": str(inbox), "batch_size": {"documents": 1000}}
    ledger_resource = LedgerResource(url=postgres_url)
    resources = {"ingestion": _ingestion(write_sources([source], max_runs_per_tick=10)), "ledger": ledger_resource}
    ledger_resource.ledger()  # migrated before the race, as a running deployment is
    barrier = threading.Barrier(2)
    results, errors = [], []

    def tick() -> None:
        with dg.build_sensor_context(
            instance=postgres_instance, resources=resources, sensor_name=document_discovery_sensor.name
        ) as context:
            barrier.wait(timeout=30)
            try:
                results.append(document_discovery_sensor(context))
            except Exception as error:  # noqa: BLE001 - the assertion below names it
                errors.append(error)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [] and len(results) == 2
    assert all(isinstance(result, dg.SensorResult) for result in results)
    assert Counter(v["key"] for result in results for v in pinned(result)) == Counter(dict.fromkeys(keys, 1))
    assert {k for result in results for k in added(result)} == {DocumentRef("inbox", "", k).partition_key for k in keys}
    rows = ledger_resource.ledger().versions()
    assert len(rows) == 3000 and {r["status"] for r in rows} == {Status.DISCOVERED}
    assert all(r["request_key"] for r in rows)


def test_refusal_holds_keys_to_s3s_limit_and_partition_keys_to_what_dagster_can_index():
    def ref(key: str) -> DocumentRef:
        return DocumentRef("s", "b", key)

    assert refusal(ref("é" * 512)) is None  # 1,024 bytes: S3's maximum
    assert "1,025 bytes, longer than the 1,024 bytes S3 allows" in refusal(ref("é" * 512 + "x"))
    assert refusal(ref(os.fsdecode(b"\xff" * 1024))) is not None  # escaped, 3,072 bytes of partition key
    fits, over = "a" * 514 + "%" * 510, "a" * 513 + "%" * 511  # 1,024 bytes each; "%" is escaped as "%25"
    assert len(ref(fits).partition_key.encode()) == MAX_PARTITION_KEY_BYTES == 2048
    assert refusal(ref(fits)) is None
    assert "partition key would be 2,050 bytes, longer than the 2,048 bytes" in refusal(ref(over))


def test_an_s3_key_whose_partition_key_is_too_long_is_dead_lettered_in_the_bucket_and_the_rest_discovered(
    s3_client, fresh_bucket, write_sources, resources_for
):
    # A legal S3 key of 810 bytes (in folders: the local server limits a name to 255); its partition key is 2,400.
    hostile = "in/" + "/".join(["%" * 200] * 4) + ".csv"
    for key in (hostile, "in/ok.csv"):
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=ORDERS.encode())
    source = {"name": "drop", "type": "s3", "bucket": fresh_bucket, "prefix": "in/"}
    resources = resources_for(write_sources([source], bronze_bucket=fresh_bucket))
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick_sensor(document_discovery_sensor, instance, resources)
        second = tick_sensor(document_discovery_sensor, instance, resources, first.cursor)
    assert added(first) == [DocumentRef("drop", fresh_bucket, "in/ok.csv").partition_key]
    assert [v["key"] for v in pinned(first)] == ["in/ok.csv"]
    [letter] = resources["ledger"].ledger().open_dead_letters()
    assert (letter["object_key"], letter["error_type"]) == (hostile, "KeyRefused")
    record = json.loads(s3_client.get_object(Bucket=fresh_bucket, Key=letter["dlq_key"])["Body"].read())
    assert letter["dlq_key"].startswith("dlq/ingestion/")
    assert (record["object"]["key"], record["error"]["class"]) == (hostile, "validation")
    assert "The key, escaped: in/%25%25" in record["error"]["message"]
    assert "0 new or changed, 2 already known" in skip_message(second)
