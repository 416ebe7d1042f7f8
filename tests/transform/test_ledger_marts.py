"""dbt build over a ledger snapshot in the warehouse: conservation, failures and backlog marts, and their checks."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtCliResource

from ingestion_project.core.resources import LedgerResource
from ingestion_project.failures.assets import ingestion_ledger
from ingestion_project.transform.assets import WarehouseBuildConfig, warehouse_dbt_assets
from ingestion_project.transform.project import dbt_project
from tests.transform import ledger_fixture
from tests.transform.conftest import WarehouseBuild, build_warehouse

LEDGER_MARTS = ("fct_ingestion_conservation", "fct_ingestion_failures", "fct_ingestion_backlog", "fct_schema_changes")
LEDGER_STAGING = ("stg_ledger__processed_files", "stg_ledger__dead_letters", "stg_ledger__schema_versions")
CONSERVED = ("fct_ingestion_conservation", "assert_ledger_is_conserved")
VERSION_KEY_UNIQUE = (
    "stg_ledger__processed_files",
    "unique_combination_of_columns_stg_ledger__processed_files_source__bucket__object_key__etag",
)


def checks_by_name(build: WarehouseBuild) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in build.result.get_asset_check_evaluations()}


def build_warehouse_despite_failures(path: Path, monkeypatch: pytest.MonkeyPatch) -> WarehouseBuild:
    """Like `build_warehouse` without bronze, but returns the result of a build whose dbt tests fail."""
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(path))
    result = dg.materialize(
        [warehouse_dbt_assets],
        resources={"dbt": DbtCliResource(project_dir=dbt_project)},
        run_config=dg.RunConfig({warehouse_dbt_assets.op.name: WarehouseBuildConfig(bronze_roots=[])}),
        raise_on_error=False,
    )
    return WarehouseBuild(result=result, path=path)


@pytest.fixture(scope="module")
def ledger_warehouse(tmp_path_factory: pytest.TempPathFactory) -> WarehouseBuild:
    """One dbt build over the fixture ledger snapshot (no bronze), shared by the tests that only read."""
    path = tmp_path_factory.mktemp("ledger") / "warehouse.duckdb"
    versions = ledger_fixture.processed_files()
    ledger_fixture.write_ledger(path, versions, ledger_fixture.dead_letters(versions), ledger_fixture.schema_versions())
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build_warehouse([], path, monkeypatch)


def test_ledger_sources_are_the_ingestion_ledger_asset():
    deps = {
        spec.key.to_user_string(): {dep.asset_key.to_user_string() for dep in spec.deps}
        for spec in warehouse_dbt_assets.specs
    }

    assert {key: deps[key] for key in LEDGER_STAGING} == {key: {"ingestion_ledger"} for key in LEDGER_STAGING}
    # The staged manifests are the ones the snapshot's SUCCESS names (see macros/committed_bronze.sql).
    assert deps["stg_bronze__documents"] == {"raw_documents", "ingestion_ledger"}
    assert (dg.AssetKey("fct_ingestion_conservation"), "assert_ledger_is_conserved") in {
        (key.asset_key, key.name) for key in warehouse_dbt_assets.check_keys
    }


def snapshot_columns(ledger_resource: LedgerResource, path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The columns of each table the `ingestion_ledger` asset writes into the warehouse at `path`."""
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(path))
    assert dg.materialize([ingestion_ledger], resources={"ledger": ledger_resource}).success
    with duckdb.connect(str(path), read_only=True) as connection:
        written = connection.sql(
            "select table_name, list(column_name) from information_schema.columns "
            "where table_schema = 'ledger' group by 1"
        ).fetchall()
    return {table: set(columns) for table, columns in written}


