"""Dead-letter records: one JSON object per failed document version, organised by date.

Open records live at ``<prefix>/ingestion/YYYY/MM/DD/<name>.json``; when a replay succeeds the record moves to
``<prefix>/resolved/ingestion/...``, when replays (or a dying worker's attempts) run out to
``<prefix>/quarantined/ingestion/...``, and when a newer version replaces the object to
``<prefix>/superseded/ingestion/...``. Records are never dropped; the source object is never touched.

The ledger row of a record is written first (with the FAILED outcome, in one transaction) and the object after:
``write_pending`` writes or moves every object that is not yet where its row says. The failure hook calls it for
its run, and the discovery sensor for everything left over (a PUT that failed, a run that died).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from ingestion_project.lib.bronze import doc_id, safe_etag
from ingestion_project.lib.ledger import Ledger
from ingestion_project.lib.object_store import ObjectStore

OPEN = "open"
RESOLVED = "resolved"
QUARANTINED = "quarantined"
SUPERSEDED = "superseded"

StoreFor = Callable[[str], tuple[ObjectStore, str]]


def record_key(prefix: str, failed_at: datetime, source: str, bucket: str, key: str, etag: str) -> str:
    name = f"{source}__{doc_id(bucket, key)}__{safe_etag(etag)}.json"
    return "/".join(part for part in (prefix.strip("/"), "ingestion", f"{failed_at:%Y/%m/%d}", name) if part)


def build_record(letter: dict) -> dict:
    """The JSON record of a dead-letter row: the original object, the error with traceback, where it stands."""
    return {
        "object": {
            "source": letter["source"],
            "bucket": letter["bucket"],
            "key": letter["object_key"],
            "etag": letter["etag"],
            "size": letter.get("size_bytes"),
            "content_type": letter.get("content_type"),
            "partition_key": letter["partition_key"],
        },
        "error": {
            "class": letter["error_class"],
            "type": letter["error_type"],
            "message": letter["error_message"],
            "traceback": letter.get("error_traceback"),
        },
        "failed_at": letter["failed_at"].isoformat(),
        "run_id": letter["run_id"],
        "job_name": letter.get("job_name"),
        "attempts": letter.get("attempts"),
        "retry_count": letter["retry_count"],
        "max_retries": letter["max_retries"],
        "state": letter["state"],
    }


def write_pending(book: Ledger, store_for: StoreFor, *, run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Write every dead-letter object not yet where its row says (of ``run_id``, or all); remove a copy left at
    an earlier key. Returns (written URIs, problems); a failing store leaves its rows pending for the next pass."""
    written, problems = [], []
    for letter in book.pending_dead_letters(run_id):
        try:
            store, _prefix = store_for(letter["source"])
        except KeyError as e:
            problems.append(f"{letter['dlq_key']}: {e}")
            continue
        body = json.dumps(build_record(letter), ensure_ascii=False, indent=2).encode("utf-8")
        try:
            uri = store.write_atomic(letter["dlq_key"], body, "application/json")
            if letter["stored_key"] and letter["stored_key"] != letter["dlq_key"]:
                store.delete(letter["stored_key"])
        except Exception as e:  # noqa: BLE001 - any store failure leaves the row pending for the next pass
            problems.append(f"{letter['dlq_key']}: {type(e).__name__}: {e}")
            continue
        book.dead_letter_stored(letter["dlq_key"], letter["dlq_key"])
        written.append(uri)
    return written, problems
