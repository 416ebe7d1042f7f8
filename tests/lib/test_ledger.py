import json
import os
import random
import string
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import (
    POSTGRES_SCHEMA,
    Failure,
    Ledger,
    Status,
    Watermark,
    _alembic_config,
    closed_key,
    create_ledger_engine,
    is_balanced,
    processed_files,
)
from ingestion_project.lib.versions import DocumentVersion


@pytest.fixture
def ledger(ledger_url):
    return Ledger(create_ledger_engine(ledger_url))


def version(key="a.csv", etag="e1", modified=None) -> DocumentVersion:
    return DocumentVersion(DocumentRef("s", "b", key), etag, size=10, last_modified=modified)


def failure(key="dlq/ingestion/2026/11/22/a.json", **overrides) -> Failure:
    values = {
        "error_class": "validation",
        "error_type": "ValidationError",
        "message": "bad",
        "traceback": "Traceback ...",
        "dlq_key": key,
        "max_retries": 3,
        "job_name": "ingest_documents",
    }
    return Failure(**{**values, **overrides})


LEASE = timedelta(minutes=10)


def discovered(ledger: Ledger, *versions: DocumentVersion) -> list[int]:
    ledger.record_discovered(versions)
    return [ledger.get(v)["id"] for v in versions]


def test_migrations_create_the_tables_and_are_idempotent(ledger_url):
    engine = create_ledger_engine(ledger_url)
    create_ledger_engine(ledger_url)  # a second process opening the same ledger
    schema = "ingestion" if engine.dialect.name == "postgresql" else None
    tables = set(sa.inspect(engine).get_table_names(schema=schema))
    assert {"processed_files", "dead_letters", "alembic_version"} <= tables
    columns = {c["name"] for c in sa.inspect(engine).get_columns("processed_files", schema=schema)}
    assert {"lease_token", "lease_expires_at", "not_before", "lost_count", "request_key", "version_id"} <= columns
    if schema:
        assert "processed_files" not in sa.inspect(engine).get_table_names(schema="public")


def test_discovered_versions_are_known_by_key_and_etag(ledger):
    discovered(ledger, version(), version("b.csv"))
    assert ledger.known_versions("s", "b", ["a.csv", "b.csv", "c.csv"]) == {("a.csv", "e1"), ("b.csv", "e1")}
    assert ledger.known_versions("s", "other", ["a.csv"]) == set()


def test_a_new_version_supersedes_waiting_and_failed_older_ones_and_closes_their_dead_letters(ledger):
    [first] = discovered(ledger, version(etag="e1"))
    lease = ledger.claim([first], "r1", LEASE)
    assert ledger.fail(first, lease.token, failure())
    [superseded] = ledger.record_discovered([version(etag="e2")])
    assert superseded["etag"] == "e1"
    assert ledger.get(version(etag="e1"))["status"] == Status.SUPERSEDED
    [letter] = ledger.dead_letter_rows()
    assert (letter["state"], letter["dlq_key"]) == ("superseded", "dlq/superseded/ingestion/2026/11/22/a.json")
    assert ledger.open_dead_letters() == []


