import dagster as dg

from ingestion_project.ingestion.assets import raw_documents

ingest_documents_job = dg.define_asset_job(
    name="ingest_documents",
    # Without the checks on raw_documents: they read the ledger as a whole, so they run on their own schedule
    # (check_source_freshness), not as steps of every batch.
    selection=dg.AssetSelection.assets(raw_documents).without_checks(),
    description="Ingest a batch of pinned document versions (or the selected partitions) into bronze.",
    # One process per run: a step subprocess would import the definitions (and dagster-dbt) a second time.
    executor_def=dg.in_process_executor,
)
