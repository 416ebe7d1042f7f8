"""How watermarks are kept and where an extraction starts: exact numbers, the lag below the watermark."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ingestion_project.databases.watermarks import decode, kept, low_water
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.ledger import Watermark


@pytest.mark.parametrize(
    ("value", "text", "kind"),
    [
        (Decimal("2.5"), "2.5", "numeric"),
        (Decimal("2.50"), "2.50", "numeric"),
        (Decimal("1E+30"), "1000000000000000000000000000000", "numeric"),
        (250, "250", "integer"),
        (datetime(2026, 11, 2, 11, 0, tzinfo=UTC), "2026-11-02T11:00:00+00:00", "timestamp"),
    ],
)
def test_a_watermark_is_kept_exactly_and_read_back_as_the_same_value(value, text, kind):
    watermark = kept("t", "c", value)
    assert (watermark.value, watermark.value_type) == (text, kind)
    assert decode(watermark) == value


@pytest.mark.parametrize("value", [Decimal("NaN"), float("inf"), True, "abc"])
def test_a_watermark_that_is_no_finite_number_or_timestamp_is_refused(value):
    with pytest.raises(ValidationError, match="watermark"):
        kept("t", "c", value)


def test_a_float_watermark_is_kept_as_its_shortest_exact_decimal():
    # PostgreSQL compares a double column with the numeric 0.1 as the double 0.1: the same value again.
    watermark = kept("t", "c", 0.1)
    assert (watermark.value, watermark.value_type, float(decode(watermark))) == ("0.1", "numeric", 0.1)


def test_an_integer_kept_before_numerics_existed_still_reads_as_an_integer():
    assert decode(Watermark("t", "c", "2", "integer")) == 2


@pytest.mark.parametrize(
    ("watermark", "lag", "low"),
    [
        (
            Watermark("t", "c", "2026-11-02T11:00:00+00:00", "timestamp"),
            300.0,
            datetime(2026, 11, 2, 10, 55, tzinfo=UTC),
        ),
        (Watermark("t", "c", "2026-11-02", "timestamp"), 86_400.0, datetime(2026, 11, 1)),
        (Watermark("t", "c", "250", "integer"), 100.0, 150),
        (Watermark("t", "c", "2.5", "numeric"), 0.5, Decimal("2.0")),
        (Watermark("t", "c", "250", "integer"), None, 250),
    ],
)
def test_a_lag_starts_the_extraction_that_far_below_the_watermark(watermark, lag, low):
    assert low_water(watermark, lag) == low


def test_the_first_extraction_starts_nowhere():
    assert low_water(None, 300.0) is None
