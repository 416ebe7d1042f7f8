import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from devtools.ticks import skip_message
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion
from tests.failures.conftest import Pipeline

GOOD = "order_id,amount\nO-1,1.50\nO-2,2.50\n"


def pk(key: str) -> str:
    return DocumentRef("inbox", "", key).partition_key


@pytest.fixture
def make_pipeline(inbox, write_sources, resources_for, instance):
    def build(settings: dict | None = None, **source) -> Pipeline:
        config = {"name": "inbox", "type": "local", "path": str(inbox), "max_replays": 2, **source}
        return Pipeline(resources_for(write_sources([config], **(settings or {}))), instance)

    return build


def pinned_keys(request) -> list[str]:
    return [v["key"] for v in request.run_config["ops"]["raw_documents"]["config"]["versions"]]


def dlq_files(tmp_path, state: str = "") -> list:
    root = tmp_path / "dlq" / state if state else tmp_path / "dlq" / "ingestion"
    return sorted(root.rglob("*.json")) if root.exists() else []


def test_validation_failure_is_dead_lettered_once_without_retry(tmp_path, inbox, make_pipeline):
    (inbox / "bad.csv").write_text("a,b\n1,2\n3\n")
    pipeline = make_pipeline()
    _, [run] = pipeline.run_requests()
    assert not run.success
    attempts = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert attempts == []
    [path] = dlq_files(tmp_path)
    today = datetime.now(UTC)
    assert path.relative_to(tmp_path / "dlq").parts[:4] == ("ingestion", f"{today:%Y}", f"{today:%m}", f"{today:%d}")
    record = json.loads(path.read_text())
    assert record["object"]["key"] == "bad.csv" and record["object"]["source"] == "inbox"
    assert record["object"]["size"] == len("a,b\n1,2\n3\n") and record["object"]["etag"]
    assert record["error"]["class"] == "validation" and record["error"]["type"] == "ValidationError"
    assert "line 3" in record["error"]["message"] and "Traceback" in record["error"]["traceback"]
    assert (record["run_id"], record["retry_count"], record["max_retries"], record["attempts"]) == (run.run_id, 0, 2, 1)
    assert record["job_name"] == "ingest_documents" and record["state"] == "open"
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["error_class"]) == ("FAILED", "validation")
    assert (inbox / "bad.csv").read_text() == "a,b\n1,2\n3\n"


def test_only_the_failing_documents_of_a_run_are_dead_lettered(tmp_path, inbox, make_pipeline):
    (inbox / "a.csv").write_text(GOOD)
    (inbox / "b.csv").write_text("")
    (inbox / "c.csv").write_text(GOOD)
    pipeline = make_pipeline()
    pipeline.tick()
    tags = {"dagster/asset_partition_range_start": pk("a.csv"), "dagster/asset_partition_range_end": pk("c.csv")}
    run = pipeline.defs.resolve_job_def("ingest_documents").execute_in_process(
        instance=pipeline.instance, tags=tags, raise_on_error=False
    )
    assert len(run.asset_materializations_for_node("raw_documents")) == 2
    [path] = dlq_files(tmp_path)
    assert json.loads(path.read_text())["object"]["key"] == "b.csv"
    assert {r["object_key"]: r["status"] for r in pipeline.ledger.versions()} == {
        "a.csv": "SUCCESS",
        "b.csv": "FAILED",
        "c.csv": "SUCCESS",
    }


def test_vanished_object_gets_its_few_retries_then_the_dlq(tmp_path, inbox, make_pipeline):
    (inbox / "gone.csv").write_text(GOOD)
    pipeline = make_pipeline()
    [request] = pipeline.tick().run_requests
    (inbox / "gone.csv").unlink()
    run = pipeline.run_request(request)
    assert not run.success
    retries = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1  # external: max_retries 1 in the test sources, then no more
    [path] = dlq_files(tmp_path)
    record = json.loads(path.read_text())
    assert (record["error"]["class"], record["error"]["type"], record["attempts"]) == ("external", "ExternalError", 2)
    [pinned] = request.run_config["ops"]["raw_documents"]["config"]["versions"]
    assert record["object"]["etag"] == pinned["etag"]
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["tries"]) == ("FAILED", 1)


