"""Object stores documents are read from and bronze is written to: S3 (any S3-compatible endpoint) or a local folder.

Both offer the same small surface — list, head, read, atomic write — and translate their own failures into the
failure classes of :mod:`ingestion_project.lib.errors` at this boundary, so nothing above it needs to know about
botocore or errno.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from ingestion_project.lib.errors import ExternalError, SupersededError, TransientError, ValidationError

_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "500",
    "502",
    "503",
    "504",
}
# The pinned ETag no longer matches: the object was overwritten since it was listed.
_SUPERSEDED_CODES = {"PreconditionFailed", "412"}


@dataclass(frozen=True)
class ObjectInfo:
    """One object as listed or HEADed: key, ETag (no quotes), size, last modification, content type."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    content_type: str | None = None
    version_id: str | None = None


class ObjectStore(Protocol):
    bucket: str

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def head(self, key: str) -> ObjectInfo: ...
    def read(
        self, key: str, *, etag: str, max_bytes: int, version_id: str | None = None
    ) -> tuple[bytes, ObjectInfo]: ...
    def write_atomic(self, key: str, data: bytes, content_type: str) -> str: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str) -> str: ...


def classify_s3_error(error: Exception, what: str) -> Exception:
    """Map a botocore failure to TransientError or ExternalError, keeping the S3 code in the message."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = f"{what}: {code or status} {error.response.get('Error', {}).get('Message', '')}".strip()
        if code in _TRANSIENT_CODES or status in _TRANSIENT_CODES or status.startswith("5"):
            return TransientError(message)
        return ExternalError(message)
    if isinstance(error, (ConnectionError, HTTPClientError, BotoCoreError)):
        return TransientError(f"{what}: {type(error).__name__}: {error}")
    return error


class S3ObjectStore:
    """A bucket reached through a boto3 S3 client (endpoint and credentials come from the client)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, page by page (the paginator follows continuation tokens)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(
                        key=item["Key"],
                        etag=item["ETag"].strip('"'),
                        size=item["Size"],
                        last_modified=item["LastModified"],
                    )
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"listing s3://{self.bucket}/{prefix}") from e

    def head(self, key: str) -> ObjectInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"HEAD {self.uri(key)}") from e
        return ObjectInfo(
            key=key,
            etag=head["ETag"].strip('"'),
            size=head["ContentLength"],
            last_modified=head["LastModified"],
            content_type=head.get("ContentType"),
            version_id=_version_id(head),
        )

    def read(self, key: str, *, etag: str, max_bytes: int, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        """The bytes of exactly the version ``etag`` (and ``version_id``, when given) and what the GET said of it.

        Raises SupersededError when the object no longer has that ETag, ValidationError past ``max_bytes``.
        """
        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"', **extra)
            body = response["Body"]
            data = body.read(max_bytes + 1)
            body.close()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _SUPERSEDED_CODES or status in _SUPERSEDED_CODES:
                raise SupersededError(f"{self.uri(key)} no longer has ETag {etag}: it was overwritten") from e
            raise classify_s3_error(e, f"GET {self.uri(key)}") from e
        except BotoCoreError as e:
            raise classify_s3_error(e, f"GET {self.uri(key)}") from e
        if len(data) > max_bytes:
            raise ValidationError(f"{self.uri(key)} grew past the {max_bytes:,}-byte limit while downloading")
        info = ObjectInfo(
            key=key,
            etag=response["ETag"].strip('"'),
            size=response.get("ContentLength", len(data)),
            last_modified=response["LastModified"],
            content_type=response.get("ContentType"),
            version_id=_version_id(response),
        )
        return data, info

    def write_atomic(self, key: str, data: bytes, content_type: str) -> str:
        # A single PUT is atomic on S3: readers see the old object, or none, or the whole new one.
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"PUT {self.uri(key)}") from e
        return self.uri(key)

    def delete(self, key: str) -> None:
        """Delete one of the platform's own objects (a dead-letter record's old copy); never a source document."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"DELETE {self.uri(key)}") from e

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _version_id(response: dict) -> str | None:
    # Unversioned buckets report no version id, or the literal "null".
    value = response.get("VersionId")
    return value if value and value != "null" else None


class LocalObjectStore:
    """A directory treated as a bucket: keys are POSIX paths relative to ``root``; nothing escapes it."""

    bucket = ""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if key.startswith("/") or "\0" in key or not path.is_relative_to(self.root) or path == self.root:
            raise ValidationError(f"key {key!r} does not name a file inside {self.root}")
        return path

    @staticmethod
    def _info(key: str, stat: os.stat_result) -> ObjectInfo:
        # Local files have no ETag; size + mtime changes whenever the content is rewritten.
        etag = hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False).hexdigest()
        return ObjectInfo(key, etag, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise ExternalError(f"source folder {self.root} does not exist")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file():
                    continue  # links could point outside the root; only regular files are documents
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    yield self._info(key, path.stat())

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            return self._info(key, path.stat())
        except FileNotFoundError as e:
            raise ExternalError(f"{path} no longer exists") from e

    def read(self, key: str, *, etag: str, max_bytes: int, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                info = self._info(key, os.fstat(f.fileno()))
                if info.etag != etag:
                    raise SupersededError(f"{path} was rewritten since it was listed")
                data = f.read(max_bytes + 1)
        except FileNotFoundError as e:
            raise ExternalError(f"{path} no longer exists") from e
        except PermissionError as e:
            raise ExternalError(f"{path}: permission denied") from e
        if len(data) > max_bytes:
            raise ValidationError(f"{path} grew past the {max_bytes:,}-byte limit while reading")
        if self._info(key, path.stat()).etag != etag:
            raise SupersededError(f"{path} was rewritten while being read")
        return data, info

    def write_atomic(self, key: str, data: bytes, content_type: str) -> str:
        # Write beside the target, flush to disk, then rename: a reader never sees a partial file.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def delete(self, key: str) -> None:
        """Delete one of the platform's own files (a dead-letter record's old copy); never a source document."""
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self.root / key)
