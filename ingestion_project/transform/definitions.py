"""The warehouse domain: the dbt models and their checks, built by declarative automation."""

import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion_project.config import Settings
from ingestion_project.transform.assets import warehouse_dbt_assets_for
from ingestion_project.transform.automation import build_warehouse_job, warehouse_automation_sensor
from ingestion_project.transform.project import prepared_dbt_project


def build_defs(settings: Settings) -> dg.Definitions:
    """The dbt project is prepared and its manifest read here, when the definitions are built.

    The location's runs — the automation's, whose job is the implicit asset job — run in one process: a step per
    process would load the location (dagster-dbt, the manifest) once per step, three times a build.
    """
    return dg.Definitions(
        assets=[warehouse_dbt_assets_for(settings)],
        jobs=[build_warehouse_job],
        executor=dg.in_process_executor,
        sensors=[warehouse_automation_sensor],
        resources={"dbt": DbtCliResource(project_dir=prepared_dbt_project())},
    )
