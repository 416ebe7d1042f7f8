"""The transform domain's definitions load, with the dbt sources wired to raw_documents and ingestion_ledger."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import DbtProject

from devtools.workspace import workspace_definitions
from ingestion_project.transform.assets import dbt_build_args, warehouse_dbt_assets
from ingestion_project.transform.automation import WAREHOUSE_SELECTION
from ingestion_project.transform.project import manifest_is_stale

defs = workspace_definitions()


def test_transform_definitions_load():
    dg.Definitions.validate_loadable(defs)

    assert isinstance(defs.resolve_sensor_def("warehouse_automation_sensor"), dg.AutomationConditionSensorDefinition)


def test_bronze_staging_models_depend_on_raw_documents_and_the_ledger_snapshot():
    deps = {
        spec.key.to_user_string(): {dep.asset_key.to_user_string() for dep in spec.deps}
        for spec in warehouse_dbt_assets.specs
    }

    assert {key for key in deps if key.startswith("stg_bronze__")} == {
        "stg_bronze__documents",
        "stg_bronze__orders",
        "stg_bronze__customers",
        "stg_bronze__text_chunks",
    }
    # The staged manifests are the ones the ledger snapshot's SUCCESS names; data staging reads the staged
    # manifests: which versions are committed, and which one is the latest.
    assert deps["stg_bronze__documents"] == {"raw_documents", "ingestion_ledger"}
    for key in ("stg_bronze__orders", "stg_bronze__customers"):
        assert deps[key] == {"raw_documents", "stg_bronze__documents"}
    assert {spec.group_name for spec in warehouse_dbt_assets.specs} == {"warehouse"}


def test_dbt_tests_become_asset_checks():
    checks = {(key.asset_key.to_user_string(), key.name) for key in warehouse_dbt_assets.check_keys}

    assert ("fct_orders", "unique_fct_orders_order_id") in checks
    assert ("fct_daily_revenue", "assert_daily_revenue_matches_eligible_orders") in checks


def test_dbt_build_args_pass_the_roots_as_a_json_var():
    assert dbt_build_args(["s3://bronze/bronze", "/data/bronze"]) == [
        "build",
        "--vars",
        '{"bronze_roots": ["s3://bronze/bronze", "/data/bronze"]}',
    ]


def test_a_full_refresh_build_passes_dbt_its_flag():
    assert dbt_build_args(["/data/bronze"], full_refresh=True)[-1] == "--full-refresh"
    assert "--full-refresh" not in dbt_build_args(["/data/bronze"])


def test_the_automation_sensor_targets_the_ledger_snapshot_and_every_dbt_model():
    # Declared by group, without the manifest: it must still be exactly the snapshot and the dbt models.
    selected = WAREHOUSE_SELECTION.resolve(defs.resolve_asset_graph())

    assert selected == {dg.AssetKey("ingestion_ledger"), *warehouse_dbt_assets.keys}


@pytest.fixture
def dbt_project_dir(tmp_path: Path) -> Path:
    """A minimal dbt project whose manifest is newer than every file in it."""
    (tmp_path / "dbt_project.yml").write_text("name: tiny\nprofile: tiny\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "orders.sql").write_text("select 1 as id\n")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text("{}")
    for path in (tmp_path / "dbt_project.yml", tmp_path / "models" / "orders.sql"):
        os.utime(path, (1_000, 1_000))
    os.utime(tmp_path / "target" / "manifest.json", (2_000, 2_000))
    return tmp_path


def test_manifest_is_current_when_nothing_changed_since_the_parse(dbt_project_dir: Path):
    assert not manifest_is_stale(DbtProject(project_dir=dbt_project_dir))


def test_manifest_is_stale_once_a_model_changes(dbt_project_dir: Path):
    os.utime(dbt_project_dir / "models" / "orders.sql", (3_000, 3_000))

    assert manifest_is_stale(DbtProject(project_dir=dbt_project_dir))


def test_manifest_is_stale_when_missing(dbt_project_dir: Path):
    (dbt_project_dir / "target" / "manifest.json").unlink()

    assert manifest_is_stale(DbtProject(project_dir=dbt_project_dir))


def test_files_dbt_writes_never_make_the_manifest_stale(dbt_project_dir: Path):
    for folder in ("target/run", "logs", "dbt_packages/some_package/models"):
        (dbt_project_dir / folder).mkdir(parents=True)
        (dbt_project_dir / folder / "written.sql").write_text("select 1\n")

    assert not manifest_is_stale(DbtProject(project_dir=dbt_project_dir))


def test_a_warehouse_build_runs_in_one_process():
    """The automation's runs (the implicit asset job) and `build_warehouse` run every step in the run's own process,
    so a build loads the location once, not once per step."""
    from ingestion_project import warehouse_definitions

    defs = warehouse_definitions.defs()
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    job = defs.resolve_job_def("build_warehouse")
    assert job.executor_def.name == "in_process"
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "ingestion_ledger" in selected and "fct_orders" in selected


def test_only_the_newest_invocation_targets_are_kept(tmp_path: Path):
    from ingestion_project.transform.project import prune_invocation_targets

    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    (target / "compiled").mkdir()  # not an invocation's directory: left alone
    names = [f"warehouse_dbt_assets-{n:07x}-abcdef{n}" for n in range(5)] + ["freshness-0123abcd"]
    for age, name in enumerate(names):
        (target / name).mkdir()
        (target / name / "run_results.json").write_text("{}")
        os.utime(target / name, (1_000_000 + age, 1_000_000 + age))
    removed = prune_invocation_targets(target, keep=2)
    assert sorted(p.name for p in removed) == sorted(names[:4])
    assert sorted(p.name for p in target.iterdir()) == sorted(["manifest.json", "compiled", *names[4:]])
