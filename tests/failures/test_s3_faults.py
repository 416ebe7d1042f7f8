"""The failure scenarios on the real local S3 server: throttling, an outage, a vanished object, a killed worker,
two workers at once and an overwritten object. Runs are launched as the daemon launches the discovery sensor's
requests (a batch of pinned versions), or on a partition as "Materialize" in the UI does. Each ends with the same
check: nothing lost (every version SUCCESS, FAILED with one open dead-letter record holding the reason, or the end
state the scenario expects, such as SUPERSEDED) and nothing processed twice (one SUCCESS ledger row, one bronze
manifest and one materialization per version). A test marked xfail (strict) states the intended behaviour where
the code falls short of it yet."""

import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from ingestion_project.core.resources import LedgerResource
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import (
    assert_nothing_lost_or_doubled,
    dlq_records,
    documents_tally,
    log_messages,
    manifest_key,
    pinned,
    requested,
    retry_lines,
    step_retries,
    wait_until,
    worker,
    write_request,
)
from tests.faults import FaultKind

KEY = "in/orders.csv"
GOOD = b"order_id,amount\nO-1,1.50\nO-2,2.50\n"
# S3Resource passes max_attempts to botocore as retries["max_attempts"], which botocore reads as
# retries after the first request (total = max_attempts + 1): 0 is a single attempt, no botocore retry.
NO_BOTOCORE_RETRIES = {"max_attempts": 0}


@pytest.fixture
def landing(fresh_bucket, s3_client) -> str:
    s3_client.put_object(Bucket=fresh_bucket, Key=KEY, Body=GOOD)
    return fresh_bucket


@pytest.fixture
def make_pipeline(landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance):
    """A Pipeline on the landing bucket whose S3 traffic goes through the fault proxy."""

    def build(retries: dict | None = None, ledger_url: str | None = None, s3_options: dict | None = None, **settings):
        source = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/"}
        if retries:
            source["retries"] = retries
        sources_file = write_sources([source], bronze_bucket=bronze_bucket, **settings)
        resources = resources_for(sources_file, endpoint_url=s3_proxy.endpoint_url, **(s3_options or {}))
        if ledger_url:
            resources["ledger"] = LedgerResource(url=ledger_url)
        return Pipeline(resources, instance)

    return build


def partition(bucket: str) -> str:
    return DocumentRef("orders", bucket, KEY).partition_key


def version_of(request: dg.RunRequest) -> DocumentVersion:
    """The one version a request pins."""
    [pin] = pinned(request)
    return DocumentVersion(DocumentRef(pin["source"], pin["bucket"], pin["key"]), pin["etag"])


def object_gets(proxy, bucket: str) -> list:
    """The fault (None: forwarded) each GET of the landing object was answered with, in order."""
    return [r.fault for r in proxy.requests() if r.method == "GET" and f"/{bucket}/{KEY}" in r.target]


def test_throttled_download_is_retried_by_botocore_and_lands_once(
    landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    s3_proxy.slow_down(times=3, method="GET", path=f"/{landing}/{KEY}")
    run = pipeline.run_request(request)
    assert run.success
    assert step_retries(run) == 0  # botocore's own backoff absorbed the throttling
    assert s3_proxy.counts().injected == {FaultKind.SLOW_DOWN: 3}
    assert object_gets(s3_proxy, landing) == [FaultKind.SLOW_DOWN] * 3 + [None]
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["run_id"], row["error_type"], row["tries"]) == ("SUCCESS", run.run_id, None, 0)


def test_throttled_download_without_botocore_retries_is_retried_by_the_step(
    landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    pipeline = make_pipeline(s3_options=NO_BOTOCORE_RETRIES)
    client = pipeline.resources["ingestion"].s3.get_client()
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    [request] = pipeline.tick().run_requests
    s3_proxy.slow_down(times=2, method="GET", path=f"/{landing}/{KEY}")
    run = pipeline.run_request(request)
    assert run.success
    assert step_retries(run) == 2
    assert object_gets(s3_proxy, landing) == [FaultKind.SLOW_DOWN, FaultKind.SLOW_DOWN, None]
    lines = retry_lines(instance, run.run_id)
    assert [(m["document"], m["try"], m["max_tries"]) for m in lines] == [
        (partition(landing), "1", "4"),  # FAST_RETRIES: transient max_retries 3
        (partition(landing), "2", "4"),
    ]
    for line in lines:
        assert line["error"] == f"TransientError: GET s3://{landing}/{KEY}: SlowDown Please reduce your request rate."
        assert 0 <= float(line["delay"]) <= 0.3  # capped at max_delay_seconds
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["run_id"], row["error_type"]) == ("SUCCESS", run.run_id, None)
    assert row["tries"] == 2  # the tries are counted in the ledger, per version


