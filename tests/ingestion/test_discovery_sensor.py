import json
import os

import dagster as dg
import pytest

from ingestion_project.ingestion.partitions import documents_partitions
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import LocalObjectStore


@pytest.fixture
def local_resources(inbox, write_sources, resources_for):
    return resources_for(write_sources([{"name": "inbox", "type": "local", "path": str(inbox), "include": ["*.csv"]}]))


def tick(resources, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = document_discovery_sensor(context)
    if isinstance(result, dg.SensorResult):
        # What the daemon would do with the result, so the next tick sees the partitions.
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_sensor_skips_when_no_documents_exist(local_resources):
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert isinstance(result, dg.SkipReason)
    assert "No new or changed documents: listed 0 matching object(s) in 1 source(s)" in result.skip_message


def test_sensor_requests_new_documents_as_partitions_and_runs(inbox, local_resources):
    (inbox / "a.csv").write_text("x\n1\n")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "b c.csv").write_text("x\n2\n")
    (inbox / "ignored.json").write_text("{}")
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
        partitions = set(instance.get_dynamic_partitions(documents_partitions.name))
    expected = {
        DocumentRef("inbox", "", "a.csv").partition_key,
        DocumentRef("inbox", "", "sub/b c.csv").partition_key,
    }
    assert isinstance(result, dg.SensorResult)
    assert {r.partition_key for r in result.run_requests} == expected == partitions
    etag = LocalObjectStore(inbox).head("a.csv").etag
    assert f"inbox:/a.csv@{etag}" in {r.run_key for r in result.run_requests}


def test_sensor_skips_unchanged_documents_on_the_next_tick(inbox, local_resources):
    (inbox / "a.csv").write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(local_resources, instance)
        second = tick(local_resources, instance, cursor=first.cursor)
    assert len(first.run_requests) == 1
    assert isinstance(second, dg.SkipReason)
    assert "0 new or changed, 1 already known" in second.skip_message


def test_sensor_requests_a_changed_document_exactly_once(inbox, local_resources):
    doc = inbox / "a.csv"
    doc.write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(local_resources, instance)
        doc.write_text("x\n1\n2\n")
        os.utime(doc, ns=(doc.stat().st_atime_ns, doc.stat().st_mtime_ns + 10**9))
        second = tick(local_resources, instance)
        third = tick(local_resources, instance)
    assert [r.partition_key for r in second.run_requests] == [r.partition_key for r in first.run_requests]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert isinstance(third, dg.SkipReason)


class _ListsTwice(LocalObjectStore):
    """A store whose listing repeats every object: the duplicate a retried page can produce."""

    def list_objects(self, prefix=""):
        for info in super().list_objects(prefix):
            yield info
            yield info


def test_a_version_listed_twice_in_one_tick_is_requested_once(inbox, local_resources, monkeypatch):
    (inbox / "a.csv").write_text("x\n1\n")
    monkeypatch.setattr(type(local_resources["ingestion"]), "source_store", lambda self, name: _ListsTwice(inbox))
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert len(result.run_requests) == 1
    assert len(result.dynamic_partitions_requests[0].partition_keys) == 1


def test_cursor_is_small_and_holds_no_keys(inbox, local_resources):
    for i in range(50):
        (inbox / f"doc-{i}.csv").write_text("x\n1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(local_resources, instance)
    assert len(result.run_requests) == 50
    assert len(result.cursor) < 200
    assert "doc-" not in result.cursor
    assert json.loads(result.cursor)["new"] == 50


def test_sensor_pages_through_2500_s3_keys(s3_client, fresh_bucket, write_sources, resources_for):
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"drop/{i:05d}.csv" for i in range(2500)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=fresh_bucket, Key=k, Body=b"x\n1\n"), keys))
    resources = resources_for(
        write_sources([{"name": "drop", "type": "s3", "bucket": fresh_bucket, "prefix": "drop/"}])
    )
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(resources, instance)
        second = tick(resources, instance, cursor=first.cursor)
    assert len(first.run_requests) == 2500
    assert {r.partition_key for r in first.run_requests} == {
        DocumentRef("drop", fresh_bucket, k).partition_key for k in keys
    }
    assert isinstance(second, dg.SkipReason)
    assert "2500 already known" in second.skip_message


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
    assert [DocumentRef.from_partition_key(r.partition_key).key for r in result.run_requests] == ["in/a.csv"]


def test_a_failing_source_does_not_hide_the_others(inbox, s3_client, write_sources, resources_for):
    (inbox / "a.csv").write_text("x\n1\n")
    sources = [
        {"name": "missing", "type": "s3", "bucket": "no-such-bucket-here"},
        {"name": "inbox", "type": "local", "path": str(inbox)},
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(resources_for(write_sources(sources)), instance)
    assert [DocumentRef.from_partition_key(r.partition_key).source for r in result.run_requests] == ["inbox"]
