import pytest

from ingestion_project.config import RetryLimits
from ingestion_project.core.failure_classes import (
    EXTERNAL,
    TRANSIENT,
    TRANSIENT_RETRY,
    UNEXPECTED,
    VALIDATION,
    error_class,
    next_delay,
)
from ingestion_project.lib.errors import ExternalError, TransientError, UnsupportedFormatError, ValidationError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValidationError("bad"), VALIDATION),
        (UnsupportedFormatError("binary"), VALIDATION),
        (TransientError("503"), TRANSIENT),
        (ExternalError("NoSuchKey"), EXTERNAL),
        (KeyError("bug"), UNEXPECTED),
    ],
)
def test_errors_map_to_their_failure_class(error, expected):
    assert error_class(error) == expected


def test_backoff_grows_exponentially_and_stops_at_the_cap():
    limits = RetryLimits(max_retries=10, delay_seconds=1, max_delay_seconds=20)
    delays = [next_delay(limits, n) for n in range(8)]
    # Dagster's exponential backoff: (2^n - 1) * base, with ±base jitter.
    assert 0 <= delays[0] <= 2
    assert 2 <= delays[1] <= 4
    assert 6 <= delays[2] <= 8
    assert delays[5:] == [20, 20, 20]


def test_jitter_spreads_the_delays():
    limits = RetryLimits(max_retries=5, delay_seconds=1, max_delay_seconds=100)
    assert len({next_delay(limits, 3) for _ in range(20)}) > 5


def test_transient_policy_is_exponential_with_jitter():
    assert TRANSIENT_RETRY.max_retries == 4
    assert TRANSIENT_RETRY.backoff.value == "EXPONENTIAL"
    assert TRANSIENT_RETRY.jitter.value == "PLUS_MINUS"
