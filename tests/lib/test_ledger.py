import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ingestion_project.lib.ledger import Ledger, Status, create_ledger_engine, run_key_for


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(ledger_url):
    return Ledger(create_ledger_engine(ledger_url))


def version(key="a.csv", etag="e1"):
    return {"source": "s", "bucket": "b", "object_key": key, "etag": etag, "partition_key": f"s:b/{key}"}


LONG = timedelta(minutes=10)


def test_migrations_create_the_tables_and_are_idempotent(ledger_url):
    engine = create_ledger_engine(ledger_url)
    create_ledger_engine(ledger_url)  # a second process opening the same ledger
    schema = "ingestion" if engine.dialect.name == "postgresql" else None
    tables = set(sa.inspect(engine).get_table_names(schema=schema))
    assert {"processed_files", "dead_letters", "alembic_version"} <= tables
    if schema:
        assert "processed_files" not in sa.inspect(engine).get_table_names(schema="public")


def test_discovered_versions_are_known_by_key_and_etag(ledger):
    ledger.record_discovered([{k: v for k, v in version().items()}, version("b.csv")])
    assert ledger.known_versions("s", "b", ["a.csv", "b.csv", "c.csv"]) == {("a.csv", "e1"), ("b.csv", "e1")}
    assert ledger.known_versions("s", "other", ["a.csv"]) == set()


def race_to_claim(ledger_url: str, claimers: int) -> list[bool]:
    """Claim one version from ``claimers`` threads, each with its own engine, released at the same moment."""
    ledgers = [Ledger(create_ledger_engine(ledger_url)) for _ in range(claimers)]
    barrier = threading.Barrier(claimers)
    results: list[bool] = []

    def claim(book: Ledger, run_id: str) -> None:
        barrier.wait(timeout=30)
        results.append(book.claim(version(), run_id, stale_after=LONG).claimed)

    threads = [threading.Thread(target=claim, args=(book, f"run-{i}")) for i, book in enumerate(ledgers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_only_one_of_many_concurrent_claimers_wins(ledger):
    ledger.record_discovered([version()])
    assert sorted(race_to_claim(ledger.engine.url.render_as_string(hide_password=False), 8)) == [False] * 7 + [True]


def test_concurrent_first_claims_of_an_undiscovered_version_insert_once(ledger):
    results = race_to_claim(ledger.engine.url.render_as_string(hide_password=False), 6)
    assert results.count(True) == 1
    assert len(ledger.versions()) == 1


def test_finished_versions_are_not_claimed_again_unless_forced(ledger):
    assert ledger.claim(version(), "r1", stale_after=LONG).claimed
    ledger.mark_success(version(), "r1", sha256="x", records=1, bytes_read=1, duration_ms=1)
    refused = ledger.claim(version(), "r2", stale_after=LONG)
    assert (refused.claimed, refused.status, refused.run_id) == (False, "SUCCESS", "r1")
    assert ledger.claim(version(), "r2", stale_after=LONG, force=True).claimed


def test_a_step_retry_of_the_holding_run_may_claim_again(ledger):
    assert ledger.claim(version(), "r1", stale_after=LONG).claimed
    assert ledger.claim(version(), "r1", stale_after=LONG).claimed
    assert not ledger.claim(version(), "r2", stale_after=LONG).claimed


def test_only_the_claim_holder_records_an_outcome(ledger):
    ledger.claim(version(), "zombie", stale_after=LONG)
    ledger.claim(version(), "successor", stale_after=timedelta(0))
    ledger.mark_success(version(), "zombie", sha256="z", records=1, bytes_read=1, duration_ms=1)
    row = ledger.get(version())
    assert (row["status"], row["run_id"]) == ("PROCESSING", "successor")


def test_stale_processing_rows_are_requeued_with_one_retry_more(ledger):
    ledger.record_discovered([version()])
    ledger.claim(version(), "dead", stale_after=LONG)
    assert ledger.requeue_stale(timedelta(seconds=5)) == []
    time.sleep(1.1)
    [stale] = ledger.requeue_stale(timedelta(seconds=1))
    assert stale["run_id"] == "dead"
    row = ledger.get(version())
    assert (row["status"], row["retry_count"], row["error_type"]) == ("DISCOVERED", 1, "WorkerLost")
    [pending] = ledger.take_pending_requests(LONG)
    assert run_key_for(pending) == "s:b/a.csv@e1#1"
    assert ledger.take_pending_requests(LONG) == []  # requested now: not handed out twice


def test_replay_and_quarantine_move_only_failed_versions(ledger):
    ledger.claim(version(), "r1", stale_after=LONG)
    assert not ledger.request_replay(version())  # still processing
    ledger.mark_failed(version(), "r1", error=ValueError("bad"), error_class="validation", duration_ms=1)
    assert ledger.request_replay(version())
    row = ledger.get(version())
    assert (row["status"], row["retry_count"]) == (Status.DISCOVERED, 1)
    ledger.quarantine(version())
    assert ledger.get(version())["status"] == Status.QUARANTINED


def test_dead_letters_keep_one_open_record_per_version(ledger):
    from datetime import UTC, datetime

    record = {
        **version(),
        "dlq_key": "dlq/ingestion/2026/11/22/x.json",
        "error_class": "validation",
        "error_type": "ValidationError",
        "error_message": "bad",
        "failed_at": datetime.now(UTC),
        "run_id": "r1",
        "retry_count": 0,
        "max_retries": 3,
    }
    ledger.upsert_dead_letter(record)
    ledger.upsert_dead_letter({**record, "retry_count": 1, "run_id": "r2"})
    [letter] = ledger.open_dead_letters()
    assert (letter["retry_count"], letter["run_id"], letter["state"]) == (1, "r2", "open")
    moved = {record["dlq_key"]: "dlq/resolved/ingestion/2026/11/22/x.json"}
    assert ledger.close_dead_letters(version(), "resolved", moved) == [record["dlq_key"]]
    assert ledger.open_dead_letters() == []
    assert ledger.dead_letter_rows()[0]["dlq_key"] == "dlq/resolved/ingestion/2026/11/22/x.json"


def test_failing_a_version_in_flight_leaves_another_runs_claim_alone(ledger):
    ledger.record_discovered([version(), version("b.csv")])
    ledger.claim(version(), "live", stale_after=LONG)
    for v in (version(), version("b.csv")):
        ledger.fail_in_flight(v, "crashed", error_class="unexpected", error_type="Boom", message="step died")
    assert (ledger.get(version())["status"], ledger.get(version())["run_id"]) == ("PROCESSING", "live")
    assert (ledger.get(version("b.csv"))["status"], ledger.get(version("b.csv"))["run_id"]) == ("FAILED", "crashed")
