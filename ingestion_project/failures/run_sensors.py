"""The run-status sensors that reconcile the ledger when an ingestion run fails or is canceled."""

import dagster as dg

from ingestion_project.core.reconcile import log_reconciliation, reconcile_run
from ingestion_project.core.resources import IngestionResource, LedgerResource


def _reconcile_finished(context, ingestion: IngestionResource, ledger: LedgerResource, ended: str) -> None:
    settings, store_for = ingestion.settings(), ingestion.dead_letter_store
    found = reconcile_run(ledger.ledger(), settings, store_for, context.dagster_run, ended)
    log_reconciliation(context.log, found)


@dg.run_failure_sensor(
    name="ingestion_failed_run_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Releases the document versions a failed run held or never claimed, and writes pending dead letters.",
)
def ingestion_failed_run_sensor(
    context: dg.RunFailureSensorContext, ingestion: IngestionResource, ledger: LedgerResource
) -> None:
    _reconcile_finished(context, ingestion, ledger, "failed")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="ingestion_canceled_run_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Releases the document versions a canceled (terminated) run held or never claimed.",
)
def ingestion_canceled_run_sensor(
    context: dg.RunStatusSensorContext, ingestion: IngestionResource, ledger: LedgerResource
) -> None:
    _reconcile_finished(context, ingestion, ledger, "was canceled")
