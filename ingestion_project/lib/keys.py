"""Partition keys for documents: any legal S3 key ↔ a valid, stable, readable Dagster partition key.

A partition key is ``<source>:<bucket>/<escaped key>`` (the bucket is empty for local-folder sources). Escaping
is percent-encoding of the UTF-8 bytes of exactly the characters Dagster or its UI cannot carry: ``%`` itself,
control characters, the ``,[]|`` of partition lists and ranges, and the dot that would complete a ``...`` run
(Dagster's range separator). Everything else, spaces and non-ASCII letters included, stays as it is.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ALWAYS_ESCAPED = frozenset("%,[]|")
_ESCAPE_RE = re.compile(r"%([0-9A-F]{2})")
_SOURCE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


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
        elif _needs_escape(char):
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
            dots = 0
        else:
            out.append(char)
            dots = dots + 1 if char == "." else 0
    return "".join(out)


def unescape_key(text: str) -> str:
    """Invert :func:`escape_key` exactly."""
    raw = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(text):
        raw += text[pos : match.start()].encode("utf-8")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += text[pos:].encode("utf-8")
    return raw.decode("utf-8")


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
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else f"{self.source}:{self.key}"

    @classmethod
    def from_partition_key(cls, partition_key: str) -> DocumentRef:
        """Parse a partition key made by :attr:`partition_key`; raise ValueError on anything else."""
        source, colon, rest = partition_key.partition(":")
        bucket, slash, escaped = rest.partition("/")
        if not (colon and slash and _SOURCE_RE.match(source)):
            raise ValueError(f"not a document partition key: {partition_key!r}")
        return cls(source=source, bucket=bucket, key=unescape_key(escaped))
