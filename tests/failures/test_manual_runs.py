"""Replay and "Materialize" on the real local S3 server: a replay that comes while a person's Materialize run holds
a FAILED version leaves it to that run, and Materialize on a QUARANTINED partition ingests the version again. Each
ends with the same check as the other S3 failure tests: nothing lost, nothing processed twice."""

import pytest

from ingestion_project.core.resources import LedgerResource
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import (
    assert_nothing_lost_or_doubled,
    dlq_records,
    requested,
    wait_until,
    worker,
)

KEY = "in/orders.csv"
GOOD = b"order_id,amount\nO-1,1.50\nO-2,2.50\n"
TOO_SMALL = 10  # bytes: the limit that fails the document, until the operator raises it


@pytest.fixture
def landing(fresh_bucket, s3_client) -> str:
    s3_client.put_object(Bucket=fresh_bucket, Key=KEY, Body=GOOD)
    return fresh_bucket


@pytest.fixture
def make_pipeline(landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance):
    """A Pipeline on the landing bucket (S3 through the fault proxy); ``source`` options go to the source."""

    def build(ledger_url: str | None = None, **source) -> Pipeline:
        config = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/", "max_replays": 0, **source}
        sources_file = write_sources([config], bronze_bucket=bronze_bucket)
        resources = resources_for(sources_file, endpoint_url=s3_proxy.endpoint_url)
        if ledger_url:
            resources["ledger"] = LedgerResource(url=ledger_url)
        return Pipeline(resources, instance)

    return build


def partition(bucket: str) -> str:
    return DocumentRef("orders", bucket, KEY).partition_key


def the_version(pipeline: Pipeline) -> DocumentVersion:
    [row] = pipeline.ledger.versions()
    return DocumentVersion.from_row(row)


def failed_once(make_pipeline, ledger_url: str | None = None) -> DocumentVersion:
    """The document fails (over the object size limit) in the sensor's run: FAILED with an open dead letter."""
    broken = make_pipeline(ledger_url, max_object_size=TOO_SMALL)
    _, [run] = broken.run_requests()
    assert not run.success
    version = the_version(broken)
    row = broken.ledger.get(version)
    assert (row["status"], row["error_class"], row["retry_count"]) == ("FAILED", "validation", 0)
    return version


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_a_replay_while_materialize_holds_a_failed_version_leaves_it_to_that_run(
    ledger, request, tmp_path, landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance, ledger_resource
):
    url = ledger_resource.url if ledger == "sqlite" else request.getfixturevalue("postgres_url")
    version = failed_once(make_pipeline, url)
    fixed = make_pipeline(url, max_object_size="1MiB")  # the operator fixes the cause and clicks Materialize
    # The run's download is held until the test lets it go, so the replay comes while the run holds the version.
    s3_proxy.delay(300.0, method="GET", path=f"/{landing}/{KEY}")
    with worker(
        tmp_path / "workers",
        "materialize",
        sources=fixed.resources["ingestion"].sources_file,
        ledger_url=url,
        dagster_home=instance.root_directory,
        endpoint_url=s3_proxy.endpoint_url,
        partition=partition(landing),
    ) as manual:

        def holding():
            if manual.process.poll() is not None:
                raise AssertionError(f"the Materialize run exited early:\n{manual.output()}")
            row = fixed.ledger.get(version)
            downloading = any(r.method == "GET" and KEY in r.target for r in s3_proxy.requests())
            return row if row["status"] == "PROCESSING" and downloading else None

        held = wait_until(holding, 60, "the Materialize run to hold the version and be downloading it")
        # Out of replays (max_replays 0): without the guard, this replay would quarantine the version.
        outcome = fixed.replay().output_for_node("replay_dead_letters")
        assert (outcome["in_flight"], outcome["quarantined"], outcome["requested"]) == ([partition(landing)], [], [])
        row = fixed.ledger.get(version)
        assert (row["status"], row["lease_token"], row["run_id"]) == ("PROCESSING", held["lease_token"], held["run_id"])
        assert [letter["state"] for letter in fixed.ledger.dead_letter_rows()] == ["open"]
        # Dropping the held GET: the run's download is retried and goes through.
        s3_proxy.go_down()
        s3_proxy.come_back()
        report = manual.wait(timeout=300)

    assert report["success"], report["messages"]
    assert report["materialized"] == [partition(landing)]
    row = fixed.ledger.get(version)
    assert (row["status"], row["run_id"], row["records_ingested"]) == ("SUCCESS", held["run_id"], 2)
    [letter] = fixed.ledger.dead_letter_rows()
    assert letter["state"] == "resolved" and letter["dlq_key"].startswith("dlq/resolved/ingestion/")
    assert dlq_records(s3_client, bronze_bucket) == {}
    assert_nothing_lost_or_doubled(fixed.ledger, instance, s3_client, bronze_bucket)
    # The next replay finds nothing to do.
    outcome = fixed.replay().output_for_node("replay_dead_letters")
    assert not any(outcome.values())


def test_materialize_on_a_quarantined_partition_ingests_the_version_again(
    landing, bronze_bucket, s3_client, make_pipeline, instance
):
    version = failed_once(make_pipeline)
    broken = make_pipeline(max_object_size=TOO_SMALL)
    assert broken.replay().output_for_node("replay_dead_letters")["quarantined"] == [partition(landing)]
    row = broken.ledger.get(version)
    assert row["status"] == "QUARANTINED"
    [letter] = broken.ledger.dead_letter_rows()
    assert list(dlq_records(s3_client, bronze_bucket, "quarantined")) == [letter["dlq_key"]]

    assert requested(broken.tick()) == []  # nothing requests a quarantined version by itself
    # Materialize before the cause is fixed: the version fails again, and its one record is open again.
    again = broken.run(partition(landing))
    assert not again.success
    assert broken.ledger.get(version)["status"] == "FAILED"
    [reopened] = broken.ledger.dead_letter_rows()
    assert reopened["state"] == "open" and reopened["dlq_key"].startswith("dlq/ingestion/")
    broken.tick()  # the sensor finishes moving the record (the run's hook may have done it already)
    assert list(dlq_records(s3_client, bronze_bucket)) == [reopened["dlq_key"]]
    assert dlq_records(s3_client, bronze_bucket, "quarantined") == {}
    assert broken.replay().output_for_node("replay_dead_letters")["quarantined"] == [partition(landing)]

    fixed = make_pipeline(max_object_size="1MiB")
    run = fixed.run(partition(landing))  # a person's explicit decision: no `force` needed

    assert run.success
    [landed] = run.asset_materializations_for_node("raw_documents")
    assert (landed.partition, landed.metadata["etag"].value) == (partition(landing), version.etag)
    row = fixed.ledger.get(version)
    assert (row["status"], row["run_id"], row["records_ingested"], row["tries"]) == ("SUCCESS", run.run_id, 2, 0)
    [letter] = fixed.ledger.dead_letter_rows()
    assert letter["state"] == "resolved" and letter["dlq_key"].startswith("dlq/resolved/ingestion/")
    assert dlq_records(s3_client, bronze_bucket, "quarantined") == {}
    [record] = dlq_records(s3_client, bronze_bucket, "resolved").values()
    assert record["state"] == "resolved" and record["object"]["etag"] == version.etag
    assert_nothing_lost_or_doubled(fixed.ledger, instance, s3_client, bronze_bucket)
    assert requested(fixed.tick()) == []
