"""Partition keys for documents: any legal S3 key ↔ a valid, stable, readable Dagster partition key.

A partition key is ``<source>:<bucket>/<escaped key>`` (the bucket is empty for local-folder sources). Escaping
is percent-encoding of the UTF-8 bytes of exactly the characters Dagster or its UI cannot carry: ``%`` itself,
control characters, the ``,[]|`` of partition lists and ranges, and the dot that would complete a ``...`` run
(Dagster's range separator). Everything else, spaces and non-ASCII letters included, stays as it is.

A local file name that is not valid UTF-8 reaches Python as ``str`` with each undecodable byte as a lone surrogate
(U+DC80–U+DCFF, ``surrogateescape``), which maps back to the exact file. Such a key escapes each surrogate as the
``%XX`` of its byte, so its partition key is valid UTF-8 and round-trips to the same file; it is hashed by its raw
bytes (:func:`key_bytes`) and written as text in its readable :func:`shown_key` form (``caf\\xe9.csv``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ALWAYS_ESCAPED = frozenset("%,[]|")
_ESCAPE_RE = re.compile(r"%([0-9A-F]{2})")
_SOURCE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def key_bytes(key: str) -> bytes:
    """The key's raw bytes: its UTF-8, with the undecodable bytes of a local name restored."""
    return key.encode("utf-8", "surrogateescape")


def shown_key(key: str) -> str:
    """The key as valid, readable text for the ledger, manifests, lineage and messages: undecodable bytes of a
    local name become ``\\xNN``. Lossy for such a key (the partition key is the lossless form); the key itself
    for every key that is valid UTF-8."""
    if key.isascii():
        return key
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def key_hash(source: str, bucket: str, key: str) -> str:
    """What the ledger indexes an object by: the sha256 (hex) of source, bucket and the key's raw bytes, whatever
    their length (a btree index row on PostgreSQL holds at most 2,704 bytes)."""
    return hashlib.sha256(b"\0".join((source.encode(), bucket.encode(), key_bytes(key)))).hexdigest()


def _needs_escape(char: str) -> bool:
    return char in _ALWAYS_ESCAPED or unicodedata.category(char) == "Cc"


def escape_key(key: str) -> str:
    """Escape an object key so it is a valid piece of a Dagster partition key."""
    out: list[str] = []
    dots = 0  # literal dots at the end of ``out``
    for char in key:
        if char == "." and dots == 2:
            out.append("%2E")
            dots = 0
        elif _needs_escape(char) or "\udc80" <= char <= "\udcff":
            out.extend(f"%{byte:02X}" for byte in key_bytes(char))
            dots = 0
        else:
            out.append(char)
            dots = dots + 1 if char == "." else 0
    return "".join(out)


def unescape_key(text: str) -> str:
    """Invert :func:`escape_key` exactly (escaped bytes that are not UTF-8 come back as their surrogates)."""
    raw = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(text):
        raw += text[pos : match.start()].encode("utf-8")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += text[pos:].encode("utf-8")
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class DocumentRef:
    """Where one document lives: the source that found it, its bucket ("" for local folders) and exact key."""

    source: str
    bucket: str
    key: str

    @property
    def partition_key(self) -> str:
        return f"{self.source}:{self.bucket}/{escape_key(self.key)}"

    @property
    def shown_key(self) -> str:
        return shown_key(self.key)

    @property
    def key_hash(self) -> str:
        return key_hash(self.source, self.bucket, self.key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.shown_key}" if self.bucket else f"{self.source}:{self.shown_key}"

    @classmethod
    def from_partition_key(cls, partition_key: str) -> DocumentRef:
        """Parse a partition key made by :attr:`partition_key`; raise ValueError on anything else."""
        source, colon, rest = partition_key.partition(":")
        bucket, slash, escaped = rest.partition("/")
        if not (colon and slash and _SOURCE_RE.match(source)):
            raise ValueError(f"not a document partition key: {partition_key!r}")
        return cls(source=source, bucket=bucket, key=unescape_key(escaped))

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> DocumentRef:
        """The exact object of a ledger row (processed file or dead letter): from its lossless partition key,
        where it has one of a document, else from its ``object_key`` text."""
        try:
            ref = cls.from_partition_key(row["partition_key"])
        except (KeyError, TypeError, ValueError):
            return cls(row["source"], row["bucket"], row["object_key"])
        if (ref.source, ref.bucket) != (row["source"], row["bucket"]):
            return cls(row["source"], row["bucket"], row["object_key"])
        return ref
