"""How versions released from a run that died are batched again: half as many per run on each death, down to one."""

import pytest

from ingestion_project.config import BatchSize
from ingestion_project.core.reconcile import isolation_limit
from ingestion_project.ingestion.batches import chunk_rows


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
