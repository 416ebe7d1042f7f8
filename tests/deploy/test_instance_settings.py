"""One source of truth for the instance settings: the Helm values (as the chart renders them) and the single-machine
deploy/dagster.yaml agree key by key, and what the chart would write loads into a real Dagster instance."""

from __future__ import annotations

import copy
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.deploy.chart import ChartRefusal, instance_settings

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
SINGLE_MACHINE = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
# Where the two deployments differ by design: how they reach PostgreSQL (the chart renders its own storage block
# from `postgresql` and the password secret; one machine gives a URL) and the run launcher (K8sRunLauncher vs the
# default launcher of one machine).
DEPLOYMENT_SPECIFIC = {"storage", "run_launcher"}


def test_the_chart_values_and_the_single_machine_instance_carry_the_same_settings():
    rendered = instance_settings(VALUES)
    single = {key: value for key, value in SINGLE_MACHINE.items() if key not in DEPLOYMENT_SPECIFIC}
    # The queued run coordinator is the chart's own block; one machine gets it from the `concurrency.runs` limits.
    rendered_coordinator = rendered.pop("run_coordinator")
    assert rendered_coordinator == {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    assert sorted(rendered) == sorted(single), "a setting is in one deployment and not the other"
    for key in single:
        assert rendered[key] == single[key], f"{key} differs between deploy/helm/values.yaml and deploy/dagster.yaml"


def test_the_settings_the_product_relies_on_are_set():
    rendered = instance_settings(VALUES)
    assert rendered["telemetry"] == {"enabled": False}
    assert rendered["concurrency"]["pools"] == {"granularity": "run", "default_limit": 1}
    runs = rendered["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 8
    assert runs["tag_concurrency_limits"] == [{"key": "ingestion/source", "limit": 6}]
    assert rendered["run_monitoring"]["enabled"] is True
    assert rendered["run_monitoring"]["cancel_timeout_seconds"] > 0
    assert rendered["retention"]["sensor"]["purge_after_days"]["skipped"] == 7
    handler = rendered["python_logs"]["dagster_handler_config"]
    assert handler["formatters"]["json"]["()"] == "ingestion_project.logs.JsonFormatter"
    assert "run_retries" not in rendered  # document retries are the platform's own


def test_what_the_chart_renders_loads_into_a_dagster_instance(tmp_path):
    """The rendered settings are valid instance config: Dagster reads the pool granularity, the limits and the JSON
    log handler from them (SQLite storage stands in for the chart's PostgreSQL block)."""
    home = tmp_path / "home"
    home.mkdir()
    settings = instance_settings(VALUES)
    settings["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        config = instance.get_concurrency_config()
        assert (config.pool_config.pool_granularity.value, config.pool_config.default_pool_limit) == ("run", 1)
        assert config.run_queue_config.max_concurrent_runs == 8
        assert {limit["key"]: limit["limit"] for limit in config.run_queue_config.tag_concurrency_limits} == {
            "ingestion/source": 6
        }
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        assert instance.get_settings("telemetry")["enabled"] is False
        assert "json" in instance.get_settings("python_logs")["dagster_handler_config"]["handlers"]


def test_the_chart_refuses_run_limits_in_two_places():
    """The chart fails an install that sets the run limits under `concurrency.runs` and on the queued coordinator;
    the values keep them in one place."""
    values = copy.deepcopy(VALUES)
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"] = {"maxConcurrentRuns": 4}
    with pytest.raises(ChartRefusal):
        instance_settings(values)
    assert instance_settings(VALUES)["concurrency"]["runs"]["max_concurrent_runs"] == 8


def test_a_drifting_setting_is_caught():
    """The comparison can fail: a limit changed in the values only makes the two deployments differ."""
    values = copy.deepcopy(VALUES)
    values["concurrency"]["runs"]["maxConcurrentRuns"] = 9
    assert instance_settings(values)["concurrency"] != SINGLE_MACHINE["concurrency"]
