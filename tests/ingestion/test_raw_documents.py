import json
import os
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from devtools.ticks import tick_sensor
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import LocalObjectStore

FORCE = {"ops": {"raw_documents": {"config": {"force": True}}}}
ORDERS = "order_id,customer_id,amount\nORD-1,C1,10.50\nORD-2,C2,3.25\n"


@pytest.fixture
def resources(inbox, write_sources, resources_for):
    return resources_for(
        write_sources([{"name": "inbox", "type": "local", "path": str(inbox), "max_object_size": "1KiB"}])
    )


def materialize(resources, instance, keys):
    instance.add_dynamic_partitions(documents_partitions.name, keys)
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    return dg.materialize(
        [raw_documents],
        resources=resources,
        instance=instance,
        raise_on_error=False,
        **({"partition_key": keys[0]} if len(keys) == 1 else {"tags": tags}),
    )


def sensor_requests(resources, instance) -> list[dg.RunRequest]:
    """One discovery tick: its partitions added as the daemon adds them, its batch run requests returned."""
    return list(tick_sensor(document_discovery_sensor, instance, resources).run_requests)


def run_batch(resources, instance, request: dg.RunRequest):
    """The run a batch request launches: its pinned versions in the run config, its tags, no partition."""
    return dg.materialize(
        [raw_documents],
        resources=resources,
        instance=instance,
        run_config=request.run_config,
        tags=request.tags,
        raise_on_error=False,
    )


def pinned(request: dg.RunRequest) -> list[dict]:
    return request.run_config["ops"]["raw_documents"]["config"]["versions"]


