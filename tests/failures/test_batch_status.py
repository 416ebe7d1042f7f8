"""Batched runs keep the UI exactly true per document: read back from the instance, each landed document's partition
is materialized, each failed one failed (its reason on the partition's events), and partitions the run did not
touch keep the status they had."""

import dagster as dg
import pytest

from devtools.ticks import skip_message
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.lib.keys import DocumentRef
from tests.failures.conftest import Pipeline

GOOD = "order_id,amount\nO-1,1.50\nO-2,2.50\n"
ASSET = dg.AssetKey("raw_documents")
MATERIALIZED = dg.AssetPartitionStatus.MATERIALIZED
FAILED = dg.AssetPartitionStatus.FAILED


def pk(key: str) -> str:
    return DocumentRef("inbox", "", key).partition_key


def statuses(instance: dg.DagsterInstance, *keys: str) -> dict[str, dg.AssetPartitionStatus | None]:
    found = instance.get_status_by_partition(ASSET, [pk(k) for k in keys], documents_partitions) or {}
    return {key: found.get(pk(key)) for key in keys}


def observed_reasons(instance: dg.DagsterInstance, key: str) -> list[str]:
    records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[pk(key)]), 10)
    return [r.asset_observation.metadata["reason"].value for r in records.records]


@pytest.fixture
def pipeline(inbox, write_sources, resources_for, instance):
    source = {"name": "inbox", "type": "local", "path": str(inbox), "batch_size": {"documents": 50}}
    return Pipeline(resources_for(write_sources([source])), instance)


def test_one_batch_run_lands_many_documents_and_marks_each_partition(inbox, pipeline, instance):
    for i in range(12):
        (inbox / f"good-{i:02}.csv").write_text(GOOD)
    tick, [run] = pipeline.run_requests()
    [request] = tick.run_requests
    assert request.partition_key is None and len(request.run_config["ops"]["raw_documents"]["config"]["versions"]) == 12
    assert run.success
    assert set(statuses(instance, *[f"good-{i:02}.csv" for i in range(12)]).values()) == {MATERIALIZED}
    assert {row["status"] for row in pipeline.ledger.versions()} == {"SUCCESS"}


def test_a_batch_where_some_documents_fail_marks_exactly_those_partitions_failed(inbox, pipeline, instance):
    (inbox / "untouched.csv").write_text(GOOD)
    _, [first] = pipeline.run_requests()
    (inbox / "never-run.csv").write_text(GOOD)
    pipeline.tick()  # adds never-run's partition, and requests it: that run is never launched here
    assert first.success

    for name in ("a.csv", "c.csv"):
        (inbox / name).write_text(GOOD)
    (inbox / "b.csv").write_text("")  # empty: a validation failure
    (inbox / "d.csv").write_text("order_id,amount\nO-1,1\nO-2,2,3\n")  # ragged
    tick, runs = pipeline.run_requests()
    [batch] = [run for run in runs if not run.success]
    assert len(tick.run_requests) == 1  # never-run is already requested: only the four new ones
    assert statuses(instance, "a.csv", "b.csv", "c.csv", "d.csv", "untouched.csv", "never-run.csv") == {
        "a.csv": MATERIALIZED,
        "b.csv": FAILED,
        "c.csv": MATERIALIZED,
        "d.csv": FAILED,
        "untouched.csv": MATERIALIZED,
        "never-run.csv": None,
    }
    assert observed_reasons(instance, "b.csv") == ["ValidationError: inbox:b.csv is empty (0 bytes)"]
    assert "fields but the header has" in observed_reasons(instance, "d.csv")[0]
    failure = batch.failure_data_for_node("raw_documents").user_failure_data
    assert failure.description.startswith("2 of 4 document(s) failed") and "inbox:/b.csv" in failure.description
    assert len(pipeline.ledger.open_dead_letters()) == 2


def test_a_batch_mixing_new_keys_and_changed_versions_of_old_ones(inbox, pipeline, instance):
    for name in ("old-1.csv", "old-2.csv", "old-3.csv", "old-broken.csv"):
        (inbox / name).write_text(GOOD if "broken" not in name else "")
    _, [first] = pipeline.run_requests()
    assert not first.success
    assert statuses(instance, "old-1.csv", "old-broken.csv") == {"old-1.csv": MATERIALIZED, "old-broken.csv": FAILED}

    (inbox / "old-1.csv").write_text(GOOD + "O-3,3.50\n")  # changed: still fine
    (inbox / "old-2.csv").write_text("")  # changed: now broken
    (inbox / "old-broken.csv").write_text(GOOD)  # changed: fixed
    (inbox / "new-1.csv").write_text(GOOD)
    (inbox / "new-2.csv").write_text("x")  # a single field and no rows: not a CSV document
    tick, [second] = pipeline.run_requests()
    [request] = tick.run_requests
    pinned = {v["key"] for v in request.run_config["ops"]["raw_documents"]["config"]["versions"]}
    assert pinned == {"old-1.csv", "old-2.csv", "old-broken.csv", "new-1.csv", "new-2.csv"}
    assert not second.success
    assert statuses(instance, "old-1.csv", "old-2.csv", "old-3.csv", "old-broken.csv", "new-1.csv", "new-2.csv") == {
        "old-1.csv": MATERIALIZED,
        "old-2.csv": FAILED,  # its earlier version was materialized; its latest failed
        "old-3.csv": MATERIALIZED,  # not in this batch: as it was
        "old-broken.csv": MATERIALIZED,  # fixed under the same key
        "new-1.csv": MATERIALIZED,
        "new-2.csv": FAILED,
    }
    rows = {(r["object_key"], r["status"]) for r in pipeline.ledger.versions()}
    assert ("old-broken.csv", "SUPERSEDED") in rows and ("old-broken.csv", "SUCCESS") in rows
    letters = {(r["object_key"], r["state"]) for r in pipeline.ledger.dead_letter_rows()}
    assert letters == {("old-broken.csv", "superseded"), ("old-2.csv", "open"), ("new-2.csv", "open")}


def test_batches_respect_the_per_source_size_and_the_runs_per_tick_cap(inbox, write_sources, resources_for, instance):
    for i in range(7):
        (inbox / f"doc-{i}.csv").write_text(GOOD)
    source = {"name": "inbox", "type": "local", "path": str(inbox), "batch_size": {"documents": 2}}
    pipeline = Pipeline(resources_for(write_sources([source], max_runs_per_tick=3)), instance)
    first = pipeline.tick()
    assert [len(r.run_config["ops"]["raw_documents"]["config"]["versions"]) for r in first.run_requests] == [2, 2, 2]
    second = pipeline.tick()
    assert [len(r.run_config["ops"]["raw_documents"]["config"]["versions"]) for r in second.run_requests] == [1]
    keys = [r.run_key for r in first.run_requests + second.run_requests]
    assert len(set(keys)) == 4
    assert skip_message(pipeline.tick()) is not None  # everything is requested once


def test_batch_bytes_limit_splits_large_documents(inbox, write_sources, resources_for, instance):
    for i in range(3):
        (inbox / f"big-{i}.csv").write_text(GOOD + "O-9,9.99\n" * 100)  # ~1 KB each
    source = {"name": "inbox", "type": "local", "path": str(inbox), "batch_size": {"documents": 10, "bytes": 1500}}
    pipeline = Pipeline(resources_for(write_sources([source])), instance)
    tick = pipeline.tick()
    assert [len(r.run_config["ops"]["raw_documents"]["config"]["versions"]) for r in tick.run_requests] == [1, 1, 1]
