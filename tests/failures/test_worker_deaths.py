"""Runs that die in a worker process of their own — SIGTERM or SIGKILL while sleeping in a retry backoff, killed
on every try, killed by the OOM killer over one document of its batch — and a live worker slower than its lease:
every version still ends in exactly one state, nothing is processed twice, and only a document that kills its
worker by itself is quarantined."""

import signal
import subprocess
import time

import dagster as dg
import pytest

from devtools.ticks import skip_message
from ingestion_project.lib.keys import DocumentRef
from tests.failures.conftest import Pipeline
from tests.failures.oom import oom_killer
from tests.failures.s3_support import (
    assert_nothing_lost_or_doubled,
    dlq_records,
    materialized_versions,
    pinned,
    requested,
    wait_until,
    worker,
    write_request,
)

KEY = "in/orders.csv"
GOOD = b"order_id,amount\nO-1,1.50\nO-2,2.50\n"
# botocore's own retries off (see test_s3_faults), so an injected 503 reaches the step's retry policy.
NO_BOTOCORE_RETRIES = {"max_attempts": 0}
LEASE_SECONDS = 2


@pytest.fixture
def landing(fresh_bucket, s3_client) -> str:
    s3_client.put_object(Bucket=fresh_bucket, Key=KEY, Body=GOOD)
    return fresh_bucket


@pytest.fixture
def pipeline(landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance) -> Pipeline:
    source = {
        "name": "orders",
        "type": "s3",
        "bucket": landing,
        "prefix": "in/",
        "max_attempts": 3,
        # A 3 s in-run backoff: long enough to kill the worker while it sleeps in it.
        "retries": {
            "transient": {"max_retries": 3, "delay_seconds": 3, "max_delay_seconds": 3},
            "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
        },
    }
    sources_file = write_sources([source], bronze_bucket=bronze_bucket, lease_seconds=LEASE_SECONDS)
    return Pipeline(resources_for(sources_file, endpoint_url=s3_proxy.endpoint_url, **NO_BOTOCORE_RETRIES), instance)


def start_worker(tmp_path, name: str, pipeline: Pipeline, request: dg.RunRequest, ledger_url: str, endpoint: str):
    return worker(
        tmp_path / "workers",
        name,
        sources=pipeline.resources["ingestion"].sources_file,
        ledger_url=ledger_url,
        dagster_home=pipeline.instance.root_directory,
        endpoint_url=endpoint,
        s3_max_attempts=str(NO_BOTOCORE_RETRIES["max_attempts"]),
        request=write_request(tmp_path / "workers" / f"{name}.request.json", request),
    )


def partition_of(request: dg.RunRequest) -> str:
    [version] = pinned(request)
    return DocumentRef(version["source"], version["bucket"], version["key"]).partition_key


def only_row(pipeline: Pipeline) -> dict:
    [row] = pipeline.ledger.versions()
    return row


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_worker_stopped_during_a_retry_backoff_is_released_and_its_version_lands_once(
    how, tmp_path, landing, bronze_bucket, s3_client, s3_proxy, pipeline, instance, ledger_resource
):
    [request] = requested(pipeline.tick())
    s3_proxy.slow_down(times=1, method="GET", path=f"/{landing}/{KEY}")
    with start_worker(tmp_path, "doomed", pipeline, request, ledger_resource.url, s3_proxy.endpoint_url) as doomed:

        def sleeping_in_its_backoff():
            assert doomed.process.poll() is None, f"the worker exited early:\n{doomed.output()}"
            row = only_row(pipeline)
            return row if row["status"] == "PROCESSING" and row["tries"] == 1 else None

        held = wait_until(sleeping_in_its_backoff, 60, "the worker to fail its first try and back off")
        doomed.process.send_signal(how)
        doomed.process.wait(30)
    if how == signal.SIGKILL:
        assert not doomed.result_file.exists()
    else:  # Dagster turns SIGTERM into an interruption: the run ends failed, its version still held
        assert doomed.wait(1)["success"] is False
    time.sleep(LEASE_SECONDS + 0.3)

    tick, [run] = pipeline.run_requests()
    [again] = requested(tick)
    assert again.run_key != request.run_key
    assert run.success
    row = only_row(pipeline)
    assert (row["status"], row["lost_count"], row["run_id"]) == ("SUCCESS", 1, run.run_id)
    dead = instance.get_run_by_id(held["run_id"])
    assert dead.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)  # not left STARTED forever
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)
    assert skip_message(pipeline.tick()) is not None


