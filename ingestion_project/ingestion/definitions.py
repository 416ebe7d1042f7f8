import dagster as dg

from ingestion_project.config import SOURCES_FILE_ENV, default_settings
from ingestion_project.databases.assets import database_assets, database_jobs, database_schedules
from ingestion_project.failures.reconcile import ingestion_canceled_run_sensor, ingestion_failed_run_sensor
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.freshness import (
    check_source_freshness_job,
    source_freshness_schedule,
    sources_are_fresh,
)
from ingestion_project.ingestion.health_check import platform_is_healthy
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.quality_checks import quality_checks
from ingestion_project.ingestion.resources import DEFAULT_LEDGER, IngestionResource, S3Resource, from_environment
from ingestion_project.ingestion.sensors import document_discovery_sensor

# Validated at load: a bad sources file fails here, naming the source and field. Its database sources become assets.
settings = default_settings()

defs = dg.Definitions(
    assets=[raw_documents, *database_assets(settings)],
    asset_checks=[sources_are_fresh, platform_is_healthy, *quality_checks(settings)],
    jobs=[ingest_documents_job, check_source_freshness_job, *database_jobs(settings)],
    schedules=[source_freshness_schedule, *database_schedules(settings)],
    sensors=[document_discovery_sensor, ingestion_failed_run_sensor, ingestion_canceled_run_sensor],
    resources={
        # Configured from the environment, shown in the UI as variables: the sources file and the S3 endpoint.
        "ingestion": IngestionResource(
            s3=S3Resource(endpoint_url=from_environment("AWS_ENDPOINT_URL_S3")),
            sources_file=from_environment(SOURCES_FILE_ENV),
        ),
        "ledger": DEFAULT_LEDGER,
    },
)
