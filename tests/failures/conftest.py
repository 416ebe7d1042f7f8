import uuid

import dagster as dg
import pytest

from ingestion_project.failures.replay import replay_dead_letters_job
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.jobs import ingest_documents_job
from ingestion_project.ingestion.partitions import documents_partitions
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
            sensors=[document_discovery_sensor],
            resources=resources,
        )
        self.ledger = resources["ledger"].ledger()

    def tick(self):
        with dg.build_sensor_context(instance=self.instance, resources=self.resources) as context:
            result = document_discovery_sensor(context)
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests:
                self.instance.add_dynamic_partitions(documents_partitions.name, list(request.partition_keys))
        return result

    def run(self, partition_key: str, **kwargs):
        return self.defs.get_job_def("ingest_documents").execute_in_process(
            instance=self.instance, partition_key=partition_key, raise_on_error=False, **kwargs
        )

    def run_requests(self):
        """One sensor tick and every run it requests; returns (tick result, run results)."""
        result = self.tick()
        runs = [self.run(r.partition_key, tags=r.tags) for r in getattr(result, "run_requests", [])]
        return result, runs

    def replay(self):
        return self.defs.get_job_def("replay_dead_letters_job").execute_in_process(instance=self.instance)


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
