import json

import pytest
from dagster_aws.s3 import S3Resource

from ingestion_project.ingestion.resources import IngestionResource, LedgerResource

# Real retries, but with tenth-of-a-second backoff so tests stay quick.
FAST_RETRIES = {
    "transient": {"max_retries": 3, "delay_seconds": 0.1, "max_delay_seconds": 0.3},
    "external": {"max_retries": 1, "delay_seconds": 0.1, "max_delay_seconds": 0.1},
}


@pytest.fixture
def write_sources(tmp_path):
    """Write a sources file from a list of source dicts; bronze goes to tmp (local) and a bucket (S3)."""

    def write(sources: list[dict], bronze_bucket: str = "bronze", **settings) -> str:
        path = tmp_path / "sources.yaml"
        config = {"bronze": {"s3": {"bucket": bronze_bucket, "prefix": "bronze"}, "local_dir": "bronze"}, **settings}
        sources = [{"retries": FAST_RETRIES, **source} for source in sources]
        path.write_text(json.dumps({**config, "sources": sources}), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def ledger_resource(tmp_path):
    return LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def resources_for(ledger_resource):
    def build(sources_file: str) -> dict:
        return {
            "ingestion": IngestionResource(s3=S3Resource(), sources_file=sources_file),
            "ledger": ledger_resource,
        }

    return build