def test_a_version_whose_worker_is_killed_on_every_try_is_quarantined_after_max_attempts(
    tmp_path, landing, bronze_bucket, s3_client, s3_proxy, pipeline, instance, ledger_resource
):
    keys = []
    for attempt in range(3):
        gets_before = len([r for r in s3_proxy.requests() if r.method == "GET" and KEY in r.target])
        tick = pipeline.tick()
        [request] = requested(tick)
        keys.append(request.run_key)
        # The download hangs long enough for the kill, as it would under the OOM killer on a huge document.
        s3_proxy.delay(30.0, method="GET", path=f"/{landing}/{KEY}")
        with start_worker(
            tmp_path, f"try-{attempt}", pipeline, request, ledger_resource.url, s3_proxy.endpoint_url
        ) as w:

            def downloading():
                assert w.process.poll() is None, f"the worker exited early:\n{w.output()}"
                gets = [r for r in s3_proxy.requests() if r.method == "GET" and KEY in r.target]
                return only_row(pipeline)["status"] == "PROCESSING" and len(gets) > gets_before  # noqa: B023

            wait_until(downloading, 60, f"worker {attempt} to hold the document and download it")
            w.process.kill()
            w.process.wait(30)
        s3_proxy.clear_faults()
        time.sleep(LEASE_SECONDS + 0.3)
    assert len(set(keys)) == 3
    assert skip_message(pipeline.tick()) is not None  # released the third time: out of attempts
    row = only_row(pipeline)
    assert (row["status"], row["lost_count"], row["error_type"]) == ("QUARANTINED", 3, "WorkerLost")
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket, also={"QUARANTINED"})
    [record] = dlq_records(s3_client, bronze_bucket, "quarantined").values()
    assert (record["state"], record["error"]["type"]) == ("quarantined", "WorkerLost")
    assert "3 times" in record["error"]["message"]
    assert skip_message(pipeline.tick()) is not None  # and never requested again


def test_a_live_worker_slower_than_its_lease_keeps_it_and_lands_the_version_once(
    tmp_path, landing, bronze_bucket, s3_client, s3_proxy, pipeline, instance, ledger_resource
):
    [request] = requested(pipeline.tick())
    s3_proxy.delay(3 * LEASE_SECONDS, method="GET", path=f"/{landing}/{KEY}")
    with start_worker(tmp_path, "slow", pipeline, request, ledger_resource.url, s3_proxy.endpoint_url) as slow:
        wait_until(lambda: only_row(pipeline)["status"] == "PROCESSING", 60, "the worker to claim the document")
        ticks = []
        while slow.process.poll() is None and len(ticks) < 40:  # ticks every 0.25 s while the download crawls
            ticks.append(pipeline.tick())
            time.sleep(0.25)
        report = slow.wait(60)
    assert len(ticks) >= 4 and all(skip_message(tick) is not None for tick in ticks)  # never released
    assert report["success"] and report["materialized"] == [partition_of(request)]
    row = only_row(pipeline)
    assert (row["status"], row["lost_count"], row["run_id"]) == ("SUCCESS", 0, report["run_id"])
    gets = [r for r in s3_proxy.requests() if r.method == "GET" and KEY in r.target]
    assert len(gets) == 1  # downloaded once
    assert sum(materialized_versions(instance).values()) == 1
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)


GOOD_DOCUMENTS = 60
KILLER_AT = 20  # in discovery order, so that the first run lands some documents before it dies
OOM_LIMIT_BYTES = 700 * 2**20
MAX_ISOLATION_RUNS = 40