def test_the_fixture_restates_every_column_the_snapshot_writes(
    ledger_resource: LedgerResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    written = snapshot_columns(ledger_resource, tmp_path / "warehouse.duckdb", monkeypatch)

    assert written == {
        "processed_files": set(ledger_fixture.PROCESSED_FILES_COLUMNS),
        "dead_letters": set(ledger_fixture.DEAD_LETTERS_COLUMNS),
        "schema_versions": set(ledger_fixture.SCHEMA_VERSIONS_COLUMNS),
        "snapshot_log": set(ledger_fixture.SNAPSHOT_LOG_COLUMNS),
    }


def test_ledger_sources_declare_every_column_the_snapshot_writes(
    ledger_resource: LedgerResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    manifest = json.loads(dbt_project.manifest_path.read_text())

    written = snapshot_columns(ledger_resource, tmp_path / "warehouse.duckdb", monkeypatch)

    declared = {
        table: set(manifest["sources"][f"source.ingestion_warehouse.ledger.{table}"]["columns"])
        for table in ("processed_files", "dead_letters", "schema_versions")
    }
    # The snapshot's own log is not a source: the ledger sources' freshness reads it (loaded_at_query).
    assert {table: columns for table, columns in written.items() if table != "snapshot_log"} == declared


def test_conservation_balances_every_version_of_every_source(ledger_warehouse: WarehouseBuild):
    rows = ledger_warehouse.query(
        "select source, discovered_count, succeeded_count, failed_count, skipped_count, superseded_count, "
        "quarantined_count, in_flight_count, duplicated_version_count, is_balanced "
        "from fct_ingestion_conservation order by source"
    )

    assert rows == ledger_fixture.EXPECTED_CONSERVATION


def test_failures_count_open_resolved_and_quarantined_dead_letters_per_utc_day(ledger_warehouse: WarehouseBuild):
    rows = ledger_warehouse.query(
        "select source, error_class, error_type, cast(failed_date as varchar), failure_count, open_failure_count, "
        "resolved_failure_count, quarantined_failure_count from fct_ingestion_failures order by 1, 2, 3, 4"
    )

    assert rows == ledger_fixture.EXPECTED_FAILURES


def test_backlog_counts_only_the_newest_version_of_each_document(ledger_warehouse: WarehouseBuild):
    rows = ledger_warehouse.query(
        "select source, status, is_in_flight, document_count from fct_ingestion_backlog order by source, status"
    )
    [(size_bytes, oldest)] = ledger_warehouse.query(
        "select size_bytes, cast(oldest_discovered_at at time zone 'UTC' as varchar) "
        "from fct_ingestion_backlog where source = 'orders' and status = 'PROCESSING'"
    )

    assert rows == ledger_fixture.EXPECTED_BACKLOG
    assert (size_bytes, oldest) == (1002, "2026-02-01 09:00:00")  # the second ETag, not the first


def test_staging_marks_discovered_and_processing_versions_in_flight(ledger_warehouse: WarehouseBuild):
    rows = ledger_warehouse.query(
        "select distinct status, is_in_flight from stg_ledger__processed_files order by status"
    )

    assert rows == [
        ("DISCOVERED", True),
        ("FAILED", False),
        ("PROCESSING", True),
        ("QUARANTINED", False),
        ("SKIPPED", False),
        ("SUCCESS", False),
        ("SUPERSEDED", False),
    ]


def test_ledger_checks_pass_on_a_consistent_ledger(ledger_warehouse: WarehouseBuild):
    checks = checks_by_name(ledger_warehouse)
    ledger_checks = {name for name in checks if name[0] in LEDGER_STAGING + LEDGER_MARTS}

    assert ledger_warehouse.result.success
    assert all(e.passed for e in checks.values()), [name for name, e in checks.items() if not e.passed]
    assert {
        CONSERVED,
        VERSION_KEY_UNIQUE,
        ("stg_ledger__processed_files", "unique_stg_ledger__processed_files_processed_file_id"),
        ("stg_ledger__processed_files", "not_null_stg_ledger__processed_files_status"),
        (
            "stg_ledger__dead_letters",
            "relationships_stg_ledger__dead_letters_partition_key__partition_key__ref_stg_ledger__processed_files_",
        ),
    } <= ledger_checks


def test_duplicate_version_rows_fail_the_conservation_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    versions = ledger_fixture.processed_files()
    # The same orders version recorded twice, once succeeded and once failed: it is in two states at once.
    [succeeded] = [v for v in versions if v["object_key"] == "orders/2026-02.ndjson"]
    versions.append({**succeeded, "id": 99, "status": "FAILED", "error_class": "unexpected", "error_type": "KeyError"})
    path = tmp_path / "warehouse.duckdb"
    ledger_fixture.write_ledger(path, versions, ledger_fixture.dead_letters(versions), ledger_fixture.schema_versions())

    build = build_warehouse_despite_failures(path, monkeypatch)

    checks = checks_by_name(build)
    failed = {name: e.severity for name, e in checks.items() if not e.passed}
    assert not build.result.success
    assert failed == {CONSERVED: dg.AssetCheckSeverity.ERROR, VERSION_KEY_UNIQUE: dg.AssetCheckSeverity.WARN}
    # The version-key test only warns, so the conservation mart still builds and shows which source is off.
    assert build.query(
        "select source, discovered_count, duplicated_version_count, is_balanced "
        "from fct_ingestion_conservation order by source"
    ) == [("invoices", 3, 0, True), ("notes", 3, 0, True), ("orders", 6, 1, False)]


def test_build_without_ledger_tables_gives_empty_typed_ledger_marts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    build = build_warehouse([], tmp_path / "fresh" / "warehouse.duckdb", monkeypatch)

    assert build.result.success
    assert build.query("select count(*) from information_schema.tables where table_schema = 'ledger'") == [(0,)]
    checks = checks_by_name(build)
    assert CONSERVED in checks
    assert all(e.passed for e in checks.values())
    for model in LEDGER_STAGING + LEDGER_MARTS:
        assert build.query(f"select count(*) from {model}") == [(0,)]
    assert build.query(
        "select table_name, column_name, data_type from information_schema.columns "
        "where column_name in ('failed_at', 'is_resolved', 'is_in_flight', 'retry_count') order by 1, 2"
    ) == [
        ("fct_ingestion_backlog", "is_in_flight", "BOOLEAN"),
        ("stg_ledger__dead_letters", "failed_at", "TIMESTAMP WITH TIME ZONE"),
        ("stg_ledger__dead_letters", "is_resolved", "BOOLEAN"),
        ("stg_ledger__dead_letters", "retry_count", "INTEGER"),
        ("stg_ledger__processed_files", "is_in_flight", "BOOLEAN"),
        ("stg_ledger__processed_files", "retry_count", "INTEGER"),
    ]


def test_schema_changes_show_each_sources_first_schema_every_drift_and_every_rescue(ledger_warehouse: WarehouseBuild):
    rows = ledger_warehouse.query(
        "select object_key, is_first_schema, column_count, added_count, removed_count, retyped_count, "
        "cast(columns_added as varchar), cast(columns_retyped as varchar), contract_mode, rescued_rows "
        "from fct_schema_changes order by 1"
    )

    assert rows == [
        ("orders/a.csv", True, 2, 0, 0, 0, "[]", "[]", None, 0),
        # orders/b.csv had the same schema, but its contract rescued values: a row for that.
        ("orders/b.csv", False, 2, 0, 0, 0, "[]", "[]", "rescue", 2),
        (
            "orders/c.csv",
            False,
            3,
            1,
            0,
            1,
            '["tip"]',
            '[{"name": "amount", "from": "double", "to": "string"}]',
            None,
            0,
        ),
    ]
