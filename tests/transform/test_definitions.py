"""The transform domain's definitions load, with the dbt sources wired to raw_documents and ingestion_ledger."""

from __future__ import annotations

import dagster as dg

from ingestion_project.devtools.workspace import workspace_definitions
from ingestion_project.transform.assets import dbt_build_args, warehouse_dbt_assets

defs = workspace_definitions()


def test_transform_definitions_load():
    # build_warehouse snapshots the ledger first, so the transform domain loads with the others.
    dg.Definitions.validate_loadable(defs)

    assert defs.resolve_job_def("build_warehouse") is not None
    assert defs.resolve_sensor_def("warehouse_after_ingestion_sensor") is not None


def test_bronze_staging_models_depend_on_raw_documents_only():
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
    # Data staging also reads the staged manifests: which versions are committed, and which one is the latest.
    assert deps["stg_bronze__documents"] == {"raw_documents"}
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
