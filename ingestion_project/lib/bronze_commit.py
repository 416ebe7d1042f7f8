"""Committing a version's bronze: one attempt's data file and manifest land under its own names, and the ledger's
fenced SUCCESS decides whether they are the version's (see docs/architecture.md, "Bronze layout").

Documents and database extractions both commit through ``BronzeRoot.commit``; the integrity check reads committed
files back through ``BronzeRoot.problem``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import pyarrow as pa

from ingestion_project.lib.bronze import PARQUET_CONTENT_TYPE, BronzeVersion, to_parquet_bytes
from ingestion_project.lib.errors import ExternalError, ValidationError
from ingestion_project.lib.object_store import ObjectStore


@dataclass(frozen=True)
class BronzeObjects:
    """The two files one attempt wrote for a version, as the ledger's SUCCESS records them: keys relative to the
    bronze root, sizes and sha256 — what the integrity check compares bronze with later."""

    manifest_key: str
    manifest_bytes: int
    manifest_sha256: str
    data_key: str
    data_bytes: int
    data_sha256: str

    def as_row(self) -> dict[str, object]:
        """The ledger columns (``bronze_*``) of a committed version."""
        return {f"bronze_{name}": getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_row(cls, row: dict) -> BronzeObjects | None:
        if not row.get("bronze_manifest_key"):
            return None  # committed before attempts were recorded, or not committed
        return cls(**{name: row[f"bronze_{name}"] for name in cls.__dataclass_fields__})


T = TypeVar("T")


class BronzeRoot:
    """One bronze root (a store and a key prefix in it) and the one way a version's files land in it.

    ``commit`` writes the data file, then the manifest, under the attempt's own names, and then lets the caller
    record them (the ledger's fenced SUCCESS). The record decides: if it refuses — the lease was lost — the
    attempt's files are deleted again, so they neither overwrite nor outlive the winner's.
    """

    def __init__(self, store: ObjectStore, prefix: str = ""):
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return self.store.uri(self.key(key))

    def commit(
        self,
        version: BronzeVersion,
        data_file: str,
        manifest: pa.Table,
        record: Callable[[BronzeObjects], T | None],
        still_held: Callable[[], bool] = lambda: True,
        replaces: BronzeObjects | None = None,
    ) -> T | None:
        """Land one attempt's ``data_file`` and ``manifest`` and ``record`` them; None when the attempt lost.

        ``still_held`` is asked before the manifest goes up (a run that already knows it lost writes no manifest);
        ``record`` is the commit: what it returns is returned, and when it returns None the files are removed.
        ``replaces``: the files an earlier commit of the version recorded (a forced re-ingest, a lost file landed
        again), removed once this commit is recorded.
        """
        if version.attempt is None:
            raise ValueError("a bronze commit needs the attempt (lease token) that writes it")
        data_sha256, data_bytes = file_sha256(data_file)
        body = to_parquet_bytes(manifest)
        objects = BronzeObjects(
            manifest_key=version.manifest_key,
            manifest_bytes=len(body),
            manifest_sha256=hashlib.sha256(body).hexdigest(),
            data_key=version.data_key,
            data_bytes=data_bytes,
            data_sha256=data_sha256,
        )
        try:
            self.store.write_file(self.key(version.data_key), data_file, PARQUET_CONTENT_TYPE)
            if not still_held():
                self.discard(objects)
                return None
            self.store.write_atomic(self.key(version.manifest_key), body, PARQUET_CONTENT_TYPE)
        except BaseException:
            # A PUT that failed may still have landed (a reset after the server stored it): take both back, so
            # the next attempt's files are the only ones. Best effort — a store that is down leaves them to the
            # sweep, and staging never reads an uncommitted manifest anyway.
            with contextlib.suppress(Exception):
                self.discard(objects)
            raise
        recorded = record(objects)
        if recorded is None:
            self.discard(objects)
        elif replaces is not None and replaces != objects:
            with contextlib.suppress(Exception):  # best effort: staging reads only the committed manifest anyway
                self.discard(replaces)
        return recorded

    def discard(self, objects: BronzeObjects) -> None:
        """Delete an attempt's files (manifest first, so no reader finds a manifest without its data)."""
        self.store.delete(self.key(objects.manifest_key))
        self.store.delete(self.key(objects.data_key))

    def problem(self, objects: BronzeObjects) -> str | None:
        """What is wrong with a committed version's files (missing, another size, another sha256); None: intact.
        Reads both files whole: callers bound how many they check."""
        for what, key, size, sha256 in (
            ("manifest", objects.manifest_key, objects.manifest_bytes, objects.manifest_sha256),
            ("data file", objects.data_key, objects.data_bytes, objects.data_sha256),
        ):
            sink = _HashingSink()
            try:
                self.store.download(self.key(key), sink, etag=self.store.head(self.key(key)).etag, max_bytes=size)
            except ExternalError as error:
                if _is_missing(error):
                    return f"{what} {self.uri(key)} is missing"
                raise
            except ValidationError:  # longer than recorded: the download stops at the recorded size
                return f"{what} {self.uri(key)} is larger than the {size:,} bytes recorded"
            if sink.size != size:
                return f"{what} {self.uri(key)} is {sink.size:,} bytes, {size:,} recorded"
            if sink.digest.hexdigest() != sha256:
                return f"{what} {self.uri(key)} has sha256 {sink.digest.hexdigest()[:16]}…, not the one recorded"
        return None

    def stale_attempts(self, version: BronzeVersion, committed: BronzeObjects, older_than: datetime) -> list[str]:
        """Keys of other attempts' files of ``version`` (lost attempts) last written before ``older_than``."""
        keep = {committed.manifest_key, committed.data_key}
        stale = []
        for prefix in version.attempt_prefixes():
            for info in self.store.list_objects(self.key(prefix)):
                relative = info.key[len(self.prefix) + 1 :] if self.prefix else info.key
                if relative not in keep and info.last_modified < older_than:
                    stale.append(relative)
        return stale


class _HashingSink:
    def __init__(self):
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)


def _is_missing(error: Exception) -> bool:
    text = str(error)
    return any(word in text for word in ("no longer exists", "404", "NoSuchKey", "Not Found", "NotFound"))


def file_sha256(path: str) -> tuple[str, int]:
    """The sha256 (hex) and size of a local file, read a megabyte at a time."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
