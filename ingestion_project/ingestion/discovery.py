"""Which listed objects are new or changed versions: the pure core of the discovery sensor.

Each source is listed as its ``listing`` mode says (see :class:`ingestion_project.config.ListingConfig`), under a
time budget per tick. Where a source's listing stands is kept in a small :class:`ListingState` per source (keys
to resume after, never lists of keys), which the sensor carries in its cursor.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from ingestion_project.config import LocalSourceConfig, S3SourceConfig, Settings
from ingestion_project.lib.errors import DocumentError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.versions import DocumentVersion

# One ledger query per listing page keeps memory flat however large the bucket is.
PAGE_SIZE = 1000


@dataclass(frozen=True)
class ListingState:
    """Where one source's listing stands.

    ``watermark``: the greatest key seen (incremental listings start after it). ``resume``: the last key of a full
    listing cut short by the time budget (the next tick goes on after it); None when no full listing is under
    way. ``full_at``: when the last full listing finished (ISO time), which decides when the next one is due.
    """

    watermark: str | None = None
    resume: str | None = None
    full_at: str | None = None
    in_full: bool = False

    @classmethod
    def of(cls, raw: object) -> ListingState:
        if not isinstance(raw, dict):
            return cls()
        return cls(**{k: raw.get(k) for k in ("watermark", "resume", "full_at")}, in_full=bool(raw.get("in_full")))

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v}

    def full_due(self, every_seconds: float, now: datetime) -> bool:
        if self.full_at is None:
            return True
        return (now - datetime.fromisoformat(self.full_at)).total_seconds() >= every_seconds


@dataclass
class Discovery:
    new: list[DocumentVersion] = field(default_factory=list)
    listed: dict[str, int] = field(default_factory=dict)
    known: int = 0
    superseded: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    listing: dict[str, ListingState] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)  # sources whose full listing goes on next tick

    def summary(self) -> str:
        listed = sum(self.listed.values())
        superseded = f", {self.superseded} older version(s) superseded" if self.superseded else ""
        unfinished = f"; listing of {', '.join(self.unfinished)} resumes next tick" if self.unfinished else ""
        return (
            f"listed {listed} matching object(s) in {len(self.listed)} source(s): "
            f"{len(self.new)} new or changed, {self.known} already known{superseded}{unfinished}"
        )


def _chunks(items: Iterator[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def plan_listing(
    source: S3SourceConfig | LocalSourceConfig, state: ListingState, now: datetime
) -> tuple[str | None, bool]:
    """Where this tick's listing of ``source`` starts (a key to list after, or None) and whether it is (part of) a
    full listing."""
    listing = source.listing
    if state.in_full or listing.mode == "full" or state.full_due(listing.full_every_seconds, now):
        return (state.resume if state.in_full else None), True
    return state.watermark, False


def discover(
    settings: Settings,
    store_for: Callable[[str], ObjectStore],
    ledger: Ledger,
    states: dict[str, ListingState] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Discovery:
    """List every source and record the versions the ledger has not seen as DISCOVERED (older waiting or failed
    versions of the same objects become SUPERSEDED). Listing stops at the tick's time budget (shared by the
    sources still to list) and resumes next tick from ``states``. A source whose listing fails is reported in
    ``errors`` and does not stop the others."""
    states = states or {}
    found = Discovery()
    deadline = clock() + settings.listing_budget_seconds
    now = datetime.now(UTC)
    for position, source in enumerate(settings.sources):
        state = states.get(source.name, ListingState())
        start_after, full = plan_listing(source, state, now)
        # The time left is shared by the sources still to list, so one huge prefix cannot starve the others.
        share = clock() + (deadline - clock()) / (len(settings.sources) - position)
        store = store_for(source.name)
        seen: set[tuple[str, str]] = set()  # the same version listed twice in one pass is recorded once
        listed, last, complete = 0, start_after, True
        try:
            pages = _chunks(store.list_objects(source.prefix, start_after=start_after), PAGE_SIZE)
            for number, page in enumerate(pages):
                if number and clock() > share:
                    complete = False  # this page is listed again next tick, after the last key recorded
                    break
                matching = [o for o in page if source.matches(o.key)]
                listed += len(matching)
                _record(source, store, ledger, matching, seen, found)
                last = page[-1].key
        except DocumentError as e:
            found.errors[source.name] = str(e)
            found.listed[source.name] = listed
            found.listing[source.name] = state
            continue
        found.listed[source.name] = listed
        watermark = max(filter(None, (state.watermark, last)), default=None)
        if not full:
            found.listing[source.name] = replace(state, watermark=watermark)
        elif complete:
            found.listing[source.name] = ListingState(watermark=watermark, full_at=now.isoformat(timespec="seconds"))
        else:
            found.unfinished.append(source.name)
            found.listing[source.name] = replace(state, watermark=watermark, resume=last, in_full=True)
    return found


def _record(
    source: S3SourceConfig | LocalSourceConfig,
    store: ObjectStore,
    ledger: Ledger,
    page: list[ObjectInfo],
    seen: set[tuple[str, str]],
    found: Discovery,
) -> None:
    known = ledger.known_versions(source.name, store.bucket, [o.key for o in page])
    fresh = []
    for info in page:
        version = (info.key, info.etag)
        if version in known:
            found.known += 1
        elif version not in seen:
            seen.add(version)
            ref = DocumentRef(source.name, store.bucket, info.key)
            fresh.append(DocumentVersion(ref, info.etag, info.version_id, info.size, info.last_modified))
    found.superseded += len(ledger.record_discovered(fresh))
    found.new.extend(fresh)
