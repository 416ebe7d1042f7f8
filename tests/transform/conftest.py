"""Fixtures for the warehouse: a fresh dbt manifest, bronze written to disk, and dbt builds against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtCliResource

# The dbt assets are read from a manifest that matches the models on disk: parsed on first use if out of date.
from ingestion_project.transform.assets import WarehouseBuildConfig, warehouse_dbt_assets
from ingestion_project.transform.project import prepared_dbt_project
from tests.transform import bronze_fixture


@dataclass(frozen=True)
class WarehouseBuild:
    """A finished warehouse build: the Dagster result and the DuckDB file it wrote."""

    result: dg.ExecuteInProcessResult
    path: Path

    def query(self, sql: str) -> list[tuple]:
        """Rows of `sql` against the warehouse, read-only."""
        with duckdb.connect(str(self.path), read_only=True) as connection:
            return connection.sql(sql).fetchall()


def build_warehouse(
    roots: Sequence[str], path: Path, monkeypatch: pytest.MonkeyPatch, *, full_refresh: bool = False
) -> WarehouseBuild:
    """Materialize every dbt asset over `roots` into the DuckDB file at `path` (incrementally, unless told)."""
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(path))
    result = dg.materialize(
        [warehouse_dbt_assets],
        resources={"dbt": DbtCliResource(project_dir=prepared_dbt_project())},
        run_config=dg.RunConfig(
            {warehouse_dbt_assets.op.name: WarehouseBuildConfig(bronze_roots=list(roots), full_refresh=full_refresh)}
        ),
    )
    return WarehouseBuild(result=result, path=path)


def snapshot_and_build(
    ledger_resource, roots: Sequence[str], path: Path, monkeypatch: pytest.MonkeyPatch, *, full_refresh: bool = False
) -> WarehouseBuild:
    """What the warehouse automation runs: the ledger snapshot (`ingestion_ledger`), then the dbt build over
    `roots`, into the DuckDB file at `path`; both must succeed."""
    from ingestion_project.failures.assets import ingestion_ledger

    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(path))
    assert dg.materialize([ingestion_ledger], resources={"ledger": ledger_resource}).success
    build = build_warehouse(roots, path, monkeypatch, full_refresh=full_refresh)
    assert build.result.success
    return build


def write_local_bronze(base: Path) -> list[str]:
    """Write the fixture bronze under `base` (tables and manifests in one root, text in another)."""
    roots = {
        "orders": base / "s3-like" / "bronze",
        "customers": base / "s3-like" / "bronze",
        "notes": base / "local",
    }
    files = bronze_fixture.bronze_files({source: str(root) for source, root in roots.items()})
    for root, tables in files.items():
        bronze_fixture.write_local(tables, Path(root))
    return list(files)


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> WarehouseBuild:
    """One dbt build over the fixture bronze, shared by the tests that only read the marts."""
    base = tmp_path_factory.mktemp("warehouse")
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build_warehouse(write_local_bronze(base / "bronze"), base / "warehouse.duckdb", monkeypatch)
