"""Resources of the ingestion domain: the configured sources with their object stores, and the ledger."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from botocore.config import Config
from pydantic import Field, PrivateAttr

from ingestion_project.config import SOURCES_FILE_ENV, LocalSourceConfig, Settings, default_settings, load_settings
from ingestion_project.lib.ledger import Ledger, create_ledger_engine
from ingestion_project.lib.object_store import LocalObjectStore, ObjectStore, S3ObjectStore


class S3Resource(dg.ConfigurableResource):
    """An S3 client configured by boto3's standard environment (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
    credentials, region), which the fields override when set.

    The project's own rather than dagster-aws's (same fields, same client): importing dagster-aws costs every run
    process about 0.8 s, which a run of small documents would otherwise spend before its first one.
    """

    endpoint_url: str | None = None
    region_name: str | None = None
    profile_name: str | None = None
    max_attempts: int = Field(default=5, ge=0, description="botocore's attempts per request (standard retry mode)")

    def get_client(self) -> Any:
        session = boto3.session.Session(profile_name=self.profile_name)
        config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"})
        return session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name, config=config)


class IngestionResource(dg.ConfigurableResource):
    """The sources file and the stores behind it: each source's landing store and its bronze store.

    S3 is reached through S3Resource, which leaves endpoint and credentials to the standard AWS environment
    (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...), so AWS, MinIO and SeaweedFS need no code change.
    """

    s3: S3Resource
    sources_file: str | None = None
    _client: object = PrivateAttr(default=None)
    _settings: Settings | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        # Read once per resource instance: it is consulted several times per document.
        if self._settings is None:
            self._settings = load_settings(self.sources_file) if self.sources_file else default_settings()
        return self._settings

    def warm_up(self) -> None:
        """Create the S3 client now if a source needs it, so threads share one (creating clients is not
        thread-safe in boto3)."""
        if any(source.type == "s3" for source in self.settings().sources):
            self._s3_client()

    def _s3_client(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def source_store(self, source_name: str) -> ObjectStore:
        source = self.settings().source(source_name)
        if isinstance(source, LocalSourceConfig):
            return LocalObjectStore(source.path)
        return S3ObjectStore(self._s3_client(), source.bucket)

    def bronze_store(self, source_name: str) -> tuple[ObjectStore, str]:
        """The store bronze for this source lands in, and the key prefix inside it."""
        settings = self.settings()
        if self._lands_locally(source_name):
            return LocalObjectStore(settings.bronze.local_dir), ""
        return S3ObjectStore(self._s3_client(), settings.bronze.s3.bucket), settings.bronze.s3.prefix.strip("/")

    def _lands_locally(self, source_name: str) -> bool:
        """Local sources land in the local bronze root; database sources where the settings put them."""
        settings = self.settings()
        if settings.has_database(source_name):
            return settings.database_bronze() == "local"
        return isinstance(settings.source(source_name), LocalSourceConfig)

    def dead_letter_store(self, source_name: str) -> tuple[ObjectStore, str]:
        """The store dead-letter records of this source go to, and the key prefix inside it."""
        settings = self.settings()
        if self._lands_locally(source_name):
            return LocalObjectStore(settings.dead_letter_dir()), ""
        target = settings.dead_letter_s3()
        return S3ObjectStore(self._s3_client(), target.bucket), target.prefix.strip("/")


LEDGER_URL_ENV = "INGESTION_LEDGER_URL"
# "production" where every pod or process must share one ledger (the Helm values and the systemd units set it).
DEPLOYMENT_ENV = "INGESTION_DEPLOYMENT"


class LedgerNotConfiguredError(RuntimeError):
    """A production deployment without a shared ledger: each pod would keep a SQLite ledger of its own."""


def require_shared_ledger(url: str | None = None) -> None:
    """Refuse to run in production (``INGESTION_DEPLOYMENT=production``) without a ledger URL, instead of creating
    a SQLite file under each pod's DAGSTER_HOME that no other pod sees."""
    if os.environ.get(DEPLOYMENT_ENV, "").strip().lower() != "production":
        return
    if url or os.environ.get(LEDGER_URL_ENV):
        return
    raise LedgerNotConfiguredError(
        f"{DEPLOYMENT_ENV}=production but {LEDGER_URL_ENV} is not set: every pod would keep its own SQLite "
        f"ledger. Set {LEDGER_URL_ENV} to the shared PostgreSQL ledger "
        "(postgresql+psycopg2://user:password@host/db), or unset INGESTION_DEPLOYMENT for a local instance."
    )


def default_ledger_url() -> str:
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'ingestion_ledger.sqlite'}"


class LedgerResource(dg.ConfigurableResource):
    """The processed-files ledger: a SQLite file under DAGSTER_HOME unless a SQLAlchemy URL is given.

    The URL comes from ``url`` or else the ``INGESTION_LEDGER_URL`` environment variable, read when the ledger
    is first used, so a database password never shows in resource config.
    """

    url: str | None = None
    _ledger: Ledger | None = PrivateAttr(default=None)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            require_shared_ledger(self.url)
            url = self.url or os.environ.get(LEDGER_URL_ENV) or default_ledger_url()
            self._ledger = Ledger(create_ledger_engine(url))
        return self._ledger


def from_environment(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when the variable is set as the definitions load — the UI shows the variable's name, not
    its value (a URL with a password stays out of it), and each run reads it — else None, the resource's default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


@functools.cache
def platform_resources() -> dict[str, dg.ConfigurableResource]:
    """The `ingestion` and `ledger` resources every code location binds, configured from the environment and shown
    in the UI as variables: the sources file, the S3 endpoint, the ledger URL.

    The same objects on every call, so that both code locations' definitions can also be merged into one (the demo,
    the tests). In production, a missing ledger URL stops the code location from loading.
    """
    require_shared_ledger()
    return {
        "ingestion": IngestionResource(
            s3=S3Resource(endpoint_url=from_environment("AWS_ENDPOINT_URL_S3")),
            sources_file=from_environment(SOURCES_FILE_ENV),
        ),
        "ledger": LedgerResource(url=from_environment(LEDGER_URL_ENV)),
    }
