import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion_project.transform.assets import warehouse_dbt_assets
from ingestion_project.transform.jobs import build_warehouse
from ingestion_project.transform.project import dbt_project
from ingestion_project.transform.sensors import warehouse_after_ingestion_sensor

defs = dg.Definitions(
    assets=[warehouse_dbt_assets],
    jobs=[build_warehouse],
    sensors=[warehouse_after_ingestion_sensor],
    resources={"dbt": DbtCliResource(project_dir=dbt_project)},
)
