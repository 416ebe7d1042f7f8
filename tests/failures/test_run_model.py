"""The run model's promise, scenario by scenario on the real local S3 server: each version ends in exactly one of
SUCCESS, FAILED with an open dead letter, SKIPPED, SUPERSEDED or QUARANTINED, and nothing is processed twice."""

import json
import threading

import dagster as dg
import pytest

from devtools.ticks import skip_message
from ingestion_project.core.resources import LedgerResource
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.lib.keys import DocumentRef
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import keys_under, materialized_versions, wait_until

KEY = "in/orders.csv"
GOOD = b"order_id,amount\nO-1,1.50\nO-2,2.50\n"
FIXED = GOOD + b"O-3,3.50\n"
BROKEN = b"order_id,amount\nO-1,1.50,extra\n"


def etag_of(s3, bucket: str, key: str = KEY) -> str:
    return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def statuses(pipeline: Pipeline) -> list[tuple[str, str]]:
    return [(row["etag"], row["status"]) for row in pipeline.ledger.versions()]


def letters(pipeline: Pipeline) -> list[tuple[str, str]]:
    return [(row["etag"], row["state"]) for row in pipeline.ledger.dead_letter_rows()]


@pytest.fixture
def landing(fresh_bucket, s3_client) -> str:
    s3_client.put_object(Bucket=fresh_bucket, Key=KEY, Body=GOOD)
    return fresh_bucket


@pytest.fixture
def make_pipeline(landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance):
    """A Pipeline on the landing bucket whose S3 traffic goes through the fault proxy."""

    built = []

    def build(sources: list[dict] | None = None, **settings):
        source = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/"}
        built.append(f"sources-{len(built)}.yaml")  # one file each: pipelines of one test may differ
        sources_file = write_sources(sources or [source], bronze_bucket=bronze_bucket, name=built[-1], **settings)
        return Pipeline(resources_for(sources_file, endpoint_url=s3_proxy.endpoint_url, max_attempts=0), instance)

    return build


def test_object_overwritten_before_its_run_is_superseded_and_the_new_version_lands_once(
    landing, s3_client, make_pipeline, instance
):
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    old = etag_of(s3_client, landing)
    s3_client.put_object(Bucket=landing, Key=KEY, Body=FIXED)
    new = etag_of(s3_client, landing)
    run = pipeline.run_request(request)  # still pinned to the old version
    assert run.success and run.asset_materializations_for_node("raw_documents") == []
    assert statuses(pipeline) == [(old, "SUPERSEDED")]
    _, [second] = pipeline.run_requests()
    assert second.success
    assert statuses(pipeline) == [(old, "SUPERSEDED"), (new, "SUCCESS")]
    pk = DocumentRef("orders", landing, KEY).partition_key
    assert materialized_versions(instance) == {(pk, new): 1}
    assert letters(pipeline) == []


def test_object_overwritten_between_listing_and_get_is_superseded_not_failed(
    landing, bronze_bucket, s3_client, s3_proxy, make_pipeline, instance
):
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    old = etag_of(s3_client, landing)
    s3_proxy.delay(2.0, method="GET", path=f"/{landing}/{KEY}")

    def overwrite_once_the_get_arrives():
        wait_until(lambda: [r for r in s3_proxy.requests() if r.method == "GET" and KEY in r.target], 20, "the GET")
        s3_client.put_object(Bucket=landing, Key=KEY, Body=FIXED)

    writer = threading.Thread(target=overwrite_once_the_get_arrives, daemon=True)
    writer.start()
    run = pipeline.run_request(request)
    writer.join(30)
    assert run.success
    row = pipeline.ledger.versions()[0]
    assert (row["etag"], row["status"], row["tries"]) == (old, "SUPERSEDED", 0)  # no retry, no failure
    assert "no longer has ETag" in row["error_message"]
    assert letters(pipeline) == [] and keys_under(s3_client, bronze_bucket, "bronze/documents/") == []
    _, [second] = pipeline.run_requests()
    assert second.success and statuses(pipeline)[-1] == (etag_of(s3_client, landing), "SUCCESS")


