"""Ingest one object in a process of its own and print what happened as JSON (for scripts/bench_scale.py).

    python scripts/ingest_one.py SOURCES_FILE SOURCE KEY [--baseline]

With ``--baseline`` it does the same useful work with plain boto3 + pyarrow instead: a streamed GET with sha256
into a temporary file, ``pyarrow.csv.open_csv`` into a ``ParquetWriter`` (zstd), and ``upload_file``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import tempfile
import time


def platform(sources_file: str, source_name: str, key: str) -> dict:
    from ingestion_project.core.resources import IngestionResource, S3Resource
    from ingestion_project.ingestion.documents import ingest_document
    from ingestion_project.lib.bronze_commit import BronzeRoot
    from ingestion_project.lib.keys import DocumentRef
    from ingestion_project.lib.versions import DocumentVersion

    ingestion = IngestionResource(s3=S3Resource(), sources_file=sources_file)
    source = ingestion.settings().source(source_name)
    store = ingestion.source_store(source_name)
    info = store.head(key)
    version = DocumentVersion(
        DocumentRef(source_name, store.bucket, key), info.etag, None, info.size, info.last_modified
    )
    started = time.perf_counter()
    try:
        bronze = BronzeRoot(*ingestion.bronze_store(source_name))
        # No ledger in a benchmark: the commit is recorded by accepting it.
        doc, _ = ingest_document(version, source, store, bronze, attempt="bench", record=lambda doc: True)
        outcome = {"outcome": "SUCCESS", "rows": doc.record_count}
    except Exception as error:  # noqa: BLE001 - reported, not raised: the caller compares outcomes
        outcome = {"outcome": "FAILED", "error": f"{type(error).__name__}: {error}"}
    return {**outcome, "seconds": time.perf_counter() - started, "bytes": info.size}


def baseline(bucket: str, key: str, bronze_bucket: str) -> dict:
    import boto3
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    client = boto3.client("s3")
    started = time.perf_counter()
    digest, size = hashlib.sha256(), 0
    with tempfile.TemporaryDirectory() as scratch:
        raw, out = os.path.join(scratch, "raw"), os.path.join(scratch, "out.parquet")
        with open(raw, "wb") as f:
            for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        writer, rows = None, 0
        for batch in pacsv.open_csv(raw):
            writer = writer or pq.ParquetWriter(out, batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
        writer.close()
        client.upload_file(out, bronze_bucket, f"baseline/{digest.hexdigest()}.parquet")
    return {"outcome": "SUCCESS", "rows": rows, "seconds": time.perf_counter() - started, "bytes": size}


def peak_rss_bytes() -> int:
    """This process's peak resident size: VmHWM, which starts afresh at exec.

    ``getrusage().ru_maxrss`` would not do: Linux carries the parent's peak across fork, so a child of a large
    benchmark process would report the parent's size.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    args = sys.argv[1:]
    if "--baseline" in args:
        bucket, key, bronze = (a for a in args if a != "--baseline")
        result = baseline(bucket, key, bronze)
    else:
        result = platform(*args)
    result["peak_rss_bytes"] = peak_rss_bytes()
    import pyarrow as pa

    result["arrow_peak_bytes"] = pa.default_memory_pool().max_memory()
    result["arrow_backend"] = pa.default_memory_pool().backend_name
    print(json.dumps(result))


if __name__ == "__main__":
    main()
