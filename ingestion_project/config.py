"""What is ingested: the sources file, validated once at load.

The file (``ingestion_project/sources.yaml`` unless ``INGESTION_SOURCES_FILE`` names another) declares where
bronze lands and one or more sources. Relative local paths are resolved against the file's own directory, so the
same file works whatever directory Dagster is started from.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingestion_project.lib.bronze import RESERVED_COLUMNS
from ingestion_project.lib.contracts import Contract, Mode, arrow_type
from ingestion_project.lib.limits import DocumentLimits
from ingestion_project.lib.memory import check_budget
from ingestion_project.lib.quality import QualityRules

DEFAULT_SOURCES_FILE = Path(__file__).with_name("sources.yaml")
SOURCES_FILE_ENV = "INGESTION_SOURCES_FILE"

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
# S3 bucket naming rules, minus the legacy ones AWS no longer accepts.
_BUCKET_RE = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """The sources file is invalid; the message names the file, the source and the field."""


class UnknownSourceError(KeyError):
    """A source name the sources file does not (or no longer) declare."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown source"


def parse_size(value: int | str) -> int:
    """Parse ``1048576``, ``"10MiB"`` or ``"5 MB"`` into bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10MiB")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size (use bytes or a unit: KB, MB, GB, KiB, MiB, GiB)")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def _check_glob(pattern: str) -> str:
    if not pattern.strip():
        raise ValueError("a glob pattern cannot be empty")
    if pattern.startswith("/"):
        raise ValueError(f"glob {pattern!r} must be relative to the source prefix")
    depth = 0
    for char in pattern:
        depth += char == "["
        depth -= char == "]" and depth > 0
    if depth:
        raise ValueError(f"glob {pattern!r} has an unclosed '['")
    return pattern


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: int | float | str) -> float:
    """Parse ``900``, ``"15m"``, ``"1h"`` or ``"1d"`` into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration (use seconds or a unit: s, m, h, d)")
        seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "").lower()]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Glob = Annotated[str, Field(min_length=1)]
Duration = Annotated[int | float | str, Field(union_mode="left_to_right")]
Size = Annotated[int | str, Field(union_mode="left_to_right")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, populate_by_name=True)


class RetryLimits(_Strict):
    """How often, and how patiently, one failure class is retried: exponential backoff with jitter, capped."""

    max_retries: int = Field(ge=0, le=20)
    delay_seconds: float = Field(gt=0, le=3600)
    max_delay_seconds: float = Field(gt=0, le=3600)


class RetryConfig(_Strict):
    # Validation failures (the document's own fault) are never retried, so they have no entry here.
    transient: RetryLimits = RetryLimits(max_retries=4, delay_seconds=2, max_delay_seconds=60)
    external: RetryLimits = RetryLimits(max_retries=2, delay_seconds=5, max_delay_seconds=30)


class BatchSize(_Strict):
    """How much one ingestion run carries: at most this many documents and (listed) bytes."""

    documents: int = Field(default=500, ge=1, le=10_000)
    bytes: Size = "256MiB"

    @field_validator("bytes")
    @classmethod
    def _size_is_valid(cls, value: int | str) -> int:
        return parse_size(value)

    @property
    def max_bytes(self) -> int:
        return int(self.bytes)


class Limits(_Strict):
    """What one document may cost: a document over a limit is a validation failure naming the limit and the value.

    ``decompressed_size`` bounds what any codec produces: gzip output, and the decoded data of a Parquet file.
    ``line_length`` bounds one line (one CSV/TSV row, one NDJSON record, one line of text); ``json_keys`` the
    distinct keys of a JSON or NDJSON document; ``nesting_depth`` how deep a JSON value nests.
    """

    object_size: Size = "100MiB"
    decompressed_size: Size = "500MiB"
    rows: int = Field(default=50_000_000, ge=1)
    columns: int = Field(default=10_000, ge=1, le=100_000)
    json_keys: int = Field(default=10_000, ge=1, le=100_000)
    line_length: Size = "8MiB"
    nesting_depth: int = Field(default=64, ge=1, le=10_000)
    expansion: int = Field(default=1_000, ge=1)

    @field_validator("object_size", "decompressed_size", "line_length")
    @classmethod
    def _size_is_valid(cls, value: int | str) -> int:
        return parse_size(value)

    @property
    def object_bytes(self) -> int:
        return int(self.object_size)

    @property
    def decompressed_bytes(self) -> int:
        return int(self.decompressed_size)

    @property
    def line_bytes(self) -> int:
        return int(self.line_length)

    def document_limits(self) -> DocumentLimits:
        return DocumentLimits(
            object_bytes=self.object_bytes,
            decompressed_bytes=self.decompressed_bytes,
            rows=self.rows,
            columns=self.columns,
            json_keys=self.json_keys,
            line_bytes=self.line_bytes,
            nesting_depth=self.nesting_depth,
            expansion=self.expansion,
        )


