import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.dependency import NodeHandle

from devtools.workspace import workspace_definitions

defs = workspace_definitions()
RUN_STATUS_SENSORS = ("ingestion_failed_run_sensor", "ingestion_canceled_run_sensor")
ALERT_SENSORS = ("run_failure_alert_sensor", "dead_letter_alert_sensor")
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"


def code_locations() -> dict[str, str]:
    """Location name → module, as workspace.yaml declares them."""
    entries = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    return {entry["python_module"]["location_name"]: entry["python_module"]["module_name"] for entry in entries}


def location_defs(name: str) -> dg.Definitions:
    return importlib.import_module(code_locations()[name]).defs()


def in_a_fresh_interpreter(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter and return the JSON it prints (what a new run process would see)."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_definitions_load_with_both_domains():
    repo = defs.get_repository_def()
    assert {job.name for job in repo.get_all_jobs()} >= {
        "ingest_documents",
        "replay_dead_letters_job",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "document_discovery_sensor",
        "warehouse_automation_sensor",
        *RUN_STATUS_SENSORS,
        *ALERT_SENSORS,
    }


def test_sensors_start_running_by_default():
    for name in ("document_discovery_sensor", "warehouse_automation_sensor", *RUN_STATUS_SENSORS, *ALERT_SENSORS):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_run_status_sensors_are_registered_as_run_status_sensors():
    for name in RUN_STATUS_SENSORS:
        sensor = defs.resolve_sensor_def(name)
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
    assert "dead_letter_hook" in {hook.name for hook in defs.resolve_assets_def("raw_documents").hook_defs}


def test_sensor_launched_ingestion_runs_carry_the_dead_letter_hook():
    assert defs.resolve_sensor_def("document_discovery_sensor").job_name == "ingest_documents"
    assert "dead_letter_hook" in hooks_on_raw_documents(defs.resolve_job_def("ingest_documents"))


def test_ui_materialize_and_backfill_runs_carry_the_dead_letter_hook():
    # "Materialize" and backfills run the implicit asset job, not ingest_documents.
    job = defs.resolve_implicit_global_asset_job_def()
    assert "raw_documents" in {node.name for node in job.graph.nodes}
    assert "dead_letter_hook" in hooks_on_raw_documents(job)


def test_the_workspace_has_an_ingestion_and_a_warehouse_code_location():
    assert code_locations() == {
        "ingestion_project": "ingestion_project.definitions",
        "warehouse": "ingestion_project.warehouse_definitions",
    }


def test_loading_the_ingestion_location_and_its_job_never_imports_dbt():
    # A run process loads only its job's code location, as a run worker does: ingestion runs must not pay for dbt.
    code = (
        "import importlib, json, sys; "
        "defs = importlib.import_module('ingestion_project.definitions').defs(); "
        "defs.resolve_job_def('ingest_documents'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'dagster_dbt', 'duckdb') "
        "or m.startswith('ingestion_project.transform.') and m != 'ingestion_project.core.warehouse')))"
    )
    assert in_a_fresh_interpreter(code) == []


def test_importing_the_warehouse_modules_neither_parses_dbt_nor_changes_path():
    # The dbt project is prepared while the warehouse definitions are built, not as a side effect of an import.
    code = (
        "import json, os; path = os.environ['PATH']; "
        "import ingestion_project.warehouse_definitions, ingestion_project.transform.automation; "
        "from ingestion_project.transform.project import prepared_dbt_project; "
        "print(json.dumps({'prepared': prepared_dbt_project.cache_info().currsize, "
        "'path_changed': os.environ['PATH'] != path}))"
    )
    # Without the venv's bin on PATH, preparing the project would put it there.
    assert in_a_fresh_interpreter(code, PATH=os.defpath) == {"prepared": 0, "path_changed": False}


def test_each_code_location_loads_on_its_own():
    ingestion, warehouse = location_defs("ingestion_project"), location_defs("warehouse")

    assert {job.name for job in ingestion.get_repository_def().get_all_jobs()} >= {"ingest_documents"}
    assert "warehouse_automation_sensor" not in {s.name for s in ingestion.get_repository_def().sensor_defs}
    assert {s.name for s in warehouse.get_repository_def().sensor_defs} == {"warehouse_automation_sensor"}


def test_every_asset_is_materialized_by_exactly_one_code_location():
    # Dagster joins the locations by asset key: a key defined twice would be a conflict, one defined nowhere a gap.
    graphs = {name: location_defs(name).resolve_asset_graph() for name in code_locations()}
    owned = {name: graph.materializable_asset_keys for name, graph in graphs.items()}

    assert not owned["ingestion_project"] & owned["warehouse"]
    tables = {dg.AssetKey(["database", "shop", "payments"])}  # the shipped sources file's database source
    assert owned["ingestion_project"] == {dg.AssetKey("raw_documents"), *tables}
    # The warehouse's upstreams from elsewhere: raw_documents (dbt's bronze sources, and the ledger snapshot) and the
    # database tables (dbt's database_<source> sources).
    foreign = graphs["warehouse"].get_all_asset_keys() - owned["warehouse"]
    assert foreign == {dg.AssetKey("raw_documents"), *tables}
    # Asset checks must sit in the location of their asset.
    for name, graph in graphs.items():
        assert {key.asset_key for key in graph.asset_check_keys} <= owned[name], name


def test_the_merged_workspace_is_the_two_locations():
    merged = {job.name for job in defs.get_repository_def().get_all_jobs()}
    separate = {
        job.name for name in code_locations() for job in location_defs(name).get_repository_def().get_all_jobs()
    }
    assert merged == separate


def test_resources_read_the_environment_as_variables(monkeypatch, tmp_path):
    from ingestion_project.core.resources import LEDGER_URL_ENV, LedgerResource, from_environment

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    resource = LedgerResource(url=from_environment(LEDGER_URL_ENV))
    assert isinstance(resource.url, dg.EnvVar)  # the UI shows the variable, not the URL

    @dg.asset
    def probe(ledger: LedgerResource) -> str:
        return ledger.ledger().engine.url.render_as_string(hide_password=False)

    result = dg.materialize([probe], resources={"ledger": resource})
    assert result.output_for_node("probe") == url
    monkeypatch.delenv(LEDGER_URL_ENV)
    assert from_environment(LEDGER_URL_ENV) is None


def test_importing_the_code_locations_reads_no_settings():
    # Only building the definitions reads the sources file: an import with a missing file succeeds, the build fails.
    code = (
        "import json, ingestion_project.definitions as i, ingestion_project.warehouse_definitions as w\n"
        "try:\n    i.defs()\nexcept Exception as error:\n    print(json.dumps(type(error).__name__))"
    )
    failure = in_a_fresh_interpreter(code, INGESTION_SOURCES_FILE="/nonexistent/sources.yaml")
    assert failure == "ConfigError"
