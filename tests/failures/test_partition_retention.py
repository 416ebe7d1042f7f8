"""Partition retention: only documents whose versions have all landed, and aged past `partitions.retain` (or beyond
`partitions.max`), lose their partition of raw_documents; in-flight, failed and quarantined ones keep it, the ledger
keeps every version, and a key that returns gets its partition back from the discovery sensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from devtools.ticks import tick_sensor
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.core.resources import LedgerResource
from ingestion_project.failures.retention import partition_retention_job
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.ledger import Failure, Status, is_balanced, processed_files

t = processed_files.c
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_resource(request, tmp_path):
    if request.param == "sqlite":
        return LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    return LedgerResource(url=request.getfixturevalue("postgres_url"))


def partitions(instance: dg.DagsterInstance) -> set[str]:
    return {key.split("/", 1)[1] for key in instance.get_dynamic_partitions(documents_partitions.name)}


def settle(book, key: str, status: str, *, days_ago: float) -> None:
    """Give the version of ``key`` the outcome a run would have recorded, ``days_ago`` days ago."""
    [row] = [r for r in book.versions() if r["object_key"] == key and r["status"] == Status.DISCOVERED]
    lease = book.claim([row["id"]], "run-1", timedelta(minutes=5))
    token = lease.token
    if status == Status.SUCCESS:
        book.succeed(row["id"], token, sha256="0" * 64, records=1, bytes_read=1, duration_ms=1)
    else:
        failure = Failure("validation", "ValidationError", "broken", None, f"dlq/{key}.json", 3, "ingest_documents")
        book.fail(row["id"], token, failure)
        if status == Status.QUARANTINED:
            with book.engine.begin() as conn:
                conn.execute(processed_files.update().where(t.id == row["id"]).values(status=Status.QUARANTINED))
    with book.engine.begin() as conn:
        when = datetime.now(UTC) - timedelta(days=days_ago)
        conn.execute(processed_files.update().where(t.id == row["id"]).values(processed_at=when))


def retain(instance, resources) -> dict:
    result = partition_retention_job.execute_in_process(instance=instance, resources=resources)
    assert result.success
    return result.output_for_node("retire_document_partitions")


def test_retention_retires_only_aged_landed_documents_and_a_returning_key_gets_its_partition_back(
    tmp_path, inbox, write_sources, resources_for, ledger_resource
):
    names = ["old.csv", "recent.csv", "broken.csv", "quarantined.csv", "waiting.csv", "old-too.csv"]
    for name in names:
        (inbox / name).write_text("id\n1\n")
    sources = write_sources(
        [{"name": "inbox", "type": "local", "path": str(inbox), "partitions": {"retain": "10d"}}],
        partitions={"retain": "30d", "max": 100_000},
    )
    resources = resources_for(sources)
    book = ledger_resource.ledger()
    with dg.instance_for_test() as instance:
        tick_sensor(document_discovery_sensor, instance, resources)
        assert partitions(instance) == set(names)
        settle(book, "old.csv", Status.SUCCESS, days_ago=12)  # past the source's 10 days, not the global 30
        settle(book, "old-too.csv", Status.SUCCESS, days_ago=40)
        settle(book, "recent.csv", Status.SUCCESS, days_ago=2)
        settle(book, "broken.csv", Status.FAILED, days_ago=40)
        settle(book, "quarantined.csv", Status.QUARANTINED, days_ago=40)
        before = {(r["object_key"], r["etag"], r["status"]) for r in book.versions()}

        assert retain(instance, resources) == {"by_age": 2, "over_limit": 0, "restored": 0}
        assert partitions(instance) == {"recent.csv", "broken.csv", "quarantined.csv", "waiting.csv"}
        # The ledger keeps every version, in the same state.
        assert {(r["object_key"], r["etag"], r["status"]) for r in book.versions()} == before
        assert all(is_balanced(figures) for figures in book.conservation().values())
        # A second pass has nothing left to retire.
        assert retain(instance, resources)["by_age"] == 0

        # old.csv returns with new content: the next discovery tick gives it its partition back.
        (inbox / "old.csv").write_text("id\n1\n2\n")
        tick_sensor(document_discovery_sensor, instance, resources)
        assert "old.csv" in partitions(instance)
        # While that version is in flight, retention leaves it alone even though the older one aged out.
        retain(instance, resources)
        assert "old.csv" in partitions(instance)


def test_beyond_the_limit_the_oldest_landed_documents_go_first(
    tmp_path, inbox, write_sources, resources_for, ledger_resource
):
    for number in range(6):
        (inbox / f"doc-{number}.csv").write_text("id\n1\n")
    sources = write_sources([{"name": "inbox", "type": "local", "path": str(inbox)}], partitions={"max": 3})
    resources = resources_for(sources)
    book = ledger_resource.ledger()
    with dg.instance_for_test() as instance:
        tick_sensor(document_discovery_sensor, instance, resources)
        for number in range(5):  # all landed within the retention period, doc-0 first; doc-5 stays in flight
            settle(book, f"doc-{number}.csv", Status.SUCCESS, days_ago=5 - number)
        done = retain(instance, resources)
        assert done == {"by_age": 0, "over_limit": 3, "restored": 0}
        assert partitions(instance) == {"doc-3.csv", "doc-4.csv", "doc-5.csv"}
        with book.engine.connect() as conn:
            live = conn.execute(sa.select(sa.func.count()).where(t.partition_retired_at.is_(None))).scalar()
        assert live == 3
