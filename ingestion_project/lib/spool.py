"""Scratch space for one document: its download, hashed as it arrives, and the bronze file being written."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from typing import BinaryIO

IN_MEMORY_BYTES = 1024 * 1024


class Spool:
    """Bytes written once (a download), hashed as they arrive, then read any number of times.

    Held in memory up to ``in_memory`` bytes and in a temporary file beyond, so a document of any size costs a
    bounded amount of memory. Readers opened with :meth:`open` are independent of each other.
    """

    def __init__(self, directory: str, *, in_memory: int = IN_MEMORY_BYTES):
        self._directory = directory
        self._in_memory = in_memory
        self._buffer: bytearray | None = bytearray()
        self._file: BinaryIO | None = None
        self._path: str | None = None
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._sha256.update(data)
        self.size += len(data)
        if self._buffer is not None and len(self._buffer) + len(data) <= self._in_memory:
            self._buffer += data
            return
        if self._file is None:
            fd, self._path = tempfile.mkstemp(dir=self._directory, prefix="download-")
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._buffer)
            self._buffer = None
        self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def path(self) -> str | None:
        """The file holding the bytes, or None while they are in memory."""
        if self._file is not None:
            self._file.flush()
        return self._path

    def head(self, size: int) -> bytes:
        with self.open() as stream:
            return stream.read(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def open(self) -> BinaryIO:
        """A new reader from the first byte."""
        if self._buffer is not None:
            return io.BytesIO(bytes(self._buffer))
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it


class Scratch:
    """A private temporary folder for one document, removed with everything in it when the document is done."""

    def __init__(self, parent: str | None = None):
        self.directory = tempfile.mkdtemp(prefix="ingest-", dir=parent)
        self._spools: list[Spool] = []

    def spool(self) -> Spool:
        self._spools.append(Spool(self.directory))
        return self._spools[-1]

    def file(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        for spool in self._spools:
            spool.close()
        shutil.rmtree(self.directory, ignore_errors=True)
