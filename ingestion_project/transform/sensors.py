"""warehouse_after_ingestion_sensor: rebuild the warehouse once new documents have reached bronze."""

from __future__ import annotations

import dagster as dg

from ingestion_project.config import default_settings
from ingestion_project.databases.keys import database_asset_keys
from ingestion_project.transform.assets import RAW_DOCUMENTS
from ingestion_project.transform.jobs import build_warehouse

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def newest_materialization_after(instance: dg.DagsterInstance, cursor: str | None) -> int | None:
    """Storage id of the newest materialization of `raw_documents` or a database table after the cursor (a
    storage id), if any."""
    newest = None
    for key in (RAW_DOCUMENTS, *database_asset_keys(default_settings())):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=int(cursor) if cursor else None),
            limit=1,
            ascending=False,
        ).records
        if records and (newest is None or records[0].storage_id > newest):
            newest = records[0].storage_id
    return newest


def active_run_ids(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Ids of the runs of `job_name` that are queued or in progress."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES), limit=5)
    return [run.run_id for run in runs]


@dg.sensor(
    job=build_warehouse,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one warehouse build when raw_documents has new materializations.",
)
def warehouse_after_ingestion_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    newest = newest_materialization_after(context.instance, context.cursor)
    if newest is None:
        return dg.SkipReason(f"No new raw_documents materializations after storage id {context.cursor or 0}.")
    # Keep the cursor while a build is queued or running: documents it may miss trigger the next build.
    active = active_run_ids(context.instance, build_warehouse.name)
    if active:
        return dg.SkipReason(
            f"New raw_documents materializations, but {build_warehouse.name} is already active: {', '.join(active)}."
        )
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=str(newest))], cursor=str(newest))