def test_fixing_a_broken_file_under_the_same_key_closes_the_old_dead_letter_and_replay_leaves_nothing_in_flight(
    landing, bronze_bucket, s3_client, make_pipeline, instance
):
    s3_client.put_object(Bucket=landing, Key=KEY, Body=BROKEN)
    broken = etag_of(s3_client, landing)
    pipeline = make_pipeline()
    _, [first] = pipeline.run_requests()
    assert not first.success
    [open_record] = keys_under(s3_client, bronze_bucket, "dlq/ingestion/")
    s3_client.put_object(Bucket=landing, Key=KEY, Body=FIXED)
    fixed = etag_of(s3_client, landing)
    _, [second] = pipeline.run_requests()
    assert second.success
    assert statuses(pipeline) == [(broken, "SUPERSEDED"), (fixed, "SUCCESS")]
    assert letters(pipeline) == [(broken, "superseded")]
    assert keys_under(s3_client, bronze_bucket, "dlq/ingestion/") == []
    [closed] = keys_under(s3_client, bronze_bucket, "dlq/superseded/ingestion/")
    assert closed == open_record.replace("dlq/ingestion/", "dlq/superseded/ingestion/")
    record = json.loads(s3_client.get_object(Bucket=bronze_bucket, Key=closed)["Body"].read())
    assert (record["state"], record["object"]["etag"]) == ("superseded", broken)

    replay = pipeline.replay()
    assert replay.output_for_node("replay_dead_letters")["requested"] == []
    assert skip_message(pipeline.tick()) is not None  # nothing left in flight, on this or any later tick
    assert statuses(pipeline) == [(broken, "SUPERSEDED"), (fixed, "SUCCESS")]


def test_a_run_that_fails_before_its_claim_is_requested_again_under_a_new_run_key(
    landing, s3_client, make_pipeline, instance, tmp_path
):
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    # The run cannot even open the ledger (think: locked past its busy timeout, or a full disk).
    unreachable = LedgerResource(url=f"sqlite:///{tmp_path / 'missing-dir' / 'ledger.sqlite'}")
    broken = dg.Definitions(
        assets=[raw_documents], jobs=[ingest_documents_job], resources={**pipeline.resources, "ledger": unreachable}
    ).resolve_job_def("ingest_documents")
    failed = broken.execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags, raise_on_error=False
    )
    assert not failed.success
    pipeline.after_run(failed.run_id)  # the failed-run sensor
    row = pipeline.ledger.versions()[0]
    assert (row["status"], row["lost_count"], row["requested_at"]) == ("DISCOVERED", 1, None)
    assert f"run {failed.run_id} failed before finishing" in row["error_message"]
    tick, [run] = pipeline.run_requests()
    [again] = tick.run_requests
    assert again.run_key != request.run_key  # the daemon would drop a run key it has seen
    assert run.success and statuses(pipeline) == [(etag_of(s3_client, landing), "SUCCESS")]


def test_ui_materialize_and_backfill_runs_dead_letter_through_the_asset_hook(
    landing, bronze_bucket, s3_client, make_pipeline, instance
):
    s3_client.put_object(Bucket=landing, Key="in/broken.csv", Body=BROKEN)
    pipeline = make_pipeline()
    pipeline.tick()  # adds the partitions
    partitions = [DocumentRef("orders", landing, key).partition_key for key in (KEY, "in/broken.csv")]
    # dg.materialize runs the implicit asset job, exactly as "Materialize" in the UI and backfills do.
    result = dg.materialize(
        [raw_documents],
        resources=pipeline.resources,
        instance=instance,
        partition_key=partitions[1],
        raise_on_error=False,
    )
    assert not result.success
    [record_key] = keys_under(s3_client, bronze_bucket, "dlq/ingestion/")
    record = json.loads(s3_client.get_object(Bucket=bronze_bucket, Key=record_key)["Body"].read())
    assert (record["object"]["key"], record["error"]["class"]) == ("in/broken.csv", "validation")
    assert record["job_name"] == result.job_def.name and record["run_id"] == result.run_id
    first, last = sorted(partitions, key=instance.get_dynamic_partitions("documents").index)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    backfill = dg.materialize(
        [raw_documents], resources=pipeline.resources, instance=instance, tags=tags, raise_on_error=False
    )
    assert not backfill.success  # the broken one again; the good one landed
    by_key = {row["object_key"]: row["status"] for row in pipeline.ledger.versions()}
    assert by_key == {KEY: "SUCCESS", "in/broken.csv": "FAILED"}
    [letter] = pipeline.ledger.open_dead_letters()
    assert (letter["run_id"], letter["stored_key"]) == (backfill.run_id, letter["dlq_key"])


