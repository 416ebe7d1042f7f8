"""Reads and writes of the ledger: discovery, requests, leased claims, fenced outcomes, releases, dead letters.

A run claims the versions it was requested for with one UPDATE that gives them a lease: a token and an expiry the
run renews while it works. Every outcome it records (SUCCESS, FAILED, SKIPPED, SUPERSEDED, a hand-back) matches the
token, so a run whose lease was taken away records nothing. A FAILED outcome and its open dead letter are written
in one transaction; the dead letter's JSON object follows (``stored_key`` says where it is so far).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ingestion_project.lib.bronze_commit import BronzeObjects
from ingestion_project.lib.keys import key_hash
from ingestion_project.lib.ledger.schema import (
    IN_FLIGHT,
    TERMINAL,
    Status,
    dead_letters,
    processed_files,
    schema_versions,
    watermarks,
)
from ingestion_project.lib.schemas import Columns, diff, fingerprint
from ingestion_project.lib.versions import DocumentVersion

t = processed_files.c
d = dead_letters.c
# What a dead letter copies of its version's row; rows of one version match by key_hash and etag.
VERSION_FIELDS = ("source", "bucket", "object_key", "key_hash", "etag")
OPEN = "open"
# error_type of versions skipped because their source left the sources file: they wait again if it comes back.
SOURCE_REMOVED = "SourceRemoved"
_MESSAGE_LIMIT = 4000
# error_type of a SUCCESS version sent back to DISCOVERED (or FAILED) because its committed bronze was lost.
BRONZE_LOST = "BronzeLost"
BRONZE_COLUMNS = tuple(f"bronze_{name}" for name in BronzeObjects.__dataclass_fields__)


def _parse_time(value: str) -> datetime:
    # SQLite hands back an aggregate of a DateTime column as text (naive UTC).
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_utc(value: datetime | str | None) -> datetime | None:
    # An aggregate of a DateTime column comes back as text on SQLite and naive there; aware on PostgreSQL.
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return _parse_time(value) if isinstance(value, str) else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _matches(row: Mapping[str, Any], columns=t):
    """The rows of ``columns`` (processed files, dead letters, schema versions) of the same version as ``row``."""
    return (columns.key_hash == row["key_hash"]) & (columns.etag == row["etag"])


def _is(version: DocumentVersion, columns=t):
    """The rows of ``columns`` that record ``version``."""
    return (columns.key_hash == version.ref.key_hash) & (columns.etag == version.etag)


def _insert(conn: Connection, table: sa.Table):
    """An INSERT that leaves a row already there (a concurrent writer's) alone, on SQLite and PostgreSQL."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def storable(text: str | None) -> str | None:
    """``text`` as valid UTF-8 for a text column: a stray surrogate (the undecodable byte of a local file name in
    a message) becomes ``\\udcNN``."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def closed_key(key: str, state: str) -> str:
    """Where an open record ``…/ingestion/YYYY/…`` goes when closed: ``…/<state>/ingestion/YYYY/…``."""
    head, sep, tail = key.rpartition("ingestion/")
    if not sep:
        return f"{state}/{key}"
    for closed in ("resolved/", "quarantined/", "superseded/"):
        head = head.removesuffix(closed)
    return f"{head}{state}/{sep}{tail}"


# The versions that are done and need nothing more: a document whose versions are all landed may lose its
# partition (partition retention); FAILED and QUARANTINED ones wait for a person.
LANDED = (Status.SUCCESS, Status.SKIPPED, Status.SUPERSEDED)


@dataclass(frozen=True)
class RetirablePartition:
    """A document whose partition of raw_documents retention may retire: its key hash and partition key."""

    key_hash: str
    partition_key: str
    last_processed_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    """The versions one claim won, and the token that fences everything recorded for them."""

    token: str
    run_id: str
    rows: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    """What a FAILED outcome records, for the ledger row and its dead letter."""

    error_class: str
    error_type: str
    message: str
    traceback: str | None
    dlq_key: str
    max_retries: int
    job_name: str
    content_type: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Discovered:
    """What recording listed versions did: the versions this call inserted (a concurrent tick may have inserted
    the others first) and the older versions they superseded."""

    inserted: list[DocumentVersion] = field(default_factory=list)
    superseded: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Watermark:
    """How far an incremental extraction of one table has read: the greatest value of its watermark column."""

    table_name: str
    column_name: str
    value: str  # ISO 8601 for a timestamp, digits for an integer, exact decimal text for a numeric
    value_type: str  # "timestamp" | "integer" | "numeric" (numeric, float and decimal columns)


# The figures of ``Ledger.conservation`` that are end states: success, failed, skipped, superseded, quarantined.
END_FIGURES = tuple(status.lower() for status in TERMINAL)


def is_balanced(figures: dict[str, int]) -> bool:
    """Nothing lost: a source's discovered versions equal those in an end state plus those in flight."""
    return figures["discovered"] == sum(figures[name] for name in END_FIGURES) + figures["in_flight"]


class Ledger:
    """The processed-files ledger on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _rows(self, query) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # Discovery and requests

    def known_versions(self, source: str, bucket: str, keys: Sequence[str]) -> set[tuple[str, str]]:
        """The (key, etag) pairs among ``keys`` that the ledger already holds, in one query (by key hash)."""
        if not keys:
            return set()
        by_hash = {key_hash(source, bucket, key): key for key in keys}
        query = sa.select(t.key_hash, t.etag).where(t.key_hash.in_(list(by_hash)))
        with self.engine.connect() as conn:
            return {(by_hash[row.key_hash], row.etag) for row in conn.execute(query)}

    def record_discovered(self, versions: Iterable[DocumentVersion]) -> list[dict]:
        """Insert new versions as DISCOVERED (see :meth:`insert_discovered`); returns the superseded rows."""
        return self.insert_discovered(versions).superseded

    def insert_discovered(self, versions: Iterable[DocumentVersion]) -> Discovered:
        """Insert new versions as DISCOVERED; older versions of the same objects that are waiting (DISCOVERED,
        not claimed) or FAILED become SUPERSEDED, their open dead letters closed. A version another writer (a
        concurrent tick) inserted first is left to it: only the versions this call inserted supersede anything."""
        now = _now()
        versions = list(versions)
        if not versions:
            return Discovered()
        with self.engine.begin() as conn:
            inserted = self._insert_new(conn, versions, status=Status.DISCOVERED, discovered_at=now)
            superseded = [old for version in inserted for old in self._supersede_older(conn, version, now)]
        return Discovered(inserted, superseded)

    def _supersede_older(self, conn: Connection, version: DocumentVersion, now: datetime) -> list[dict]:
        """Older versions of the object that wait (DISCOVERED) or FAILED become SUPERSEDED by ``version``."""
        older = (t.key_hash == version.ref.key_hash) & (t.etag != version.etag)
        superseded = []
        for old in conn.execute(
            sa.select(processed_files).where(older, t.status.in_([Status.DISCOVERED, Status.FAILED]))
        ):
            old = dict(old._mapping)
            message = f"ETag {old['etag']} was replaced by {version.etag} before it was ingested"
            conn.execute(
                processed_files.update()
                .where(t.id == old["id"], t.status == old["status"])
                .values(status=Status.SUPERSEDED, processed_at=now, error_message=message)
            )
            self._close_letters(conn, old, "superseded")
            superseded.append(old)
        return superseded

    @staticmethod
    def _insert_new(conn: Connection, versions: Sequence[DocumentVersion], **values: Any) -> list[DocumentVersion]:
        """Insert the rows of ``versions`` the ledger lacks; the versions inserted, with their ``seq``."""
        rows = [{**v.as_row(), **values} for v in versions]
        query = _insert(conn, processed_files).returning(t.id, t.key_hash, t.etag)
        ids = {(r.key_hash, r.etag): r.id for r in conn.execute(query, rows)}
        return [replace(v, seq=ids[(v.ref.key_hash, v.etag)]) for v in versions if (v.ref.key_hash, v.etag) in ids]

    def record_refused(self, version: DocumentVersion, failure: Failure) -> bool:
        """A listed object that cannot become a partition: FAILED at once, with its open dead letter, in one
        transaction; False (nothing written) when the ledger has it already."""
        now = _now()
        values = {
            "status": Status.FAILED,
            "discovered_at": now,
            "processed_at": now,
            "error_class": failure.error_class,
            "error_type": failure.error_type[:128],
            "error_message": storable(failure.message[:_MESSAGE_LIMIT]),
        }
        with self.engine.begin() as conn:
            inserted = self._insert_new(conn, [version], **values)
            if not inserted:
                return False
            self._supersede_older(conn, inserted[0], now)
            self._open_letter(conn, self._row(conn, inserted[0].seq), failure, now)
        return True

    def due(self, source: str, now: datetime | None = None, limit: int = 10_000) -> list[dict]:
        """DISCOVERED versions of ``source`` that no run request carries and whose not-before time has come."""
        now = now or _now()
        query = (
            sa.select(processed_files)
            .where(
                t.source == source,
                t.status == Status.DISCOVERED,
                t.requested_at.is_(None),
                t.not_before.is_(None) | (t.not_before <= now),
            )
            .order_by(t.id)
            .limit(limit)
        )
        return self._rows(query)

    def next_wakeup(self) -> datetime | None:
        """The earliest not-before time of a handed-back version, if any."""
        query = sa.select(sa.func.min(t.not_before)).where(
            t.status == Status.DISCOVERED, t.requested_at.is_(None), t.not_before.is_not(None)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def mark_requested(self, ids: Sequence[int], request_key: str) -> int:
        """The versions ``ids`` are carried by the run request ``request_key`` (unless something took them)."""
        with self.engine.begin() as conn:
            return conn.execute(
                processed_files.update()
                .where(t.id.in_(list(ids)), t.status == Status.DISCOVERED, t.requested_at.is_(None))
                .values(requested_at=_now(), request_key=request_key, request_count=t.request_count + 1)
            ).rowcount

    def ensure(self, versions: Sequence[DocumentVersion]) -> list[dict]:
        """The rows of ``versions``, inserting the ones the ledger lacks as DISCOVERED (a run started by hand)."""
        found = {}
        for version in versions:
            row = self.get(version)
            if row is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            processed_files.insert().values(
                                **version.as_row(), status=Status.DISCOVERED, discovered_at=_now()
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # inserted meanwhile by the sensor or another run
                row = self.get(version)
            found[row["id"]] = row
        return list(found.values())

    # Claims and leases

    def claim(
        self,
        ids: Sequence[int],
        run_id: str,
        lease: timedelta,
        *,
        claimable: Sequence[str] = (Status.DISCOVERED,),
    ) -> Lease:
        """Atomically lease the claimable versions among ``ids`` to ``run_id``; versions this run already holds
        (a step retry) are leased again. One UPDATE decides: on PostgreSQL a concurrent claimer blocks on the row
        locks and re-checks the condition; SQLite serialises writers."""
        token = uuid.uuid4().hex
        now = _now()
        condition = t.status.in_(list(claimable)) | ((t.status == Status.PROCESSING) & (t.run_id == run_id))
        # Claiming a FAILED or QUARANTINED version again (a person's Materialize) gives it fresh tries and lives.
        fresh = t.status.in_([Status.FAILED, Status.QUARANTINED])
        values = {
            "status": Status.PROCESSING,
            "run_id": run_id,
            "lease_token": token,
            "lease_expires_at": now + lease,
            "processing_started_at": now,
            "tries": sa.case((fresh, 0), else_=t.tries),
            "lost_count": sa.case((fresh, 0), else_=t.lost_count),
        }
        with self.engine.begin() as conn:
            conn.execute(processed_files.update().where(t.id.in_(list(ids)), condition).values(values))
            rows = [dict(r._mapping) for r in conn.execute(sa.select(processed_files).where(t.lease_token == token))]
        return Lease(token, run_id, sorted(rows, key=lambda r: r["id"]))

    def renew(self, token: str, lease: timedelta) -> int:
        """Push the lease's expiry forward (the heartbeat); the number of versions it still holds."""
        with self.engine.begin() as conn:
            return conn.execute(
                processed_files.update()
                .where(t.lease_token == token, t.status == Status.PROCESSING)
                .values(lease_expires_at=_now() + lease)
            ).rowcount

    def holds(self, row_id: int, token: str) -> bool:
        query = sa.select(t.id).where(t.id == row_id, t.lease_token == token, t.status == Status.PROCESSING)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _fenced(self, conn: Connection, row_id: int, token: str, **values) -> bool:
        fence = (t.id == row_id) & (t.lease_token == token) & (t.status == Status.PROCESSING)
        return bool(conn.execute(processed_files.update().where(fence).values(**values)).rowcount)

    # Outcomes (fenced by the lease token)

    def succeed(
        self,
        row_id: int,
        token: str,
        *,
        sha256: str,
        records: int,
        bytes_read: int,
        duration_ms: int,
        columns: Columns | None = None,
        contract: dict | None = None,
        watermark: Watermark | None = None,
        bronze: BronzeObjects | None = None,
    ) -> list[dict] | None:
        """SUCCESS; the version's open dead letters are resolved, its ``columns`` (when given) recorded in the
        schema history and, for a database extraction, its table's ``watermark`` moved — all in one transaction, so
        a watermark never moves past rows that did not land. ``bronze``: the attempt's files, which this makes the
        version's current ones (staging reads no other manifest). None when the lease was lost."""
        committed = bronze.as_row() if bronze is not None else dict.fromkeys(BRONZE_COLUMNS)
        with self.engine.begin() as conn:
            if not self._fenced(
                conn,
                row_id,
                token,
                status=Status.SUCCESS,
                processed_at=_now(),
                sha256=sha256,
                records_ingested=records,
                bytes_read=bytes_read,
                duration_ms=duration_ms,
                lease_token=None,
                error_class=None,
                error_type=None,
                error_message=None,
                error_traceback=None,
                bronze_verified_at=None,
                **committed,
            ):
                return None
            row = self._row(conn, row_id)
            if columns is not None:
                self._record_schema(conn, row, columns, contract)
            if watermark is not None:
                self._set_watermark(conn, row, watermark)
            return self._close_letters(conn, row, "resolved")

    # Bronze integrity: the committed files of SUCCESS versions, checked a few at a time

    def bronze_to_verify(self, limit: int) -> list[dict]:
        """SUCCESS versions with recorded bronze, the least recently verified (never verified: first) first."""
        query = (
            sa.select(processed_files)
            .where(t.status == Status.SUCCESS, t.bronze_manifest_key.is_not(None))
            .order_by(t.bronze_verified_at.is_not(None), t.bronze_verified_at, t.id)
            .limit(limit)
        )
        return self._rows(query)

    def bronze_verified(self, ids: Sequence[int], at: datetime | None = None) -> None:
        if ids:
            with self.engine.begin() as conn:
                conn.execute(
                    processed_files.update()
                    .where(t.id.in_(list(ids)), t.status == Status.SUCCESS)
                    .values(bronze_verified_at=at or _now())
                )

    def bronze_lost(self, row: dict, reason: str, *, failure: Failure | None = None) -> bool:
        """A SUCCESS version whose committed bronze is missing or altered: back to DISCOVERED, so the sensor
        requests it again (the source still has it), or — with ``failure`` — FAILED with an open dead letter (it
        cannot be landed again). Only while the row still records the same files (a new commit meanwhile wins)."""
        unchanged = (
            (t.id == row["id"]) & (t.status == Status.SUCCESS) & (t.bronze_manifest_key == row["bronze_manifest_key"])
        )
        now = _now()
        if failure is None:
            values = {
                "status": Status.DISCOVERED,
                "requested_at": None,
                "not_before": None,
                "tries": 0,
                "error_type": BRONZE_LOST,
                "error_message": reason[:_MESSAGE_LIMIT],
            }
        else:
            values = {
                "status": Status.FAILED,
                "processed_at": now,
                "error_class": failure.error_class,
                "error_type": failure.error_type[:128],
                "error_message": failure.message[:_MESSAGE_LIMIT],
            }
        with self.engine.begin() as conn:
            if not conn.execute(processed_files.update().where(unchanged).values(values)).rowcount:
                return False
            if failure is not None:
                self._open_letter(conn, self._row(conn, row["id"]), failure, now)
        return True

    def _set_watermark(self, conn: Connection, row: dict, watermark: Watermark) -> None:
        w = watermarks.c
        values = {
            "column_name": watermark.column_name,
            "value": watermark.value,
            "value_type": watermark.value_type,
            "etag": row["etag"],
            "updated_at": _now(),
        }
        where = (w.source == row["source"]) & (w.table_name == watermark.table_name)
        if not conn.execute(watermarks.update().where(where).values(values)).rowcount:
            conn.execute(watermarks.insert().values(source=row["source"], table_name=watermark.table_name, **values))

    def watermark(self, source: str, table_name: str) -> Watermark | None:
        """The watermark of an incremental extraction; None before its first one (or after a reset)."""
        w = watermarks.c
        rows = self._rows(sa.select(watermarks).where(w.source == source, w.table_name == table_name))
        if not rows:
            return None
        return Watermark(table_name, rows[0]["column_name"], rows[0]["value"], rows[0]["value_type"])

    def reset_watermark(self, source: str, table_name: str) -> Watermark | None:
        """Forget a table's watermark, so its next extraction is full; returns the one forgotten."""
        previous = self.watermark(source, table_name)
        w = watermarks.c
        with self.engine.begin() as conn:
            conn.execute(watermarks.delete().where(w.source == source, w.table_name == table_name))
        return previous

    def watermark_rows(self) -> list[dict]:
        return self._rows(sa.select(watermarks).order_by(watermarks.c.id))

    def _record_schema(self, conn: Connection, row: dict, columns: Columns, contract: dict | None = None) -> None:
        """The version's schema and its change against the source's latest recorded one (once per version)."""
        version = schema_versions.c
        if conn.execute(sa.select(version.id).where(_matches(row, version))).first() is not None:
            return  # re-ingested (forced, or replayed): its schema was recorded the first time
        previous = conn.execute(
            sa.select(version.fingerprint, version.columns_json)
            .where(version.source == row["source"])
            .order_by(version.id.desc())
            .limit(1)
        ).first()
        change = diff(json.loads(previous.columns_json) if previous else None, columns)
        conn.execute(
            schema_versions.insert().values(
                **{k: row[k] for k in VERSION_FIELDS},
                recorded_at=_now(),
                fingerprint=fingerprint(columns),
                columns_json=json.dumps(list(columns), ensure_ascii=False),
                previous_fingerprint=previous.fingerprint if previous else None,
                columns_added=json.dumps(change.added, ensure_ascii=False),
                columns_removed=json.dumps(change.removed, ensure_ascii=False),
                columns_retyped=json.dumps(change.retyped, ensure_ascii=False),
                contract_json=None if contract is None else json.dumps(contract, ensure_ascii=False),
            )
        )

    def schema_version(self, version: DocumentVersion) -> dict | None:
        """The recorded schema of ``version``, if it landed."""
        rows = self._rows(sa.select(schema_versions).where(_is(version, schema_versions.c)))
        return rows[0] if rows else None

    def schema_version_rows(self) -> list[dict]:
        return self._rows(sa.select(schema_versions).order_by(schema_versions.c.id))

    def fail(self, row_id: int, token: str, failure: Failure, *, duration_ms: int = 0) -> bool:
        """FAILED, and in the same transaction its open dead letter (one per version: a replay that fails again
        refreshes it). The dead letter's object is written afterwards (``pending_dead_letters``)."""
        now = _now()
        with self.engine.begin() as conn:
            if not self._fenced(
                conn,
                row_id,
                token,
                status=Status.FAILED,
                processed_at=now,
                duration_ms=duration_ms,
                lease_token=None,
                error_class=failure.error_class,
                error_type=failure.error_type[:128],
                error_message=storable(failure.message[:_MESSAGE_LIMIT]),
                error_traceback=storable(failure.traceback),
            ):
                return False
            self._open_letter(conn, self._row(conn, row_id), failure, now)
        return True

    def supersede(self, row_id: int, token: str, reason: str) -> list[dict] | None:
        """SUPERSEDED: no longer the object's current version. Its open dead letters close as superseded."""
        with self.engine.begin() as conn:
            if not self._fenced(
                conn,
                row_id,
                token,
                status=Status.SUPERSEDED,
                processed_at=_now(),
                lease_token=None,
                error_message=reason,
            ):
                return None
            return self._close_letters(conn, self._row(conn, row_id), "superseded")

    def skip(self, row_id: int, token: str, reason: str, *, error_type: str | None = None) -> bool:
        with self.engine.begin() as conn:
            return self._fenced(
                conn,
                row_id,
                token,
                status=Status.SKIPPED,
                processed_at=_now(),
                lease_token=None,
                error_type=error_type,
                error_message=reason,
            )

    def record_try(self, row_id: int, token: str, *, error_class: str, error_type: str, message: str) -> int | None:
        """One more retryable failure of a version this lease holds; returns its tries so far (None: lease lost)."""
        with self.engine.begin() as conn:
            if not self._fenced(
                conn,
                row_id,
                token,
                tries=t.tries + 1,
                error_class=error_class,
                error_type=error_type[:128],
                error_message=storable(message[:_MESSAGE_LIMIT]),
            ):
                return None
            return conn.execute(sa.select(t.tries).where(t.id == row_id)).scalar()

    def hand_back(self, row_id: int, token: str, not_before: datetime, *, alone: bool = False) -> bool:
        """Give a version back to the ledger until ``not_before`` (a long backoff must not hold a run slot);
        ``alone``: its next run carries it and nothing else."""
        with self.engine.begin() as conn:
            return self._fenced(
                conn,
                row_id,
                token,
                status=Status.DISCOVERED,
                lease_token=None,
                lease_expires_at=None,
                requested_at=None,
                not_before=not_before,
                **({"batch_limit": 1} if alone else {}),
            )

    # Releases: runs that died, requests no run picked up, removed sources

    def held_by(self, run_id: str) -> list[dict]:
        return self._rows(sa.select(processed_files).where(t.status == Status.PROCESSING, t.run_id == run_id))

    def requested_by(self, request_key: str) -> list[dict]:
        """Versions a run request carries that no run has claimed (yet)."""
        query = sa.select(processed_files).where(
            t.status == Status.DISCOVERED, t.request_key == request_key, t.requested_at.is_not(None)
        )
        return self._rows(query)

    def expired_leases(self, now: datetime | None = None) -> list[dict]:
        query = sa.select(processed_files).where(t.status == Status.PROCESSING, t.lease_expires_at < (now or _now()))
        return self._rows(query)

    def stale_requests(self, older_than: timedelta) -> list[dict]:
        query = sa.select(processed_files).where(
            t.status == Status.DISCOVERED, t.requested_at < _now() - older_than, t.request_key.is_not(None)
        )
        return self._rows(query)

    def release(
        self,
        row: dict,
        reason: str,
        *,
        quarantine: Failure | None = None,
        skip: bool = False,
        batch_limit: int | None = None,
    ) -> bool:
        """A version whose run died or never started: back to DISCOVERED (re-requested under a new run key) with
        one loss more; or QUARANTINED with a dead letter saying why; or SKIPPED (``skip``). Only if the row is
        still as ``row`` shows it, so a run that meanwhile recorded an outcome keeps it.

        ``batch_limit``: the run died holding it with others; the loss is a shared one (not toward max_attempts)
        and its next run carries at most that many versions."""
        now = _now()
        unchanged = (
            (t.id == row["id"])
            & (t.status == row["status"])
            & (t.lease_token.is_(None) if row["lease_token"] is None else t.lease_token == row["lease_token"])
            & (t.request_count == row["request_count"])
        )
        common: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}
        if batch_limit is None:
            common["lost_count"] = t.lost_count + 1
        else:
            common |= {"shared_losses": t.shared_losses + 1, "batch_limit": batch_limit}
        if skip:
            values = {
                **common,
                "status": Status.SKIPPED,
                "processed_at": now,
                "error_type": SOURCE_REMOVED,
                "error_message": reason,
            }
        elif quarantine is not None:
            values = {
                **common,
                "status": Status.QUARANTINED,
                "processed_at": now,
                "error_class": quarantine.error_class,
                "error_type": quarantine.error_type,
                "error_message": reason[:_MESSAGE_LIMIT],
            }
        else:
            values = {
                **common,
                "status": Status.DISCOVERED,
                "requested_at": None,
                "error_type": "WorkerLost",
                "error_message": reason[:_MESSAGE_LIMIT],
            }
        with self.engine.begin() as conn:
            if not conn.execute(processed_files.update().where(unchanged).values(values)).rowcount:
                return False
            if quarantine is not None:
                self._open_letter(conn, self._row(conn, row["id"]), quarantine, now, state="quarantined")
        return True

    def skip_waiting(self, source: str, reason: str) -> list[dict]:
        """Versions of a removed source that wait for a run (DISCOVERED, or PROCESSING with an expired lease)
        become SKIPPED with ``reason``; a live lease finishes on its own."""
        now = _now()
        waiting = (t.source == source) & (
            (t.status == Status.DISCOVERED) | ((t.status == Status.PROCESSING) & (t.lease_expires_at < now))
        )
        with self.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(processed_files).where(waiting))]
            if rows:
                conn.execute(
                    processed_files.update()
                    .where(t.id.in_([r["id"] for r in rows]), waiting)
                    .values(
                        status=Status.SKIPPED,
                        processed_at=now,
                        lease_token=None,
                        error_type=SOURCE_REMOVED,
                        error_message=reason,
                    )
                )
        return rows

    def restore_skipped(self, source: str) -> int:
        """A source back in the sources file: its versions skipped for its removal wait for a run again."""
        with self.engine.begin() as conn:
            return conn.execute(
                processed_files.update()
                .where(t.source == source, t.status == Status.SKIPPED, t.error_type == SOURCE_REMOVED)
                .values(status=Status.DISCOVERED, requested_at=None, error_type=None, error_message=None)
            ).rowcount

    def sources(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(t.source).distinct()).scalars())

    # Dead letters

    def _row(self, conn: Connection, row_id: int) -> dict:
        return dict(conn.execute(sa.select(processed_files).where(t.id == row_id)).one()._mapping)

    def _open_letter(self, conn: Connection, row: dict, failure: Failure, now: datetime, state: str = OPEN) -> None:
        version = {name: row[name] for name in VERSION_FIELDS}
        values = {
            "partition_key": row["partition_key"],
            "size_bytes": row["size_bytes"],
            "content_type": failure.content_type,
            "error_class": failure.error_class,
            "error_type": failure.error_type[:128],
            "error_message": storable(failure.message[:_MESSAGE_LIMIT]),
            "error_traceback": storable(failure.traceback),
            "failed_at": now,
            "run_id": row["run_id"] or "",
            "job_name": failure.job_name[:255],
            "attempts": failure.attempts,
            "retry_count": row["retry_count"],
            "max_retries": failure.max_retries,
            "state": state,
        }
        # A quarantined letter counts too: a person's Materialize of a quarantined version that fails again
        # reopens it rather than adding a second record.
        live = d.state.in_([OPEN, Status.QUARANTINED.lower()])
        existing = conn.execute(
            sa.select(d.dlq_key, d.stored_key, d.state)
            .where(_matches(version, d), live)
            .order_by(sa.case((d.state == OPEN, 0), else_=1))
        ).first()
        if existing is None:
            key = failure.dlq_key if state == OPEN else closed_key(failure.dlq_key, state)
            conn.execute(dead_letters.insert().values(**version, **values, dlq_key=key, stored_key=None))
            return
        # One record per version: a replay that fails again, or a quarantine, updates it. The object is rewritten
        # afterwards; a copy left at the old key is removed then (stored_key keeps where it is).
        if state != OPEN:
            key = closed_key(existing.dlq_key, state)
        else:  # still open, or reopened from quarantined/ under a key of this failure
            key = existing.dlq_key if existing.state == OPEN else failure.dlq_key
        stored = None if existing.stored_key == key else existing.stored_key
        conn.execute(
            dead_letters.update()
            .where(d.dlq_key == existing.dlq_key)
            .values(**values, dlq_key=key, stored_key=stored, closed_at=None if state == OPEN else now)
        )

    def _close_letters(self, conn: Connection, row: dict, state: str) -> list[dict]:
        """Close the version's open dead letters; their objects move to the ``state`` prefix afterwards. A version
        that lands resolves its quarantined letter too (someone chose to ingest it again, and it worked)."""
        version = {name: row[name] for name in VERSION_FIELDS}
        states = [OPEN, Status.QUARANTINED.lower()] if state == "resolved" else [OPEN]
        closed = []
        for letter in conn.execute(sa.select(dead_letters).where(_matches(version, d), d.state.in_(states))):
            letter = dict(letter._mapping)
            new_key = closed_key(letter["dlq_key"], state)
            conn.execute(
                dead_letters.update()
                .where(d.dlq_key == letter["dlq_key"])
                .values(state=state, closed_at=_now(), dlq_key=new_key)
            )
            closed.append({**letter, "state": state, "dlq_key": new_key})
        return closed

    def pending_dead_letters(self, run_id: str | None = None, limit: int = 1000) -> list[dict]:
        """Dead letters whose object is not (yet) written as the row says: new, changed, or closed and not moved."""
        pending = d.stored_key.is_(None) | (d.stored_key != d.dlq_key)
        query = sa.select(dead_letters).where(pending)
        if run_id is not None:
            query = query.where(d.run_id == run_id)
        return self._rows(query.order_by(d.failed_at).limit(limit))

    def dead_letter_stored(self, dlq_key: str, stored_key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(dead_letters.update().where(d.dlq_key == dlq_key).values(stored_key=stored_key))

    def open_dead_letters(self, limit: int = 1000, source: str | None = None) -> list[dict]:
        query = sa.select(dead_letters).where(d.state == OPEN).order_by(d.failed_at)
        if source:
            query = query.where(d.source == source)
        return self._rows(query.limit(limit))

    def request_replay(self, version: DocumentVersion) -> bool:
        """A FAILED version goes back to DISCOVERED with one replay more and fresh retries, for the sensor; False
        (nothing changed) when it is not FAILED or holds a lease (a run took it meanwhile)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    processed_files.update()
                    .where(_is(version), t.status == Status.FAILED, t.lease_token.is_(None))
                    .values(
                        status=Status.DISCOVERED,
                        requested_at=None,
                        not_before=None,
                        tries=0,
                        retry_count=t.retry_count + 1,
                    )
                ).rowcount
            )

    def quarantine(self, version: DocumentVersion) -> list[dict] | None:
        """A FAILED version out of replays: QUARANTINED, its open dead letters closed as quarantined. None (nothing
        changed) when the version is no longer FAILED or a lease holds it: a run that took it (a person's
        Materialize) decides its fate, and its outcome resolves or refreshes the letter."""
        failed = _is(version) & (t.status == Status.FAILED) & t.lease_token.is_(None)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(processed_files).where(failed)).first()
            if (
                row is None
                or not conn.execute(
                    processed_files.update().where(t.id == row.id, failed).values(status=Status.QUARANTINED)
                ).rowcount
            ):
                return None
            return self._close_letters(conn, dict(row._mapping), "quarantined")

    # Partition retention

    def live_partition_count(self, sources: Sequence[str]) -> int:
        """Documents of ``sources`` whose partition of raw_documents is not retired (what Dagster holds, by the
        ledger)."""
        query = sa.select(sa.func.count(sa.distinct(t.key_hash))).where(
            t.partition_retired_at.is_(None), t.source.in_(list(sources))
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar() or 0

    def retirable_partitions(self, source: str, before: datetime | None, limit: int) -> list[RetirablePartition]:
        """Documents of ``source`` whose partition may be retired, oldest landing first: every live version landed
        (SUCCESS, SKIPPED, SUPERSEDED) and the last one before ``before`` (None: any time — the count limit).

        Reads only versions whose partition is live (an index), so its cost follows the live partitions, not the
        history: retired versions were all landed when they were retired.
        """
        landed = sa.func.sum(sa.case((t.status.in_(list(LANDED)), 0), else_=1))
        last = sa.func.max(t.processed_at)
        query = (
            sa.select(t.key_hash, sa.func.min(t.partition_key).label("partition_key"), last.label("last"))
            .where(t.source == source, t.partition_retired_at.is_(None))
            .group_by(t.key_hash)
            .having(landed == 0)
            .order_by(last, t.key_hash)
            .limit(limit)
        )
        if before is not None:
            query = query.having(last < before)
        with self.engine.connect() as conn:
            return [
                RetirablePartition(row.key_hash, row.partition_key, _as_utc(row.last)) for row in conn.execute(query)
            ]

    def retire_partitions(self, partitions: Sequence[RetirablePartition]) -> list[RetirablePartition]:
        """Mark the partitions of ``partitions`` retired, each only if every one of its versions is still landed
        (a version discovered meanwhile keeps it); the ones marked, whose Dagster partitions may go."""
        now = _now()
        marked = []
        with self.engine.begin() as conn:
            for partition in partitions:
                unlanded = sa.select(t.id).where(t.key_hash == partition.key_hash, t.status.not_in(list(LANDED)))
                if conn.execute(unlanded.limit(1)).first() is not None:
                    continue
                conn.execute(
                    processed_files.update()
                    .where(t.key_hash == partition.key_hash, t.partition_retired_at.is_(None))
                    .values(partition_retired_at=now)
                )
                marked.append(partition)
        return marked

    def partitions_in_use(self, key_hashes: Sequence[str]) -> set[str]:
        """Of ``key_hashes``, those with a version not landed (discovered since, in flight, failed, quarantined)."""
        if not key_hashes:
            return set()
        query = sa.select(t.key_hash).where(t.key_hash.in_(list(key_hashes)), t.status.not_in(list(LANDED)))
        with self.engine.connect() as conn:
            return set(conn.execute(query.distinct()).scalars())

    # Reads

    def get(self, version: DocumentVersion) -> dict | None:
        """The ledger row of ``version``, if it was discovered."""
        rows = self._rows(sa.select(processed_files).where(_is(version)))
        return rows[0] if rows else None

    def latest_version(self, source: str, bucket: str, key: str) -> dict | None:
        """The object's newest version the ledger knows. In a bucket by LastModified (the server sets it when an
        upload completes), then discovery; in a local folder (bucket "") by discovery only: an mtime is whatever
        the writer set (`cp -p`, `touch`, a skewed clock), while the ledger discovers a path's versions in turn."""
        order = (t.id.desc(),) if bucket == "" else (t.modified_at.desc().nulls_last(), t.id.desc())
        query = sa.select(processed_files).where(t.key_hash == key_hash(source, bucket, key)).order_by(*order).limit(1)
        rows = self._rows(query)
        return rows[0] if rows else None

    def rows(self, ids: Sequence[int]) -> list[dict]:
        return self._rows(sa.select(processed_files).where(t.id.in_(list(ids))).order_by(t.id))

    def failed_in_run(self, run_id: str, ids: Sequence[int]) -> list[dict]:
        query = sa.select(processed_files).where(t.id.in_(list(ids)), t.status == Status.FAILED, t.run_id == run_id)
        return self._rows(query.order_by(t.id))

    def status_counts(self) -> dict[tuple[str, str], int]:
        """{(source, status): versions}."""
        query = sa.select(t.source, t.status, sa.func.count()).group_by(t.source, t.status)
        with self.engine.connect() as conn:
            return {(source, status): count for source, status, count in conn.execute(query)}

    def conservation(self) -> dict[str, dict[str, int]]:
        """Per source: every version discovered, and how many are in each end state or in flight (see
        ``is_balanced``). A status outside the known ones counts as ``unknown``, which unbalances the source."""
        figures: dict[str, dict[str, int]] = {}
        for (source, status), count in self.status_counts().items():
            entry = figures.setdefault(source, {"discovered": 0, **dict.fromkeys([*END_FIGURES, "in_flight"], 0)})
            entry["discovered"] += count
            bucket = "in_flight" if status in IN_FLIGHT else status.lower() if status in TERMINAL else "unknown"
            entry[bucket] = entry.get(bucket, 0) + count
        return figures

    def last_discovered(self) -> dict[str, datetime]:
        """{source: when its newest version was discovered}."""
        query = sa.select(t.source, sa.func.max(t.discovered_at)).group_by(t.source)
        column = processed_files.c.discovered_at.type
        with self.engine.connect() as conn:
            return {
                source: column.process_result_value(at, self.engine.dialect)
                if isinstance(at, datetime)
                else _parse_time(at)
                for source, at in conn.execute(query)
            }

    def retrying(self, error_class: str) -> list[dict]:
        """Versions still in flight whose last try failed with ``error_class`` (e.g. waiting out a backoff)."""
        query = sa.select(processed_files).where(
            t.status.in_([Status.DISCOVERED, Status.PROCESSING]), t.error_class == error_class, t.tries > 0
        )
        return self._rows(query.order_by(t.id).limit(1000))

    def oldest_in_flight(self) -> dict | None:
        """The version waiting longest for a fate (DISCOVERED or PROCESSING), by discovery time; None if none."""
        query = (
            sa.select(processed_files)
            .where(t.status.in_([Status.DISCOVERED, Status.PROCESSING]))
            .order_by(t.discovered_at, t.id)
            .limit(1)
        )
        rows = self._rows(query)
        return rows[0] if rows else None

    def versions_changed_since(self, since: datetime) -> list[dict]:
        """Versions inserted or updated at or after ``since`` (``updated_at``), for an incremental snapshot."""
        return self._rows(sa.select(processed_files).where(t.updated_at >= since).order_by(t.id))

    def schema_versions_after(self, after_id: int) -> list[dict]:
        """Schema history rows recorded after row ``after_id`` (rows are only ever inserted)."""
        s = schema_versions.c
        return self._rows(sa.select(schema_versions).where(s.id > after_id).order_by(s.id))

    def duplicate_versions(self) -> int:
        """Versions recorded more than once (by key hash and ETag): 0 unless the ledger lost its uniqueness."""
        counted = sa.select(t.key_hash, t.etag).group_by(t.key_hash, t.etag).having(sa.func.count() > 1).subquery()
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(counted)).scalar() or 0

    def failed_without_open_letter(self, limit: int = 50) -> tuple[int, list[str]]:
        """FAILED versions with no open dead letter: how many, and the partition keys of the first ``limit``."""
        letter = sa.select(d.dlq_key).where(d.key_hash == t.key_hash, d.etag == t.etag, d.state == OPEN).exists()
        missing = sa.and_(t.status == Status.FAILED, ~letter)
        with self.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).where(missing)).scalar() or 0
            keys = conn.execute(sa.select(t.partition_key).where(missing).order_by(t.id).limit(limit)).scalars()
            return count, list(keys)

    def versions(self, source: str | None = None) -> list[dict]:
        query = sa.select(processed_files).order_by(t.id)
        return self._rows(query.where(t.source == source) if source else query)

    def dead_letter_rows(self) -> list[dict]:
        return self._rows(sa.select(dead_letters).order_by(d.failed_at, d.dlq_key))
