"""The run's memory budget (``run_memory_limit``) fails only the document that exceeds it, as a resource failure
retried in a run by itself; ordinary documents land within it, the worker never aborts, and a budget too small
for any document is reported when the run starts. Every run is a worker process of its own."""

import io
import random
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.errors import ResourceError
from ingestion_project.lib.memory import MIN_DOCUMENT_BYTES, MemoryBudget, checkpoint
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import (
    assert_nothing_lost_or_doubled,
    dlq_records,
    pinned,
    requested,
    run_in_worker,
    wait_until,
)

VALUE_BYTES = 1024 * 1024
ROWS = 2_048
CSV_BYTES = 15 * 2**20
MAX_RUNS = 12


def repeated_large_value() -> bytes:
    """A Parquet file of 2,048 rows holding one 1 MiB value through a dictionary: a few KB on disk, 2 GiB decoded,
    1 GiB for one batch — within the source's (raised) limits, but past the run's memory budget."""
    value = pa.array([b"\0" * VALUE_BYTES], pa.binary())
    column = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), ROWS), value)
    sink = io.BytesIO()
    # Without the stored Arrow schema the column reads back as plain binary: every row decodes in full.
    pq.write_table(pa.table({"blob": column}), sink, compression="zstd", store_schema=False)
    return sink.getvalue()


def ordinary_csv(seed: int) -> bytes:
    """About 15 MB of orders: ids, customers, amounts, timestamps and a note."""
    rnd = random.Random(seed)
    lines, total = ["order_id,customer,amount,placed_at,note"], 0
    while total < CSV_BYTES:
        n = len(lines)
        line = (
            f"O-{n},C-{rnd.randrange(10**6)},{rnd.randrange(10**5)}.{rnd.randrange(100):02},"
            f"2026-01-{1 + n % 28:02}T10:00:00Z,note {rnd.random():.12f}"
        )
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def source_for(bucket: str) -> dict:
    return {
        "name": "orders",
        "type": "s3",
        "bucket": bucket,
        "prefix": "in/",
        "limits": {"decompressed_size": "8GiB", "expansion": 10**9},
    }


@pytest.mark.parametrize("budget", ["600MiB", "1GiB"])
def test_six_ordinary_15_mb_csvs_all_land_within_the_run_memory_budget(
    budget, tmp_path, fresh_bucket, s3_client, bronze_bucket, write_sources, resources_for, instance, s3_env
):
    body = ordinary_csv(seed=16)
    keys = [f"in/orders-{n}.csv" for n in range(6)]
    for key in keys:
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body)
    sources_file = write_sources([source_for(fresh_bucket)], bronze_bucket=bronze_bucket, run_memory_limit=budget)
    pipeline = Pipeline(resources_for(sources_file), instance)
    [request] = requested(pipeline.tick())

    w, report = run_in_worker(tmp_path / "workers", "six", pipeline, request, s3_env["AWS_ENDPOINT_URL_S3"])
    assert w.process.returncode == 0 and report["success"], w.output()
    assert sorted(report["materialized"]) == sorted(f"orders:{fresh_bucket}/{key}" for key in keys)
    rows = pipeline.ledger.versions()
    assert [(r["status"], r["tries"], r["error_class"]) for r in rows] == [("SUCCESS", 0, None)] * 6
    assert any(m.startswith("Memory: peak ") and "0 document(s) stopped" in m for m in report["messages"])
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)


def test_a_document_past_the_budget_alone_is_dead_lettered_as_resource_after_its_retries_and_its_batchmates_land(
    tmp_path, fresh_bucket, s3_client, bronze_bucket, write_sources, resources_for, instance, s3_env
):
    s3_client.put_object(Bucket=fresh_bucket, Key="in/huge.parquet", Body=repeated_large_value())
    for n in range(3):
        s3_client.put_object(
            Bucket=fresh_bucket, Key=f"in/orders-{n}.csv", Body=f"order_id,amount\nO-{n},1.50\n".encode()
        )
    sources_file = write_sources([source_for(fresh_bucket)], bronze_bucket=bronze_bucket, run_memory_limit="512MiB")
    pipeline = Pipeline(resources_for(sources_file), instance)

    runs = []  # (keys the run carried, its exit code)
    for number in range(MAX_RUNS):
        batch = requested(pipeline.tick())
        if not batch:
            break
        for index, request in enumerate(batch):
            w, report = run_in_worker(
                tmp_path / "workers", f"run-{number}-{index}", pipeline, request, s3_env["AWS_ENDPOINT_URL_S3"]
            )
            assert w.process.returncode in (0, 1), f"the worker must exit, not be killed:\n{w.output()}"
            runs.append(([v["key"] for v in pinned(request)], w.process.returncode))
    rows = {row["object_key"]: row for row in pipeline.ledger.versions()}
    assert {k: r["status"] for k, r in rows.items()} == {
        "in/huge.parquet": "FAILED",
        **{f"in/orders-{n}.csv": "SUCCESS" for n in range(3)},
    }
    huge = rows["in/huge.parquet"]
    assert (huge["error_class"], huge["error_type"], huge["tries"]) == ("resource", "ResourceError", 3)
    assert (
        huge["error_message"].startswith("ran out of memory: ")
        and "(run_memory_limit 512 MiB)" in huge["error_message"]
    )
    # The first run carried all four; every retry of the heavy document ran alone; only its last try failed a run.
    assert len(runs[0][0]) == 4 and runs[0][1] == 0
    assert runs[1:] == [(["in/huge.parquet"], 0)] * 2 + [(["in/huge.parquet"], 1)]
    [letter] = dlq_records(s3_client, bronze_bucket).values()
    assert (letter["object"]["key"], letter["error"]["class"]) == ("in/huge.parquet", "resource")
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket)


