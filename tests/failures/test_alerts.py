"""Alerts reach a webhook: a local HTTP receiver on loopback gets a dead-lettered document and a failed run."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
import sqlalchemy as sa

from ingestion_project.failures.alerts import AlertChannel, dead_letter_alert_sensor, run_failure_alert_sensor
from ingestion_project.lib.ledger import processed_files
from tests.ingestion.test_raw_documents import run_batch, sensor_requests


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def tick(resources, instance, alerts, cursor=None):
    with dg.build_sensor_context(
        instance=instance, resources={"ledger": resources["ledger"], "alerts": alerts}, cursor=cursor
    ) as context:
        result = dead_letter_alert_sensor(context)
        return result, context.cursor


def test_a_dead_lettered_document_reaches_the_webhook_once(inbox, write_sources, resources_for, receiver):
    resources = resources_for(write_sources([{"name": "inbox", "type": "local", "path": str(inbox)}]))
    (inbox / "good.csv").write_text("id,amount\n1,2\n")
    (inbox / "ragged.csv").write_text("id,amount\n1,2,3\n")
    alerts = AlertChannel(webhook_url=receiver.url)
    with dg.DagsterInstance.ephemeral() as instance:
        for request in sensor_requests(resources, instance):
            run_batch(resources, instance, request)
        result, cursor = tick(resources, instance, alerts)
        assert "1 new dead letter" in result.skip_message
        again, cursor = tick(resources, instance, alerts, cursor)  # nothing new: nothing sent
        assert again.skip_message == "nothing new to alert"
    [alert] = receiver.received
    assert alert["alert"] == "dead_letters"
    assert list(alert["details"]["new"]) == ["inbox:/ragged.csv"]
    assert "CSV line 2 has 3 fields but the header has 2" in alert["summary"]


def test_an_undelivered_alert_is_sent_again_on_the_next_tick(inbox, write_sources, resources_for, receiver):
    resources = resources_for(write_sources([{"name": "inbox", "type": "local", "path": str(inbox)}]))
    (inbox / "ragged.csv").write_text("id,amount\n1,2,3\n")
    with dg.DagsterInstance.ephemeral() as instance:
        for request in sensor_requests(resources, instance):
            run_batch(resources, instance, request)
        closed = AlertChannel(webhook_url="http://127.0.0.1:9/unreachable", timeout_seconds=2)
        _, cursor = tick(resources, instance, closed)
        tick(resources, instance, AlertChannel(webhook_url=receiver.url), cursor)
    assert [a["alert"] for a in receiver.received] == ["dead_letters"]


def test_a_document_waiting_past_the_backlog_age_is_alerted(inbox, write_sources, resources_for, receiver, monkeypatch):
    resources = resources_for(write_sources([{"name": "inbox", "type": "local", "path": str(inbox)}]))
    (inbox / "slow.csv").write_text("id\n1\n")
    monkeypatch.setenv("INGESTION_ALERT_BACKLOG_AGE_SECONDS", "600")
    with dg.DagsterInstance.ephemeral() as instance:
        sensor_requests(resources, instance)  # discovered and requested, never run
        book = resources["ledger"].ledger()
        with book.engine.begin() as conn:
            conn.execute(sa.update(processed_files).values(discovered_at=datetime.now(UTC) - timedelta(hours=2)))
        result, _ = tick(resources, instance, AlertChannel(webhook_url=receiver.url))
    assert result.skip_message == "alerted: backlog age"
    [alert] = receiver.received
    assert alert["alert"] == "backlog_age" and alert["details"]["partition_key"] == "inbox:/slow.csv"


def test_a_failed_run_reaches_the_webhook(receiver):
    @dg.op
    def explode():
        raise RuntimeError("the warehouse is on fire")

    @dg.job
    def doomed():
        explode()

    with dg.DagsterInstance.ephemeral() as instance:
        result = doomed.execute_in_process(instance=instance, raise_on_error=False)
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"alerts": AlertChannel(webhook_url=receiver.url)},
        ).for_run_failure()
        run_failure_alert_sensor(context)
    [alert] = receiver.received
    assert alert["alert"] == "run_failed" and alert["details"]["job"] == "doomed"
    assert alert["details"]["run_id"] == result.run_id
