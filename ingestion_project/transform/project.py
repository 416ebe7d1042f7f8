"""The dbt project of the warehouse, and where its DuckDB file lives."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ingestion_project.transform.warehouse import DBT_PROJECT_DIR, ensure_warehouse_dir, warehouse_path

__all__ = ["dbt_project", "ensure_warehouse_dir", "manifest_is_stale", "warehouse_path"]


def put_dbt_on_path() -> None:
    """Make `dbt` findable when the venv is used without being activated (`.venv/bin/dagster dev`).

    dagster-dbt runs whatever `dbt` is on PATH, both for `prepare_if_dev()` and in DbtCliResource; the dbt
    installed beside this interpreter is the one that matches dagster-dbt, so its folder goes first.
    """
    bin_dir = Path(sys.executable).parent
    if shutil.which("dbt") is None and os.access(bin_dir / "dbt", os.X_OK):
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])


_PROJECT_FILES = ("*.sql", "*.yml", "*.yaml", "*.csv")


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether manifest.json is missing or older than a file of the dbt project."""
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    target = project.project_dir / "target"
    return any(
        path.stat().st_mtime > built
        for pattern in _PROJECT_FILES
        for path in project.project_dir.rglob(pattern)
        if target not in path.parents
    )


put_dbt_on_path()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
# Parse only when the manifest is missing or out of date. DbtProject.prepare_if_dev() would parse on every import
# under `dagster dev` — in every run worker too, which inherit its environment — adding seconds to each run.
# Deployments ship the manifest (`dagster-dbt project prepare-and-package`) and never parse here.
if manifest_is_stale(dbt_project):
    dbt_project.preparer.prepare(dbt_project)
