"""The documents domain: discovery, ingestion runs into bronze, and the checks on raw_documents."""

import dagster as dg

from ingestion_project.config import Settings
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.freshness import (
    check_source_freshness_job,
    source_freshness_schedule,
    sources_are_fresh,
)
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.quality_checks import quality_checks
from ingestion_project.ingestion.sensors import document_discovery_sensor


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_documents],
        asset_checks=[sources_are_fresh, *quality_checks(settings)],
        jobs=[ingest_documents_job, check_source_freshness_job],
        schedules=[source_freshness_schedule],
        sensors=[document_discovery_sensor],
    )
