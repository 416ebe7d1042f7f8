"""Watermarks of incremental extractions: how a value is kept in the ledger, and where an extraction starts.

Timestamps are kept as ISO 8601, integers as digits and every other number (numeric, decimal, float columns) as
exact decimal text, so a watermark of 2.5 is 2.5 when it is read back (``value_type`` says which). A
``watermark_lag`` moves the start below the watermark: a duration for a timestamp, the watermark's own units for
a number.
"""

from __future__ import annotations

import decimal
from datetime import date, datetime, timedelta

from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.ledger import Watermark


def kept(table: str, column: str, value: object) -> Watermark:
    """The watermark of ``table`` at ``value``, the greatest value of ``column`` an extraction read."""
    kind = kind_of(value, column)
    return Watermark(table, column, encode(value, kind), kind)


def low_water(since: Watermark | None, lag: float | None) -> object:
    """Where an incremental extraction starts reading (exclusive): the watermark, less the lag if there is one."""
    if since is None:
        return None
    low = decode(since)
    if lag is None:
        return low
    if isinstance(low, datetime | date):
        return low - timedelta(seconds=lag)
    if isinstance(low, int) and float(lag).is_integer():
        return low - int(lag)
    return decimal.Decimal(low) - decimal.Decimal(str(lag))


def kind_of(value: object, column: str | None) -> str:
    """How a watermark value is kept: "timestamp" (ISO 8601), "integer" or "numeric" (exact decimal text)."""
    if isinstance(value, datetime | date):
        return "timestamp"
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    if isinstance(value, decimal.Decimal | float):
        if not decimal.Decimal(str(value)).is_finite():
            raise ValidationError(f"the watermark column {column} holds {value}: a watermark must be a finite number")
        return "numeric"
    raise ValidationError(f"a watermark must be a timestamp or a number column, not {type(value).__name__}")


def encode(value: object, kind: str) -> str:
    """A watermark value as the ledger keeps it."""
    if kind == "timestamp":
        return value.isoformat()
    if kind == "integer":
        return str(value)
    return format(decimal.Decimal(str(value)), "f")  # 2.5 stays "2.5"; 1E+30 is written out


def decode(watermark: Watermark) -> object:
    """A kept watermark as the value to compare with (an "integer" kept before numerics existed stays an int)."""
    if watermark.value_type == "integer":
        return int(watermark.value)
    if watermark.value_type == "numeric":
        return decimal.Decimal(watermark.value)
    return datetime.fromisoformat(watermark.value)
