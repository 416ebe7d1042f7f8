import dagster as dg

from ingestion_project.ingestion.assets import raw_documents

ingest_documents_job = dg.define_asset_job(
    name="ingest_documents",
    selection=dg.AssetSelection.assets(raw_documents),
    description="Ingest a batch of pinned document versions (or the selected partitions) into bronze.",
    # One process per run: a step subprocess would import the definitions (and dagster-dbt) a second time.
    executor_def=dg.in_process_executor,
)