def observations(instance, key) -> list[dict]:
    """The status/reason observations recorded on one document's partition."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=raw_documents.key, asset_partitions=[pk(key)]), limit=10
    ).records
    return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in records]


def pk(key):
    return DocumentRef("inbox", "", key).partition_key


def bronze_root(inbox):
    return inbox.parent / "bronze"


def test_csv_document_lands_as_bronze_with_metadata(inbox, resources):
    (inbox / "orders 1.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("orders 1.csv")])
    assert result.success
    [event] = result.asset_materializations_for_node("raw_documents")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert (meta["source"], meta["key"], meta["format"], meta["rows"]) == ("inbox", "orders 1.csv", "csv", 2)
    assert meta["size_bytes"] == len(ORDERS)
    assert len(meta["sha256"]) == 64
    assert [c.name for c in meta["dagster/column_schema"].columns] == ["order_id", "customer_id", "amount"]
    table = pq.read_table(meta["bronze_path"])
    assert table.column("order_id").to_pylist() == ["ORD-1", "ORD-2"]
    assert set(table.column("_object_key").to_pylist()) == {"orders 1.csv"}
    assert table.column("_row_number").to_pylist() == [0, 1]
    [manifest] = (bronze_root(inbox) / "documents" / "inbox").rglob("*.parquet")
    row = pq.read_table(manifest).to_pylist()[0]
    assert (row["object_key"], row["record_count"], row["bronze_path"]) == (
        "orders 1.csv",
        2,
        meta["bronze_path"],
    )
    assert json.loads(row["columns_json"])[0] == {"name": "order_id", "type": "string"}


def test_text_document_lands_as_chunks(inbox, resources):
    (inbox / "notes.md").write_text("# Title\n\nFirst paragraph.\n\nSecond paragraph.\n")
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("notes.md")])
    [event] = result.asset_materializations_for_node("raw_documents")
    assert event.metadata["format"].value == "text"
    chunks = pq.read_table(event.metadata["bronze_path"].value)
    assert "Second paragraph." in "".join(chunks.column("text").to_pylist())


def test_a_csv_without_an_extension_lands_as_rows_decided_by_its_content(inbox, resources):
    (inbox / "export").write_text(ORDERS)
    (inbox / "notes.md").write_text("Hello, world\nfoo, bar\n")
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("export"), pk("notes.md")])
    events = {e.metadata["key"].value: e.metadata for e in result.asset_materializations_for_node("raw_documents")}
    export, notes = events["export"], events["notes.md"]
    assert (export["format"].value, export["format_decided_by"].value, export["rows"].value) == ("csv", "content", 2)
    # Lines with a comma each look delimited, but a .md name breaks the tie.
    assert (notes["format"].value, notes["format_decided_by"].value) == ("text", "extension")


def test_each_materialization_shows_the_schema_change_against_the_sources_previous_schema(inbox, resources):
    with dg.DagsterInstance.ephemeral() as instance:
        (inbox / "a.csv").write_text(ORDERS)
        [first] = materialize(resources, instance, [pk("a.csv")]).asset_materializations_for_node("raw_documents")
        (inbox / "b.csv").write_text("order_id,customer_id,amount,tip\nORD-3,C1,12.50 EUR,1.5\n")
        [second] = materialize(resources, instance, [pk("b.csv")]).asset_materializations_for_node("raw_documents")
    assert first.metadata["schema_change"].value == "first schema of the source"
    assert second.metadata["schema_change"].value == "+tip; amount: double → string"
    assert first.metadata["schema_fingerprint"].value != second.metadata["schema_fingerprint"].value
    history = resources["ledger"].ledger().schema_version_rows()
    assert [(row["object_key"], row["previous_fingerprint"] is None) for row in history] == [
        ("a.csv", True),
        ("b.csv", False),
    ]


def test_bronze_lands_inside_its_root_and_a_forced_reingest_replaces_the_committed_files(inbox, resources):
    (inbox / "..hidden").mkdir()
    (inbox / "..hidden" / "x.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        first = materialize(resources, instance, [pk("..hidden/x.csv")])
        second = dg.materialize(
            [raw_documents],
            resources=resources,
            instance=instance,
            partition_key=pk("..hidden/x.csv"),
            run_config=FORCE,
        )
    paths = [
        r.asset_materializations_for_node("raw_documents")[0].metadata["bronze_path"].value for r in (first, second)
    ]
    # Each attempt writes files of its own; the second commit made its files current and removed the first's.
    assert paths[0] != paths[1]
    assert all(str(bronze_root(inbox).resolve()) in path for path in paths)
    assert not Path(paths[0]).exists() and Path(paths[1]).exists()
    assert len(list((bronze_root(inbox) / "documents").rglob("*.parquet"))) == 1


@pytest.mark.parametrize(
    ("name", "content", "error_type", "reason"),
    [
        ("empty.csv", "", "ValidationError", "is empty (0 bytes)"),
        ("big.csv", "x\n" + "1\n" * 600, "LimitExceeded", "over the limit of 1,024 bytes (limits.object_size)"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", "ValidationError", "line 3"),
    ],
)
def test_bad_document_fails_its_partition_with_a_readable_error(
    inbox, resources, name, content, error_type, reason, ledger_resource
):
    (inbox / name).write_text(content)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk(name)])
    assert not result.success
    failure = result.failure_data_for_node("raw_documents")
    assert reason in failure.user_failure_data.description
    assert error_type in failure.user_failure_data.description
    [row] = ledger_resource.ledger().versions("inbox")
    assert (row["status"], row["error_type"], row["error_class"]) == ("FAILED", error_type, "validation")
    assert not (bronze_root(inbox) / "documents").exists()
    assert (inbox / name).read_text() == content  # the source is never modified


def test_one_failing_document_does_not_fail_the_others_in_its_run(inbox, resources, ledger_resource):
    (inbox / "a.csv").write_text(ORDERS)
    (inbox / "b.csv").write_text("a,b\n1\n")
    (inbox / "c.csv").write_text(ORDERS)
    keys = [pk("a.csv"), pk("b.csv"), pk("c.csv")]
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, keys)
        materialized = instance.get_materialized_partitions(raw_documents.key)
    assert not result.success
    assert materialized == {pk("a.csv"), pk("c.csv")}
    description = result.failure_data_for_node("raw_documents").user_failure_data.description
    assert description.startswith("1 of 3 document(s) failed")
    assert pk("b.csv") in description and pk("a.csv") not in description
    statuses = {row["object_key"]: row["status"] for row in ledger_resource.ledger().versions()}
    assert statuses == {"a.csv": "SUCCESS", "b.csv": "FAILED", "c.csv": "SUCCESS"}


def test_a_partition_run_for_a_document_that_never_existed_fails_saying_so(inbox, resources, ledger_resource):
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("gone.csv")])
    assert not result.success
    description = result.failure_data_for_node("raw_documents").user_failure_data.description
    assert "no version to ingest" in description and "gone.csv no longer exists" in description
    assert ledger_resource.ledger().versions() == []  # nothing was pinned, so nothing is in flight


def test_local_keys_cannot_escape_the_source_folder(inbox, resources):
    (inbox.parent / "secret.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("../secret.csv")])
    assert "does not name a file inside" in result.failure_data_for_node("raw_documents").user_failure_data.description
    assert LocalObjectStore(inbox).uri("x") == str(inbox.resolve() / "x")


def test_an_ingested_version_is_not_processed_twice(inbox, resources, ledger_resource):
    (inbox / "a.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        first = materialize(resources, instance, [pk("a.csv")])
        again = dg.materialize([raw_documents], resources=resources, instance=instance, partition_key=pk("a.csv"))
    assert first.success and again.success
    assert len(first.asset_materializations_for_node("raw_documents")) == 1
    assert again.asset_materializations_for_node("raw_documents") == []
    [row] = ledger_resource.ledger().versions()
    assert (row["status"], row["run_id"]) == ("SUCCESS", first.run_id)


def test_a_batch_run_lands_exactly_its_pinned_versions_one_materialization_each(inbox, resources, ledger_resource):
    for name in ("a.csv", "b.csv"):
        (inbox / name).write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        [request] = sensor_requests(resources, instance)
        result = run_batch(resources, instance, request)
        again = run_batch(resources, instance, request)  # the same request launched twice
    assert result.success and again.success
    landed = {e.partition: e.metadata["etag"].value for e in result.asset_materializations_for_node("raw_documents")}
    assert landed == {pk(v["key"]): v["etag"] for v in pinned(request)}
    assert again.asset_materializations_for_node("raw_documents") == []  # nothing landed twice
    rows = ledger_resource.ledger().versions()
    assert {(r["object_key"], r["etag"], r["status"], r["run_id"]) for r in rows} == {
        (v["key"], v["etag"], "SUCCESS", result.run_id) for v in pinned(request)
    }


def test_a_document_rewritten_after_it_was_pinned_is_superseded_without_failing_the_run(
    inbox, resources, ledger_resource
):
    doc = inbox / "a.csv"
    doc.write_text(ORDERS)
    (inbox / "b.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        [request] = sensor_requests(resources, instance)
        [pinned_etag] = [v["etag"] for v in pinned(request) if v["key"] == "a.csv"]
        doc.write_text(ORDERS + "ORD-3,C3,1.00\n")
        os.utime(doc, ns=(doc.stat().st_atime_ns, doc.stat().st_mtime_ns + 10**9))
        result = run_batch(resources, instance, request)
        [observation] = observations(instance, "a.csv")
    assert result.success
    assert [e.partition for e in result.asset_materializations_for_node("raw_documents")] == [pk("b.csv")]
    assert observation["status"] == "SUPERSEDED" and observation["etag"] == pinned_etag
    statuses = {row["object_key"]: row["status"] for row in ledger_resource.ledger().versions()}
    assert statuses == {"a.csv": "SUPERSEDED", "b.csv": "SUCCESS"}
    assert ledger_resource.ledger().dead_letter_rows() == []


def test_one_failing_document_does_not_fail_the_others_in_its_batch_and_is_dead_lettered(
    inbox, resources, ledger_resource
):
    (inbox / "a.csv").write_text(ORDERS)
    (inbox / "b.csv").write_text("a,b\n1\n")
    (inbox / "c.csv").write_text(ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        [request] = sensor_requests(resources, instance)
        result = run_batch(resources, instance, request)
        [observation] = observations(instance, "b.csv")
        materialized = instance.get_materialized_partitions(raw_documents.key)
    assert not result.success
    assert materialized == {pk("a.csv"), pk("c.csv")}
    failure = result.failure_data_for_node("raw_documents").user_failure_data
    assert failure.description.startswith("1 of 3 document(s) failed")
    assert pk("b.csv") in failure.description and pk("a.csv") not in failure.description
    assert failure.metadata["failed_documents"].value == [pk("b.csv")]
    assert observation["status"] == "FAILED" and "ValidationError" in observation["reason"]
    book = ledger_resource.ledger()
    assert {r["object_key"]: r["status"] for r in book.versions()} == {
        "a.csv": "SUCCESS",
        "b.csv": "FAILED",
        "c.csv": "SUCCESS",
    }
    [letter] = book.dead_letter_rows()
    assert (letter["object_key"], letter["state"], letter["run_id"]) == ("b.csv", "open", result.run_id)
    # The asset's dead_letter_hook wrote the record where the ledger says it is.
    record = json.loads((inbox.parent / "dlq" / letter["dlq_key"]).read_text())
    assert (record["object"]["key"], record["error"]["type"]) == ("b.csv", "ValidationError")


def test_a_document_that_breaks_a_quality_rule_is_dead_lettered_as_quality_and_lands_nothing(
    inbox, write_sources, resources_for, ledger_resource
):
    quality = {"not_null": ["order_id"], "unique": ["order_id"], "ranges": {"amount": {"min": 0}}}
    resources = resources_for(
        write_sources([{"name": "inbox", "type": "local", "path": str(inbox), "quality": quality}])
    )
    (inbox / "good.csv").write_text(ORDERS)
    (inbox / "negative.csv").write_text("order_id,customer_id,amount\nORD-1,C1,10.50\nORD-2,C2,-3.25\n")
    (inbox / "twice.csv").write_text("order_id,customer_id,amount\nORD-1,C1,10.50\nORD-1,C2,3.25\n")
    with dg.DagsterInstance.ephemeral() as instance:
        [request] = sensor_requests(resources, instance)
        run_batch(resources, instance, request)
        materialized = instance.get_materialized_partitions(raw_documents.key)
    assert materialized == {pk("good.csv")}
    book = ledger_resource.ledger()
    rows = {r["object_key"]: r for r in book.versions()}
    outcomes = {key: (r["status"], r["error_class"], r["error_type"]) for key, r in rows.items()}
    assert outcomes == {
        "good.csv": ("SUCCESS", None, None),
        "negative.csv": ("FAILED", "quality", "QualityError"),
        "twice.csv": ("FAILED", "quality", "QualityError"),
    }
    assert rows["negative.csv"]["error_message"].startswith("quality rule ranges: column amount has 1 value(s)")
    assert rows["twice.csv"]["error_message"].startswith("quality rule unique:")
    assert rows["negative.csv"]["tries"] == 0  # never retried
    assert {(letter["object_key"], letter["error_class"]) for letter in book.dead_letter_rows()} == {
        ("negative.csv", "quality"),
        ("twice.csv", "quality"),
    }
    # Nothing of the failed documents landed in bronze.
    manifests = {p.name for p in (bronze_root(inbox) / "documents" / "inbox").rglob("*.parquet")}
    assert len(manifests) == 1
