"""warehouse_after_ingestion_sensor: one build per batch of new raw_documents materializations."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from ingestion_project.transform.jobs import build_warehouse
from ingestion_project.transform.sensors import warehouse_after_ingestion_sensor

PARTITIONS = ["orders:landing/orders/2026-01.csv", "orders:landing/orders/2026-02.ndjson"]


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("documents", PARTITIONS)
        yield instance


def materialize_raw_documents(instance: dg.DagsterInstance, *partitions: str) -> None:
    for partition in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_documents", partition=partition))


def tick(instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return warehouse_after_ingestion_sensor(context)


def test_sensor_skips_without_materializations(instance: dg.DagsterInstance):
    result = tick(instance)

    assert isinstance(result, dg.SkipReason)
    assert "No new raw_documents materializations" in result.skip_message


def test_sensor_requests_one_build_for_new_materializations(instance: dg.DagsterInstance):
    materialize_raw_documents(instance, *PARTITIONS)
    [newest_record] = instance.fetch_materializations(dg.AssetKey("raw_documents"), limit=1).records
    newest = newest_record.storage_id

    result = tick(instance)

    assert isinstance(result, dg.SensorResult)
    assert [r.run_key for r in result.run_requests] == [str(newest)]
    assert result.cursor == str(newest)


def test_sensor_skips_when_nothing_new_since_cursor(instance: dg.DagsterInstance):
    materialize_raw_documents(instance, *PARTITIONS)
    first = tick(instance)

    second = tick(instance, cursor=first.cursor)

    assert isinstance(second, dg.SkipReason)


def test_sensor_triggers_again_after_a_later_materialization(instance: dg.DagsterInstance):
    materialize_raw_documents(instance, PARTITIONS[0])
    first = tick(instance)
    materialize_raw_documents(instance, PARTITIONS[1])

    second = tick(instance, cursor=first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert int(second.cursor) > int(first.cursor)
    assert [r.run_key for r in second.run_requests] == [second.cursor]


# A QUEUED run needs a code-location origin to be stored; the sensor treats it exactly like these.
@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
def test_sensor_waits_for_an_active_build_then_catches_up(instance: dg.DagsterInstance, status: dg.DagsterRunStatus):
    materialize_raw_documents(instance, PARTITIONS[0])
    first = tick(instance)
    active = instance.add_run(dg.DagsterRun(job_name=build_warehouse.name, run_id=str(uuid.uuid4()), status=status))
    materialize_raw_documents(instance, PARTITIONS[1])

    while_active = tick(instance, cursor=first.cursor)
    instance.report_run_canceled(active)
    after = tick(instance, cursor=first.cursor)

    assert isinstance(while_active, dg.SkipReason)
    assert active.run_id in while_active.skip_message
    assert isinstance(after, dg.SensorResult)
    assert int(after.cursor) > int(first.cursor)


def test_sensor_ignores_finished_builds(instance: dg.DagsterInstance):
    materialize_raw_documents(instance, *PARTITIONS)
    instance.add_run(
        dg.DagsterRun(job_name=build_warehouse.name, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS)
    )

    assert isinstance(tick(instance), dg.SensorResult)
