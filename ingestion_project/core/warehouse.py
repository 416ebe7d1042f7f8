"""Where the DuckDB warehouse lives: dbt-free, so that the ingestion code location can snapshot the ledger into it
without importing dbt."""

from __future__ import annotations

import os
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
WAREHOUSE_PATH_ENV = "INGESTION_WAREHOUSE_PATH"
# Same default as dbt_project/profiles.yml; relative to the dbt project dir, where dagster-dbt runs dbt.
DEFAULT_WAREHOUSE_PATH = "../data/warehouse.duckdb"


def warehouse_path() -> Path | None:
    """The DuckDB file dbt writes, resolved like dbt does; None for an in-memory or remote database."""
    value = os.environ.get(WAREHOUSE_PATH_ENV) or DEFAULT_WAREHOUSE_PATH
    if value == ":memory:" or value.startswith("md:") or "://" in value:
        return None
    return (DBT_PROJECT_DIR / value).resolve()


def ensure_warehouse_dir() -> None:
    """Create the folder of the DuckDB file: DuckDB creates the file but not its parent folders."""
    path = warehouse_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
