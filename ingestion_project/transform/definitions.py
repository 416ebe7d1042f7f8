"""The warehouse domain: the dbt models and their checks, built by declarative automation."""

import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion_project.config import Settings
from ingestion_project.transform.assets import warehouse_dbt_assets_for
from ingestion_project.transform.automation import warehouse_automation_sensor
from ingestion_project.transform.project import prepared_dbt_project


def build_defs(settings: Settings) -> dg.Definitions:
    """The dbt project is prepared and its manifest read here, when the definitions are built."""
    return dg.Definitions(
        assets=[warehouse_dbt_assets_for(settings)],
        sensors=[warehouse_automation_sensor],
        resources={"dbt": DbtCliResource(project_dir=prepared_dbt_project())},
    )
