"""dbt leaves bounded files: a loop of warehouse builds keeps the target directories of the last few invocations
only, so target/ stays the same size however many builds run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion_project.transform import project
from tests.transform.conftest import build_warehouse, write_local_bronze


def invocation_dirs(target: Path) -> list[Path]:
    return [p for p in target.iterdir() if p.is_dir() and project._INVOCATION_TARGET.match(p.name)]


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_loop_of_builds_keeps_target_flat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(project, "KEEP_INVOCATION_TARGETS", 2)
    roots = write_local_bronze(tmp_path / "bronze")
    target = Path(project.prepared_dbt_project().project_dir) / "target"
    sizes = []
    for number in range(3):
        build = build_warehouse(roots, tmp_path / "warehouse.duckdb", monkeypatch, full_refresh=number == 0)
        assert build.result.success
        # Each build is two invocations (the build and its source freshness): exactly the last build's are kept.
        assert len(invocation_dirs(target)) == 2
        sizes.append(size_of(target))
    assert sizes[2] <= sizes[1] * 1.1, f"target/ grew from {sizes[1]:,} to {sizes[2]:,} bytes"
