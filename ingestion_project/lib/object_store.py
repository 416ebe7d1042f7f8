"""Object stores documents are read from and bronze is written to: S3 (any S3-compatible endpoint) or a local folder.

Both offer the same small surface — list, head, read, atomic write — and translate their own failures into the
failure classes of :mod:`ingestion_project.lib.errors` at this boundary, so nothing above it needs to know about
botocore or errno.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from urllib3.exceptions import ProtocolError

from ingestion_project.lib.errors import ExternalError, SupersededError, TransientError, ValidationError
from ingestion_project.lib.keys import shown_key

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
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
# Bronze files up to this size go up in one PUT; larger ones as a multipart upload, four parts at a time.
MULTIPART_BYTES = 64 * 1024 * 1024
_PART_BYTES = 16 * 1024 * 1024
_TRANSFER = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=_PART_BYTES, max_concurrency=4)
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


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class ObjectStore(Protocol):
    bucket: str

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]: ...
    def head(self, key: str) -> ObjectInfo: ...
    def download(
        self, key: str, sink: Sink, *, etag: str, max_bytes: int, version_id: str | None = None
    ) -> ObjectInfo: ...
    def write_atomic(self, key: str, data: bytes, content_type: str) -> str: ...
    def write_file(self, key: str, path: str, content_type: str) -> str: ...
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
    if isinstance(error, (ConnectionError, HTTPClientError, BotoCoreError, ProtocolError)):
        return TransientError(f"{what}: {type(error).__name__}: {error}")
    return error


class S3ObjectStore:
    """A bucket reached through a boto3 S3 client (endpoint and credentials come from the client)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (after the key ``start_after``, when given) in key order, page by page
        (the paginator follows continuation tokens)."""
        after = {"StartAfter": start_after} if start_after else {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, **after)
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

    def download(self, key: str, sink: Sink, *, etag: str, max_bytes: int, version_id: str | None = None) -> ObjectInfo:
        """Stream exactly the version ``etag`` (and ``version_id``, when given) into ``sink``, a chunk at a time;
        return what the GET said of it.

        Raises SupersededError when the object no longer has that ETag, ValidationError past ``max_bytes``.
        """
        extra = {"VersionId": version_id} if version_id else {}
        received = 0
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"', **extra)
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise ValidationError(
                            f"{self.uri(key)} grew past the {max_bytes:,}-byte limit while downloading"
                        )
                    sink.write(chunk)
            finally:
                body.close()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _SUPERSEDED_CODES or status in _SUPERSEDED_CODES:
                raise SupersededError(f"{self.uri(key)} no longer has ETag {etag}: it was overwritten") from e
            raise classify_s3_error(e, f"GET {self.uri(key)}") from e
        except (BotoCoreError, ProtocolError) as e:
            raise classify_s3_error(e, f"GET {self.uri(key)} after {received:,} bytes") from e
        return ObjectInfo(
            key=key,
            etag=response["ETag"].strip('"'),
            size=response.get("ContentLength", received),
            last_modified=response["LastModified"],
            content_type=response.get("ContentType"),
            version_id=_version_id(response),
        )

    def write_atomic(self, key: str, data: bytes, content_type: str) -> str:
        # A single PUT is atomic on S3: readers see the old object, or none, or the whole new one.
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"PUT {self.uri(key)}") from e
        return self.uri(key)

    def write_file(self, key: str, path: str, content_type: str) -> str:
        """Upload a local file: one PUT up to MULTIPART_BYTES, a managed multipart upload beyond (atomic too: the
        object appears only when the upload completes)."""
        try:
            if os.path.getsize(path) <= MULTIPART_BYTES:
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            else:
                self.client.upload_file(
                    path, self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=_TRANSFER
                )
        except (ClientError, BotoCoreError) as e:
            raise classify_s3_error(e, f"PUT {self.uri(key)}") from e
        except S3UploadFailedError as e:
            cause = e.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise classify_s3_error(cause, f"PUT {self.uri(key)}") from e
            raise TransientError(f"PUT {self.uri(key)}: {e}") from e
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
    """A directory treated as a bucket: keys are POSIX paths relative to ``root``; nothing escapes it.

    Keys are ``str``; a name that is not valid UTF-8 keeps its undecodable bytes as surrogates (``surrogateescape``,
    as ``os`` hands them out), so the key opens exactly that file. Scratch files of atomic writes live outside the
    root, in the sibling folder ``.<root name>.scratch`` (same file system, so the final rename stays atomic): every
    file under the root is a document, whatever its name.
    """

    bucket = ""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.scratch = self.root.with_name(f".{self.root.name}.scratch")

    def _path(self, key: str) -> Path:
        # Lexical only: resolving would follow links, and links are refused where files are opened (_open).
        if key.startswith("/") or "\0" in key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValidationError(f"key {shown_key(key)!r} does not name a file inside {self.root}")
        return self.root / key

    @staticmethod
    def _info(key: str, status: os.stat_result) -> ObjectInfo:
        # Local files have no ETag. Size + mtime miss a same-size copy whose mtime was preserved (`cp -p`,
        # `rsync -a`); the inode and ctime, which no tool sets back, catch it. A chmod changes ctime too: the
        # file is then ingested once more, which is harmless.
        identity = f"{status.st_size}:{status.st_mtime_ns}:{status.st_ino}:{status.st_ctime_ns}"
        etag = hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()
        return ObjectInfo(key, etag, status.st_size, datetime.fromtimestamp(status.st_mtime, tz=UTC))

    def _open(self, key: str) -> int:
        """A read-only descriptor of the regular file ``key``, never through a symbolic link.

        Every component is opened relative to the one before with O_NOFOLLOW, so a file or folder swapped for a
        link between listing and opening can never lead outside the root. Raises ExternalError when the file is
        gone, is a link, or is not a regular file.
        """
        path = self.uri(key)
        self._path(key)
        parts = key.split("/")
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
        directory = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=directory)
                os.close(directory)
                directory = inner
            # O_NONBLOCK: opening a FIFO put in the file's place must not wait for a writer.
            fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=directory)
        except FileNotFoundError as e:
            raise ExternalError(f"{path} no longer exists") from e
        except PermissionError as e:
            raise ExternalError(f"{path}: permission denied") from e
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ExternalError(f"{path} is now a symbolic link; links are never followed") from e
            raise ExternalError(f"{path}: {e.strerror}") from e
        finally:
            os.close(directory)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ExternalError(f"{path} is no longer a regular file")
        return fd

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every regular file whose key starts with ``prefix`` (and sorts after ``start_after``), in key order as
        S3 lists them. Links are never followed; a file or folder that vanishes while listed is passed over."""
        if not self.root.is_dir():
            raise ExternalError(f"source folder {self.root} does not exist")
        yield from self._walk(str(self.root), "", prefix, start_after or "")

    def _walk(self, folder: str, base: str, prefix: str, after: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return  # removed while being listed
        # Sorting a folder as "name/" keeps every key in it in place among its siblings: global key order.
        listed = sorted((entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""), entry) for entry in entries)
        for name, entry in listed:
            key = base + name
            if name.endswith("/"):
                if (key.startswith(prefix) or prefix.startswith(key)) and (key >= after or after.startswith(key)):
                    yield from self._walk(entry.path, key, prefix, after)
                continue
            if not key.startswith(prefix) or key <= after or entry.is_symlink():
                continue  # links could point outside the root; only regular files are documents
            try:
                status = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(status.st_mode):
                yield self._info(key, status)

    def head(self, key: str) -> ObjectInfo:
        fd = self._open(key)
        try:
            return self._info(key, os.fstat(fd))
        finally:
            os.close(fd)

    def download(self, key: str, sink: Sink, *, etag: str, max_bytes: int, version_id: str | None = None) -> ObjectInfo:
        """Copy exactly the listed version of a file into ``sink``; SupersededError if it changed since listing
        or while being read (checked on the opened descriptor, whatever happens to the path meanwhile)."""
        with os.fdopen(self._open(key), "rb") as f:
            info = self._info(key, os.fstat(f.fileno()))
            if info.etag != etag:
                raise SupersededError(f"{self.uri(key)} was rewritten since it was listed")
            received = 0
            while chunk := f.read(DOWNLOAD_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise ValidationError(f"{self.uri(key)} grew past the {max_bytes:,}-byte limit while reading")
                sink.write(chunk)
            if self._info(key, os.fstat(f.fileno())).etag != etag:
                raise SupersededError(f"{self.uri(key)} was rewritten while being read")
        return info

    def write_atomic(self, key: str, data: bytes, content_type: str) -> str:
        return self._replace(key, lambda f: f.write(data))

    def write_file(self, key: str, path: str, content_type: str) -> str:
        """Copy a local file into place: into the scratch folder first, then renamed, so no reader sees a partial
        file."""
        with open(path, "rb") as source:
            return self._replace(key, lambda f: shutil.copyfileobj(source, f, DOWNLOAD_CHUNK_BYTES))

    def _replace(self, key: str, fill: Callable[[BinaryIO], object]) -> str:
        # Write in the scratch folder, flush to disk, then rename: a reader never sees a partial file, and a listing
        # of the root never sees a scratch file.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._scratch_dir(path), prefix="write-")
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def _scratch_dir(self, path: Path) -> Path:
        """The scratch folder; beside the target only where the root's parent is not writable (a mount point),
        which leaves a scratch file in the root only if the process dies mid-write."""
        try:
            self.scratch.mkdir(exist_ok=True)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            return path.parent
        return self.scratch

    def delete(self, key: str) -> None:
        """Delete one of the platform's own files (a dead-letter record's old copy); never a source document."""
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self.root / shown_key(key))
