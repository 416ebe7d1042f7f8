"""`make health`: one line per check, non-zero when something is wrong — e.g. a stopped S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import sqlalchemy as sa

from devtools.local_s3 import LocalS3Server
from ingestion_project.failures.health import run_checks
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.ledger import processed_files
from ingestion_project.lib.versions import DocumentVersion


def built_warehouse(path) -> str:
    with duckdb.connect(str(path)) as con:
        con.execute("create table stg_bronze__documents as select now() as loaded_at")
    return str(path)


def test_every_check_passes_on_a_healthy_platform(
    s3_client, fresh_bucket, write_sources, resources_for, tmp_path, monkeypatch
):
    sources = write_sources([{"name": "orders", "type": "s3", "bucket": fresh_bucket}], bronze_bucket=fresh_bucket)
    resources = resources_for(sources)
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", built_warehouse(tmp_path / "warehouse.duckdb"))
    checks = run_checks(settings=resources["ingestion"].settings(), ledger=resources["ledger"], sensors=False)
    assert [(c.name, c.ok) for c in checks] == [
        ("s3 source orders", True),
        ("s3 bronze", True),
        ("ledger", True),
        ("oldest in flight", True),
        ("warehouse", True),
    ]


def test_a_document_waiting_too_long_and_a_missing_warehouse_fail(
    s3_env, write_sources, resources_for, tmp_path, monkeypatch
):
    resources = resources_for(write_sources([{"name": "inbox", "type": "local", "path": str(tmp_path)}]))
    book = resources["ledger"].ledger()
    book.record_discovered([DocumentVersion(DocumentRef("inbox", "", "late.csv"), "e1")])
    with book.engine.begin() as conn:
        conn.execute(sa.update(processed_files).values(discovered_at=datetime.now(UTC) - timedelta(hours=3)))
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(tmp_path / "none.duckdb"))
    checks = {
        c.name: c
        for c in run_checks(settings=resources["ingestion"].settings(), ledger=resources["ledger"], sensors=False)
    }
    assert (
        not checks["oldest in flight"].ok
        and "inbox:/late.csv DISCOVERED for 3:00:00" in checks["oldest in flight"].detail
    )
    assert not checks["warehouse"].ok and "no warehouse" in checks["warehouse"].detail


def test_make_health_reports_a_stopped_s3_server_as_a_failure(s3_env, write_sources, tmp_path):
    server = LocalS3Server(tmp_path / "s3-to-stop").start()
    env = {
        **os.environ,
        **server.env(),
        "INGESTION_SOURCES_FILE": write_sources(
            [{"name": "orders", "type": "s3", "bucket": "landing", "prefix": "orders/"}]
        ),
        "INGESTION_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "INGESTION_WAREHOUSE_PATH": built_warehouse(tmp_path / "warehouse.duckdb"),
    }
    server.stop()
    done = subprocess.run(
        [sys.executable, "-m", "ingestion_project.failures.health", "--no-sensors"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL  s3 source orders:") for line in lines), done.stdout
    assert any(line.startswith("ok    ledger:") for line in lines), done.stdout
    assert lines[-1].startswith("unhealthy: s3 source orders")


def test_the_health_checks_are_an_asset_check_in_the_ui_without_the_warehouse(
    s3_env, fresh_bucket, write_sources, resources_for, tmp_path, monkeypatch
):
    """The ingestion location's pods do not mount the warehouse: its check leaves the warehouse line out, so a
    deployment where the warehouse is elsewhere does not warn for ever."""
    import dagster as dg

    from ingestion_project.failures.health_check import platform_is_healthy
    from ingestion_project.ingestion.assets import raw_documents

    sources = write_sources([{"name": "inbox", "type": "local", "path": str(tmp_path)}], bronze_bucket=fresh_bucket)
    resources = resources_for(sources)
    monkeypatch.setenv("INGESTION_WAREHOUSE_PATH", str(tmp_path / "not-mounted-here" / "warehouse.duckdb"))
    defs = dg.Definitions(assets=[raw_documents], asset_checks=[platform_is_healthy], resources=resources)
    job = dg.define_asset_job("health", selection=dg.AssetSelection.checks(platform_is_healthy))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        result = defs.resolve_job_def("health").execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    # Everything but the sensors is healthy: no daemon has ticked on a fresh instance.
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    failing = {name for name, value in evaluation.metadata.items() if value.value.startswith("FAIL")}
    assert failing == {"sensor daemon", "sensor document_discovery_sensor", "sensor warehouse_automation_sensor"}
    assert evaluation.metadata["ledger"].value.startswith("ok: ")
    assert "warehouse" not in evaluation.metadata