def test_replay_that_succeeds_moves_the_record_to_resolved(tmp_path, inbox, make_pipeline, write_sources):
    (inbox / "big.csv").write_text(GOOD * 40)
    pipeline = make_pipeline(max_object_size=100)
    first, [failed] = pipeline.run_requests()
    assert not failed.success and len(dlq_files(tmp_path)) == 1

    fixed = make_pipeline(max_object_size="1MiB")  # the operator raises the limit, then replays
    replay = fixed.replay()
    assert replay.output_for_node("replay_dead_letters")["requested"] == [pk("big.csv")]
    tick, [run] = fixed.run_requests()
    [request] = tick.run_requests
    assert pinned_keys(request) == ["big.csv"]
    assert request.run_key != first.run_requests[0].run_key  # a new run key: the daemon drops one it has seen
    assert run.success
    [row] = fixed.ledger.versions()
    assert (row["status"], row["retry_count"]) == ("SUCCESS", 1)
    [letter] = fixed.ledger.dead_letter_rows()
    assert (letter["state"], letter["dlq_key"].split("/")[:2]) == ("resolved", ["resolved", "ingestion"])
    # The run that succeeded moved the record itself: nothing is left open, even before the next tick.
    assert dlq_files(tmp_path) == []
    assert fixed.ledger.pending_dead_letters() == []
    assert skip_message(fixed.tick()) is not None
    [resolved] = dlq_files(tmp_path, "resolved")
    record = json.loads(resolved.read_text())
    assert (record["object"]["key"], record["state"]) == ("big.csv", "resolved")
    assert resolved.relative_to(tmp_path / "dlq").as_posix() == letter["dlq_key"]
    assert fixed.ledger.pending_dead_letters() == []


def test_documents_out_of_replays_are_quarantined(tmp_path, inbox, make_pipeline):
    (inbox / "bad.csv").write_text("")
    pipeline = make_pipeline(max_replays=1)
    pipeline.run_requests()
    pipeline.replay()
    _, [again] = pipeline.run_requests()
    assert not again.success
    [path] = dlq_files(tmp_path)
    assert json.loads(path.read_text())["retry_count"] == 1  # the same record, updated
    outcome = pipeline.replay().output_for_node("replay_dead_letters")
    assert outcome["quarantined"] == [pk("bad.csv")] and outcome["requested"] == []
    assert dlq_files(tmp_path) == [] and len(dlq_files(tmp_path, "quarantined")) == 1
    assert pipeline.ledger.versions()[0]["status"] == "QUARANTINED"
    assert skip_message(pipeline.tick()) is not None  # nothing more is requested


def test_a_worker_that_dies_holding_a_version_is_released_when_its_lease_expires_and_ingested_once(
    tmp_path, inbox, make_pipeline
):
    (inbox / "a.csv").write_text(GOOD)
    pipeline = make_pipeline(settings={"lease_seconds": 2})
    [request] = pipeline.tick().run_requests
    [pinned] = request.run_config["ops"]["raw_documents"]["config"]["versions"]
    version = DocumentVersion(DocumentRef("inbox", "", "a.csv"), pinned["etag"])
    # A worker claims the document and dies without a word: nothing renews its lease.
    lease = pipeline.ledger.claim([pinned["seq"]], "dead-run", timedelta(seconds=2))
    assert [row["id"] for row in lease.rows] == [pinned["seq"]]
    assert skip_message(pipeline.tick()) is not None  # its lease is live: nothing to release or request yet
    time.sleep(2.2)
    tick, [run] = pipeline.run_requests()
    [again] = tick.run_requests
    assert pinned_keys(again) == ["a.csv"] and again.run_key != request.run_key
    assert len(run.asset_materializations_for_node("raw_documents")) == 1
    row = pipeline.ledger.get(version)
    assert (row["status"], row["lost_count"], row["retry_count"], row["run_id"]) == ("SUCCESS", 1, 0, run.run_id)
    assert len(list((tmp_path / "bronze" / "documents").rglob("*.parquet"))) == 1
    assert skip_message(pipeline.tick()) is not None


def test_a_version_whose_runs_keep_dying_is_quarantined_with_a_dead_letter(tmp_path, inbox, make_pipeline):
    (inbox / "a.csv").write_text(GOOD)
    pipeline = make_pipeline(settings={"lease_seconds": 2}, max_attempts=2)
    keys = []
    for attempt in range(2):
        [request] = pipeline.tick().run_requests
        keys.append(request.run_key)
        [pinned] = request.run_config["ops"]["raw_documents"]["config"]["versions"]
        assert pipeline.ledger.claim([pinned["seq"]], f"dead-run-{attempt}", timedelta(seconds=2)).rows
        time.sleep(2.2)
    assert len(set(keys)) == 2
    assert skip_message(pipeline.tick()) is not None  # out of attempts: quarantined, not requested a third time
    [row] = pipeline.ledger.versions()
    assert (row["status"], row["lost_count"], row["error_type"]) == ("QUARANTINED", 2, "WorkerLost")
    assert dlq_files(tmp_path) == []
    [path] = dlq_files(tmp_path, "quarantined")
    record = json.loads(path.read_text())
    assert (record["state"], record["error"]["type"], record["attempts"]) == ("quarantined", "WorkerLost", 2)
    assert "2 times" in record["error"]["message"] and record["job_name"] == "ingestion_reconciler"
    [letter] = pipeline.ledger.dead_letter_rows()
    assert (letter["state"], letter["stored_key"]) == ("quarantined", letter["dlq_key"])
    assert list((tmp_path / "bronze").rglob("*.parquet")) == []
