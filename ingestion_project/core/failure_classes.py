"""Failure classes and their retry policies.

transient (timeouts, throttling, 5xx): exponential backoff with jitter, capped; resource (the worker ran short of
memory within the run's budget, of disk space or of open files): the transient limits, each retry in a run by
itself; external (the object vanished, access denied): a few retries; validation (the document's own fault),
quality (it parsed but breaks one of its source's quality rules) and unexpected errors: no retry, straight to the
dead-letter queue. Limits are per source (``retries:`` in the sources file).
"""

import errno
import os

import dagster as dg

from ingestion_project.config import RetryConfig, RetryLimits
from ingestion_project.lib.errors import ExternalError, QualityError, ResourceError, TransientError, ValidationError

VALIDATION = "validation"
QUALITY = "quality"
TRANSIENT = "transient"
EXTERNAL = "external"
UNEXPECTED = "unexpected"
RESOURCE = "resource"

# Local resources running out: disk full (or over quota, or RLIMIT_FSIZE), too many open files, no memory.
RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
_RESOURCE_MESSAGES = tuple(os.strerror(number) for number in sorted(RESOURCE_ERRNOS))


def retry_policy(limits: RetryLimits) -> dg.RetryPolicy:
    return dg.RetryPolicy(
        max_retries=limits.max_retries,
        delay=limits.delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


TRANSIENT_RETRY = retry_policy(RetryConfig().transient)
EXTERNAL_RETRY = retry_policy(RetryConfig().external)


def is_resource_exhaustion(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a local resource running out. pyarrow reports some
    of these as an OSError without errno, naming it only in the message."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ResourceError, MemoryError)):
            return True
        if isinstance(current, OSError) and (
            current.errno in RESOURCE_ERRNOS or any(text in str(current) for text in _RESOURCE_MESSAGES)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_class(error: BaseException) -> str:
    if is_resource_exhaustion(error) and not isinstance(error, QualityError):
        return RESOURCE
    if isinstance(error, QualityError):
        return QUALITY
    if isinstance(error, ValidationError):
        return VALIDATION
    if isinstance(error, TransientError):
        return TRANSIENT
    if isinstance(error, ExternalError):
        return EXTERNAL
    return UNEXPECTED


def limits_for(retries: RetryConfig, failure_class: str) -> RetryLimits | None:
    """The retry limits of a failure class, or None when that class is never retried."""
    return {TRANSIENT: retries.transient, RESOURCE: retries.transient, EXTERNAL: retries.external}.get(failure_class)


def next_delay(limits: RetryLimits, retry_number: int) -> float:
    """Seconds before retry ``retry_number + 1``: Dagster's exponential backoff with jitter, capped.

    dg.RetryPolicy has no maximum delay, so the policy computes the delay and the cap is applied here.
    """
    delay = retry_policy(limits).calculate_delay(retry_number + 1)
    return round(min(limits.max_delay_seconds, max(0.0, delay)), 3)
