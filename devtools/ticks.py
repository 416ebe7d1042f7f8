"""A sensor tick in this process, followed by what the daemon does with its result: the demo and the tests use it
to run a pass without a daemon."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def tick_sensor(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
    cursor: str | None = None,
) -> dg.SensorResult | dg.SkipReason:
    """Evaluate ``sensor`` once and apply its partition requests to ``instance``, as the daemon does, so that the
    runs it requests (and the next tick) see the partitions."""
    with dg.build_sensor_context(
        instance=instance, resources=resources, cursor=cursor, sensor_name=sensor.name
    ) as context:
        result = sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def skip_message(result: dg.SensorResult | dg.SkipReason | None) -> str | None:
    """Why a tick requested nothing (a SkipReason, or a SensorResult with one and its cursor); None if it did."""
    if isinstance(result, dg.SkipReason):
        return result.skip_message or ""
    if isinstance(result, dg.SensorResult) and result.skip_reason is not None and not result.run_requests:
        return result.skip_reason.skip_message or ""
    return None
