import subprocess
import sys

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle

from ingestion_project.devtools.workspace import workspace_definitions

defs = workspace_definitions()
RUN_STATUS_SENSORS = ("ingestion_failed_run_sensor", "ingestion_canceled_run_sensor")


def test_definitions_load_with_both_domains():
    repo = defs.get_repository_def()
    assert {job.name for job in repo.get_all_jobs()} >= {
        "ingest_documents",
        "build_warehouse",
        "replay_dead_letters_job",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "document_discovery_sensor",
        "warehouse_after_ingestion_sensor",
        *RUN_STATUS_SENSORS,
    }


def test_sensors_start_running_by_default():
    for name in ("document_discovery_sensor", "warehouse_after_ingestion_sensor", *RUN_STATUS_SENSORS):
        assert defs.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_run_status_sensors_are_registered_as_run_status_sensors():
    for name in RUN_STATUS_SENSORS:
        sensor = defs.get_sensor_def(name)
        assert isinstance(sensor, dg.RunStatusSensorDefinition), name


def test_marts_sit_downstream_of_raw_documents():
    graph = defs.resolve_asset_graph()
    downstream = graph.get(dg.AssetKey("raw_documents")).child_keys
    assert {key.to_user_string() for key in downstream} == {
        "stg_bronze__documents",
        "stg_bronze__orders",
        "stg_bronze__customers",
        "stg_bronze__text_chunks",
        "ingestion_ledger",
    }
    assert dg.AssetKey("fct_daily_revenue") in graph.get_all_asset_keys()


def test_dbt_tests_are_asset_checks():
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "unique_fct_document_versions_document_version_id" in checks
    assert any(name.startswith("relationships_fct_orders_customer_id") for name in checks)


def hooks_on_raw_documents(job: dg.JobDefinition) -> set[str]:
    """The hooks a run of ``job`` applies to the raw_documents step, wherever they are attached."""
    return {hook.name for hook in job.get_all_hooks_for_handle(NodeHandle("raw_documents", None))}


def test_the_dead_letter_hook_is_on_the_raw_documents_asset_itself():
    assert "dead_letter_hook" in {hook.name for hook in defs.get_assets_def("raw_documents").hook_defs}


def test_sensor_launched_ingestion_runs_carry_the_dead_letter_hook():
    assert defs.get_sensor_def("document_discovery_sensor").job_name == "ingest_documents"
    assert "dead_letter_hook" in hooks_on_raw_documents(defs.resolve_job_def("ingest_documents"))


def test_ui_materialize_and_backfill_runs_carry_the_dead_letter_hook():
    # "Materialize" and backfills run the implicit asset job, not ingest_documents.
    job = defs.resolve_implicit_global_asset_job_def()
    assert "raw_documents" in {node.name for node in job.graph.nodes}
    assert "dead_letter_hook" in hooks_on_raw_documents(job)


def test_the_ingestion_code_location_never_imports_dbt():
    # Each run process loads only its job's code location: ingestion runs must not pay for dbt.
    code = (
        "import sys, ingestion_project.definitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'dagster_dbt')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_each_code_location_loads_on_its_own():
    from ingestion_project.definitions import defs as ingestion
    from ingestion_project.transform.definitions import defs as warehouse

    assert {job.name for job in ingestion.get_repository_def().get_all_jobs()} >= {"ingest_documents"}
    assert "build_warehouse" not in {job.name for job in ingestion.get_repository_def().get_all_jobs()}
    assert {job.name for job in warehouse.get_repository_def().get_all_jobs()} >= {"build_warehouse"}
