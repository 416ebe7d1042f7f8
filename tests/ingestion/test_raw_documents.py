import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.partitions import documents_partitions
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


def test_bronze_location_is_deterministic_and_inside_its_root(inbox, resources):
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
    assert paths[0] == paths[1]
    assert str(bronze_root(inbox).resolve()) in paths[0]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", "", "is empty (0 bytes)"),
        ("big.csv", "x\n" + "1\n" * 600, "over the 1,024-byte limit of source 'inbox'"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", "line 3"),
    ],
)
def test_bad_document_fails_its_partition_with_a_readable_error(
    inbox, resources, name, content, reason, ledger_resource
):
    (inbox / name).write_text(content)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk(name)])
    assert not result.success
    failure = result.failure_data_for_node("raw_documents")
    assert reason in failure.user_failure_data.description
    assert "ValidationError" in failure.user_failure_data.description
    [row] = ledger_resource.ledger().versions("inbox")
    assert (row["status"], row["error_type"]) == ("FAILED", "ValidationError")
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


def test_a_vanished_document_is_an_external_error(inbox, resources):
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, [pk("gone.csv")])
    assert "ExternalError" in result.failure_data_for_node("raw_documents").user_failure_data.description


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
