import dagster as dg

from ingestion_project.transform.assets import INGESTION_LEDGER, WAREHOUSE_GROUP

build_warehouse = dg.define_asset_job(
    name="build_warehouse",
    # The ledger snapshot first (dbt's `ledger` sources), then dbt build. Every dbt model is in the warehouse group,
    # so the job is declared without reading the dbt manifest.
    selection=dg.AssetSelection.assets(INGESTION_LEDGER) | dg.AssetSelection.groups(WAREHOUSE_GROUP),
    description="Snapshot the ledger (its conservation check gates the rest), then dbt build of the warehouse.",
    # dagster_home/dagster.yaml limits this tag to one run at a time: DuckDB allows a single writer.
    tags={"ingestion/warehouse": "dbt"},
    # One process per run: a step subprocess would import the definitions (and dagster-dbt) a second time.
    executor_def=dg.in_process_executor,
)