class ListingConfig(_Strict):
    """How a source is listed on each discovery tick.

    ``full``: every key, resumed across ticks when a listing takes longer than the tick's budget.
    ``incremental``: only keys after the greatest key seen (S3 ``StartAfter``), for keys that arrive in lexical
    order (date-prefixed, say); a full listing every ``full_every`` finds what that misses (a late key that sorts
    before the watermark, an overwritten old key).
    """

    mode: Literal["full", "incremental"] = "full"
    full_every: Duration = "1h"

    @field_validator("full_every")
    @classmethod
    def _duration_is_valid(cls, value: int | float | str) -> float:
        return parse_duration(value)

    @property
    def full_every_seconds(self) -> float:
        return float(self.full_every)


class PartitionRetention(_Strict):
    """How long a document keeps its partition of `raw_documents` once every version of it has landed.

    Dagster's partition queries, the UI and declarative automation slow down with the number of partitions (its
    guidance is at most 100,000 per asset). A document whose versions are all landed (SUCCESS, SKIPPED or
    SUPERSEDED) and whose last one finished more than ``retain`` ago loses its partition; a document in flight,
    FAILED or QUARANTINED never does. ``max``: past that many partitions the oldest landed documents go first,
    whatever their age. The ledger, bronze and the marts keep every version; a key that returns gets its partition
    back when its new version is discovered.
    """

    retain: Duration = "30d"
    max: int = Field(default=100_000, ge=1)

    @field_validator("retain")
    @classmethod
    def _retain_is_a_duration(cls, value: int | float | str) -> float:
        return parse_duration(value)

    @property
    def retain_seconds(self) -> float:
        return float(self.retain)


class SourcePartitionRetention(_Strict):
    """A source's own retention period (``partitions: {retain: 7d}``); the count limit stays global."""

    retain: Duration

    @field_validator("retain")
    @classmethod
    def _retain_is_a_duration(cls, value: int | float | str) -> float:
        return parse_duration(value)


class RangeConfig(_Strict):
    min: float | None = None
    max: float | None = None


class QualityConfig(_Strict):
    """Rules a source's tabular documents must meet before they land; a document that breaks one is dead-lettered
    with the failure class ``quality`` and the rule."""

    required_columns: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()
    unique: tuple[str | tuple[str, ...], ...] = ()  # a column, or a list of columns that together are a key
    accepted_values: dict[str, tuple[str, ...]] = {}
    ranges: dict[str, RangeConfig] = {}
    min_rows: int = Field(default=0, ge=0)

    def rules(self) -> QualityRules:
        return QualityRules(
            required_columns=self.required_columns,
            not_null=self.not_null,
            unique=tuple((key,) if isinstance(key, str) else key for key in self.unique),
            accepted_values=self.accepted_values,
            ranges={name: (r.min, r.max) for name, r in self.ranges.items()},
            min_rows=self.min_rows,
        )