def test_a_budget_too_small_for_any_document_is_refused_when_the_sources_load(write_sources):
    """Reported before any run: a budget no document fits in would fail every run at its start, and run after run
    the waiting documents would end quarantined."""
    from ingestion_project.config import ConfigError, load_settings

    sources_file = write_sources([source_for("landing")], run_memory_limit="16MiB")
    with pytest.raises(ConfigError, match="run_memory_limit is 16 MiB, below the 64 MiB one document needs"):
        load_settings(sources_file)
    assert load_settings(write_sources([source_for("landing")], run_memory_limit="64MiB", name="ok.yaml"))


# The budget itself, in this process: reservations wait for room, and the watchdog stops the largest.


def blocked_on(budget: MemoryBudget, waiting: int) -> bool:
    return len(budget._lock._waiters) == waiting


def test_a_document_waits_for_room_in_the_budget_and_one_larger_than_it_runs_alone():
    budget = MemoryBudget(3 * MIN_DOCUMENT_BYTES)
    budget.baseline = 0  # enforced without a watchdog: entered below without `with`
    order = []

    def document(name: str, size: int, release: threading.Event) -> None:
        with budget.reserve(name, size):
            order.append(f"{name} in")
            release.wait(30)
        order.append(f"{name} out")

    go = {name: threading.Event() for name in "abcd"}
    threads = [threading.Thread(target=document, args=(name, 0, go[name])) for name in "abc"]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(order) == 3, 30, "three small documents to start")
    big = threading.Thread(target=document, args=("big", 10 * MIN_DOCUMENT_BYTES, go["d"]))
    big.start()
    wait_until(lambda: blocked_on(budget, 1), 30, "the large document to wait")
    for name in "ab":
        go[name].set()
    wait_until(lambda: order.count("a out") + order.count("b out") == 2, 30, "two to finish")
    assert "big in" not in order  # its estimate is the whole budget: it waits for the last one too
    go["c"].set()
    wait_until(lambda: "big in" in order, 30, "the large document to start alone")
    late = threading.Thread(target=document, args=("late", 0, go["c"]))
    late.start()
    wait_until(lambda: blocked_on(budget, 1), 30, "a small document to wait behind the large one")
    go["d"].set()
    for thread in [*threads, big, late]:
        thread.join(30)
    assert order.index("late in") > order.index("big out")


def test_a_batch_larger_than_the_whole_budget_stops_only_its_own_document():
    budget = MemoryBudget(2 * MIN_DOCUMENT_BYTES)
    budget.baseline = 0
    checkpoint(10 * 2**30)  # outside any reservation: nothing to check
    with budget.reserve("other", 0):
        checkpoint(2**20)
    with budget.reserve("huge", 0), pytest.raises(ResourceError, match="more than the run's whole memory budget"):
        checkpoint(MIN_DOCUMENT_BYTES)  # held twice, beside the writer's working memory


def test_past_the_budget_the_watchdog_stops_the_document_with_the_largest_share():
    with MemoryBudget(3 * MIN_DOCUMENT_BYTES, watch_seconds=0.01) as budget:
        small_ready, big_done = threading.Event(), threading.Event()
        errors = {}

        def small() -> None:
            with budget.reserve("small", 0):
                small_ready.set()
                big_done.wait(30)
                checkpoint(1024)  # not the one over the budget: goes on
            errors["small"] = None

        thread = threading.Thread(target=small)
        thread.start()
        small_ready.wait(30)
        with budget.reserve("big", 0) as reservation:
            checkpoint(2**20)
            reservation.amount = 2 * MIN_DOCUMENT_BYTES  # grown by its earlier batches (the largest share)
            ballast = b"\1" * (4 * MIN_DOCUMENT_BYTES)  # really resident: past the budget
            wait_until(lambda: reservation.cancelled, 30, "the watchdog to stop the big document")
            with pytest.raises(ResourceError, match="past its memory budget"):
                checkpoint(1024)
            del ballast
        big_done.set()
        thread.join(30)
    assert errors == {"small": None} and budget.cancellations == 1