def test_a_dead_letter_whose_put_fails_is_kept_in_the_ledger_and_written_on_a_later_pass(
    landing, bronze_bucket, s3_client, s3_proxy, make_pipeline, instance
):
    s3_client.put_object(Bucket=landing, Key=KEY, Body=BROKEN)
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    s3_proxy.internal_error(times=100, method="PUT", path=f"/{bronze_bucket}/dlq/")
    run = pipeline.run_request(request)
    assert not run.success
    assert keys_under(s3_client, bronze_bucket, "dlq/") == []
    [letter] = pipeline.ledger.open_dead_letters()
    assert letter["stored_key"] is None and letter["error_type"] == "ValidationError"
    assert pipeline.ledger.versions()[0]["status"] == "FAILED"
    s3_proxy.clear_faults()
    pipeline.tick()  # the next pass writes what is pending
    [record_key] = keys_under(s3_client, bronze_bucket, "dlq/ingestion/")
    assert record_key == letter["dlq_key"]
    record = json.loads(s3_client.get_object(Bucket=bronze_bucket, Key=record_key)["Body"].read())
    assert record["error"]["traceback"] and record["run_id"] == run.run_id
    assert pipeline.ledger.pending_dead_letters() == []


def test_a_replay_whose_record_cannot_be_moved_still_succeeds_and_the_move_completes_later(
    landing, bronze_bucket, s3_client, s3_proxy, make_pipeline, instance
):
    source = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/", "max_object_size": 10}
    strict = make_pipeline([source])
    _, [first] = strict.run_requests()
    assert not first.success
    [open_key] = keys_under(s3_client, bronze_bucket, "dlq/ingestion/")
    relaxed = make_pipeline()  # the cause is fixed: the size limit is raised
    relaxed.replay()
    s3_proxy.internal_error(times=100, method="PUT", path=f"/{bronze_bucket}/dlq/resolved/")
    _, [replayed] = relaxed.run_requests()
    assert replayed.success
    assert relaxed.ledger.versions()[0]["status"] == "SUCCESS"
    [letter] = relaxed.ledger.dead_letter_rows()
    assert (letter["state"], letter["stored_key"]) == ("resolved", open_key)  # moved in the ledger, not yet in S3
    attempts = [r for r in s3_proxy.requests() if r.method == "PUT" and "/dlq/resolved/" in r.target]
    assert attempts and all(r.fault is not None for r in attempts)  # the run tried, and its failure was absorbed
    s3_proxy.clear_faults()
    relaxed.tick()
    assert keys_under(s3_client, bronze_bucket, "dlq/ingestion/") == []
    assert keys_under(s3_client, bronze_bucket, "dlq/resolved/ingestion/") == [letter["dlq_key"]]


def test_versions_of_a_removed_source_are_skipped_and_replay_passes_over_its_dead_letters(
    landing, s3_client, make_pipeline, instance, caplog
):
    s3_client.put_object(Bucket=landing, Key="notes/broken.csv", Body=BROKEN)
    orders = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/"}
    notes = {"name": "notes", "type": "s3", "bucket": landing, "prefix": "notes/"}
    both = make_pipeline([orders, notes])
    s3_client.put_object(Bucket=landing, Key="in/broken.csv", Body=BROKEN)
    _, runs = both.run_requests()
    assert sorted(run.success for run in runs) == [False, False]  # each source's broken file failed
    s3_client.put_object(Bucket=landing, Key="notes/waiting.csv", Body=GOOD)
    [waiting_request] = both.tick().run_requests

    only_orders = make_pipeline([orders])
    run = only_orders.run_request(waiting_request)  # a run of the removed source, launched before its removal
    assert run.success
    by_key = {row["object_key"]: (row["status"], row["error_message"]) for row in only_orders.ledger.versions()}
    assert by_key["notes/waiting.csv"] == ("SKIPPED", "source 'notes' was removed from the sources file")
    assert by_key["notes/broken.csv"][0] == "FAILED"  # left FAILED with its dead letter open: replayable if restored

    replay = only_orders.replay()
    outcome = replay.output_for_node("replay_dead_letters")
    assert outcome["source_removed"] == [DocumentRef("notes", landing, "notes/broken.csv").partition_key]
    assert outcome["requested"] == [DocumentRef("orders", landing, "in/broken.csv").partition_key]

    tick = both.tick()  # the source is back: its skipped versions are requested again
    [request] = [r for r in tick.run_requests if r.tags["ingestion/source"] == "notes"]
    [pinned] = request.run_config["ops"]["raw_documents"]["config"]["versions"]
    assert pinned["key"] == "notes/waiting.csv" and request.run_key != waiting_request.run_key
