"""A production deployment refuses to start without the shared ledger, instead of a silent SQLite per pod."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOAD = "import importlib, sys; importlib.import_module(sys.argv[1]).defs(); print('loaded')"


def load_location(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INGESTION_")}
    environment.update(DAGSTER_HOME=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", LOAD, module], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )


def test_a_production_location_without_a_ledger_url_does_not_load(tmp_path):
    for module in ("ingestion_project.definitions", "ingestion_project.warehouse_definitions"):
        result = load_location(module, tmp_path, INGESTION_DEPLOYMENT="production")
        assert result.returncode != 0, module
        assert "INGESTION_LEDGER_URL is not set" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "ingestion_ledger.sqlite").exists()


def test_a_production_location_with_a_ledger_url_loads(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared-ledger.sqlite'}"
    result = load_location(
        "ingestion_project.definitions", tmp_path, INGESTION_DEPLOYMENT="production", INGESTION_LEDGER_URL=url
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("loaded")


def test_a_local_instance_keeps_its_sqlite_ledger(tmp_path, monkeypatch):
    from ingestion_project.core.resources import LedgerResource

    monkeypatch.delenv("INGESTION_DEPLOYMENT", raising=False)
    monkeypatch.delenv("INGESTION_LEDGER_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    LedgerResource().ledger()
    assert (tmp_path / "ingestion_ledger.sqlite").exists()


def test_a_production_run_without_a_ledger_url_refuses_to_open_one(tmp_path, monkeypatch):
    """The resource refuses too, for a process that did not load the location through `defs()` (a run worker)."""
    import pytest

    from ingestion_project.core.resources import LedgerNotConfiguredError, LedgerResource

    monkeypatch.setenv("INGESTION_DEPLOYMENT", "production")
    monkeypatch.delenv("INGESTION_LEDGER_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with pytest.raises(LedgerNotConfiguredError):
        LedgerResource().ledger()
    assert not (tmp_path / "ingestion_ledger.sqlite").exists()
