"""The dbt project of the warehouse, prepared when the warehouse definitions are built, never at import."""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ingestion_project.core.warehouse import DBT_PROJECT_DIR, ensure_warehouse_dir, warehouse_path

__all__ = [
    "ensure_warehouse_dir",
    "manifest_is_stale",
    "prepared_dbt_project",
    "prune_invocation_targets",
    "warehouse_path",
]

_PROJECT_FILES = {".sql", ".yml", ".yaml", ".csv"}
# What dbt writes or installs: never a reason to parse again, and target/ alone holds thousands of files.
_GENERATED_DIRS = {"target", "logs", "dbt_packages"}


# The target directory of one dbt invocation: dagster-dbt's `<op>-<run id[:7]>-<uuid[:7]>`, and `freshness-<run
# id[:8]>` for the source freshness after a build. The manifest and partial parse at the top of target/ stay.
_INVOCATION_TARGET = re.compile(r"^(?:[A-Za-z0-9_]+-[0-9a-f]{7}-[0-9a-f]{7}|freshness-[0-9a-f]{8})$")
# The invocations whose files are kept for debugging (a build and its freshness make two).
KEEP_INVOCATION_TARGETS = 6


def prune_invocation_targets(target_dir: Path, keep: int | None = None) -> list[Path]:
    """Remove the target directories of all but the newest ``keep`` dbt invocations; the ones removed.

    Each dbt call through dagster-dbt writes a target directory of its own (several MB with the run results and
    compiled SQL), and nothing else removes them: a platform building after every landing would fill its disk.
    """
    keep = KEEP_INVOCATION_TARGETS if keep is None else keep
    if not target_dir.is_dir():
        return []
    invocations = [p for p in target_dir.iterdir() if p.is_dir() and _INVOCATION_TARGET.match(p.name)]
    invocations.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = invocations[keep:]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


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
