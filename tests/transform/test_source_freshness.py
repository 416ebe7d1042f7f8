"""dbt source freshness runs after each warehouse build; each source's result is an observation of its asset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from tests.transform import bronze_fixture
from tests.transform.conftest import build_warehouse, write_local_bronze


def freshness(build) -> dict[str, dict]:
    return {
        e.asset_observation_data.asset_observation.metadata["dbt_source"].value: {
            "asset": e.asset_key,
            **{k: v.value for k, v in e.asset_observation_data.asset_observation.metadata.items()},
        }
        for e in build.result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    }


def test_a_source_whose_newest_row_is_older_than_its_window_is_reported_late(tmp_path, monkeypatch):
    roots = write_local_bronze(tmp_path)  # the fixture's documents were ingested in early 2026
    build = build_warehouse(roots, tmp_path / "warehouse.duckdb", monkeypatch)
    assert build.result.success  # a late source warns; it does not fail the build
    documents = freshness(build)["bronze.documents"]
    assert documents["asset"] == dg.AssetKey("raw_documents")
    assert documents["freshness"] == "late (warn_after)"
    newest = max(v.ingested_at for v in bronze_fixture.versions() if v.committed)
    assert datetime.fromisoformat(documents["max_loaded_at"]) == newest
    assert documents["age_seconds"] > timedelta(hours=24).total_seconds()


def test_a_source_with_a_row_within_its_window_is_fresh(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    versions = [
        v.__class__(**{**v.__dict__, "ingested_at": now, "last_modified_at": now}) for v in bronze_fixture.versions()
    ]
    monkeypatch.setattr(bronze_fixture, "versions", lambda: versions)
    roots = write_local_bronze(tmp_path)
    build = build_warehouse(roots, tmp_path / "warehouse.duckdb", monkeypatch)
    documents = freshness(build)["bronze.documents"]
    assert documents["freshness"] == "fresh"
    assert documents["age_seconds"] < 3600
