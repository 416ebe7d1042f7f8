import dagster as dg

from ingestion_project.transform.assets import warehouse_dbt_assets

build_warehouse = dg.define_asset_job(
    name="build_warehouse",
    selection=dg.AssetSelection.assets(warehouse_dbt_assets),
    description="dbt build of the warehouse (staging views, marts, tests) over every bronze root.",
    # dagster_home/dagster.yaml limits this tag to one run at a time: DuckDB allows a single writer.
    tags={"ingestion/warehouse": "dbt"},
)
