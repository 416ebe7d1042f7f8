"""How the discovery sensor hands work to runs: batches of pinned versions, one run request each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from ingestion_project.config import BatchSize, Settings
from ingestion_project.core.tags import BATCH_TAG, DOCUMENTS_TAG, SOURCE_TAG
from ingestion_project.lib.ledger import Ledger
from ingestion_project.lib.versions import DocumentVersion


@dataclass(frozen=True)
class Batch:
    """Versions of one source that one run processes, and the key that names this request of them."""

    source: str
    rows: tuple[dict, ...]
    request_key: str

    @staticmethod
    def new_key(source: str, rows: tuple[dict, ...]) -> str:
        """A key no request had before: the daemon drops a run key it has seen, so a re-request of the same
        versions needs a new one, and two overlapping evaluations must not share one."""
        return f"{source}:{rows[0]['id']}-{rows[-1]['id']}:{len(rows)}:{uuid.uuid4().hex[:12]}"

    @property
    def versions(self) -> list[DocumentVersion]:
        return [DocumentVersion.from_row(row) for row in self.rows]

    def run_request(self) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.request_key,
            run_config={"ops": {"raw_documents": {"config": {"versions": [v.as_config() for v in self.versions]}}}},
            tags={BATCH_TAG: self.request_key, SOURCE_TAG: self.source, DOCUMENTS_TAG: str(len(self.rows))},
        )


def chunk_rows(rows: list[dict], size: BatchSize) -> Iterator[tuple[dict, ...]]:
    """Consecutive groups of at most ``size.documents`` versions and ``size.max_bytes`` listed bytes (a single
    version larger than that is a batch of its own). A version released from a run that died (``batch_limit``,
    see core/reconcile.py) goes in a group of at most that many versions."""
    batch: list[dict] = []
    total = 0
    cap = size.documents
    for row in rows:
        row_bytes = row.get("size_bytes") or 0
        row_cap = min(size.documents, row.get("batch_limit") or size.documents)
        if batch and (len(batch) >= min(cap, row_cap) or total + row_bytes > size.max_bytes):
            yield tuple(batch)
            batch, total, cap = [], 0, size.documents
        batch.append(row)
        total += row_bytes
        cap = min(cap, row_cap)
    if batch:
        yield tuple(batch)


def plan_batches(settings: Settings, book: Ledger, now: datetime | None = None) -> list[Batch]:
    """The batches to request now: due versions of each source in discovery order, at most
    ``max_runs_per_tick`` runs in all. Each batch's versions are marked requested under its key."""
    batches: list[Batch] = []
    for source in settings.sources:
        room = settings.max_runs_per_tick - len(batches)
        if room <= 0:
            break
        rows = book.due(source.name, now, limit=room * source.batch_size.documents)
        for chunk in chunk_rows(rows, source.batch_size):
            if len(batches) >= settings.max_runs_per_tick:
                break
            key = Batch.new_key(source.name, chunk)
            if book.mark_requested([row["id"] for row in chunk], key) < len(chunk):
                # Another evaluation (a tick the daemon timed out and ran again) requested some of these: the
                # batch is what this one actually marked, under its key.
                chunk = tuple(book.requested_by(key))
                if not chunk:
                    continue
            batches.append(Batch(source.name, chunk, key))
    return batches
