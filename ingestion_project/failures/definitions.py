import dagster as dg

from ingestion_project.failures.assets import failed_documents_are_dead_lettered, ingestion_ledger, ledger_is_conserved
from ingestion_project.failures.replay import replay_dead_letters_job, replay_dead_letters_schedule

defs = dg.Definitions(
    assets=[ingestion_ledger],
    asset_checks=[ledger_is_conserved, failed_documents_are_dead_lettered],
    jobs=[replay_dead_letters_job],
    schedules=[replay_dead_letters_schedule],
)
