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
from collections.abc import Callable, Iterable, Iterator
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
    """The dead-letter records in the bronze bucket: open ones, or those moved to ``resolved``, ``quarantined`` or
    ``superseded``."""
    prefix = f"dlq/{state}/ingestion/" if state else OPEN_DLQ
    keys = keys_under(s3, bucket, prefix)
    return {key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys}


def manifest_key(row: dict) -> str:
    """Where the committed bronze manifest of a SUCCESS ledger row's version is (docs/architecture.md, "Bronze
    layout"): named by the attempt that won, as the ledger records it."""
    assert row["bronze_manifest_key"], f"{row['partition_key']} records no committed manifest"
    key = f"{MANIFESTS.removesuffix('documents/')}{row['bronze_manifest_key']}"
    prefix = f"{MANIFESTS}{row['source']}/{doc_id(row['bucket'], row['object_key'])}/{safe_etag(row['etag'])}."
    assert key.startswith(prefix), (key, prefix)
    return key


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


def documents_tally(messages: list[str]) -> dict[str, int]:
    """What a run did with its versions, from its "Documents: landed 1, failed 2" line (counts of 0 left out)."""
    [line] = [m for m in messages if m.startswith("Documents: ")]
    counts = (item.rsplit(" ", 1) for item in line.removeprefix("Documents: ").split(", ") if item != "nothing to do")
    return {name: int(count) for name, count in counts if int(count)}


def _version(row: dict) -> tuple:
    return row["source"], row["bucket"], row["object_key"], row["etag"]


def pinned(request: dg.RunRequest) -> list[dict]:
    """The versions a sensor's run request pins (its run config), as the run receives them."""
    return request.run_config["ops"]["raw_documents"]["config"]["versions"]


def requested(result) -> list[dg.RunRequest]:
    """The run requests of a sensor tick (none when it skipped)."""
    return list(getattr(result, "run_requests", None) or [])


def write_request(path: Path, request: dg.RunRequest) -> str:
    """A run request as `tests/failures/worker.py --request` reads it: run config, tags and run key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"run_key": request.run_key, "run_config": request.run_config, "tags": dict(request.tags)}
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def assert_nothing_lost_or_doubled(
    book: Ledger, instance: dg.DagsterInstance, s3, bronze_bucket: str, also: Iterable[str] = ()
) -> dict:
    """Every version ends SUCCESS, or FAILED with exactly one open dead letter holding the reason, or in one of the
    end states ``also`` allows (SUPERSEDED, SKIPPED, QUARANTINED) — nothing in flight, nothing leased. Every
    SUCCESS version has exactly one ledger row, one bronze manifest and one materialization, and no other version
    has either. Every dead-letter row's JSON object is written where the row says (open ones under
    ``dlq/ingestion/``, closed ones under ``dlq/<state>/ingestion/``), and no other object is under ``dlq/``.
    Returns the open dead-letter records by version."""
    rows = book.versions()
    ends = {"SUCCESS", "FAILED", *also}
    assert {row["status"] for row in rows} <= ends, [(r["object_key"], r["etag"], r["status"]) for r in rows]
    assert len({_version(row) for row in rows}) == len(rows), "a version has more than one ledger row"
    assert [r for r in rows if r["lease_token"] is not None] == [], "a version still holds a lease"
    succeeded = [row for row in rows if row["status"] == "SUCCESS"]
    failed = {_version(row): row for row in rows if row["status"] == "FAILED"}
    quarantined = {_version(row) for row in rows if row["status"] == "QUARANTINED"}

    # The dead-letter rows, and their objects exactly where the rows say.
    letters = book.dead_letter_rows()
    assert [r["dlq_key"] for r in letters if r["stored_key"] != r["dlq_key"]] == [], "dead-letter objects pending"
    for letter in letters:
        prefix = OPEN_DLQ if letter["state"] == "open" else f"dlq/{letter['state']}/ingestion/"
        assert letter["dlq_key"].startswith(prefix), (letter["state"], letter["dlq_key"])
    assert keys_under(s3, bronze_bucket, "dlq/") == sorted(r["dlq_key"] for r in letters)
    open_letters = Counter(_version(r) for r in letters if r["state"] == "open")
    assert open_letters == Counter(dict.fromkeys(failed, 1)), "open dead letters and FAILED versions differ"
    quarantine_letters = Counter(_version(r) for r in letters if r["state"] == "quarantined")
    assert quarantine_letters == Counter(dict.fromkeys(quarantined, 1)), "a QUARANTINED version lacks its record"

    records: dict[tuple, dict] = {}
    for letter in letters:
        body = s3.get_object(Bucket=bronze_bucket, Key=letter["dlq_key"])["Body"].read()
        record = json.loads(body)
        obj = record["object"]
        assert (obj["source"], obj["bucket"], obj["key"], obj["etag"]) == _version(letter), letter["dlq_key"]
        assert (record["state"], record["run_id"]) == (letter["state"], letter["run_id"]), letter["dlq_key"]
        assert record["error"]["class"] == letter["error_class"] and record["error"]["message"], record
        if letter["state"] == "open":
            records[_version(letter)] = record
    for version, row in failed.items():
        record = records[version]
        assert record["error"]["class"] == row["error_class"] and record["error"]["type"] == row["error_type"]
        assert record["error"]["message"] and record["error"]["traceback"], record

    assert keys_under(s3, bronze_bucket, MANIFESTS) == sorted(manifest_key(row) for row in succeeded)
    # And exactly their data files: no attempt that failed or lost its lease left one behind.
    data = keys_under(s3, bronze_bucket, "bronze/tables/") + keys_under(s3, bronze_bucket, "bronze/text/")
    assert sorted(data) == sorted(f"bronze/{row['bronze_data_key']}" for row in succeeded)
    assert materialized_versions(instance) == Counter({(row["partition_key"], row["etag"]): 1 for row in succeeded})
    return records


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


def run_in_worker(workdir: Path, name: str, pipeline, request: dg.RunRequest, endpoint_url: str) -> tuple[Worker, dict]:
    """Run ``request`` to the end in a worker process of its own (the pipeline's sources, ledger and instance);
    the finished worker and its report."""
    with worker(
        workdir,
        name,
        sources=pipeline.resources["ingestion"].sources_file,
        ledger_url=pipeline.resources["ledger"].url,
        dagster_home=pipeline.instance.root_directory,
        endpoint_url=endpoint_url,
        request=write_request(workdir / f"{name}.request.json", request),
    ) as finished:
        return finished, finished.wait(timeout=300)
