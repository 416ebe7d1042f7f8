"""Alerts: a run that fails, dead letters that appear, workers out of disk, memory or open files, or a backlog
that ages reach people through a channel.

The channel is a webhook (``INGESTION_ALERT_WEBHOOK_URL``): each alert is one JSON POST ``{"alert", "summary",
"details"}``, which Slack incoming webhooks, Teams, PagerDuty event bridges or a small receiver of your own
accept or can map. Without a URL, alerts go to the sensor's log only. (`dagster-slack`'s
``make_slack_on_run_failure_sensor`` is the alternative for run failures, if Slack is all you need.)
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.core.failure_classes import RESOURCE
from ingestion_project.core.resources import LedgerResource

WEBHOOK_ENV = "INGESTION_ALERT_WEBHOOK_URL"
BACKLOG_AGE_ENV = "INGESTION_ALERT_BACKLOG_AGE_SECONDS"
DEFAULT_BACKLOG_AGE = timedelta(hours=1)
_MAX_LISTED = 20


class AlertChannel(dg.ConfigurableResource):
    """Where alerts go: a webhook URL (JSON POST), or only the log when it is empty."""

    webhook_url: str = ""
    timeout_seconds: float = 10.0

    def send(self, alert: str, summary: str, details: dict, log) -> bool:
        """Post one alert; False (and a logged error) when the channel refused it, so the caller retries later."""
        log.warning(f"ALERT {alert}: {summary}")
        if not self.webhook_url:
            return True
        body = json.dumps({"alert": alert, "summary": summary, "details": details}, default=str).encode()
        request = urllib.request.Request(
            self.webhook_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310 - configured
                return 200 <= response.status < 300
        except OSError as error:
            log.error(f"alert {alert} not delivered to the webhook: {error}")
            return False


def alert_channel() -> AlertChannel:
    """The channel of this deployment: the webhook in the environment when there is one (shown in the UI as an
    environment variable, not as its value)."""
    if os.environ.get(WEBHOOK_ENV):
        return AlertChannel(webhook_url=dg.EnvVar(WEBHOOK_ENV))
    return AlertChannel()


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts through the alert channel when any run fails.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertChannel) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    alerts.send(
        "run_failed",
        f"{run.job_name} run {run.run_id[:8]} failed: {message}",
        {"job": run.job_name, "run_id": run.run_id, "tags": dict(run.tags), "message": message},
        context.log,
    )


def _backlog_age() -> timedelta:
    value = os.environ.get(BACKLOG_AGE_ENV)
    return timedelta(seconds=float(value)) if value else DEFAULT_BACKLOG_AGE


def _alert_resource_exhaustion(book, alerts: AlertChannel, cursor: dict, log) -> bool:
    """Documents retrying because the worker ran short of memory, disk space or open files: once per try, since
    each is a sign the workers' disks or limits need attention before the retries run out."""
    retrying = {f"{row['id']}:{row['tries']}": row for row in book.retrying(RESOURCE)}
    new = {key: row for key, row in retrying.items() if key not in set(cursor.get("resource_alerted", []))}
    if new:
        listed = {row["partition_key"]: f"{row['error_type']}: {row['error_message']}" for row in new.values()}
        summary = f"{len(new)} document(s) retrying after the worker ran out of a local resource: " + "; ".join(
            f"{key} ({reason[:120]})" for key, reason in list(listed.items())[:3]
        )
        if not alerts.send("resource_exhausted", summary, {"retrying": dict(list(listed.items())[:_MAX_LISTED])}, log):
            return False
    cursor["resource_alerted"] = sorted(retrying)  # what is still retrying, so the cursor stays bounded
    return bool(new)


@dg.sensor(
    name="dead_letter_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Alerts when documents are dead-lettered (each new open dead letter, once), when a document is retried "
        "because a worker ran out of memory, disk space or open files (each try, once), and when a document has "
        "waited for a fate longer than the backlog age (default 1h)."
    ),
)
def dead_letter_alert_sensor(
    context: dg.SensorEvaluationContext, ledger: LedgerResource, alerts: AlertChannel
) -> dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    book = ledger.ledger()
    since = cursor.get("failed_after")
    open_letters = book.open_dead_letters(limit=10_000)
    letters = [letter for letter in open_letters if since is None or letter["failed_at"].isoformat() > since]
    said = []
    if letters:
        listed = {letter["partition_key"]: f"{letter['error_type']}: {letter['error_message']}" for letter in letters}
        open_count = len(open_letters)
        summary = f"{len(letters)} document(s) dead-lettered ({open_count} open in all): " + "; ".join(
            f"{key} ({reason[:120]})" for key, reason in list(listed.items())[:3]
        )
        if alerts.send(
            "dead_letters", summary, {"new": dict(list(listed.items())[:_MAX_LISTED]), "open": open_count}, context.log
        ):
            cursor["failed_after"] = max(letter["failed_at"] for letter in letters).isoformat()
            said.append(f"{len(letters)} new dead letter(s)")
    if _alert_resource_exhaustion(book, alerts, cursor, context.log):
        said.append("resource exhaustion")
    oldest = book.oldest_in_flight()
    now = datetime.now(UTC)
    waiting = now - oldest["discovered_at"] if oldest else timedelta(0)
    if oldest and waiting > _backlog_age():
        if cursor.get("backlog_alerted") != oldest["id"]:
            summary = (
                f"{oldest['partition_key']} has waited {waiting} for a fate ({oldest['status']}), "
                f"over the backlog age of {_backlog_age()}"
            )
            details = {"partition_key": oldest["partition_key"], "status": oldest["status"], "waiting": str(waiting)}
            if alerts.send("backlog_age", summary, details, context.log):
                cursor["backlog_alerted"] = oldest["id"]
                said.append("backlog age")
    else:
        cursor.pop("backlog_alerted", None)
    context.update_cursor(json.dumps(cursor))
    return dg.SkipReason(f"alerted: {', '.join(said)}" if said else "nothing new to alert")
