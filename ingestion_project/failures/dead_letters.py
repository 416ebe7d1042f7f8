"""Dead-letter records: one JSON object per failed document version, organised by date.

Open records live at ``<prefix>/ingestion/YYYY/MM/DD/<name>.json``; when a replay succeeds the record moves to
``<prefix>/resolved/ingestion/...``, and when replays run out to ``<prefix>/quarantined/ingestion/...``. Records
are kept, never deleted; the source object is never touched.
"""

import json
from datetime import datetime

from ingestion_project.lib.bronze import doc_id, safe_etag
from ingestion_project.lib.ledger import Ledger
from ingestion_project.lib.object_store import ObjectStore

OPEN = "open"
RESOLVED = "resolved"
QUARANTINED = "quarantined"


def record_key(prefix: str, failed_at: datetime, source: str, bucket: str, key: str, etag: str) -> str:
    name = f"{source}__{doc_id(bucket, key)}__{safe_etag(etag)}.json"
    return "/".join(part for part in (prefix.strip("/"), "ingestion", f"{failed_at:%Y/%m/%d}", name) if part)


def closed_key(key: str, prefix: str, state: str) -> str:
    """Where an open record goes when it is resolved or quarantined."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{state}/{key[len(head) :]}"


def build_record(
    document: dict, *, failed_at: datetime, run_id: str, job_name: str, retry_count: int, max_retries: int
):
    """The record of one failure: the original object, the error with traceback, and where it stands on retries."""
    return {
        "object": {
            name: document.get(name)
            for name in ("source", "bucket", "key", "etag", "size", "content_type", "partition_key")
        },
        "error": {name: document.get(f"error_{name}") for name in ("class", "type", "message", "traceback")},
        "failed_at": failed_at.isoformat(),
        "run_id": run_id,
        "job_name": job_name,
        "attempts": document.get("attempts"),
        "retry_count": retry_count,
        "max_retries": max_retries,
    }


def write_record(store: ObjectStore, key: str, record: dict) -> str:
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
    return store.write_atomic(key, body, "application/json")


def close_records(store: ObjectStore, prefix: str, book: Ledger, version: dict, state: str) -> list[str]:
    """Move the version's open records to the ``state`` prefix (resolved, quarantined) and note it in the ledger."""
    moved = {key: closed_key(key, prefix, state) for key in book.open_dead_letter_keys(version)}
    for key, new_key in moved.items():
        store.move(key, new_key)
    book.close_dead_letters(version, state, moved)
    return [store.uri(key) for key in moved.values()]


def resolve_dead_letters(store: ObjectStore, prefix: str, book: Ledger, version: dict) -> list[str]:
    """After a successful (re)ingestion: its open records, if any, move to ``resolved/``."""
    return close_records(store, prefix, book, version, RESOLVED)
