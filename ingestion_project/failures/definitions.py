import dagster as dg

from ingestion_project.failures.alerts import alert_channel, dead_letter_alert_sensor, run_failure_alert_sensor
from ingestion_project.failures.replay import replay_dead_letters_job, replay_dead_letters_schedule

# The ledger snapshot (`ingestion_ledger`) and its checks are built with the dbt models, so they live in the
# warehouse code location (ingestion_project/transform/definitions.py).
defs = dg.Definitions(
    jobs=[replay_dead_letters_job],
    schedules=[replay_dead_letters_schedule],
    sensors=[run_failure_alert_sensor, dead_letter_alert_sensor],
    resources={"alerts": alert_channel()},
)
