import json
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from devtools.ticks import skip_message, tick_sensor
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.batches import BATCH_TAG, DOCUMENTS_TAG, SOURCE_TAG
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import LocalObjectStore

# "<source>:<first id>-<last id>:<n>:<digest>"
RUN_KEY = re.compile(r"^(?P<source>[a-z][a-z0-9_]*):(?P<first>\d+)-(?P<last>\d+):(?P<count>\d+):(?P<digest>\w+)$")


@pytest.fixture
def local_source(inbox):
    return {"name": "inbox", "type": "local", "path": str(inbox), "include": ["*.csv"]}


@pytest.fixture
def local_resources(local_source, write_sources, resources_for):
    return resources_for(write_sources([local_source]))


def tick(resources, instance, cursor=None):
    return tick_sensor(document_discovery_sensor, instance, resources, cursor)


def requests_of(result) -> list[dg.RunRequest]:
    return list(getattr(result, "run_requests", None) or [])


def pinned(request: dg.RunRequest) -> list[dict]:
    """The versions a run request pins, as its run receives them in its config."""
    return request.run_config["ops"]["raw_documents"]["config"]["versions"]


def pinned_keys(result) -> list[str]:
    return [version["key"] for request in requests_of(result) for version in pinned(request)]


def added_partitions(result) -> list[str]:
    return [key for request in result.dynamic_partitions_requests for key in request.partition_keys]


def test_sensor_skips_when_no_documents_exist(local_resources):
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert skip_message(result) is not None
    assert "No documents to request: listed 0 matching object(s) in 1 source(s)" in skip_message(result)


def test_sensor_adds_new_documents_as_partitions_and_requests_one_batch_run_pinning_their_versions(
    inbox, local_resources, ledger_resource
):
    (inbox / "a.csv").write_text("x\n1\n")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "b c.csv").write_text("x\n2\n")
    (inbox / "ignored.json").write_text("{}")
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
        partitions = set(instance.get_dynamic_partitions(documents_partitions.name))
    store = LocalObjectStore(inbox)
    keys = ["a.csv", "sub/b c.csv"]
    assert isinstance(result, dg.SensorResult)
    assert set(added_partitions(result)) == {DocumentRef("inbox", "", k).partition_key for k in keys} == partitions

    [request] = result.run_requests  # two documents fit in one batch of the default size
    assert request.partition_key is None  # a batch pins versions, not partitions
    rows = {row["object_key"]: row for row in ledger_resource.ledger().versions()}
    assert pinned(request) == [
        {
            "seq": rows[key]["id"],
            "source": "inbox",
            "bucket": "",
            "key": key,
            "etag": store.head(key).etag,
            "version_id": None,
            "size": store.head(key).size,
        }
        for key in keys
    ]
    match = RUN_KEY.match(request.run_key)
    assert match, request.run_key
    seqs = [version["seq"] for version in pinned(request)]
    assert (match["source"], int(match["first"]), int(match["last"]), int(match["count"])) == (
        "inbox",
        seqs[0],
        seqs[-1],
        2,
    )
    assert request.tags == {BATCH_TAG: request.run_key, SOURCE_TAG: "inbox", DOCUMENTS_TAG: "2"}
    # The ledger knows which request carries each version.
    assert {row["object_key"]: row["request_key"] for row in rows.values()} == dict.fromkeys(keys, request.run_key)


def test_a_batch_request_is_valid_run_config_for_the_ingestion_job(inbox, local_resources):
    (inbox / "a.csv").write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        [request] = tick(local_resources, instance).run_requests
    job = dg.Definitions(assets=[raw_documents], jobs=[ingest_documents_job], resources=local_resources)
    assert document_discovery_sensor.job_name == "ingest_documents"
    dg.validate_run_config(job.resolve_job_def("ingest_documents"), request.run_config)


def test_sensor_skips_unchanged_documents_on_the_next_tick(inbox, local_resources):
    (inbox / "a.csv").write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(local_resources, instance)
        second = tick(local_resources, instance, cursor=first.cursor)
    assert pinned_keys(first) == ["a.csv"]
    assert skip_message(second) is not None
    assert "0 new or changed, 1 already known" in skip_message(second)