class SchemaConfig(_Strict):
    """A source's schema contract: declared columns (``name: type``, or ``name:`` for any type) and what happens
    to a document that differs (``mode``); see lib/contracts.py."""

    mode: Mode = Mode.EVOLVE
    columns: dict[str, str | None] = {}

    @field_validator("columns")
    @classmethod
    def _columns_are_valid(cls, columns: dict[str, str | None]) -> dict[str, str | None]:
        reserved = {name.casefold() for name in RESERVED_COLUMNS}
        seen: set[str] = set()
        for name, kind in columns.items():
            if not name.strip():
                raise ValueError("a declared column needs a name")
            if name.casefold() in reserved:
                raise ValueError(f"column {name!r} is reserved for bronze's own columns")
            if name.casefold() in seen:
                raise ValueError(f"column {name!r} is declared twice (names match ignoring case)")
            seen.add(name.casefold())
            if kind is not None:
                arrow_type(kind)
        return columns

    @model_validator(mode="after")
    def _modes_need_columns(self) -> SchemaConfig:
        if self.mode is not Mode.EVOLVE and not self.columns:
            raise ValueError(f"mode {self.mode} needs the columns it expects (schema.columns)")
        return self

    def contract(self) -> Contract:
        return Contract(self.mode, dict(self.columns))


