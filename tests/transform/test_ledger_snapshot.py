"""The warehouse's ledger snapshot is incremental: after inserts, outcomes, releases, supersessions and replays,
copying only what changed leaves the warehouse with exactly what a full copy gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from ingestion_project.failures.assets import write_snapshot
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Failure, Ledger, create_ledger_engine, processed_files
from ingestion_project.lib.versions import DocumentVersion

LEASE = timedelta(minutes=10)
TABLES = ("processed_files", "schema_versions", "dead_letters")


@pytest.fixture
def book(ledger_url) -> Ledger:
    return Ledger(create_ledger_engine(ledger_url))


def version(key: str, etag: str = "e1") -> DocumentVersion:
    return DocumentVersion(DocumentRef("orders", "landing", key), etag, size=10)


def failure(key: str) -> Failure:
    return Failure("validation", "ValidationError", "bad", None, f"dlq/ingestion/{key}.json", 3, "ingest_documents")


def contents(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple]:
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'ledger' and table_name = ? "
            "order by ordinal_position",
            [name],
        ).fetchall()
        if c != "snapshot_at"
    ]
    key = "dlq_key" if name == "dead_letters" else "id"
    return con.execute(f"select {', '.join(columns)} from ledger.{name} order by {key}").fetchall()


def test_the_incremental_snapshot_equals_a_full_one(book: Ledger, tmp_path):
    incremental = duckdb.connect(str(tmp_path / "incremental.duckdb"))
    modes = []

    def snapshot() -> None:
        modes.append(write_snapshot(incremental, book, datetime.now(UTC))["mode"])

    book.record_discovered([version(f"{n}.csv") for n in range(6)])
    snapshot()  # the first one is full
    ids = [book.get(version(f"{n}.csv"))["id"] for n in range(6)]

    lease = book.claim(ids[:4], "run-1", LEASE)
    book.succeed(
        ids[0],
        lease.token,
        sha256="a" * 64,
        records=2,
        bytes_read=10,
        duration_ms=5,
        columns=[{"name": "id", "type": "int64"}],
    )
    book.succeed(
        ids[1],
        lease.token,
        sha256="b" * 64,
        records=2,
        bytes_read=10,
        duration_ms=5,
        columns=[{"name": "id", "type": "string"}],
    )
    book.fail(ids[2], lease.token, failure("2"))
    snapshot()

    # The run died holding 3.csv: released; 4.csv gets a new version (the old one superseded); 2.csv replayed.
    [held] = [row for row in book.held_by("run-1") if row["id"] == ids[3]]
    assert book.release(held, "run run-1 died")
    book.record_discovered([version("4.csv", "e2")])
    assert book.request_replay(version("2.csv"))
    snapshot()

    relapse = book.claim([ids[2], ids[3]], "run-2", LEASE)
    book.fail(ids[2], relapse.token, failure("2"))
    book.succeed(
        ids[3],
        relapse.token,
        sha256="c" * 64,
        records=1,
        bytes_read=10,
        duration_ms=5,
        columns=[{"name": "id", "type": "int64"}],
    )
    snapshot()
    assert modes == ["full", "incremental", "incremental", "incremental"]

    full = duckdb.connect(str(tmp_path / "full.duckdb"))
    assert write_snapshot(full, book, datetime.now(UTC), full=True)["mode"] == "full"
    for name in TABLES:
        assert contents(incremental, name) == contents(full, name), name
    assert len(contents(full, "processed_files")) == 7
    assert len(contents(full, "schema_versions")) == 3


def test_an_incremental_snapshot_copies_only_what_changed(book: Ledger, tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    book.record_discovered([version(f"{n}.csv") for n in range(50)])
    now = datetime.now(UTC)
    files = processed_files.c
    with book.engine.begin() as conn:  # a history: 48 versions last changed two hours ago, 2 an hour ago
        conn.execute(processed_files.update().values(updated_at=now - timedelta(hours=2)))
        recent = [book.get(version(f"{n}.csv"))["id"] for n in (10, 20)]
        conn.execute(processed_files.update().where(files.id.in_(recent)).values(updated_at=now - timedelta(hours=1)))
    assert write_snapshot(con, book, now)["copied"] == 50
    row = book.get(version("7.csv"))
    lease = book.claim([row["id"]], "run-1", LEASE)
    book.succeed(row["id"], lease.token, sha256="a" * 64, records=1, bytes_read=10, duration_ms=5)
    copied = write_snapshot(con, book, datetime.now(UTC))
    # What changed since the newest change the last snapshot copied, less the overlap: the two of an hour ago and
    # the one that landed now — not the history.
    assert (copied["mode"], copied["copied"], copied["versions"]) == ("incremental", 3, 50)
    [(status,)] = con.execute("select status from ledger.processed_files where id = ?", [row["id"]]).fetchall()
    assert status == "SUCCESS"
