"""What one document may cost, and the error a document over a limit gets.

Each limit is checked while the document streams, so a hostile file fails as a validation error naming the limit
and the value, long before it can exhaust memory or CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestion_project.lib.errors import LimitExceeded

__all__ = ["DocumentLimits", "LimitExceeded", "over_limit"]


@dataclass(frozen=True)
class DocumentLimits:
    """The per-source ``limits:`` block, in bytes and counts (defaults as in the sources file)."""

    object_bytes: int = 100 * 2**20
    decompressed_bytes: int = 500 * 2**20
    rows: int = 50_000_000
    columns: int = 10_000
    json_keys: int = 10_000
    line_bytes: int = 8 * 2**20
    nesting_depth: int = 64
    expansion: int = 1_000


# Below this many decoded bytes, any expansion is fine: a few KB of gzip may well hold a few MB of CSV.
EXPANSION_FLOOR_BYTES = 64 * 1024 * 1024


def check_expansion(decoded: int, stored: int, limits: DocumentLimits, what: str) -> None:
    """Fail a document whose ``decoded`` bytes are more than ``limits.expansion`` times the ``stored`` bytes
    they came from (a compression bomb), once past EXPANSION_FLOOR_BYTES."""
    if decoded > EXPANSION_FLOOR_BYTES and decoded > stored * limits.expansion:
        raise LimitExceeded(
            f"{what} expands {decoded // max(stored, 1):,} times ({stored:,} bytes to more than {decoded:,}), "
            f"over the limit of {limits.expansion:,} times (limits.expansion; possible compression bomb)",
            "expansion",
        )


def over_limit(limit: str, what: str, maximum: int, unit: str = "") -> LimitExceeded:
    """The error for ``what`` (e.g. "the CSV header has 12,000 columns") over ``maximum`` of ``limits.<limit>``."""
    return LimitExceeded(f"{what}, over the limit of {maximum:,}{unit} (limits.{limit})", limit)
