"""Which listed objects are new or changed versions: the pure core of the discovery sensor."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ingestion_project.config import Settings
from ingestion_project.lib.errors import DocumentError
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import Ledger
from ingestion_project.lib.object_store import ObjectInfo, ObjectStore
from ingestion_project.lib.versions import DocumentVersion

# One ledger query per listing page keeps memory flat however large the bucket is.
PAGE_SIZE = 1000


@dataclass
class Discovery:
    new: list[DocumentVersion] = field(default_factory=list)
    listed: dict[str, int] = field(default_factory=dict)
    known: int = 0
    superseded: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        listed = sum(self.listed.values())
        superseded = f", {self.superseded} older version(s) superseded" if self.superseded else ""
        return (
            f"listed {listed} matching object(s) in {len(self.listed)} source(s): "
            f"{len(self.new)} new or changed, {self.known} already known{superseded}"
        )


def _chunks(items: Iterator[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def discover(settings: Settings, store_for: Callable[[str], ObjectStore], ledger: Ledger) -> Discovery:
    """List every source and record the versions the ledger has not seen as DISCOVERED (older waiting or failed
    versions of the same objects become SUPERSEDED). A source whose listing fails is reported in ``errors`` and
    does not stop the others."""
    found = Discovery()
    for source in settings.sources:
        store = store_for(source.name)
        seen: set[tuple[str, str]] = set()  # the same version listed twice in one pass is recorded once
        listed = 0
        try:
            matching = (o for o in store.list_objects(source.prefix) if source.matches(o.key))
            for page in _chunks(matching, PAGE_SIZE):
                listed += len(page)
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
        except DocumentError as e:
            found.errors[source.name] = str(e)
        found.listed[source.name] = listed
    return found
