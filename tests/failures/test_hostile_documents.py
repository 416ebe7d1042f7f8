"""Small documents that used to exhaust a run's memory or CPU fail one by one at their limits, in one real run
process whose peak memory stays bounded; a good document of the same batch lands."""

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq

from tests.failures.conftest import Pipeline
from tests.failures.s3_support import pinned, requested, run_in_worker

PEAK_RSS_BOUND = 1024**3


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


# key → (body, the limit its dead letter must name)
HOSTILE = {
    # 12,000 records, each with a key of its own: quadratic to flatten before the key limit existed.
    "in/new_key_every_record.ndjson": (
        b"".join(b'{"key_%d": %d}\n' % (i, i) for i in range(12_000)),
        "limits.json_keys",
    ),
    "in/new_key_every_record.json": (
        b"[" + b",".join(b'{"key_%d": %d}' % (i, i) for i in range(12_000)) + b"]",
        "limits.json_keys",
    ),
    # ~45 KB on disk, 80 MB decoded: no decompressed-size limit applied to Parquet's own compression.
    "in/ten_million_equal_values.parquet": (
        parquet(pa.table({"v": pa.repeat(pa.scalar(7), 10_000_000)})),
        "limits.expansion",
    ),
    # 1,000,000 columns: aborted the process in the Parquet writer.
    "in/million_columns.csv": (
        (",".join(f"c{i}" for i in range(1_000_000)) + "\n" + "1," * 999_999 + "1\n").encode(),
        "limits.columns",
    ),
    # ~100 KB of gzip, 100 MB of CSV.
    "in/bomb.csv.gz": (gzip.compress(b"id\n" + b"1\n" * 50_000_000, compresslevel=9), "limits.expansion"),
    "in/deep.json": (b"[" * 100_000 + b"]" * 100_000, "limits.nesting_depth"),
    "in/long_line.csv": (b"id,text\n1," + b"x" * (9 * 2**20) + b"\n", "limits.line_length"),
}


def test_hostile_documents_fail_at_their_limits_in_one_bounded_run(
    tmp_path, fresh_bucket, s3_client, bronze_bucket, write_sources, resources_for, instance, s3_env
):
    for key, (body, _) in HOSTILE.items():
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body)
    s3_client.put_object(Bucket=fresh_bucket, Key="in/orders.csv", Body=b"order_id,amount\nO-1,1.50\nO-2,2.50\n")
    source = {"name": "orders", "type": "s3", "bucket": fresh_bucket, "prefix": "in/"}
    sources_file = write_sources([source], bronze_bucket=bronze_bucket)
    pipeline = Pipeline(resources_for(sources_file), instance)
    [request] = requested(pipeline.tick())
    assert len(pinned(request)) == len(HOSTILE) + 1  # one run carries them all

    w, report = run_in_worker(tmp_path / "workers", "hostile", pipeline, request, s3_env["AWS_ENDPOINT_URL_S3"])

    assert w.process.returncode == 1, f"the worker must exit, not be killed:\n{w.output()}"
    rows = {row["object_key"]: row for row in pipeline.ledger.versions()}
    outcomes = {key: (row["status"], row["error_class"], row["error_type"]) for key, row in rows.items()}
    assert outcomes.pop("in/orders.csv") == ("SUCCESS", None, None)
    assert outcomes == {key: ("FAILED", "validation", "LimitExceeded") for key in HOSTILE}
    for key, (_, limit) in HOSTILE.items():
        assert limit in rows[key]["error_message"], (key, rows[key]["error_message"])
    assert report["peak_rss_bytes"] < PEAK_RSS_BOUND, f"peak RSS {report['peak_rss_bytes']:,} bytes"