def race_to_claim(ledger_url: str, row_id: int, claimers: int) -> list[int]:
    """Claim one version from ``claimers`` threads, each with its own engine, released at the same moment."""
    ledgers = [Ledger(create_ledger_engine(ledger_url)) for _ in range(claimers)]
    barrier = threading.Barrier(claimers)
    won: list[int] = []

    def claim(book: Ledger, run_id: str) -> None:
        barrier.wait(timeout=30)
        won.append(len(book.claim([row_id], run_id, LEASE).rows))

    threads = [threading.Thread(target=claim, args=(book, f"run-{i}")) for i, book in enumerate(ledgers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return won


def test_only_one_of_many_concurrent_claimers_wins(ledger):
    [row_id] = discovered(ledger, version())
    assert sorted(race_to_claim(ledger.engine.url.render_as_string(hide_password=False), row_id, 8)) == [0] * 7 + [1]


def test_a_claim_leases_only_claimable_versions_and_a_step_retry_may_claim_again(ledger):
    ids = discovered(ledger, version("a.csv"), version("b.csv"))
    first = ledger.claim(ids, "r1", LEASE)
    assert [r["object_key"] for r in first.rows] == ["a.csv", "b.csv"]
    assert ledger.succeed(ids[0], first.token, sha256="x", records=1, bytes_read=1, duration_ms=1) == []
    again = ledger.claim(ids, "r1", LEASE)  # the same run's next step attempt
    assert [r["object_key"] for r in again.rows] == ["b.csv"] and again.token != first.token
    assert ledger.claim(ids, "r2", LEASE).rows == []


def test_outcomes_are_fenced_by_the_lease_token(ledger):
    [row_id] = discovered(ledger, version())
    lease = ledger.claim([row_id], "zombie", LEASE)
    [row] = ledger.expired_leases(datetime.now(UTC) + 2 * LEASE)
    assert ledger.release(row, "zombie stopped renewing")
    successor = ledger.claim([row_id], "successor", LEASE)
    assert ledger.succeed(row_id, lease.token, sha256="z", records=1, bytes_read=1, duration_ms=1) is None
    assert not ledger.fail(row_id, lease.token, failure())
    assert ledger.supersede(row_id, lease.token, "gone") is None
    assert not ledger.holds(row_id, lease.token) and ledger.holds(row_id, successor.token)
    row = ledger.get(version())
    assert (row["status"], row["run_id"], row["lost_count"]) == ("PROCESSING", "successor", 1)
    assert ledger.dead_letter_rows() == []


def test_heartbeat_renews_only_the_live_lease(ledger):
    [row_id] = discovered(ledger, version())
    lease = ledger.claim([row_id], "r1", timedelta(seconds=1))
    assert ledger.renew(lease.token, timedelta(seconds=30)) == 1
    time.sleep(1.2)
    assert ledger.expired_leases() == []  # renewed past the first expiry
    assert ledger.renew("not-a-token", timedelta(seconds=30)) == 0


def test_a_failure_and_its_dead_letter_are_recorded_together_and_the_object_is_pending(ledger):
    [row_id] = discovered(ledger, version())
    lease = ledger.claim([row_id], "r1", LEASE)
    assert ledger.fail(row_id, lease.token, failure(content_type="text/csv; " + "x" * 400))
    row = ledger.get(version())
    assert (row["status"], row["error_class"], row["error_traceback"]) == ("FAILED", "validation", "Traceback ...")
    [pending] = ledger.pending_dead_letters("r1")
    assert (pending["state"], pending["stored_key"], len(pending["content_type"])) == ("open", None, 410)
    ledger.dead_letter_stored(pending["dlq_key"], pending["dlq_key"])
    assert ledger.pending_dead_letters() == []


def test_a_replay_that_fails_again_refreshes_its_one_open_record_and_success_resolves_it(ledger):
    [row_id] = discovered(ledger, version())
    ledger.fail(row_id, ledger.claim([row_id], "r1", LEASE).token, failure())
    [letter] = ledger.pending_dead_letters()
    ledger.dead_letter_stored(letter["dlq_key"], letter["dlq_key"])
    assert ledger.request_replay(version())
    ledger.fail(row_id, ledger.claim([row_id], "r2", LEASE).token, failure(message="still bad"))
    [letter] = ledger.open_dead_letters()
    assert (letter["run_id"], letter["retry_count"], letter["error_message"]) == ("r2", 1, "still bad")
    assert letter["stored_key"] is None  # rewritten with the new failure
    ledger.dead_letter_stored(letter["dlq_key"], letter["dlq_key"])
    assert ledger.request_replay(version())
    lease = ledger.claim([row_id], "r3", LEASE)
    [resolved] = ledger.succeed(row_id, lease.token, sha256="x", records=1, bytes_read=1, duration_ms=1)
    assert resolved["dlq_key"] == closed_key(letter["dlq_key"], "resolved")
    [pending] = ledger.pending_dead_letters()
    assert (pending["stored_key"], pending["state"]) == (letter["dlq_key"], "resolved")  # to be moved


def test_a_released_version_is_requested_again_and_a_quarantined_one_gets_a_dead_letter(ledger):
    [row_id] = discovered(ledger, version())
    assert ledger.mark_requested([row_id], "req-1") == 1
    [requested] = ledger.requested_by("req-1")
    assert ledger.release(requested, "run died before its claim")
    row = ledger.get(version())
    assert (row["status"], row["requested_at"], row["lost_count"]) == ("DISCOVERED", None, 1)
    assert [r["id"] for r in ledger.due("s")] == [row_id]
    ledger.claim([row_id], "r2", LEASE)
    [held] = ledger.held_by("r2")
    assert ledger.release(held, "worker killed", quarantine=failure(error_type="WorkerLost", error_class="unexpected"))
    row = ledger.get(version())
    assert (row["status"], row["lost_count"]) == ("QUARANTINED", 2)
    [letter] = ledger.dead_letter_rows()
    assert (letter["state"], letter["error_type"]) == ("quarantined", "WorkerLost")
    assert letter["dlq_key"].startswith("dlq/quarantined/ingestion/")
    assert not ledger.release(held, "again")  # the row changed: a second release does nothing


def test_handed_back_versions_wait_for_their_not_before_time(ledger):
    [row_id] = discovered(ledger, version())
    lease = ledger.claim([row_id], "r1", LEASE)
    assert ledger.record_try(row_id, lease.token, error_class="transient", error_type="E", message="slow") == 1
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert ledger.hand_back(row_id, lease.token, later)
    assert ledger.due("s") == []
    assert [r["id"] for r in ledger.due("s", now=later + timedelta(seconds=1))] == [row_id]
    assert abs((ledger.next_wakeup() - later).total_seconds()) < 1


def test_versions_of_a_removed_source_are_skipped_and_restored_with_it(ledger):
    ids = discovered(ledger, version("a.csv"), version("b.csv"))
    lease = ledger.claim([ids[1]], "live", LEASE)
    [skipped] = ledger.skip_waiting("s", "source 's' was removed")
    assert skipped["object_key"] == "a.csv"
    assert ledger.get(version("a.csv"))["status"] == "SKIPPED"
    assert ledger.holds(ids[1], lease.token)  # a live lease finishes on its own
    assert ledger.restore_skipped("s") == 1
    assert ledger.get(version("a.csv"))["status"] == "DISCOVERED"


def test_latest_version_follows_the_objects_own_order(ledger):
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    discovered(ledger, version(etag="new", modified=late))
    ledger.record_discovered([version(etag="old", modified=early)])  # listed later, but older
    assert ledger.latest_version("s", "b", "a.csv")["etag"] == "new"


def test_closed_keys_keep_the_prefix_and_date():
    assert closed_key("dlq/ingestion/2026/11/22/x.json", "resolved") == "dlq/resolved/ingestion/2026/11/22/x.json"
    assert closed_key("ingestion/2026/11/22/x.json", "quarantined") == "quarantined/ingestion/2026/11/22/x.json"
    assert closed_key("dlq/resolved/ingestion/2026/x.json", "quarantined") == "dlq/quarantined/ingestion/2026/x.json"


def test_success_records_each_versions_schema_and_its_change_against_the_sources_previous_one(ledger):
    first_columns = [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "double"}]
    drifted = [first_columns[0], {"name": "amount", "type": "string"}, {"name": "tip", "type": "double"}]
    ids = discovered(ledger, version("a.csv"), version("b.csv"), version("c.csv"))
    lease = ledger.claim(ids, "r1", LEASE)
    for row_id, columns in zip(ids, (first_columns, first_columns, drifted), strict=True):
        ledger.succeed(row_id, lease.token, sha256="x", records=1, bytes_read=1, duration_ms=1, columns=columns)
    # Re-ingested (forced): recorded once.
    again = ledger.claim([ids[0]], "r2", LEASE)
    ledger.succeed(ids[0], again.token, sha256="x", records=1, bytes_read=1, duration_ms=1, columns=drifted)

    rows = ledger.schema_version_rows()
    assert [r["object_key"] for r in rows] == ["a.csv", "b.csv", "c.csv"]
    first, same, changed = rows
    assert first["previous_fingerprint"] is None and json.loads(first["columns_json"]) == first_columns
    assert same["previous_fingerprint"] == same["fingerprint"] == first["fingerprint"]
    assert (json.loads(changed["columns_added"]), json.loads(changed["columns_retyped"])) == (
        ["tip"],
        [{"name": "amount", "from": "double", "to": "string"}],
    )
    assert ledger.schema_version(version("c.csv"))["id"] == changed["id"]


def test_a_watermark_moves_only_with_a_successful_extraction_and_a_reset_forgets_it(ledger):
    mark = Watermark("public.payments", "updated_at", "2026-11-02T11:00:00+00:00", "timestamp")
    first, failed, second = discovered(
        ledger, version("public.payments", "x1"), version("t2", "x2"), version("t3", "x3")
    )
    lease = ledger.claim([first, failed, second], "r1", LEASE)
    assert ledger.watermark("s", "public.payments") is None
    ledger.succeed(first, lease.token, sha256="x", records=5, bytes_read=1, duration_ms=1, watermark=mark)
    assert ledger.watermark("s", "public.payments") == mark
    # A failed extraction records no watermark; a later success moves the same row on.
    ledger.fail(failed, lease.token, failure("dlq/t2.json"))
    later = Watermark("public.payments", "updated_at", "2026-11-03T00:00:00+00:00", "timestamp")
    ledger.succeed(second, lease.token, sha256="x", records=1, bytes_read=1, duration_ms=1, watermark=later)
    assert ledger.watermark("s", "public.payments") == later
    assert [(r["table_name"], r["etag"]) for r in ledger.watermark_rows()] == [("public.payments", "x3")]
    assert ledger.reset_watermark("s", "public.payments") == later
    assert ledger.watermark("s", "public.payments") is None
    # A lost lease moves nothing.
    [lost] = discovered(ledger, version("public.payments", "x4"))
    ledger.claim([lost], "r2", LEASE)
    assert (
        ledger.succeed(lost, "not-the-token", sha256="x", records=1, bytes_read=1, duration_ms=1, watermark=mark)
        is None
    )
    assert ledger.watermark("s", "public.payments") is None


def _long_key(size: int = 3020) -> str:
    """A local path of ``size`` bytes that does not compress (PostgreSQL compresses a repetitive index row)."""
    rng = random.Random(size)
    parts = ["".join(rng.choices(string.ascii_letters + string.digits, k=200)) for _ in range(size // 201 + 1)]
    return "/".join(parts)[: size - 4] + ".csv"


UNDECODABLE = os.fsdecode(b"in/caf\xe9-\xff.csv")


def test_any_key_a_file_system_allows_is_recorded_found_failed_and_landed(ledger):
    long, odd = version(_long_key()), version(UNDECODABLE)
    assert len(long.ref.key.encode()) == 3020
    ids = discovered(ledger, long, odd)  # a btree row over 2,704 bytes failed this on PostgreSQL
    assert ledger.known_versions("s", "b", [long.ref.key, odd.ref.key, "c.csv"]) == {
        (long.ref.key, "e1"),
        (odd.ref.key, "e1"),
    }
    rows = ledger.rows(ids)
    assert rows[1]["object_key"] == "in/caf\\xe9-\\xff.csv"  # readable text; the row still rebuilds the exact key
    assert [DocumentVersion.from_row(row).ref for row in rows] == [long.ref, odd.ref]
    assert ledger.latest_version("s", "b", odd.ref.key)["id"] == ids[1]
    assert ledger.latest_version("s", "b", "in/caf\\xe9-\\xff.csv") is None  # the shown form is not the key

    lease = ledger.claim(ids, "r1", LEASE)
    assert ledger.fail(ids[0], lease.token, failure(message=f"cannot read {odd.ref.key}"))
    columns = [{"name": "id", "type": "int64"}]
    assert (
        ledger.succeed(ids[1], lease.token, sha256="x", records=1, bytes_read=1, duration_ms=1, columns=columns) == []
    )
    [letter] = ledger.open_dead_letters()
    assert letter["key_hash"] == long.ref.key_hash
    assert letter["error_message"] == "cannot read in/caf\\udce9-\\udcff.csv"  # a stray surrogate, stored as text
    assert ledger.schema_version(odd)["object_key"] == "in/caf\\xe9-\\xff.csv"
    # A new version of each object supersedes the failed one, found by its hash.
    assert [r["id"] for r in ledger.record_discovered([version(long.ref.key, etag="e2")])] == [ids[0]]


def test_concurrent_discoveries_of_the_same_versions_insert_each_once_and_neither_raises(ledger_url):
    versions = [version(f"new/{i:05d}.csv") for i in range(3000)]
    ledgers = [Ledger(create_ledger_engine(ledger_url)) for _ in range(2)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def record(book: Ledger) -> None:
        barrier.wait(timeout=30)
        try:
            results.append(book.insert_discovered(versions))
        except Exception as error:  # noqa: BLE001 - the assertion below names it
            errors.append(error)

    threads = [threading.Thread(target=record, args=(book,)) for book in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 2
    inserted = [v.ref.key for result in results for v in result.inserted]
    assert sorted(inserted) == [v.ref.key for v in versions]  # each version inserted by exactly one of them
    assert all(v.seq is not None for result in results for v in result.inserted)
    assert len(ledgers[0].versions("s")) == 3000


def test_a_refused_key_is_recorded_once_as_failed_with_an_open_dead_letter(ledger):
    refused = version(_long_key(1100))
    refusal = failure(error_type="KeyRefused", message="key refused", max_retries=0)
    assert ledger.record_refused(refused, refusal)
    assert not ledger.record_refused(refused, refusal)  # the next tick lists it again: nothing more is written
    [row] = ledger.versions("s")
    assert (row["status"], row["error_class"], row["error_type"]) == (Status.FAILED, "validation", "KeyRefused")
    [letter] = ledger.open_dead_letters()
    assert (letter["key_hash"], letter["error_type"], letter["max_retries"]) == (refused.ref.key_hash, "KeyRefused", 0)
    assert all(is_balanced(figures) for figures in ledger.conservation().values())


def test_migration_0006_gives_existing_rows_their_key_hash(ledger_url):
    engine = sa.create_engine(ledger_url)
    schema = POSTGRES_SCHEMA if engine.dialect.name == "postgresql" else None
    if schema:
        engine = engine.execution_options(schema_translate_map={None: schema})
    config = _alembic_config()
    with engine.begin() as conn:
        if schema:
            conn.execute(sa.text(f'create schema if not exists "{schema}"'))
        config.attributes.update(connection=conn, schema=schema)
        command.upgrade(config, "0005")
        now = datetime.now(UTC)
        common = {"source": "s", "bucket": "b", "object_key": "a.csv", "etag": "e1"}
        conn.execute(
            sa.text(
                "insert into processed_files (source, bucket, object_key, etag, partition_key, status, discovered_at,"
                " retry_count, tries, lost_count, request_count)"
                " values (:source, :bucket, :object_key, :etag, 's:b/a.csv', 'FAILED', :now, 0, 0, 0, 0)"
            ),
            {**common, "now": now},
        )
        conn.execute(
            sa.text(
                "insert into dead_letters (dlq_key, source, bucket, object_key, etag, partition_key, error_class,"
                " error_type, error_message, failed_at, run_id, retry_count, max_retries, state)"
                " values ('k.json', :source, :bucket, :object_key, :etag, 's:b/a.csv', 'validation', 'E', 'm', :now,"
                " 'r', 0, 3, 'open')"
            ),
            {**common, "now": now},
        )
    book = Ledger(create_ledger_engine(ledger_url))  # migrates to the head
    assert book.get(version())["status"] == Status.FAILED
    [letter] = book.open_dead_letters()
    assert letter["key_hash"] == DocumentRef("s", "b", "a.csv").key_hash
    assert book.record_discovered([version(etag="e2")])[0]["etag"] == "e1"  # found by its hash, superseded
    with pytest.raises(sa.exc.IntegrityError), book.engine.begin() as conn:
        conn.execute(processed_files.insert().values(**version(etag="e2").as_row(), status="X", discovered_at=now))