def test_a_backoff_longer_than_the_run_may_sleep_hands_the_version_back_for_a_later_run(
    landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    # A huge base delay capped at 1.5 s: the first backoff is 1.5 s (all but surely above 0), over the 0 s a run
    # may sleep, so the version goes back to the ledger rather than hold the run.
    retries = {
        "transient": {"max_retries": 3, "delay_seconds": 1000, "max_delay_seconds": 1.5},
        "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
    }
    pipeline = make_pipeline(retries=retries, s3_options=NO_BOTOCORE_RETRIES, max_in_run_backoff_seconds=0)
    [request] = pipeline.tick().run_requests
    s3_proxy.slow_down(times=1, method="GET", path=f"/{landing}/{KEY}")
    run = pipeline.run_request(request)
    assert run.success and step_retries(run) == 0  # nothing failed, and the run did not wait
    assert run.asset_materializations_for_node("raw_documents") == []
    [line] = retry_lines(instance, run.run_id)
    assert (line["document"], line["try"], line["max_tries"]) == (partition(landing), "1", "4")
    assert documents_tally(log_messages(instance, run.run_id)) == {"handed back for a later run": 1}
    row = pipeline.ledger.get(version_of(request))
    assert (row["status"], row["tries"], row["lease_token"], row["requested_at"]) == ("DISCOVERED", 1, None, None)
    assert row["not_before"] > datetime.now(UTC)
    assert requested(pipeline.tick()) == []  # not due yet

    wait_until(lambda: datetime.now(UTC) > row["not_before"], 10, "the version's not-before time")
    tick, [again] = pipeline.run_requests()
    [request_again] = tick.run_requests
    assert request_again.run_key != request.run_key and version_of(request_again) == version_of(request)
    assert again.success and len(again.asset_materializations_for_node("raw_documents")) == 1
    assert object_gets(s3_proxy, landing) == [FaultKind.SLOW_DOWN, None]
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    row = pipeline.ledger.get(version_of(request))
    assert (row["status"], row["run_id"], row["tries"]) == ("SUCCESS", again.run_id, 1)


def test_endpoint_back_within_the_transient_retries_lands_once(
    bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    retries = {
        "transient": {"max_retries": 5, "delay_seconds": 0.5, "max_delay_seconds": 1},
        "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
    }
    pipeline = make_pipeline(retries=retries, s3_options=NO_BOTOCORE_RETRIES)
    [request] = pipeline.tick().run_requests
    s3_proxy.go_down()

    def first_try_failed() -> bool:
        return pipeline.ledger.versions()[0]["tries"] >= 1

    def come_back_a_second_after_the_first_failure():
        # A run takes about a second to start: the outage is timed from the step's first failed try instead.
        try:
            wait_until(first_try_failed, 30, "the first try to fail on the outage", interval=0.02)
            time.sleep(1.0)
        finally:
            s3_proxy.come_back()

    comeback = threading.Thread(target=come_back_a_second_after_the_first_failure, daemon=True)
    comeback.start()
    try:
        run = pipeline.run_request(request)
    finally:
        comeback.join(35)
        s3_proxy.come_back()  # a no-op when the thread did it
    assert run.success
    lines = retry_lines(instance, run.run_id)
    assert 1 <= step_retries(run) == len(lines) <= 5
    assert all("EndpointConnectionError" in line["error"] for line in lines), [line["error"] for line in lines]
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["tries"]) == ("SUCCESS", len(lines))


@pytest.mark.parametrize("when", ["before_the_run", "during_the_download"])
def test_object_deleted_after_listing_gets_its_few_retries_then_the_dlq(
    when, landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    retries = {
        "transient": {"max_retries": 3, "delay_seconds": 0.1, "max_delay_seconds": 0.3},
        "external": {"max_retries": 2, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
    }
    pipeline = make_pipeline(retries=retries)
    [request] = pipeline.tick().run_requests
    listed_etag = version_of(request).etag
    deleter = None
    if when == "before_the_run":
        s3_client.delete_object(Bucket=landing, Key=KEY)
    else:
        # The run's GET of the pinned version is held back and the object is deleted meanwhile.
        s3_proxy.delay(2.0, method="GET", path=f"/{landing}/{KEY}")

        def delete_once_the_get_arrives():
            wait_until(lambda: object_gets(s3_proxy, landing), 20, "the GET of the object")
            s3_client.delete_object(Bucket=landing, Key=KEY)

        deleter = threading.Thread(target=delete_once_the_get_arrives, daemon=True)
        deleter.start()
    started = time.monotonic()
    run = pipeline.run_request(request)
    pipeline.after_run(run.run_id)  # the failed-run sensor: the version is FAILED, nothing to release
    if deleter is not None:
        deleter.join(30)
        assert not deleter.is_alive()
    assert not run.success
    assert time.monotonic() - started < 30  # it gave up rather than retrying on and on
    assert step_retries(run) == 2  # external: max_retries 2, then the dead-letter queue
    records = assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    [record] = records.values()
    assert (record["error"]["class"], record["error"]["type"], record["attempts"]) == ("external", "ExternalError", 3)
    assert record["object"]["etag"] == listed_etag and record["object"]["key"] == KEY
    assert record["run_id"] == run.run_id and f"s3://{landing}/{KEY}" in record["error"]["message"]
    assert record["job_name"] == "ingest_documents"
    # A batch run GETs the pinned version directly (If-Match): a vanished object is a missing one, not a newer one.
    assert retry_lines(instance, run.run_id)[0]["error"].startswith(f"ExternalError: GET s3://{landing}/")
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["etag"], row["error_class"], row["tries"]) == ("FAILED", listed_etag, "external", 2)
    assert requested(pipeline.tick()) == []  # nothing is requested again by itself


def test_worker_killed_mid_document_is_released_when_its_lease_expires_and_ingested_once(
    tmp_path, landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance, ledger_resource
):
    pipeline = make_pipeline(lease_seconds=2)
    [request] = pipeline.tick().run_requests
    version = version_of(request)
    s3_proxy.delay(30.0, method="GET", path=f"/{landing}/{KEY}")
    workdir = tmp_path / "workers"
    with worker(
        workdir,
        "doomed",
        sources=pipeline.resources["ingestion"].sources_file,
        ledger_url=ledger_resource.url,
        dagster_home=instance.root_directory,
        endpoint_url=s3_proxy.endpoint_url,
        request=write_request(workdir / "request.json", request),
    ) as doomed:

        def mid_document():
            if doomed.process.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{doomed.output()}")
            row = pipeline.ledger.get(version)
            return row if row["status"] == "PROCESSING" and object_gets(s3_proxy, landing) else None

        held = wait_until(mid_document, 30, "the worker to hold the document and be downloading it")

        def renewed_lease():
            row = pipeline.ledger.get(version)
            return row if row["lease_expires_at"] > held["lease_expires_at"] else None

        # Its heartbeat keeps the lease alive while it works.
        renewed = wait_until(renewed_lease, 10, "the worker's heartbeat to renew its lease")
        assert (renewed["status"], renewed["lease_token"]) == ("PROCESSING", held["lease_token"])
        doomed.process.kill()
        doomed.process.wait(10)
    assert not doomed.result_file.exists()
    dead_run = instance.get_run_by_id(held["run_id"])
    assert dead_run.status == dg.DagsterRunStatus.STARTED  # nobody told Dagster: the process just vanished

    # Until the lease expires, the version is the dead worker's: a tick neither releases nor requests it.
    if pipeline.ledger.get(version)["lease_expires_at"] > datetime.now(UTC) + timedelta(seconds=0.5):
        assert requested(pipeline.tick()) == []
        assert pipeline.ledger.get(version)["status"] == "PROCESSING"
    wait_until(lambda: pipeline.ledger.expired_leases(), 10, "the dead worker's lease to expire")

    tick = pipeline.tick()  # releases the version, marks the dead run failed and requests the version again
    [again] = tick.run_requests
    assert again.run_key != request.run_key  # the daemon would drop a run key it has seen
    assert pinned(again)[0]["etag"] == version.etag
    assert instance.get_run_by_id(held["run_id"]).status == dg.DagsterRunStatus.FAILURE
    row = pipeline.ledger.get(version)
    assert (row["status"], row["lost_count"], row["lease_token"], row["request_key"]) == (
        "DISCOVERED",
        1,
        None,
        again.run_key,
    )
    assert f"run {held['run_id']} stopped renewing its lease" in row["error_message"]
    pipeline.after_run(held["run_id"])  # the failed-run sensor on the dead run: it holds nothing any more
    assert pipeline.ledger.get(version)["request_key"] == again.run_key

    run = pipeline.run_request(again)
    assert run.success and len(run.asset_materializations_for_node("raw_documents")) == 1
    row = pipeline.ledger.get(version)
    assert (row["status"], row["lost_count"], row["retry_count"], row["run_id"]) == ("SUCCESS", 1, 0, run.run_id)
    assert held["run_id"] != run.run_id  # the run that ingested the document is another one
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    assert requested(pipeline.tick()) == []


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_two_concurrent_runs_of_one_document_land_it_once(
    ledger, request, tmp_path, landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance, ledger_resource
):
    url = ledger_resource.url if ledger == "sqlite" else request.getfixturevalue("postgres_url")
    pipeline = make_pipeline(ledger_url=url)
    [run_request] = pipeline.tick().run_requests
    # The winner's download is held for 2 s, so the loser's claim comes while the winner holds the document.
    s3_proxy.delay(2.0, method="GET", path=f"/{landing}/{KEY}")
    common = {
        "sources": pipeline.resources["ingestion"].sources_file,
        "ledger_url": url,
        "dagster_home": instance.root_directory,
        "endpoint_url": s3_proxy.endpoint_url,
        "go": str(tmp_path / "go"),
    }
    workdir = tmp_path / "workers"
    # The sensor's batch run, and a run of the same document started from the UI at the same moment.
    with (
        worker(
            workdir,
            "batch",
            ready=str(workdir / "batch.ready"),
            request=write_request(workdir / "request.json", run_request),
            **common,
        ) as batch,
        worker(workdir, "ui", ready=str(workdir / "ui.ready"), partition=partition(landing), **common) as ui,
    ):

        def both_ready():
            for w in (batch, ui):
                if w.process.poll() is not None:
                    raise AssertionError(f"a worker exited early:\n{w.output()}")
            return (workdir / "batch.ready").exists() and (workdir / "ui.ready").exists()

        wait_until(both_ready, 60, "both workers to load")
        (tmp_path / "go").touch()
        reports = [batch.wait(60), ui.wait(60)]

    assert all(r["success"] for r in reports), reports
    [winner] = [r for r in reports if r["materialized"]]
    [loser] = [r for r in reports if not r["materialized"]]
    assert winner["materialized"] == [partition(landing)]
    assert documents_tally(winner["messages"]) == {"landed": 1}
    # The loser's claim found the version held: it leaves it alone, neither downloading nor dead-lettering it.
    assert documents_tally(loser["messages"]) == {"not claimed (held or finished elsewhere)": 1}
    assert object_gets(s3_proxy, landing) == [FaultKind.DELAY]  # only the winner downloaded it
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["run_id"]) == ("SUCCESS", winner["run_id"])


def test_a_run_failing_on_a_document_another_run_holds_leaves_that_claim_alone(
    landing, s3_proxy, make_pipeline, instance
):
    pipeline = make_pipeline(s3_options=NO_BOTOCORE_RETRIES)
    [request] = pipeline.tick().run_requests
    version = version_of(request)
    row_id = pipeline.ledger.get(version)["id"]
    # Another run holds the document and is busy downloading it (claimed just now, its lease far from expired).
    lease = pipeline.ledger.claim([row_id], "live-run", timedelta(minutes=15))
    assert [r["id"] for r in lease.rows] == [row_id]
    s3_proxy.internal_error(times=10, method="HEAD", path=f"/{landing}/{KEY}")  # more than the transient retries
    s3_proxy.internal_error(times=10, method="GET", path=f"/{landing}/{KEY}")
    # A UI run cannot HEAD the object (it falls back to the version the ledger knows), and a run of the sensor's
    # request pins that same version: both find it held.
    runs = [pipeline.run(partition(landing)), pipeline.run_request(request)]
    for run in runs:
        pipeline.after_run(run.run_id)
        # The version is another run's: the run skips it rather than retry or dead-letter it.
        assert run.success and step_retries(run) == 0
        assert run.asset_materializations_for_node("raw_documents") == []
        assert documents_tally(log_messages(instance, run.run_id)) == {"not claimed (held or finished elsewhere)": 1}
    assert object_gets(s3_proxy, landing) == []  # neither downloaded it
    assert pipeline.ledger.dead_letter_rows() == []
    row = pipeline.ledger.get(version)
    assert (row["status"], row["run_id"], row["lease_token"], row["tries"]) == (
        "PROCESSING",
        "live-run",
        lease.token,
        0,
    )
    landed = pipeline.ledger.succeed(
        row_id, lease.token, sha256="0" * 64, records=2, bytes_read=len(GOOD), duration_ms=1
    )
    assert landed == []  # the holder's outcome is recorded (no dead letter to close)
    assert pipeline.ledger.get(version)["status"] == "SUCCESS"


def test_overwritten_object_is_reprocessed_once_and_both_versions_are_kept(
    landing, bronze_bucket, s3_client, make_pipeline, instance
):
    pipeline = make_pipeline()
    first_tick, [first] = pipeline.run_requests()
    assert first.success
    changed = GOOD + b"O-3,3.50\n"
    s3_client.put_object(Bucket=landing, Key=KEY, Body=changed)
    tick, [second] = pipeline.run_requests()
    [request] = tick.run_requests
    new_etag = s3_client.head_object(Bucket=landing, Key=KEY)["ETag"].strip('"')
    assert version_of(request).etag == new_etag  # the new version, pinned
    assert request.run_key != first_tick.run_requests[0].run_key
    assert second.success and len(second.asset_materializations_for_node("raw_documents")) == 1
    assert requested(pipeline.tick()) == []  # each version once

    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    rows = pipeline.ledger.versions()
    assert [(r["status"], r["run_id"], r["records_ingested"]) for r in rows] == [
        ("SUCCESS", first.run_id, 2),  # landed before the overwrite: kept, not superseded
        ("SUCCESS", second.run_id, 3),
    ]
    assert rows[1]["etag"] == new_etag != rows[0]["etag"]
    assert len({manifest_key(r) for r in rows}) == 2
    assert dlq_records(s3_client, bronze_bucket) == {}


def test_object_overwritten_during_its_download_is_superseded_not_retried_and_the_new_version_lands_once(
    landing, bronze_bucket, s3_proxy, s3_client, make_pipeline, instance
):
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    old_etag = version_of(request).etag
    # The run's GET of the pinned version is held back and the object is overwritten meanwhile.
    s3_proxy.delay(2.0, method="GET", path=f"/{landing}/{KEY}")

    def overwrite_once_the_get_arrives():
        wait_until(lambda: object_gets(s3_proxy, landing), 20, "the GET of the object")
        s3_client.put_object(Bucket=landing, Key=KEY, Body=GOOD + b"O-3,3.50\n")

    writer = threading.Thread(target=overwrite_once_the_get_arrives, daemon=True)
    writer.start()
    run = pipeline.run_request(request)
    writer.join(30)
    assert not writer.is_alive()
    # The GET asked for exactly the pinned ETag: the version is gone, which no retry can bring back.
    assert run.success and step_retries(run) == 0 and retry_lines(instance, run.run_id) == []
    assert run.asset_materializations_for_node("raw_documents") == []
    assert object_gets(s3_proxy, landing) == [FaultKind.DELAY]
    [row] = pipeline.ledger.versions()
    assert (row["etag"], row["status"], row["tries"], row["error_class"]) == (old_etag, "SUPERSEDED", 0, None)

    tick, [second] = pipeline.run_requests()
    new_etag = s3_client.head_object(Bucket=landing, Key=KEY)["ETag"].strip('"')
    assert [version_of(r).etag for r in tick.run_requests] == [new_etag]
    assert second.success and len(second.asset_materializations_for_node("raw_documents")) == 1
    assert requested(pipeline.tick()) == []
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket, also={"SUPERSEDED"})
    assert [(r["etag"], r["status"]) for r in pipeline.ledger.versions()] == [
        (old_etag, "SUPERSEDED"),
        (new_etag, "SUCCESS"),
    ]
    assert pipeline.ledger.dead_letter_rows() == []
