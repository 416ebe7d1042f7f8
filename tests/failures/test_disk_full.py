"""A worker that runs out of local disk or open files: the document is retried with backoff in a run by itself
and alerted, never dead-lettered as ``unexpected``; its batchmates land, and once the disk has room it lands too."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from ingestion_project.core.failure_classes import RESOURCE, error_class
from ingestion_project.failures.alerts import AlertChannel
from ingestion_project.lib.errors import ExternalError
from ingestion_project.lib.ledger import processed_files
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import pinned, requested, worker, write_request
from tests.failures.test_alerts import Receiver, tick

FILE_SIZE_LIMIT = 4 * 2**20


def test_a_write_to_a_full_device_is_a_resource_failure():
    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x" * 4096)
    assert caught.value.errno == errno.ENOSPC
    assert error_class(caught.value) == RESOURCE
    try:  # as the local store raises it: an ExternalError from the OSError
        raise ExternalError(f"/bronze/x.parquet: {caught.value.strerror}") from caught.value
    except ExternalError as wrapped:
        assert error_class(wrapped) == RESOURCE


def test_too_many_open_files_is_a_resource_failure(tmp_path):
    # In a child process: RLIMIT_NOFILE would starve the test process itself.
    script = textwrap.dedent(
        f"""
        import resource
        from ingestion_project.core.failure_classes import error_class
        from ingestion_project.lib.object_store import LocalObjectStore
        (root := {str(tmp_path)!r}) and open(root + "/doc.csv", "w").write("a\\n1\\n")
        store = LocalObjectStore(root)
        info = store.head("doc.csv")
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
        try:
            store.download("doc.csv", bytearray(), etag=info.etag, max_bytes=100)
        except OSError as error:
            print(error.errno, error_class(error))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == [str(errno.EMFILE), "resource"], result.stderr


def test_a_document_that_fills_the_local_disk_is_retried_alone_alerted_and_lands_once_there_is_room(
    tmp_path, inbox, write_sources, resources_for, instance
):
    bronze = tmp_path / "bronze"
    (inbox / "small.csv").write_text("id,amount\n1,2.50\n")
    rows = "".join(f"{n},{n * 7919 % 100_003}.{n % 100:02},{'x' * 40}-{n}\n" for n in range(200_000))
    (inbox / "large.csv").write_text("id,amount,note\n" + rows)  # ~12 MB: its scratch and bronze files pass 4 MiB
    source = {"name": "inbox", "type": "local", "path": str(inbox), "max_attempts": 3}
    sources_file = write_sources([source], bronze={"local_dir": str(bronze)})
    pipeline = Pipeline(resources_for(sources_file), instance)

    def run_worker(name: str, request: dg.RunRequest, **limits: str) -> subprocess.Popen:
        with worker(
            tmp_path / "workers",
            name,
            sources=sources_file,
            ledger_url=pipeline.resources["ledger"].url,
            dagster_home=instance.root_directory,
            endpoint_url="http://127.0.0.1:9",  # unused: the source and bronze are local folders
            request=write_request(tmp_path / "workers" / f"{name}.request.json", request),
            **limits,
        ) as w:
            report = w.wait(300)
        return report

    [request] = requested(pipeline.tick())
    report = run_worker("full", request, file_size_limit=str(FILE_SIZE_LIMIT))
    assert report["success"], report["messages"]  # a handed-back document does not fail the run
    rows_by_key = {row["object_key"]: row for row in pipeline.ledger.versions()}
    small, large = rows_by_key["small.csv"], rows_by_key["large.csv"]
    assert small["status"] == "SUCCESS"
    assert (large["status"], large["error_class"], large["tries"], large["batch_limit"]) == (
        "DISCOVERED",
        "resource",
        1,
        1,
    )
    assert "File too large" in large["error_message"] and large["not_before"] is not None
    assert pipeline.ledger.dead_letter_rows() == []
    landed = sorted(p.name for p in bronze.rglob("*.parquet"))
    assert len(landed) == 2  # the small document's data file and manifest; nothing of the large one

    receiver = Receiver()
    try:
        result, cursor = tick(pipeline.resources, instance, AlertChannel(webhook_url=receiver.url))
        again, _ = tick(pipeline.resources, instance, AlertChannel(webhook_url=receiver.url), cursor)
    finally:
        receiver.close()
    assert "resource exhaustion" in result.skip_message and again.skip_message == "nothing new to alert"
    [alert] = receiver.received
    assert alert["alert"] == "resource_exhausted" and list(alert["details"]["retrying"]) == ["inbox:/large.csv"]

    # The backoff passes (moved forward here), the disk has room again: the document is requested alone and lands.
    with pipeline.ledger.engine.begin() as conn:
        conn.execute(sa.update(processed_files).values(not_before=datetime.now(UTC) - timedelta(seconds=1)))
    [retry] = requested(pipeline.tick())
    assert [v["key"] for v in pinned(retry)] == ["large.csv"]
    report = run_worker("room", retry)
    assert report["success"] and report["materialized"] == ["inbox:/large.csv"]
    statuses = {row["object_key"]: (row["status"], row["tries"]) for row in pipeline.ledger.versions()}
    assert statuses == {"small.csv": ("SUCCESS", 0), "large.csv": ("SUCCESS", 1)}
    assert len(list(bronze.rglob("*.parquet"))) == 4
    assert pipeline.ledger.dead_letter_rows() == []
