"""The warehouse code location: the ledger snapshot, the dbt models and their checks, and what builds them.

A code location of its own (see workspace.yaml), so that ingestion runs never import dbt: each run process loads
only the location of its job. The dbt project is prepared and its manifest read here, while the definitions are
built, not when a module is imported.
"""

import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion_project.failures.assets import failed_documents_are_dead_lettered, ingestion_ledger, ledger_is_conserved
from ingestion_project.ingestion.resources import DEFAULT_LEDGER
from ingestion_project.transform.assets import define_warehouse_dbt_assets
from ingestion_project.transform.jobs import build_warehouse
from ingestion_project.transform.project import prepared_dbt_project
from ingestion_project.transform.sensors import warehouse_after_ingestion_sensor

defs = dg.Definitions(
    assets=[ingestion_ledger, define_warehouse_dbt_assets()],
    asset_checks=[ledger_is_conserved, failed_documents_are_dead_lettered],
    jobs=[build_warehouse],
    sensors=[warehouse_after_ingestion_sensor],
    resources={"dbt": DbtCliResource(project_dir=prepared_dbt_project()), "ledger": DEFAULT_LEDGER},
)