def heavy_parquet() -> bytes:
    """A legal Parquet file of a few KB whose every batch decodes to 1 GiB (see test_memory_budget)."""
    from tests.failures.test_memory_budget import repeated_large_value

    return repeated_large_value()


def test_an_oom_killed_batch_is_split_until_only_the_killer_is_quarantined_and_its_batchmates_land(
    tmp_path, fresh_bucket, s3_client, bronze_bucket, write_sources, resources_for, instance, s3_env
):
    keys = [f"in/doc-{n:03}.csv" for n in range(GOOD_DOCUMENTS + 1)]
    killer = keys[KILLER_AT] = f"in/doc-{KILLER_AT:03}.parquet"
    for n, key in enumerate(keys):
        body = heavy_parquet() if key == killer else f"order_id,amount\nO-{n},{n}.50\n".encode()
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body)
    source = {
        "name": "orders",
        "type": "s3",
        "bucket": fresh_bucket,
        "prefix": "in/",
        "max_attempts": 3,
        "limits": {"decompressed_size": "8GiB", "expansion": 10**9},
    }
    # No run budget: the worker's memory cgroup (here the test's OOM killer) is all that stops the heavy document.
    # One document at a time, so that a death always leaves the batchmates queued behind the killer held.
    sources_file = write_sources(
        [source], bronze_bucket=bronze_bucket, lease_seconds=LEASE_SECONDS, run_memory_limit=None, documents_in_flight=1
    )
    pipeline = Pipeline(resources_for(sources_file), instance)
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]

    runs = []  # (versions the run carried, whether the OOM killer ended it)
    for number in range(MAX_ISOLATION_RUNS):
        batch = requested(pipeline.tick())
        if not batch:
            statuses = {row["status"] for row in pipeline.ledger.versions()}
            if statuses <= {"SUCCESS", "QUARANTINED"}:
                break
            time.sleep(LEASE_SECONDS + 0.3)  # a killed run's lease expires; the next tick releases its versions
            continue
        for index, request in enumerate(batch):
            name = f"run-{number}-{index}"
            with (
                worker(
                    tmp_path / "workers",
                    name,
                    sources=sources_file,
                    ledger_url=pipeline.resources["ledger"].url,
                    dagster_home=instance.root_directory,
                    endpoint_url=endpoint,
                    request=write_request(tmp_path / "workers" / f"{name}.request.json", request),
                ) as w,
                oom_killer(w.process, OOM_LIMIT_BYTES) as oom,
            ):
                try:
                    w.process.wait(300)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"{name} still running after 300s:\n{w.output()}") from None
            carried = [v["key"] for v in pinned(request)]
            runs.append((carried, oom.killed))
            assert oom.killed or w.process.returncode == 0, f"{name} failed without being killed:\n{w.output()}"
            assert not oom.killed or killer in carried, f"{name} was killed without the heavy document"
    else:
        raise AssertionError(f"not settled after {MAX_ISOLATION_RUNS} rounds: {runs}")

    rows = {row["object_key"]: row for row in pipeline.ledger.versions()}
    assert {key: row["status"] for key, row in rows.items() if row["status"] != "SUCCESS"} == {killer: "QUARANTINED"}
    assert (rows[killer]["lost_count"], rows[killer]["error_type"]) == (3, "WorkerLost")
    assert rows[killer]["shared_losses"] >= 1  # it was in a shared run that died at least once
    assert all(row["lost_count"] == 0 for key, row in rows.items() if key != killer)  # no good one lost an attempt
    kills = [carried for carried, killed in runs if killed]
    assert [len(carried) for carried in kills[-3:]] == [1, 1, 1]  # quarantined only after dying alone three times
    assert len(kills[0]) == GOOD_DOCUMENTS + 1 and len(kills) > 4
    assert all(len(later) < len(earlier) for earlier, later in zip(kills[:-3], kills[1:-2], strict=True))
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket, also={"QUARANTINED"})
    [record] = dlq_records(s3_client, bronze_bucket, "quarantined").values()
    assert (record["object"]["key"], record["error"]["type"]) == (killer, "WorkerLost")
    assert skip_message(pipeline.tick()) is not None
