"""How versions released from a run that died are batched again: half as many per run on each death, down to one."""

from datetime import UTC, datetime, timedelta

import pytest

from ingestion_project.config import BatchSize, Settings
from ingestion_project.core.reconcile import Reconciliation, isolation_limit, release_rows
from ingestion_project.ingestion.batches import chunk_rows, plan_batches
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger, create_ledger_engine
from ingestion_project.lib.versions import DocumentVersion


def rows(count: int, limit: int | None = None, start: int = 0) -> list[dict]:
    return [{"id": start + n, "size_bytes": 10, "batch_limit": limit} for n in range(count)]


@pytest.mark.parametrize(
    ("held", "batch_limit", "expected"),
    [(61, None, 30), (30, 30, 15), (3, 15, 1), (2, None, 1), (40, 7, 3), (100, 1, 1)],
)
def test_a_death_halves_what_the_next_run_of_a_version_may_carry(held, batch_limit, expected):
    assert isolation_limit(held, batch_limit) == expected


def test_released_versions_are_chunked_by_their_limit_and_the_others_by_the_batch_size():
    size = BatchSize(documents=50)
    plan = [len(chunk) for chunk in chunk_rows([*rows(25, limit=10), *rows(60, start=100)], size)]
    assert plan == [10, 10, 10, 50, 5]  # a limited version caps the whole group it is in


def test_a_version_to_run_alone_starts_and_ends_a_batch_of_its_own():
    size = BatchSize(documents=50)
    chunks = list(chunk_rows([*rows(3), *rows(1, limit=1, start=10), *rows(3, start=20)], size))
    assert [[row["id"] for row in chunk] for chunk in chunks] == [[0, 1, 2], [10], [20, 21, 22]]


@pytest.fixture
def book(ledger_url) -> Ledger:
    return Ledger(create_ledger_engine(ledger_url))


def test_a_shared_death_halves_the_next_batches_and_only_a_death_alone_counts_an_attempt(book, tmp_path):
    settings = Settings.model_validate(
        {"bronze": {"local_dir": str(tmp_path)}, "sources": [{"name": "s", "type": "local", "path": str(tmp_path)}]}
    )
    versions = [DocumentVersion(DocumentRef("s", "b", f"{n}.csv"), "e1", size=10) for n in range(5)]
    book.record_discovered(versions)
    ids = [book.get(v)["id"] for v in versions]
    book.claim(ids, "dead-run", timedelta(minutes=1))
    found = Reconciliation()
    release_rows(book, settings, lambda name: (None, "dlq"), book.held_by("dead-run"), "run died", found)
    rows = book.versions()
    assert len(found.requeued) == 5
    assert {(r["status"], r["batch_limit"], r["shared_losses"], r["lost_count"]) for r in rows} == {
        ("DISCOVERED", 2, 1, 0)
    }
    assert "it held 5 versions: requested again in runs of at most 2" in rows[0]["error_message"]
    batches = plan_batches(settings, book)
    assert [len(batch.rows) for batch in batches] == [2, 2, 1]

    book.release(book.requested_by(batches[2].request_key)[0], "request lost")  # a request no run picked up
    book.claim([ids[4]], "dead-alone", timedelta(minutes=1))
    release_rows(book, settings, lambda name: (None, "dlq"), book.held_by("dead-alone"), "run died", found)
    alone = book.get(versions[4])
    assert (alone["status"], alone["shared_losses"], alone["lost_count"]) == ("DISCOVERED", 1, 2)

    lease = book.claim([ids[0]], "resource-run", timedelta(minutes=1))
    assert book.hand_back(ids[0], lease.token, datetime.now(UTC), alone=True)
    assert book.get(versions[0])["batch_limit"] == 1
