import uuid

import dagster as dg
import pytest

from devtools.ticks import tick_sensor
from ingestion_project.failures.replay import replay_dead_letters_job
from ingestion_project.failures.run_sensors import ingestion_canceled_run_sensor, ingestion_failed_run_sensor
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.sensors import document_discovery_sensor
from tests.faults import S3FaultProxy


class Pipeline:
    """The real ingestion job (with its dead-letter hook), sensor and replay job, over test resources."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance):
        self.resources = resources
        self.instance = instance
        self.defs = dg.Definitions(
            assets=[raw_documents],
            jobs=[ingest_documents_job, replay_dead_letters_job],
            sensors=[document_discovery_sensor, ingestion_failed_run_sensor, ingestion_canceled_run_sensor],
            resources=resources,
        )
        self.ledger = resources["ledger"].ledger()
        self.job = self.defs.resolve_job_def("ingest_documents")

    def tick(self):
        return tick_sensor(document_discovery_sensor, self.instance, self.resources)

    def run(self, partition_key: str, **kwargs):
        """A run started on one partition, as "Materialize" in the UI starts it."""
        return self.job.execute_in_process(
            instance=self.instance, partition_key=partition_key, raise_on_error=False, **kwargs
        )

    def run_request(self, request: dg.RunRequest, **kwargs):
        """The run a sensor's run request launches: its pinned versions in the run config, its tags."""
        return self.job.execute_in_process(
            instance=self.instance,
            run_config=request.run_config,
            tags={**request.tags, "dagster/run_key": request.run_key},
            raise_on_error=False,
            **kwargs,
        )

    def run_requests(self):
        """One sensor tick and every run it requests, each followed by the run-status sensors as the daemon runs
        them; returns (tick result, run results)."""
        result = self.tick()
        runs = []
        for request in getattr(result, "run_requests", []):
            run = self.run_request(request)
            self.after_run(run.run_id)
            runs.append(run)
        return result, runs

    def after_run(self, run_id: str) -> None:
        """What the daemon's run-status sensors do once a run failed or was canceled."""
        run = self.instance.get_run_by_id(run_id)
        sensors = {
            dg.DagsterRunStatus.FAILURE: (ingestion_failed_run_sensor, dg.DagsterEventType.RUN_FAILURE),
            dg.DagsterRunStatus.CANCELED: (ingestion_canceled_run_sensor, dg.DagsterEventType.RUN_CANCELED),
        }
        if run.status not in sensors:
            return
        sensor, event_type = sensors[run.status]
        [record] = self.instance.get_records_for_run(run_id, of_type=event_type).records
        with dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=self.instance,
            dagster_run=run,
            dagster_event=record.event_log_entry.dagster_event,
            resources=self.resources,
        ) as context:
            sensor(context.for_run_failure() if run.status == dg.DagsterRunStatus.FAILURE else context)

    def replay(self):
        return self.defs.resolve_job_def("replay_dead_letters_job").execute_in_process(instance=self.instance)


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
        yield instance


@pytest.fixture
def s3_proxy(s3_server):
    """A fault-injecting loopback proxy in front of the local S3 server (see tests/faults/s3_proxy.py)."""
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def bronze_bucket(s3_client):
    """A second fresh bucket, for bronze and the dead-letter queue (prefixes ``bronze`` and ``dlq``)."""
    name = f"bronze-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    s3_client.delete_bucket(Bucket=name)
