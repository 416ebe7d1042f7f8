"""The operations domain in the ingestion code location: the run-status sensors that reconcile the ledger, replay,
alerts and health. Its ledger snapshot writes DuckDB, so it is in the warehouse location
(`ledger_snapshot_defs` in ingestion_project/failures/assets.py)."""

import dagster as dg

from ingestion_project.failures.alerts import alert_channel, dead_letter_alert_sensor, run_failure_alert_sensor
from ingestion_project.failures.health_check import platform_is_healthy
from ingestion_project.failures.integrity import bronze_is_intact
from ingestion_project.failures.replay import replay_dead_letters_job, replay_dead_letters_schedule
from ingestion_project.failures.retention import partition_retention_job, partition_retention_schedule
from ingestion_project.failures.run_sensors import ingestion_canceled_run_sensor, ingestion_failed_run_sensor


def build_defs() -> dg.Definitions:
    """What runs beside ingestion: reconciliation, replay, partition retention, alerts, the health and bronze
    integrity checks."""
    return dg.Definitions(
        asset_checks=[platform_is_healthy, bronze_is_intact],
        jobs=[replay_dead_letters_job, partition_retention_job],
        schedules=[replay_dead_letters_schedule, partition_retention_schedule],
        sensors=[
            ingestion_failed_run_sensor,
            ingestion_canceled_run_sensor,
            run_failure_alert_sensor,
            dead_letter_alert_sensor,
        ],
        resources={"alerts": alert_channel()},
    )
