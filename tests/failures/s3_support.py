"""What the S3 failure tests look at: dead-letter records and bronze manifests in the bronze bucket, the run's
materializations and log lines, and the one check they all end with — nothing lost, nothing processed twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from ingestion_project.lib.bronze import doc_id, safe_etag
from ingestion_project.lib.ledger import Ledger

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = "bronze/documents/"
OPEN_DLQ = "dlq/ingestion/"
RETRY_LINE = re.compile(
    r"^retry document=(?P<document>\S+) try=(?P<try>\d+) max_tries=(?P<max_tries>\d+) "
    r"error=(?P<error>.+) next_delay=(?P<delay>[0-9.]+)s$",
    re.DOTALL,
)
ASSET = dg.AssetKey("raw_documents")


def keys_under(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def etags_under(s3, bucket: str, prefix: str = "") -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", ())}


def dlq_records(s3, bucket: str, state: str = "") -> dict[str, dict]:
    """The dead-letter records in the bronze bucket: open ones, or those moved to ``resolved``/``quarantined``."""
    prefix = f"dlq/{state}/ingestion/" if state else OPEN_DLQ
    keys = keys_under(s3, bucket, prefix)
    return {key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys}


def manifest_key(row: dict) -> str:
    """Where the bronze manifest of a ledger row's version lands (docs/architecture.md, "Bronze layout")."""
    return f"{MANIFESTS}{row['source']}/{doc_id(row['bucket'], row['object_key'])}/{safe_etag(row['etag'])}.parquet"


def materialized_versions(instance: dg.DagsterInstance) -> Counter:
    """How often each (partition, ETag) was materialized, over every run the instance recorded."""
    records = instance.fetch_materializations(ASSET, limit=10_000).records
    return Counter((r.partition_key, r.asset_materialization.metadata["etag"].value) for r in records)


def step_retries(run) -> int:
    return sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in run.all_events)


def log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The user log lines of a run (context.log), oldest first."""
    return [entry.user_message for entry in instance.all_logs(run_id) if not entry.is_dagster_event]


def retry_lines(instance: dg.DagsterInstance, run_id: str) -> list[re.Match]:
    return [m for m in map(RETRY_LINE.match, log_messages(instance, run_id)) if m]


def _version(row: dict) -> tuple:
    return row["source"], row["bucket"], row["object_key"], row["etag"]


def assert_nothing_lost_or_doubled(book: Ledger, instance: dg.DagsterInstance, s3, bronze_bucket: str) -> dict:
    """Every version ends SUCCESS, or FAILED with exactly one open dead-letter record holding the reason; every
    SUCCESS version has exactly one ledger row, one bronze manifest and one materialization. Returns the open
    dead-letter records by version."""
    rows = book.versions()
    assert {row["status"] for row in rows} <= {"SUCCESS", "FAILED"}, [(r["object_key"], r["status"]) for r in rows]
    assert len({_version(row) for row in rows}) == len(rows), "a version has more than one ledger row"
    succeeded = [row for row in rows if row["status"] == "SUCCESS"]
    failed = {_version(row): row for row in rows if row["status"] == "FAILED"}

    records: dict[tuple, list[dict]] = {}
    for record in dlq_records(s3, bronze_bucket).values():
        obj = record["object"]
        records.setdefault((obj["source"], obj["bucket"], obj["key"], obj["etag"]), []).append(record)
    assert set(records) == set(failed), "open dead-letter records and FAILED versions differ"
    for version, row in failed.items():
        [record] = records[version]
        assert record["error"]["class"] == row["error_class"] and record["error"]["type"] == row["error_type"]
        assert record["error"]["message"] and record["error"]["traceback"], record
    open_letters = Counter(_version(r) for r in book.dead_letter_rows() if r["state"] == "open")
    assert open_letters == Counter(dict.fromkeys(failed, 1))

    assert keys_under(s3, bronze_bucket, MANIFESTS) == sorted(manifest_key(row) for row in succeeded)
    assert materialized_versions(instance) == Counter({(row["partition_key"], row["etag"]): 1 for row in succeeded})
    return {version: found[0] for version, found in records.items()}


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy (returned), for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Worker:
    """One `tests/failures/worker.py` process; its output goes to files so a full pipe can never block it."""

    def __init__(self, process: subprocess.Popen, result: Path, log: Path):
        self.process = process
        self.result_file = result
        self.log_file = log

    def wait(self, timeout: float) -> dict:
        """Wait for the worker to finish (bounded) and return what it reported."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout:.0f}s:\n{self.output()}") from None
        assert self.result_file.exists(), f"worker exited {self.process.returncode} without a result:\n{self.output()}"
        return json.loads(self.result_file.read_text())

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""


@contextmanager
def worker(workdir: Path, name: str, **options: str) -> Iterator[Worker]:
    """Start a worker with ``--option value`` arguments and the test's environment (AWS_* included); it is
    killed and reaped on the way out, whatever happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    result, log = workdir / f"{name}.json", workdir / f"{name}.log"
    argv = [sys.executable, "-m", "tests.failures.worker", "--result", str(result)]
    for option, value in options.items():
        argv += [f"--{option.replace('_', '-')}", value]
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT)
    try:
        yield Worker(process, result, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
