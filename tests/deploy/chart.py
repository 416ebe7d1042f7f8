"""The instance settings Dagster's Helm chart writes from a values file, as its templates do.

No cluster or `helm` runs here, so the tests read the values as the chart would: this mirrors the parts of the
chart's `configmap-instance.yaml` and its helpers that the product depends on (telemetry, python_logs,
run_monitoring, run_retries, retention, concurrency, the queued run coordinator), including the chart's refusal of
run limits set both under `concurrency.runs` and on the queued run coordinator.
"""

from __future__ import annotations

from typing import Any


class ChartRefusal(ValueError):
    """Values the chart's templates would fail on (`helm install` stops with this message)."""


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _concurrency(values: dict) -> dict | None:
    concurrency = values.get("concurrency") or {}
    if not concurrency.get("enabled"):
        return None
    pools, runs = concurrency.get("pools") or {}, concurrency.get("runs") or {}
    daemon = values.get("dagsterDaemon") or {}
    coordinator = daemon.get("runCoordinator") or {}
    if coordinator.get("enabled") and coordinator.get("type") == "QueuedRunCoordinator":
        queued = (coordinator.get("config") or {}).get("queuedRunCoordinator") or {}
        if runs.get("maxConcurrentRuns") is not None and queued.get("maxConcurrentRuns") is not None:
            raise ChartRefusal("Cannot set both concurrency.runs.maxConcurrentRuns and queuedRunCoordinator's")
        if runs.get("tagConcurrencyLimits") and queued.get("tagConcurrencyLimits"):
            raise ChartRefusal("Cannot set both concurrency.runs.tagConcurrencyLimits and queuedRunCoordinator's")
    rendered: dict[str, Any] = {}
    pool_settings = _drop_none(
        {
            "default_limit": pools.get("defaultLimit"),
            "granularity": pools.get("granularity"),
            "op_granularity_run_buffer": pools.get("opGranularityRunBuffer"),
        }
    )
    if pool_settings:
        rendered["pools"] = pool_settings
    run_settings = _drop_none(
        {
            "max_concurrent_runs": runs.get("maxConcurrentRuns"),
            "tag_concurrency_limits": runs.get("tagConcurrencyLimits") or None,
        }
    )
    if run_settings:
        rendered["runs"] = run_settings
    return rendered


def _run_monitoring(daemon: dict) -> dict | None:
    monitoring = daemon.get("runMonitoring") or {}
    if not (daemon.get("enabled", True) and monitoring.get("enabled")):
        return None
    return _drop_none(
        {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring.get("startTimeoutSeconds"),
            "cancel_timeout_seconds": monitoring.get("cancelTimeoutSeconds"),
            "max_resume_run_attempts": monitoring.get("maxResumeRunAttempts"),
            "poll_interval_seconds": monitoring.get("pollIntervalSeconds"),
        }
    )


def _python_logs(values: dict) -> dict | None:
    logs = values.get("pythonLogs")
    if not logs:
        return None
    return _drop_none(
        {
            "python_log_level": logs.get("pythonLogLevel"),
            "dagster_handler_config": logs.get("dagsterHandlerConfig"),
            "managed_python_loggers": logs.get("managedPythonLoggers"),
        }
    )


def _retention(values: dict) -> dict | None:
    retention = values.get("retention") or {}
    if not retention.get("enabled"):
        return None
    rendered = {}
    for kind in ("sensor", "schedule"):
        if retention.get(kind):
            rendered[kind] = {"purge_after_days": retention[kind]["purgeAfterDays"]}
    return rendered


def _run_coordinator(daemon: dict) -> dict | None:
    coordinator = daemon.get("runCoordinator") or {}
    if not (daemon.get("enabled", True) and coordinator.get("enabled")):
        return None
    if coordinator.get("type") != "QueuedRunCoordinator":
        raise ChartRefusal(f"not modelled here: run coordinator {coordinator.get('type')}")
    queued = _drop_none((coordinator.get("config") or {}).get("queuedRunCoordinator") or {})
    rendered: dict[str, Any] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if queued:
        rendered["config"] = {
            "max_concurrent_runs": queued.get("maxConcurrentRuns"),
            "tag_concurrency_limits": queued.get("tagConcurrencyLimits"),
        }
    return rendered


def instance_settings(values: dict) -> dict[str, Any]:
    """The instance settings (dagster.yaml keys) the chart renders from ``values``, storage and launcher aside."""
    daemon = values.get("dagsterDaemon") or {}
    retries = daemon.get("runRetries") or {}
    rendered = {
        "telemetry": {"enabled": (values.get("telemetry") or {}).get("enabled", True)},
        "python_logs": _python_logs(values),
        "run_monitoring": _run_monitoring(daemon),
        "run_retries": _drop_none({"enabled": True, "max_retries": retries.get("maxRetries")})
        if retries.get("enabled")
        else None,
        "retention": _retention(values),
        "concurrency": _concurrency(values),
        "run_coordinator": _run_coordinator(daemon),
    }
    return _drop_none(rendered)
