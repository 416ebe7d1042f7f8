"""Failure classes for document ingestion.

Every error raised while ingesting one document is one of these, so retry policies and the dead-letter queue can
decide what to do from the class alone: validation errors are the document's fault and are never retried,
external errors (the object vanished, access denied) get a few retries, transient errors get backoff.
"""


class DocumentError(Exception):
    """Base class for a failure to ingest one document."""


class ValidationError(DocumentError):
    """The document itself is bad: empty, malformed, undecodable, unsupported or over a limit. Never retried."""


class LimitExceeded(ValidationError):
    """The document is over one of its source's limits; ``limit`` names the setting under ``limits:``."""

    def __init__(self, message: str, limit: str = ""):
        # Only the message goes into args: exceptions are rebuilt from their args when they cross processes.
        super().__init__(message)
        self.limit = limit


class QualityError(ValidationError):
    """The document parsed, but breaks one of its source's quality rules (``quality:``); ``rule`` names it. Its own
    failure class (``quality``) in the dead-letter queue; never retried."""

    def __init__(self, message: str, rule: str = ""):
        super().__init__(message)
        self.rule = rule


class ContractError(ValidationError):
    """The document breaks its source's schema contract (``schema:``): undeclared or missing columns under
    ``freeze``, or a value that does not fit its declared type outside ``rescue``. Never retried."""


class UnsupportedFormatError(ValidationError):
    """The content is not one of the supported formats (binary data, unknown type)."""


class ExternalError(DocumentError):
    """The object store refused or lost the object (NoSuchKey, AccessDenied). Retried a few times."""


class TransientError(DocumentError):
    """A fault that may pass on its own (timeouts, throttling, 5xx). Retried with backoff."""


class SupersededError(DocumentError):
    """The pinned version is no longer the object's current one (its ETag no longer matches). Not a failure:
    the version ends SUPERSEDED and the newer version is ingested on its own."""


class ResourceError(DocumentError):
    """The worker ran short of something local — the run's memory budget, disk space, open files — while working
    on this document. Not the document's fault: retried with backoff, in a run by itself."""
