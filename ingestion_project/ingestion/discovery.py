"""Which listed objects are new or changed versions: the pure core of the discovery sensor.

Each source is listed as its ``listing`` mode says (see :class:`ingestion_project.config.ListingConfig`), under a
time budget per tick. Where a source's listing stands is kept in a small :class:`ListingState` per source (keys
to resume after, never lists of keys), which the sensor carries in its cursor.

A listed key that cannot become a partition as it is (see :func:`refusal`) is its own recorded refusal: a FAILED
ledger row with an open dead letter (``validation``, ``KeyRefused``), recorded once, and never a partition; the
listing goes on with every other key.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from ingestion_project.config import LocalSourceConfig, S3SourceConfig, Settings
from ingestion_project.core.dead_letters import record_key
from ingestion_project.lib.errors import DocumentError
from ingestion_project.lib.keys import DocumentRef, escape_key, key_bytes
from ingestion_project.lib.ledger import Failure, Ledger
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.versions import DocumentVersion

# One ledger query per listing page keeps memory flat however large the bucket is.
PAGE_SIZE = 1000
# S3's limit on a key, which local paths (up to 4,096 bytes on Linux) are held to as well.
MAX_KEY_BYTES = 1024
# Dagster keeps dynamic partition keys, and asset events by partition, in btree indexes; on PostgreSQL an index row
# holds at most 2,704 bytes, so one longer partition key would fail add_dynamic_partitions for every key of a tick.
MAX_PARTITION_KEY_BYTES = 2048
REFUSED = "KeyRefused"
_SHOWN_BYTES = 200


def refusal(ref: DocumentRef) -> str | None:
    """Why the object ``ref`` cannot become a partition as it is (None: it can)."""
    size = len(key_bytes(ref.key))
    if size > MAX_KEY_BYTES:
        return f"its key is {size:,} bytes, longer than the {MAX_KEY_BYTES:,} bytes S3 allows a key"
    partition = len(ref.partition_key.encode())
    if partition > MAX_PARTITION_KEY_BYTES:
        return (
            f"its partition key would be {partition:,} bytes, longer than the {MAX_PARTITION_KEY_BYTES:,} bytes "
            "Dagster's partition storage can index on PostgreSQL"
        )
    return None


def refusal_message(ref: DocumentRef, reason: str) -> str:
    """The dead letter's message: the key escaped (valid, readable text) and cut short, and why it was refused."""
    escaped = escape_key(ref.key)
    shown = escaped if len(escaped) <= _SHOWN_BYTES else f"{escaped[:_SHOWN_BYTES]}… ({len(escaped):,} characters)"
    return f"key refused, not ingested: {reason}. The key, escaped: {shown}. Rename the object to ingest it."


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
    refused: list[DocumentVersion] = field(default_factory=list)  # recorded as refusals on this tick
    errors: dict[str, str] = field(default_factory=dict)
    listing: dict[str, ListingState] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)  # sources whose full listing goes on next tick

    def summary(self) -> str:
        listed = sum(self.listed.values())
        superseded = f", {self.superseded} older version(s) superseded" if self.superseded else ""
        unfinished = f"; listing of {', '.join(self.unfinished)} resumes next tick" if self.unfinished else ""
        refused = f", {len(self.refused)} key(s) refused (dead-lettered)" if self.refused else ""
        return (
            f"listed {listed} matching object(s) in {len(self.listed)} source(s): "
            f"{len(self.new)} new or changed, {self.known} already known{refused}{superseded}{unfinished}"
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
    dead_letter_prefix: Callable[[str], str] = lambda source: "",
) -> Discovery:
    """List every source and record the versions the ledger has not seen as DISCOVERED (older waiting or failed
    versions of the same objects become SUPERSEDED), or as refusals (dead letters under ``dead_letter_prefix`` of
    the source). Listing stops at the tick's time budget (shared by the sources still to list) and resumes next
    tick from ``states``. A source whose listing fails is reported in ``errors`` and does not stop the others."""
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
                _record(source, store, ledger, matching, seen, found, dead_letter_prefix)
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
    dead_letter_prefix: Callable[[str], str],
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
            listed = DocumentVersion(ref, info.etag, info.version_id, info.size, info.last_modified)
            reason = refusal(ref)
            if reason is None:
                fresh.append(listed)
            elif ledger.record_refused(listed, _refused(source, listed, reason, dead_letter_prefix)):
                found.refused.append(listed)
    # A version a concurrent tick recorded first is that tick's to request: only what this one inserted is new.
    recorded = ledger.insert_discovered(fresh)
    found.superseded += len(recorded.superseded)
    found.known += len(fresh) - len(recorded.inserted)
    found.new.extend(recorded.inserted)


def _refused(
    source: S3SourceConfig | LocalSourceConfig, version: DocumentVersion, reason: str, prefix: Callable[[str], str]
) -> Failure:
    ref = version.ref
    return Failure(
        error_class="validation",
        error_type=REFUSED,
        message=refusal_message(ref, reason),
        traceback=None,
        dlq_key=record_key(prefix(source.name), datetime.now(UTC), ref.source, ref.bucket, ref.key, version.etag),
        max_retries=0,  # the same key is refused again: a replay could only fail; renaming the object is the fix
        job_name="document_discovery_sensor",
    )
