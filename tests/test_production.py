"""The production instance configuration (deploy/dagster.yaml) against a real PostgreSQL: it loads into an instance
with PostgreSQL storage, the queued run coordinator, run monitoring and retention, and `dagster-daemon` on it runs
one ingestion pass end to end — sensor, queued batch runs, ledger, bronze."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from devtools.local_s3 import CONFLICTING_ENV_VARS
from ingestion_project.lib.ledger import TERMINAL, Ledger, create_ledger_engine

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "dagster.yaml"
DOCUMENTS = {f"orders/2026-12-0{n}.csv": f"order_id,amount\nORD-{n}1,{n}.50\nORD-{n}2,{n}.75\n" for n in range(1, 6)}
DOCUMENTS["orders/broken.csv"] = "order_id,amount\nORD-9,1,2\n"


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def production_home(tmp_path: Path, postgres_url: str, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
    return home


def test_the_production_configuration_loads_into_a_postgres_instance(tmp_path, postgres_url, monkeypatch):
    home = production_home(tmp_path, postgres_url, monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
        assert limits == {"ingestion/source": 6}
        # The warehouse's single writer: the pool declared on its assets, one run at a time.
        pools = instance.get_concurrency_config().pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("run", 1)
        assert instance.run_monitoring_enabled
        assert instance.get_settings("telemetry")["enabled"] is False
        retention = yaml.safe_load(DEPLOY.read_text())["retention"]
        assert retention["sensor"]["purge_after_days"]["skipped"] == 7


def test_the_daemon_runs_an_ingestion_pass_on_the_production_instance(
    tmp_path, postgres_server, postgres_url, monkeypatch, s3_env, s3_client, fresh_bucket, write_sources
):
    home = production_home(tmp_path, postgres_url, monkeypatch)
    # The ledger in a database of its own on the same server (see README, "Production").
    ledger_url = postgres_server.create_database(f"ledger_{fresh_bucket.removeprefix('test-')}")
    for key, body in DOCUMENTS.items():
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body.encode())
    sources = write_sources(
        [{"name": "orders", "type": "s3", "bucket": fresh_bucket, "prefix": "orders/"}], bronze_bucket=fresh_bucket
    )
    env = {name: value for name, value in os.environ.items() if name not in CONFLICTING_ENV_VARS}
    env.update(
        s3_env,
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_URL=postgres_url,
        INGESTION_SOURCES_FILE=sources,
        INGESTION_LEDGER_URL=ledger_url,
        INGESTION_WAREHOUSE_PATH=str(tmp_path / "warehouse.duckdb"),
        DO_NOT_TRACK="1",
    )
    daemon = Path(sys.executable).parent / "dagster-daemon"
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [str(daemon), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    book = Ledger(create_ledger_engine(ledger_url))
    try:
        statuses: dict[str, int] = {}
        deadline = time.monotonic() + 300
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Every version in an end state, and the runs that recorded them finished (their events stored).
            while time.monotonic() < deadline and proc.poll() is None:
                statuses = {status: n for (source, status), n in book.status_counts().items() if source == "orders"}
                ended = sum(n for status, n in statuses.items() if status in TERMINAL) >= len(DOCUMENTS)
                if ended and not instance.get_runs(
                    filters=dg.RunsFilter(job_name="ingest_documents", statuses=IN_PROGRESS), limit=1
                ):
                    break
                time.sleep(2)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=30)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        # A code server the daemon was still starting outlives it: the rest of its session goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    tail = (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]
    assert statuses == {"SUCCESS": 5, "FAILED": 1}, tail
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_documents"))
        assert runs and all(run.run_config["ops"]["raw_documents"]["config"]["versions"] for run in runs)
        assert {run.status for run in runs} <= {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        materialized = instance.get_materialized_partitions(dg.AssetKey("raw_documents"))
    assert len(materialized) == 5
    manifests = s3_client.list_objects_v2(Bucket=fresh_bucket, Prefix="bronze/documents/orders/")["KeyCount"]
    assert manifests == 5
