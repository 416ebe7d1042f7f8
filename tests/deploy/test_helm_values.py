"""deploy/helm/values.yaml read as Dagster's Helm chart reads it: the keys the product relies on exist with the types
the chart's values schema gives them, the images carry a tag per build, the warehouse volume reaches exactly the
pods that build the warehouse, and the README's install command pins the chart to the dagster version in uv.lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in VALUES["dagster-user-deployments"]["deployments"]}
MISSING = object()

# (path, type in the chart's schema, the value the product needs or None for any): the chart keys this product
# depends on. The concurrency models forbid extra keys; runMonitoring is a free mapping that the instance template
# reads by these names.
CHART_KEYS = [
    ("generatePostgresqlPasswordSecret", bool, False),
    ("global.postgresqlSecretName", str, None),
    ("postgresql.enabled", bool, False),
    ("postgresql.postgresqlHost", str, None),
    ("telemetry.enabled", bool, False),
    ("pythonLogs.dagsterHandlerConfig", dict, None),
    ("concurrency.enabled", bool, True),
    ("concurrency.pools.granularity", str, "run"),
    ("concurrency.pools.defaultLimit", int, 1),
    ("concurrency.runs.maxConcurrentRuns", int, None),
    ("concurrency.runs.tagConcurrencyLimits", list, None),
    ("dagsterDaemon.runCoordinator.enabled", bool, True),
    ("dagsterDaemon.runCoordinator.type", str, "QueuedRunCoordinator"),
    ("dagsterDaemon.runMonitoring.enabled", bool, True),
    ("dagsterDaemon.runMonitoring.startTimeoutSeconds", int, None),
    ("dagsterDaemon.runMonitoring.cancelTimeoutSeconds", int, None),
    ("dagsterDaemon.runMonitoring.pollIntervalSeconds", int, None),
    ("dagsterDaemon.runRetries.enabled", bool, False),
    ("runLauncher.type", str, "K8sRunLauncher"),
    ("retention.enabled", bool, True),
    ("retention.sensor.purgeAfterDays", dict, None),
    ("retention.schedule.purgeAfterDays", int, None),
    ("dagster-user-deployments.enabled", bool, True),
]
ALLOWED = {
    "concurrency": {"enabled", "pools", "runs"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
}


def lookup(values: dict, path: str) -> object:
    node: object = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


@pytest.mark.parametrize(("path", "kind", "wanted"), CHART_KEYS, ids=[path for path, _, _ in CHART_KEYS])
def test_a_chart_key_the_product_relies_on_is_set_with_its_type(path, kind, wanted):
    value = lookup(VALUES, path)
    assert value is not MISSING, f"{path} is not set"
    # bool is an int in Python; the chart's schema tells them apart.
    assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), f"{path}: {value!r}"
    if wanted is not None:
        assert value == wanted, f"{path} is {value!r}, the product needs {wanted!r}"


def test_the_concurrency_block_has_only_keys_the_chart_accepts():
    for path, allowed in ALLOWED.items():
        assert set(lookup(VALUES, path)) <= allowed, path
    for limit in VALUES["concurrency"]["runs"]["tagConcurrencyLimits"]:
        assert set(limit) <= {"key", "value", "limit"} and isinstance(limit["limit"], int)


def test_the_chart_generates_no_postgres_secret_of_its_own():
    """With an external PostgreSQL, a generated secret (password `test`) would clash with the existing one."""
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    assert VALUES["postgresql"]["enabled"] is False


def test_each_build_has_its_own_image_tag():
    images = [d["image"] for d in DEPLOYMENTS.values()]
    assert {image["repository"] for image in images} == {images[0]["repository"]}, "one image for both locations"
    for image in images:
        assert image["tag"] not in ("latest", "", None), "a moving tag keeps stale images on nodes"
        assert image["pullPolicy"] == "IfNotPresent"


def test_both_locations_run_as_production_and_so_need_the_shared_ledger():
    for name, deployment in DEPLOYMENTS.items():
        env = {e["name"]: e.get("value") for e in deployment["env"]}
        assert env.get("INGESTION_DEPLOYMENT") == "production", name
        assert {"name": "ingestion-env"} in deployment["envSecrets"], name  # INGESTION_LEDGER_URL comes from there
        assert deployment.get("includeConfigInLaunchedRuns", {"enabled": True})["enabled"], name


def test_only_the_warehouse_location_mounts_the_warehouse_volume():
    def claims(deployment: dict) -> set[str]:
        return {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"] if "persistentVolumeClaim" in v}

    assert claims(DEPLOYMENTS["warehouse"]) == {"ingestion-warehouse"}
    assert claims(DEPLOYMENTS["ingestion"]) == set()
    ingestion_env = {e["name"] for e in DEPLOYMENTS["ingestion"]["env"]}
    assert "INGESTION_WAREHOUSE_PATH" not in ingestion_env
    mounts = {m["name"]: m["mountPath"] for m in DEPLOYMENTS["warehouse"]["volumeMounts"]}
    warehouse_env = {e["name"]: e["value"] for e in DEPLOYMENTS["warehouse"]["env"]}
    assert warehouse_env["INGESTION_WAREHOUSE_PATH"].startswith(mounts["warehouse"] + "/")
    # Run pods inherit the location's volumes: a run pod on any node must attach the claim.
    claim = yaml.safe_load((REPO / "deploy" / "k8s" / "warehouse-volume.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "ingestion-warehouse"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_readme_install_command_pins_the_chart_to_the_dagster_version():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    [dagster] = [p["version"] for p in lock["package"] if p["name"] == "dagster"]
    readme = (REPO / "README.md").read_text().replace("\\\n", " ")  # one line per command
    commands = re.findall(r"^helm upgrade --install .*$", readme, flags=re.MULTILINE)
    assert commands, "the README gives no helm install command"
    for command in commands:
        assert f"--version {dagster}" in command, command
        assert "-f deploy/helm/values.yaml" in command
        for index, name in enumerate(DEPLOYMENTS):
            assert f"dagster-user-deployments.deployments[{index}].image.tag=" in command, name
