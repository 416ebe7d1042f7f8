"""Reads and writes of the ledger: discovery, atomic claims, outcomes, requeues and dead letters."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ingestion_project.lib.ledger.schema import Status, dead_letters, processed_files

t = processed_files.c
VERSION_FIELDS = ("source", "bucket", "object_key", "etag")


def _now() -> datetime:
    return datetime.now(UTC)


def _matches(version: dict):
    return sa.and_(*(processed_files.c[name] == version[name] for name in VERSION_FIELDS))


def run_key_for(row: dict) -> str:
    """Key + ETag, plus the retry count once a version is requested again (requeue, replay)."""
    suffix = f"#{row['retry_count']}" if row.get("retry_count") else ""
    return f"{row['partition_key']}@{row['etag']}{suffix}"


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim a version: ``claimed``, or who holds it and in what state."""

    claimed: bool
    status: str | None = None
    run_id: str | None = None


class Ledger:
    """The processed-files ledger on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _rows(self, query) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def known_versions(self, source: str, bucket: str, keys: Sequence[str]) -> set[tuple[str, str]]:
        """The (key, etag) pairs among ``keys`` that the ledger already holds, in one query."""
        if not keys:
            return set()
        query = sa.select(t.object_key, t.etag).where(
            t.source == source, t.bucket == bucket, t.object_key.in_(list(set(keys)))
        )
        with self.engine.connect() as conn:
            return {(row.object_key, row.etag) for row in conn.execute(query)}

    def record_discovered(self, rows: Iterable[dict]) -> int:
        """Insert DISCOVERED rows (source, bucket, object_key, etag, partition_key, size_bytes, modified_at)."""
        now = _now()
        rows = [{**row, "status": Status.DISCOVERED, "discovered_at": now, "requested_at": now} for row in rows]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(processed_files.insert(), rows)
        return len(rows)

    def claim(self, version: dict, run_id: str, *, stale_after: timedelta, force: bool = False) -> Claim:
        """Atomically make ``run_id`` the one worker processing ``version``.

        A single conditional UPDATE decides: on PostgreSQL a concurrent claimer blocks on the row lock and then
        re-checks the condition against the committed row; SQLite serialises writers. Claimable are versions
        discovered or failed, PROCESSING ones whose worker went silent for ``stale_after`` (or that this run
        holds already, when a step retries), and with ``force`` finished ones too.
        """
        now = _now()
        claimable = t.status.in_([Status.DISCOVERED, Status.FAILED]) | (
            (t.status == Status.PROCESSING) & ((t.run_id == run_id) | (t.processing_started_at < now - stale_after))
        )
        if force:
            claimable |= t.status.in_([Status.SUCCESS, Status.SKIPPED, Status.QUARANTINED])
        values = {"status": Status.PROCESSING, "run_id": run_id, "processing_started_at": now}
        for _ in range(2):
            with self.engine.begin() as conn:
                if conn.execute(processed_files.update().where(_matches(version), claimable).values(values)).rowcount:
                    return Claim(True)
                holder = conn.execute(sa.select(t.status, t.run_id).where(_matches(version))).first()
                if holder is not None:
                    return Claim(False, holder.status, holder.run_id)
            try:  # never discovered (launched by hand, or the object changed since listing): claim by inserting
                with self.engine.begin() as conn:
                    conn.execute(processed_files.insert().values(**version, discovered_at=now, **values))
                return Claim(True)
            except sa.exc.IntegrityError:
                continue  # another worker inserted it first: look again
        return Claim(False)

    def _finish(self, version: dict, run_id: str, **values) -> None:
        # Only the claim holder records an outcome, so a requeued zombie cannot overwrite its successor's.
        with self.engine.begin() as conn:
            conn.execute(
                processed_files.update()
                .where(_matches(version), t.run_id == run_id)
                .values(processed_at=_now(), **values)
            )

    def mark_success(self, version: dict, run_id: str, *, sha256: str, records: int, bytes_read: int, duration_ms: int):
        self._finish(
            version,
            run_id,
            status=Status.SUCCESS,
            sha256=sha256,
            records_ingested=records,
            bytes_read=bytes_read,
            duration_ms=duration_ms,
            error_class=None,
            error_type=None,
            error_message=None,
        )

    def mark_failed(
        self, version: dict, run_id: str, *, error: BaseException, error_class: str, duration_ms: int
    ) -> None:
        self._finish(
            version,
            run_id,
            status=Status.FAILED,
            error_class=error_class,
            error_type=type(error).__name__,
            error_message=str(error)[:4000],
            duration_ms=duration_ms,
        )

    def fail_in_flight(self, version: dict, run_id: str, *, error_class: str, error_type: str, message: str) -> None:
        """A version a run could not even start on (e.g. its step died) → FAILED, if no other run holds it.

        Only DISCOVERED rows, or PROCESSING rows this very run holds: a live claim of another run stays its own.
        """
        held_here = (t.status == Status.PROCESSING) & (t.run_id == run_id)
        with self.engine.begin() as conn:
            conn.execute(
                processed_files.update()
                .where(_matches(version), (t.status == Status.DISCOVERED) | held_here)
                .values(
                    status=Status.FAILED,
                    run_id=run_id,
                    processed_at=_now(),
                    error_class=error_class,
                    error_type=error_type,
                    error_message=message[:4000],
                )
            )

    def requeue_stale(self, stale_after: timedelta) -> list[dict]:
        """PROCESSING rows whose worker went silent for ``stale_after`` go back to DISCOVERED, one retry more."""
        cutoff = _now() - stale_after
        stale = (t.status == Status.PROCESSING) & (t.processing_started_at < cutoff)
        with self.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(processed_files).where(stale))]
            for row in rows:
                conn.execute(
                    processed_files.update()
                    .where(t.id == row["id"], stale)
                    .values(
                        status=Status.DISCOVERED,
                        requested_at=None,
                        retry_count=t.retry_count + 1,
                        error_type="WorkerLost",
                        error_message=f"run {row['run_id']} stopped while processing",
                    )
                )
        return rows

    def take_pending_requests(self, stale_after: timedelta, limit: int = 1000) -> list[dict]:
        """DISCOVERED rows never requested (requeued, replayed) or requested long ago without a run picking them
        up; marks them requested now and returns them with their current retry_count."""
        now = _now()
        pending = (t.status == Status.DISCOVERED) & (t.requested_at.is_(None) | (t.requested_at < now - stale_after))
        with self.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(processed_files).where(pending).limit(limit))]
            if rows:
                conn.execute(
                    processed_files.update().where(t.id.in_([r["id"] for r in rows]), pending).values(requested_at=now)
                )
        return rows

    def upsert_dead_letter(self, record: dict) -> None:
        """Insert or refresh the open dead letter ``record['dlq_key']`` (one open record per version)."""
        with self.engine.begin() as conn:
            d = dead_letters.c
            values = {k: v for k, v in record.items() if k != "dlq_key"}
            if not conn.execute(dead_letters.update().where(d.dlq_key == record["dlq_key"]).values(values)).rowcount:
                conn.execute(dead_letters.insert().values(**record, state="open"))

    def open_dead_letters(self, limit: int = 1000, source: str | None = None) -> list[dict]:
        query = sa.select(dead_letters).where(dead_letters.c.state == "open").order_by(dead_letters.c.failed_at)
        if source:
            query = query.where(dead_letters.c.source == source)
        return self._rows(query.limit(limit))

    def close_dead_letters(self, version: dict, state: str, moved: dict[str, str] | None = None) -> list[str]:
        """Mark the version's open dead letters ``resolved`` or ``quarantined``; ``moved`` maps old → new keys."""
        d = dead_letters.c
        match = sa.and_(*(d[name] == version[name] for name in VERSION_FIELDS), d.state == "open")
        with self.engine.begin() as conn:
            keys = [row.dlq_key for row in conn.execute(sa.select(d.dlq_key).where(match))]
            for key in keys:
                new_key = (moved or {}).get(key, key)
                conn.execute(
                    dead_letters.update().where(d.dlq_key == key).values(state=state, closed_at=_now(), dlq_key=new_key)
                )
        return keys

    def open_dead_letter_keys(self, version: dict) -> list[str]:
        d = dead_letters.c
        match = sa.and_(*(d[name] == version[name] for name in VERSION_FIELDS), d.state == "open")
        return [row["dlq_key"] for row in self._rows(sa.select(d.dlq_key).where(match))]

    def request_replay(self, version: dict) -> bool:
        """A FAILED version goes back to DISCOVERED with one retry more, for the sensor to request again."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    processed_files.update()
                    .where(_matches(version), t.status == Status.FAILED)
                    .values(status=Status.DISCOVERED, requested_at=None, retry_count=t.retry_count + 1)
                ).rowcount
            )

    def quarantine(self, version: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(processed_files.update().where(_matches(version)).values(status=Status.QUARANTINED))

    def latest_version(self, source: str, bucket: str, key: str) -> dict | None:
        """The most recently recorded version of an object, if any."""
        query = sa.select(processed_files).where(t.source == source, t.bucket == bucket, t.object_key == key)
        rows = self._rows(query.order_by(t.id.desc()).limit(1))
        return rows[0] if rows else None

    def get(self, version: dict) -> dict | None:
        rows = self._rows(sa.select(processed_files).where(_matches(version)))
        return rows[0] if rows else None

    def status_counts(self) -> dict[tuple[str, str], int]:
        """{(source, status): versions}."""
        query = sa.select(t.source, t.status, sa.func.count()).group_by(t.source, t.status)
        with self.engine.connect() as conn:
            return {(source, status): count for source, status, count in conn.execute(query)}

    def versions(self, source: str | None = None) -> list[dict]:
        query = sa.select(processed_files).order_by(t.id)
        return self._rows(query.where(t.source == source) if source else query)

    def dead_letter_rows(self) -> list[dict]:
        return self._rows(sa.select(dead_letters).order_by(dead_letters.c.failed_at))
