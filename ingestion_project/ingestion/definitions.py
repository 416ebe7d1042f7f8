import dagster as dg

from ingestion_project.config import default_settings
from ingestion_project.failures.reconcile import ingestion_canceled_run_sensor, ingestion_failed_run_sensor
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.freshness import (
    check_source_freshness_job,
    source_freshness_schedule,
    sources_are_fresh,
)
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.resources import DEFAULT_LEDGER, IngestionResource, S3Resource
from ingestion_project.ingestion.sensors import document_discovery_sensor

default_settings()  # validate the sources file at load: a bad file fails here, naming the source and field

defs = dg.Definitions(
    assets=[raw_documents],
    asset_checks=[sources_are_fresh],
    jobs=[ingest_documents_job, check_source_freshness_job],
    schedules=[source_freshness_schedule],
    sensors=[document_discovery_sensor, ingestion_failed_run_sensor, ingestion_canceled_run_sensor],
    resources={
        "ingestion": IngestionResource(s3=S3Resource()),
        "ledger": DEFAULT_LEDGER,
    },
)
