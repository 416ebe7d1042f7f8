"""The dbt project of the warehouse, prepared when the warehouse definitions are built, never at import."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ingestion_project.core.warehouse import DBT_PROJECT_DIR, ensure_warehouse_dir, warehouse_path

__all__ = ["ensure_warehouse_dir", "manifest_is_stale", "prepared_dbt_project", "warehouse_path"]

_PROJECT_FILES = {".sql", ".yml", ".yaml", ".csv"}
# What dbt writes or installs: never a reason to parse again, and target/ alone holds thousands of files.
_GENERATED_DIRS = {"target", "logs", "dbt_packages"}


def put_dbt_on_path() -> None:
    """Make `dbt` findable when the venv is used without being activated (`.venv/bin/dagster dev`).

    dagster-dbt runs whatever `dbt` is on PATH, both for the manifest preparation and in DbtCliResource; the dbt
    installed beside this interpreter is the one that matches dagster-dbt, so its folder goes first.
    """
    bin_dir = Path(sys.executable).parent
    if shutil.which("dbt") is None and os.access(bin_dir / "dbt", os.X_OK):
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether manifest.json is missing or older than a file of the dbt project (generated folders aside)."""
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    for folder, subfolders, files in os.walk(project.project_dir):
        subfolders[:] = [name for name in subfolders if name not in _GENERATED_DIRS]
        for name in files:
            if Path(name).suffix in _PROJECT_FILES and os.stat(os.path.join(folder, name)).st_mtime > built:
                return True
    return False


@functools.cache
def prepared_dbt_project() -> DbtProject:
    """The warehouse's dbt project with a manifest that matches the models on disk, and dbt on PATH.

    Called while the warehouse definitions are built, so that importing a module parses nothing and leaves PATH
    alone. dbt parses only when the manifest is missing or out of date: DbtProject.prepare_if_dev() would parse on
    every load under `dagster dev` — in every run worker too, which inherit its environment — adding seconds to
    each run. Deployments ship the manifest (`dagster-dbt project prepare-and-package`) and never parse here.
    """
    put_dbt_on_path()
    project = DbtProject(project_dir=DBT_PROJECT_DIR)
    if manifest_is_stale(project):
        project.preparer.prepare(project)
    return project


def __getattr__(name: str) -> DbtProject:
    # `from ingestion_project.transform.project import dbt_project` (the tests) prepares on first use, not at import.
    if name == "dbt_project":
        return prepared_dbt_project()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