def test_sensor_requests_a_changed_document_exactly_once_pinning_its_new_version(inbox, local_resources):
    doc = inbox / "a.csv"
    doc.write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(local_resources, instance)
        doc.write_text("x\n1\n2\n")
        os.utime(doc, ns=(doc.stat().st_atime_ns, doc.stat().st_mtime_ns + 10**9))
        second = tick(local_resources, instance)
        third = tick(local_resources, instance)
    [[old]], [[new]] = ([pinned(r) for r in requests_of(t)] for t in (first, second))
    assert old["key"] == new["key"] == "a.csv"
    assert new["etag"] == LocalObjectStore(inbox).head("a.csv").etag != old["etag"]
    assert new["seq"] > old["seq"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert skip_message(third) is not None


def test_a_request_no_run_picked_up_is_requested_again_with_the_same_versions_under_a_new_run_key(
    inbox, local_source, write_sources, resources_for
):
    (inbox / "a.csv").write_text("x\n1\n")
    (inbox / "b.csv").write_text("x\n2\n")
    resources = resources_for(write_sources([local_source], request_timeout_seconds=1))
    with dg.DagsterInstance.ephemeral() as instance:
        [first] = tick(resources, instance).run_requests
        time.sleep(1.5)  # past request_timeout_seconds, and no run carries the request's batch tag
        [again] = tick(resources, instance).run_requests
        assert skip_message(tick(resources, instance)) is not None
    assert pinned(again) == pinned(first)
    assert again.run_key != first.run_key
    assert again.tags[BATCH_TAG] == again.run_key


class _ListsTwice(LocalObjectStore):
    """A store whose listing repeats every object: the duplicate a retried page can produce."""

    def list_objects(self, prefix="", start_after=None):
        for info in super().list_objects(prefix, start_after):
            yield info
            yield info


def test_a_version_listed_twice_in_one_tick_is_requested_once(inbox, local_resources, monkeypatch):
    (inbox / "a.csv").write_text("x\n1\n")
    monkeypatch.setattr(type(local_resources["ingestion"]), "source_store", lambda self, name: _ListsTwice(inbox))
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert pinned_keys(result) == ["a.csv"]
    assert len(added_partitions(result)) == 1


def test_cursor_is_small_and_holds_no_key_lists(inbox, local_resources):
    for i in range(50):
        (inbox / f"doc-{i}.csv").write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert len(pinned_keys(result)) == 50
    assert len(result.cursor) < 400
    # Only where listing resumes: the greatest key seen, not the keys listed.
    assert result.cursor.count("doc-") == 1
    cursor = json.loads(result.cursor)
    assert cursor["listing"]["inbox"]["watermark"] == "doc-9.csv"
    assert (cursor["new"], cursor["requested"], cursor["runs"]) == (50, 50, len(result.run_requests))


def test_due_versions_beyond_the_runs_per_tick_cap_wait_for_later_ticks_and_are_requested_once(
    inbox, local_source, write_sources, resources_for
):
    names = [f"doc-{i}.csv" for i in range(7)]
    for name in names:
        (inbox / name).write_text("x\n1\n")
    source = {**local_source, "batch_size": {"documents": 2}}
    resources = resources_for(write_sources([source], max_runs_per_tick=2))
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = [tick(resources, instance) for _ in range(4)]
    sizes = [[len(pinned(r)) for r in requests_of(t)] for t in ticks]
    assert sizes == [[2, 2], [2, 1], [], []]
    assert skip_message(ticks[-1]) is not None
    assert sorted(key for t in ticks for key in pinned_keys(t)) == sorted(names)  # every version once, in all
    assert len({r.run_key for t in ticks for r in requests_of(t)}) == 4
    # Every new version became a partition on the tick that discovered it, even the ones not requested yet.
    assert len(added_partitions(ticks[0])) == len(names)


def test_sensor_pages_through_2500_s3_keys_and_batches_them_by_the_source_batch_size(
    s3_client, fresh_bucket, write_sources, resources_for
):
    keys = [f"drop/{i:05d}.csv" for i in range(2500)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=fresh_bucket, Key=k, Body=b"x\n1\n"), keys))
    source = {
        "name": "drop",
        "type": "s3",
        "bucket": fresh_bucket,
        "prefix": "drop/",
        "batch_size": {"documents": 1000},
    }
    resources = resources_for(write_sources([source]))
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(resources, instance)
        second = tick(resources, instance, cursor=first.cursor)
    assert [len(pinned(r)) for r in first.run_requests] == [1000, 1000, 500]
    assert [r.tags[DOCUMENTS_TAG] for r in first.run_requests] == ["1000", "1000", "500"]
    assert Counter(pinned_keys(first)) == Counter(dict.fromkeys(keys, 1))  # each key in exactly one batch
    assert {v["bucket"] for r in first.run_requests for v in pinned(r)} == {fresh_bucket}
    assert set(added_partitions(first)) == {DocumentRef("drop", fresh_bucket, k).partition_key for k in keys}
    assert len(first.cursor) < 200
    assert skip_message(second) is not None
    assert "2500 already known" in skip_message(second)


def test_s3_folder_markers_and_excluded_keys_are_not_requested(s3_client, fresh_bucket, write_sources, resources_for):
    for key, body in [
        ("in/", b""),
        ("in/sub/", b""),
        ("in/a.csv", b"x\n1\n"),
        ("in/a.txt", b"t"),
        ("out/b.csv", b"x"),
    ]:
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body)
    source = {"name": "drop", "type": "s3", "bucket": fresh_bucket, "prefix": "in/", "include": ["*.csv"]}
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(resources_for(write_sources([source])), instance)
    assert pinned_keys(result) == ["in/a.csv"]
    assert added_partitions(result) == [DocumentRef("drop", fresh_bucket, "in/a.csv").partition_key]


def test_a_failing_source_does_not_hide_the_others(inbox, s3_client, write_sources, resources_for):
    (inbox / "a.csv").write_text("x\n1\n")
    sources = [
        {"name": "missing", "type": "s3", "bucket": "no-such-bucket-here"},
        {"name": "inbox", "type": "local", "path": str(inbox)},
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(resources_for(write_sources(sources)), instance)
    assert [r.tags[SOURCE_TAG] for r in result.run_requests] == ["inbox"]
    assert [(v["source"], v["key"]) for r in result.run_requests for v in pinned(r)] == [("inbox", "a.csv")]
