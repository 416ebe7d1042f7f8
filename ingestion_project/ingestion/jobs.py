import dagster as dg

from ingestion_project.failures.hooks import dead_letter_hook
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.partitions import documents_partitions

ingest_documents_job = dg.define_asset_job(
    name="ingest_documents",
    selection=dg.AssetSelection.assets(raw_documents),
    partitions_def=documents_partitions,
    description="Ingest the documents of the selected partitions into bronze.",
    # On the job, so sensor-launched runs carry it: a document that fails for good is dead-lettered.
    hooks={dead_letter_hook},
    # One process per run: a step subprocess would import the definitions (and dagster-dbt) a second time.
    executor_def=dg.in_process_executor,
)
