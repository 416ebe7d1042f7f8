from datetime import UTC, datetime

from ingestion_project.config import Settings
from ingestion_project.ingestion.batches import chunk_rows, plan_batches
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger, create_ledger_engine
from ingestion_project.lib.versions import DocumentVersion


def settings(**batch) -> Settings:
    source = {"name": "s", "type": "s3", "bucket": "landing", "batch_size": batch or {"documents": 2}}
    return Settings.model_validate({"bronze": {"s3": {"bucket": "bronze"}}, "sources": [source]})


def ledger_with(tmp_path, count: int) -> Ledger:
    book = Ledger(create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}"))
    now = datetime.now(UTC)
    book.record_discovered(
        DocumentVersion(DocumentRef("s", "landing", f"{i}.csv"), "e", size=10, last_modified=now) for i in range(count)
    )
    return book


class StaleReads:
    """The ledger as a second, overlapping sensor evaluation sees it: due rows read before the first one marked
    them requested."""

    def __init__(self, book: Ledger, stale: list[dict]):
        self._book, self._stale = book, stale

    def due(self, source, now=None, limit=10_000):
        return self._stale[:limit]

    def __getattr__(self, name):
        return getattr(self._book, name)


def test_versions_go_to_batches_in_discovery_order_and_are_marked_requested(tmp_path):
    book = ledger_with(tmp_path, 5)
    batches = plan_batches(settings(documents=2), book)
    assert [[r["object_key"] for r in b.rows] for b in batches] == [["0.csv", "1.csv"], ["2.csv", "3.csv"], ["4.csv"]]
    assert all(book.requested_by(b.request_key) for b in batches)
    assert plan_batches(settings(documents=2), book) == []


def test_an_overlapping_evaluation_never_requests_a_version_twice(tmp_path):
    book = ledger_with(tmp_path, 3)
    stale = book.due("s")
    first = plan_batches(settings(documents=10), book)
    second = plan_batches(settings(documents=10), StaleReads(book, stale))
    assert [len(b.rows) for b in first] == [3] and second == []


def test_a_re_request_of_the_same_versions_has_a_new_key(tmp_path):
    book = ledger_with(tmp_path, 2)
    [batch] = plan_batches(settings(documents=10), book)
    for row in book.requested_by(batch.request_key):
        book.release(row, "run never started")
    [again] = plan_batches(settings(documents=10), book)
    assert [r["id"] for r in again.rows] == [r["id"] for r in batch.rows]
    assert again.request_key != batch.request_key


def test_chunks_close_on_count_or_bytes_and_an_oversized_version_travels_alone():
    rows = [{"size_bytes": size} for size in (10, 10, 100, 10, 10, 10)]
    size = settings(documents=3, bytes=50).sources[0].batch_size
    assert [len(c) for c in chunk_rows(rows, size)] == [2, 1, 3]