class _SourceBase(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    include: tuple[Glob, ...] = ("*",)
    exclude: tuple[Glob, ...] = ()
    limits: Limits = Limits()
    listing: ListingConfig = ListingConfig()
    retries: RetryConfig = RetryConfig()
    max_replays: int = Field(default=3, ge=0, le=100)
    batch_size: BatchSize = BatchSize()
    # Runs that may die holding a version (killed, out of memory, failed before their claim) before it is
    # quarantined with a dead letter saying so.
    max_attempts: int = Field(default=3, ge=1, le=100)
    # How often new documents are expected (e.g. "1d"): past it with nothing new, the freshness check fails.
    expect_new_documents_within: Duration | None = None
    quality: QualityConfig = QualityConfig()
    schema_: SchemaConfig = Field(default=SchemaConfig(), alias="schema")
    # This source's partition retention period, when it differs from the global one (Settings.partitions).
    partitions: SourcePartitionRetention | None = None

    @field_validator("expect_new_documents_within")
    @classmethod
    def _expectation_is_a_duration(cls, value: int | float | str | None) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("include", "exclude")
    @classmethod
    def _globs_are_valid(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_glob(p) for p in patterns)

    @model_validator(mode="before")
    @classmethod
    def _sizes_move_to_limits(cls, raw: object) -> object:
        # max_object_size / max_decompressed_size predate the limits block; they still mean the same.
        if isinstance(raw, dict) and ({"max_object_size", "max_decompressed_size"} & raw.keys()):
            raw = dict(raw)
            limits = dict(raw.get("limits") or {})
            for old, new in (("max_object_size", "object_size"), ("max_decompressed_size", "decompressed_size")):
                if old in raw:
                    limits.setdefault(new, raw.pop(old))
            raw["limits"] = limits
        return raw

    @property
    def max_object_bytes(self) -> int:
        return self.limits.object_bytes

    def document_limits(self) -> DocumentLimits:
        return self.limits.document_limits()

    @property
    def max_decompressed_bytes(self) -> int:
        return self.limits.decompressed_bytes

    def relative_key(self, key: str) -> str:
        return key

    def matches(self, key: str) -> bool:
        """Whether ``key`` is a document of this source.

        A pattern without ``/`` matches the file name; one with ``/`` matches the key relative to the prefix.
        Folder markers (keys ending in ``/``) never match.
        """
        if key.endswith("/"):
            return False
        relative = self.relative_key(key)
        name = PurePosixPath(relative).name

        def hit(pattern: str) -> bool:
            return fnmatch.fnmatchcase(relative if "/" in pattern else name, pattern)

        return any(map(hit, self.include)) and not any(map(hit, self.exclude))


class S3SourceConfig(_SourceBase):
    type: Literal["s3"] = "s3"
    bucket: str
    prefix: str = ""

    @field_validator("bucket")
    @classmethod
    def _bucket_is_valid(cls, bucket: str) -> str:
        if not _BUCKET_RE.match(bucket):
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
        return bucket

    def relative_key(self, key: str) -> str:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key


class LocalSourceConfig(_SourceBase):
    type: Literal["local"]
    path: Path

    @property
    def bucket(self) -> str:
        return ""

    @property
    def prefix(self) -> str:
        return ""


SourceConfig = Annotated[S3SourceConfig | LocalSourceConfig, Field(discriminator="type")]


_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class DatabaseTableConfig(_Strict):
    """One table (or custom query) of a database source, extracted into bronze as one asset.

    ``load: full`` extracts every row each time (a snapshot: the newest full extraction replaces the rows before
    it); ``incremental`` extracts the rows whose ``watermark`` column (a timestamp or a number) is above the
    watermark kept in the ledger — the first extraction, and one after a reset, is full. ``watermark_lag`` makes an
    incremental load commit-safe: each extraction reads again the rows up to that far below the watermark, so a
    row committed late with an earlier watermark value is still read; rows read twice are told apart by the
    declared ``primary_key``. ``bad_values`` says what a value that does not fit its column's type does (NaN in a
    numeric column): ``rescue`` lands it as NULL with the value kept in ``_rescued_data``; ``fail`` fails the
    extraction naming the row, the column and the value.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")  # the asset's name, and the table's unless `table` says
    table: str | None = None  # [schema.]table; default: `name`
    query: str | None = None  # a SELECT instead of a table
    load: Literal["full", "incremental"] = "full"
    watermark: str | None = None  # the column incremental loads compare
    # How far below the watermark each incremental extraction reads again: a duration ("5m") for a timestamp
    # watermark, in the watermark's own units for a number (e.g. 100 ids).
    watermark_lag: Duration | None = None
    primary_key: tuple[str, ...] = ()  # the columns that identify a row (a string for one column)
    bad_values: Literal["rescue", "fail"] = "rescue"
    batch_rows: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("watermark_lag")
    @classmethod
    def _lag_is_a_duration(cls, value: int | float | str | None) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("a watermark lag must be above zero (leave it out for none)")
        return seconds

    @field_validator("primary_key", mode="before")
    @classmethod
    def _key_is_a_list_of_columns(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("primary_key")
    @classmethod
    def _key_columns_are_identifiers(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        for column in columns:
            if not _IDENTIFIER_RE.match(column):
                raise ValueError(f"{column!r} is not a column name")
        if len({c.casefold() for c in columns}) < len(columns):
            raise ValueError("a primary key names each column once")
        return columns

    @field_validator("table")
    @classmethod
    def _table_is_an_identifier(cls, table: str | None) -> str | None:
        if table is not None and not all(_IDENTIFIER_RE.match(part) for part in table.split(".")):
            raise ValueError(f"{table!r} is not a [schema.]table name")
        return table

    @field_validator("watermark")
    @classmethod
    def _watermark_is_an_identifier(cls, column: str | None) -> str | None:
        if column is not None and not _IDENTIFIER_RE.match(column):
            raise ValueError(f"{column!r} is not a column name")
        return column

    @model_validator(mode="after")
    def _load_is_complete(self) -> DatabaseTableConfig:
        if self.table and self.query:
            raise ValueError("give a table or a query, not both")
        if self.load == "incremental" and not self.watermark:
            raise ValueError("an incremental load needs its watermark column (watermark)")
        if self.watermark_lag is not None:
            if self.load != "incremental":
                raise ValueError("watermark_lag applies to incremental loads (load: incremental)")
            if not self.primary_key:
                raise ValueError(
                    "watermark_lag reads rows again: declare the primary_key that tells a row read twice apart"
                )
        return self

    @property
    def label(self) -> str:
        """What the ledger records as the extraction's object key: the table, or ``query:<name>``."""
        return f"query:{self.name}" if self.query else (self.table or self.name)


class PostgresSourceConfig(_Strict):
    """A database source (``type: postgres``; SQLAlchemy underneath, so other databases can follow).

    The connection URL comes from the environment variable named by ``url_env``, never from the file.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    type: Literal["postgres"] = "postgres"
    url_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    tables: tuple[DatabaseTableConfig, ...] = Field(min_length=1)
    schedule: str | None = "*/15 * * * *"  # cron for the source's extraction job; null: run it by hand
    retries: RetryConfig = RetryConfig()
    max_replays: int = Field(default=0, ge=0, le=0)  # a failed extraction is redone by the next, not replayed
    max_attempts: int = Field(default=1, ge=1, le=1)  # a run that dies: its extraction is quarantined at once

    @model_validator(mode="after")
    def _table_names_are_unique(self) -> PostgresSourceConfig:
        names = [t.name for t in self.tables]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"table names must be unique within a source; repeated: {', '.join(repeated)}")
        return self

    @property
    def bucket(self) -> str:
        """What the ledger and bronze lineage record in the bucket column: the database source's type."""
        return "postgres"

    def table(self, name: str) -> DatabaseTableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise UnknownSourceError(f"source {self.name!r} has no table {name!r}")

    def url(self) -> str:
        url = os.environ.get(self.url_env)
        if not url:
            raise ConfigError(f"database source {self.name!r}: the environment variable {self.url_env} is not set")
        return url


class S3BronzeConfig(_Strict):
    bucket: str
    prefix: str = "bronze"

    @field_validator("bucket")
    @classmethod
    def _bucket_is_valid(cls, bucket: str) -> str:
        return S3SourceConfig._bucket_is_valid(bucket)

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")


class BronzeConfig(_Strict):
    s3: S3BronzeConfig | None = None
    local_dir: Path | None = None


class DeadLetterConfig(_Strict):
    """Where dead-letter records go: an S3 bucket/prefix (default: the bronze bucket, ``dlq``) and a folder."""

    s3: S3BronzeConfig | None = None
    local_dir: Path | None = None


class Settings(_Strict):
    bronze: BronzeConfig = BronzeConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    # A run renews its lease on the versions it holds every third of this; a lease not renewed for this long
    # means the run died, and its versions are released.
    lease_seconds: int = Field(default=60, ge=2, le=3600)
    # A requested version no run has claimed after this long, with no queued or running run for its request,
    # is requested again under a new run key.
    request_timeout_seconds: int = Field(default=600, ge=1)
    max_runs_per_tick: int = Field(default=8, ge=1, le=100)
    # Time a discovery tick may spend listing, shared by the sources; a listing not done by then resumes next tick.
    listing_budget_seconds: float = Field(default=20, gt=0, le=50)
    # Documents one run works on at once: one's downloads and uploads overlap another's parsing and event writes.
    documents_in_flight: int = Field(default=4, ge=1, le=32)
    # A retry delay above this ends the run for that version: it goes back to the ledger with a not-before time.
    max_in_run_backoff_seconds: float = Field(default=10, ge=0, le=3600)
    # Resident memory a run's documents may use, beyond what the run process holds when they start (lib/memory.py);
    # past it one document fails as a resource failure, retried alone, instead of the kernel killing the run.
    run_memory_limit: Size | None = "4GiB"
    sources: tuple[SourceConfig, ...] = Field(min_length=1)
    databases: tuple[PostgresSourceConfig, ...] = ()
    partitions: PartitionRetention = PartitionRetention()

    @model_validator(mode="after")
    def _sources_fit_bronze(self) -> Settings:
        names = [s.name for s in (*self.sources, *self.databases)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        for source in self.sources:
            if source.type == "s3" and self.bronze.s3 is None:
                raise ValueError(f"source '{source.name}' is on S3 but bronze.s3 is not configured")
            if source.type == "local" and self.bronze.local_dir is None:
                raise ValueError(f"source '{source.name}' is a local folder but bronze.local_dir is not set")
        return self

    @field_validator("run_memory_limit")
    @classmethod
    def _memory_is_a_size(cls, value: int | str | None) -> int | None:
        if value is None:
            return None
        size = parse_size(value)
        # Refused as the sources file loads: a budget no document fits in would fail every run at its start and,
        # run after run, end the waiting documents quarantined.
        check_budget(size)
        return size

    @property
    def run_memory_bytes(self) -> int | None:
        return None if self.run_memory_limit is None else int(self.run_memory_limit)

    def source(self, name: str) -> S3SourceConfig | LocalSourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise UnknownSourceError(f"no source named {name!r} in the sources file (was it removed?)")

    def retain_seconds(self, source_name: str) -> float:
        """How long a landed document of ``source_name`` keeps its partition (its own period, or the global one)."""
        source = self.source(source_name)
        return float(source.partitions.retain) if source.partitions else self.partitions.retain_seconds

    def has_source(self, name: str) -> bool:
        return any(source.name == name for source in self.sources)

    def database(self, name: str) -> PostgresSourceConfig:
        for source in self.databases:
            if source.name == name:
                return source
        raise UnknownSourceError(f"no database source named {name!r} in the sources file (was it removed?)")

    def has_database(self, name: str) -> bool:
        return any(source.name == name for source in self.databases)

    def any_source(self, name: str) -> S3SourceConfig | LocalSourceConfig | PostgresSourceConfig:
        """A file source or a database source by name."""
        return self.database(name) if self.has_database(name) else self.source(name)

    def database_bronze(self) -> Literal["s3", "local"]:
        """Where database extractions land: the S3 bronze root when there is one, else the local one."""
        return "s3" if self.bronze.s3 else "local"

    def dead_letter_s3(self) -> S3BronzeConfig:
        return self.dead_letter.s3 or S3BronzeConfig(bucket=self.bronze.s3.bucket, prefix="dlq")

    def dead_letter_dir(self) -> Path:
        return self.dead_letter.local_dir or self.bronze.local_dir.parent / "dlq"

    def bronze_roots(self) -> list[str]:
        """Every bronze root in use, as the URIs/paths dbt reads."""
        roots = []
        databases = self.database_bronze() if self.databases else None
        if self.bronze.s3 and (any(s.type == "s3" for s in self.sources) or databases == "s3"):
            roots.append(self.bronze.s3.root)
        if self.bronze.local_dir and (any(s.type == "local" for s in self.sources) or databases == "local"):
            roots.append(str(self.bronze.local_dir))
        return roots


def _describe(error: dict, raw: dict) -> str:
    """Turn one pydantic error into 'source 'orders': field 'include': ...'."""
    loc = list(error["loc"])
    where = []
    if len(loc) >= 2 and loc[0] in ("sources", "databases") and isinstance(loc[1], int):
        entries = raw.get(loc[0]) or []
        entry = entries[loc[1]] if loc[1] < len(entries) else {}
        name = entry.get("name") if isinstance(entry, dict) else None
        where.append(f"source '{name}'" if name else f"source #{loc[1] + 1}")
        loc = [part for part in loc[2:] if part not in ("s3", "local")]
    field = ".".join(str(part) for part in loc)
    if field:
        where.append(f"field '{field}'")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        where.append("field 'type'")
        message = "must be one of: s3, local"
    return f"{': '.join(where) or 'file'}: {message}"


def _resolve_paths(raw: dict, base: Path) -> dict:
    def resolve(value: object) -> object:
        return str((base / str(value)).resolve()) if value is not None else value

    for section in ("bronze", "dead_letter"):
        block = raw.get(section)
        if isinstance(block, dict) and "local_dir" in block:
            block["local_dir"] = resolve(block["local_dir"])
    for source in raw.get("sources") or []:
        if isinstance(source, dict) and "path" in source:
            source["path"] = resolve(source["path"])
    return raw


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate a sources file; raise ConfigError naming the source and field on any problem."""
    path = Path(path or os.environ.get(SOURCES_FILE_ENV) or DEFAULT_SOURCES_FILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the sources file: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'sources' (and optionally 'bronze')")
    raw = _resolve_paths(raw, path.parent)
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        # A source that fails validation also makes the sources list look empty; that echo only confuses.
        if len(errors) > 1:
            errors = [err for err in errors if err["type"] != "too_short"]
        problems = "; ".join(_describe(err, raw) for err in errors)
        raise ConfigError(f"{path}: {problems}") from None


@functools.cache
def default_settings() -> Settings:
    """The settings Dagster loads with, read once per process."""
    return load_settings()


def bronze_roots() -> list[str]:
    """The bronze roots of the default settings, as passed to dbt."""
    return default_settings().bronze_roots()
