"""warehouse_automation_sensor: evaluates the automation conditions of the ledger snapshot and the dbt models."""

import dagster as dg

from ingestion_project.core.keys import INGESTION_LEDGER
from ingestion_project.transform.assets import WAREHOUSE_GROUP

# The ledger snapshot and every dbt model; the conditions are on the assets (ingestion_project.core.automation).
WAREHOUSE_SELECTION = dg.AssetSelection.assets(INGESTION_LEDGER) | dg.AssetSelection.groups(WAREHOUSE_GROUP)

# A warehouse build by hand (Launchpad, or `dagster job launch -j build_warehouse`): the snapshot, the models and
# their checks in one process, as the automation's runs are (the location's default executor is in-process too).
build_warehouse_job = dg.define_asset_job(
    name="build_warehouse",
    selection=WAREHOUSE_SELECTION,
    description="Snapshot the ledger and build every dbt model and test, in one process.",
    executor_def=dg.in_process_executor,
)

warehouse_automation_sensor = dg.AutomationConditionSensorDefinition(
    "warehouse_automation_sensor",
    target=WAREHOUSE_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    # One run per tick for everything requested, never a backfill: nothing here is partitioned.
    emit_backfills=False,
    description="Builds the ledger snapshot and the dbt models after documents land, fail or are extracted.",
)
