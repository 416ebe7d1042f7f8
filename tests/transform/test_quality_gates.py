"""The build's gates: a blocking ledger check stops the marts; a warning lets them through."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_dbt import DbtCliResource

from ingestion_project.core.resources import LedgerResource
from ingestion_project.failures.assets import failed_documents_are_dead_lettered, ingestion_ledger, ledger_is_conserved
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import processed_files
from ingestion_project.lib.versions import DocumentVersion
from ingestion_project.transform.assets import warehouse_dbt_assets
from ingestion_project.transform.automation import WAREHOUSE_SELECTION
from ingestion_project.transform.project import prepared_dbt_project


def ledger_with(ledger_resource: LedgerResource, status: str) -> None:
    """One version of an orders document, put in ``status`` by hand (FAILED here has no dead letter)."""
    book = ledger_resource.ledger()
    book.record_discovered([DocumentVersion(DocumentRef("orders", "landing", "a.csv"), "e1", None, 10, None)])
    with book.engine.begin() as conn:
        conn.execute(sa.update(processed_files).values(status=status))


def run_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_resource: LedgerResource):
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    (tmp_path / "bronze").mkdir()
    defs = dg.Definitions(
        assets=[ingestion_ledger, warehouse_dbt_assets],
        asset_checks=[ledger_is_conserved, failed_documents_are_dead_lettered],
        # What the automation sensor's run executes: the snapshot and every dbt model together.
        jobs=[dg.define_asset_job("warehouse", selection=WAREHOUSE_SELECTION)],
        resources={"dbt": DbtCliResource(project_dir=prepared_dbt_project()), "ledger": ledger_resource},
    )
    config = {"ops": {warehouse_dbt_assets.op.name: {"config": {"bronze_roots": [str(tmp_path / "bronze")]}}}}
    result = defs.resolve_job_def("warehouse").execute_in_process(run_config=config, raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == ingestion_ledger.key}
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return checks, built


def test_an_unbalanced_ledger_blocks_the_marts(tmp_path, monkeypatch, ledger_resource):
    ledger_with(ledger_resource, "LOST")  # a state the ledger does not know: the version is unaccounted for
    checks, built = run_build(tmp_path, monkeypatch, ledger_resource)
    assert not checks["ledger_is_conserved"].passed
    assert built == {"ingestion_ledger"}  # the snapshot landed; nothing downstream of the failed gate did


def test_a_warning_gate_lets_the_marts_through(tmp_path, monkeypatch, ledger_resource):
    ledger_with(ledger_resource, "FAILED")  # failed, but no dead letter: a warning, not a block
    checks, built = run_build(tmp_path, monkeypatch, ledger_resource)
    assert checks["ledger_is_conserved"].passed
    assert not checks["failed_documents_are_dead_lettered"].passed
    assert checks["failed_documents_are_dead_lettered"].severity == dg.AssetCheckSeverity.WARN
    assert {"fct_orders", "fct_ingestion_conservation", "fct_schema_changes"} <= built
