"""A document that needs more memory than the run's budget fails alone, as a resource failure retried in a run by
itself; the run worker lives, and the rest of the batch lands."""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from tests.failures.conftest import Pipeline
from tests.failures.s3_support import dlq_records, requested, run_in_worker

VALUE_BYTES = 1024 * 1024
ROWS = 2_048
BUDGET = "512MiB"


def repeated_large_value() -> bytes:
    """A Parquet file of 2,048 rows holding one 1 MiB value through a dictionary: a few KB on disk, 2 GiB decoded,
    1 GiB for one batch — within the source's (raised) limits, but past the run's memory budget."""
    value = pa.array([b"\0" * VALUE_BYTES], pa.binary())
    column = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), ROWS), value)
    sink = io.BytesIO()
    # Without the stored Arrow schema the column reads back as plain binary: every row decodes in full.
    pq.write_table(pa.table({"blob": column}), sink, compression="zstd", store_schema=False)
    return sink.getvalue()


def test_a_document_past_the_run_memory_budget_fails_alone_and_the_worker_survives(
    tmp_path, fresh_bucket, s3_client, bronze_bucket, write_sources, resources_for, instance, s3_env
):
    s3_client.put_object(Bucket=fresh_bucket, Key="in/huge.parquet", Body=repeated_large_value())
    s3_client.put_object(Bucket=fresh_bucket, Key="in/orders.csv", Body=b"order_id,amount\nO-1,1.50\n")
    source = {
        "name": "orders",
        "type": "s3",
        "bucket": fresh_bucket,
        "prefix": "in/",
        "limits": {"decompressed_size": "8GiB", "expansion": 10**9},
    }
    sources_file = write_sources([source], bronze_bucket=bronze_bucket, run_memory_limit=BUDGET)
    pipeline = Pipeline(resources_for(sources_file), instance)
    [request] = requested(pipeline.tick())

    w, report = run_in_worker(tmp_path / "workers", "budget", pipeline, request, s3_env["AWS_ENDPOINT_URL_S3"])
    assert w.process.returncode == 0, f"the worker must finish, not be killed:\n{w.output()}"
    assert report["success"]  # the heavy document was handed back, to be retried in a run by itself
    rows = {row["object_key"]: row for row in pipeline.ledger.versions()}
    assert rows["in/orders.csv"]["status"] == "SUCCESS", {k: (r["status"], r["error_message"]) for k, r in rows.items()}
    huge = rows["in/huge.parquet"]
    assert (huge["status"], huge["error_class"], huge["batch_limit"]) == ("DISCOVERED", "resource", 1)
    assert "ran out of memory" in huge["error_message"] and "run_memory_limit" in huge["error_message"]
    assert dlq_records(s3_client, bronze_bucket) == {}
