"""Fencing all the way to bronze: a worker frozen (SIGSTOP) while its manifest PUT is in flight, whose lease then
expires, finishes its PUT after the version was decided elsewhere — and bronze, the ledger and the warehouse still
agree.

Worker A runs in a process of its own; the loopback proxy holds its manifest PUT. A is frozen, its lease expires,
the sensor releases the version, and run B lands it (or, with ``max_attempts: 1``, the version is quarantined).
Then A's PUT completes: its manifest is in bronze for a moment, and a warehouse build made right then reads B's
rows only (or nothing). A, resumed, finds its commit refused and removes its files.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest

from devtools.ticks import skip_message
from ingestion_project.failures.integrity import verify_bronze
from tests.failures.conftest import Pipeline
from tests.failures.s3_support import (
    MANIFESTS,
    assert_nothing_lost_or_doubled,
    documents_tally,
    keys_under,
    pinned,
    requested,
    wait_until,
    worker,
    write_request,
)
from tests.transform.conftest import snapshot_and_build

KEY = "in/orders.csv"
GOOD = (
    b"order_id,customer_id,order_date,status,amount,currency\n"
    b"O-1,C1,2026-11-01,placed,1.50,USD\nO-2,C2,2026-11-02,placed,2.50,USD\n"
)
LEASE_SECONDS = 2


CUSTOMERS = (
    b"customer_id,name,email,country,signed_up_at\n"
    b"C1,Ana,a@example.com,BR,2026-01-01\nC2,Li,l@example.com,IE,2026-01-02\n"
)


@pytest.fixture
def landing(fresh_bucket, s3_client) -> str:
    s3_client.put_object(Bucket=fresh_bucket, Key=KEY, Body=GOOD)
    s3_client.put_object(Bucket=fresh_bucket, Key="customers/all.csv", Body=CUSTOMERS)
    return fresh_bucket


def make_pipeline(max_attempts, landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance) -> Pipeline:
    source = {"name": "orders", "type": "s3", "bucket": landing, "prefix": "in/", "max_attempts": max_attempts}
    # The orders' customers, so that the marts' relationships hold: landed in-process, never in the way.
    customers = {"name": "customers", "type": "s3", "bucket": landing, "prefix": "customers/"}
    sources_file = write_sources([source, customers], bronze_bucket=bronze_bucket, lease_seconds=LEASE_SECONDS)
    return Pipeline(resources_for(sources_file, endpoint_url=s3_proxy.endpoint_url, max_attempts=0), instance)


def freeze(process, ledger_path: str, tries: int = 20) -> None:
    """SIGSTOP ``process`` at a moment it holds no write lock on the SQLite ledger (its heartbeat writes now and
    then): stopped inside a transaction, it would block every other writer until it is resumed."""
    for _ in range(tries):
        process.send_signal(signal.SIGSTOP)
        try:
            with sqlite3.connect(ledger_path, timeout=0.2) as conn:
                conn.execute("begin immediate")
                conn.execute("rollback")
            return
        except sqlite3.OperationalError:
            process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    raise AssertionError(f"could not freeze the worker outside a ledger transaction in {tries} tries")


def warehouse(ledger_resource, bronze_bucket: str, path, monkeypatch, *, full_refresh: bool = False):
    """The ledger snapshot, then a dbt build over the bronze bucket, into the DuckDB file at ``path``."""
    roots = [f"s3://{bronze_bucket}/bronze"]
    return snapshot_and_build(ledger_resource, roots, path, monkeypatch, full_refresh=full_refresh)


def orders_row(pipeline: Pipeline) -> dict:
    [row] = [row for row in pipeline.ledger.versions() if row["source"] == "orders"]
    return row


def staged(build) -> tuple[list, list]:
    """What the warehouse holds of the version: its staged manifests, and its staged orders rows."""
    manifests = build.query(
        "select manifest_key, ingested_at from stg_bronze__documents where source = 'orders' order by 1"
    )
    rows = build.query("select order_id, ingested_at from stg_bronze__orders order by 1")
    return manifests, rows


@pytest.mark.parametrize("max_attempts", [3, 1], ids=["relanded", "quarantined"])
def test_a_frozen_worker_whose_manifest_put_lands_late_never_makes_bronze_disagree_with_the_ledger(
    max_attempts,
    tmp_path,
    landing,
    bronze_bucket,
    s3_client,
    s3_proxy,
    write_sources,
    resources_for,
    instance,
    ledger_resource,
    monkeypatch,
):
    pipeline = make_pipeline(max_attempts, landing, bronze_bucket, s3_proxy, write_sources, resources_for, instance)
    requests = {pinned(r)[0]["source"]: r for r in requested(pipeline.tick())}
    assert pipeline.run_request(requests.pop("customers")).success
    [request] = requests.values()
    held = s3_proxy.hold(method="PUT", path=f"/{bronze_bucket}/{MANIFESTS}orders/", seconds=240)
    ledger_path = ledger_resource.url.removeprefix("sqlite:///")
    with worker(
        tmp_path / "workers",
        "stale",
        sources=pipeline.resources["ingestion"].sources_file,
        ledger_url=ledger_resource.url,
        dagster_home=instance.root_directory,
        endpoint_url=s3_proxy.endpoint_url,
        s3_max_attempts="0",
        request=write_request(tmp_path / "workers" / "stale.request.json", request),
    ) as stale:

        def putting_its_manifest():
            assert stale.process.poll() is None, f"the worker exited early:\n{stale.output()}"
            return held.arrived.is_set()

        wait_until(putting_its_manifest, 120, "worker A to send its manifest PUT")
        freeze(stale.process, ledger_path)
        held_row = orders_row(pipeline)
        assert held_row["status"] == "PROCESSING"
        wait_until(lambda: orders_row(pipeline)["lease_expires_at"] < datetime.now(UTC), 30, "A's lease to expire")

        # The sensor releases the version; run B lands it (or, out of attempts, it is quarantined).
        tick, runs = pipeline.run_requests()
        row = orders_row(pipeline)
        if max_attempts > 1:
            [run] = runs
            assert run.success
            assert (row["status"], row["run_id"], row["lost_count"]) == ("SUCCESS", run.run_id, 1)
            assert row["bronze_manifest_key"] and row["run_id"] != held_row["run_id"]
        else:
            assert runs == [] and skip_message(tick) is not None
            assert (row["status"], row["error_type"], row["bronze_manifest_key"]) == ("QUARANTINED", "WorkerLost", None)

        # A's PUT completes while A is still frozen: its manifest is in bronze beside B's (or alone)...
        held.release()
        assert held.forwarded.wait(30)
        stale_key = unquote(urlsplit(held.target).path).removeprefix(f"/{bronze_bucket}/")
        committed = {f"bronze/{row['bronze_manifest_key']}"} if row["bronze_manifest_key"] else set()
        assert set(keys_under(s3_client, bronze_bucket, f"{MANIFESTS}orders/")) == committed | {stale_key}
        assert stale_key not in committed  # a name of its own: it overwrote nothing
        # ...and a warehouse built right now reads B's rows only (or nothing of the version).
        build = warehouse(ledger_resource, bronze_bucket, tmp_path / "warehouse.duckdb", monkeypatch)
        manifests, rows = staged(build)
        if max_attempts > 1:
            [(manifest, landed_at)] = manifests
            assert manifest == row["bronze_manifest_key"]
            assert rows == [("O-1", landed_at), ("O-2", landed_at)]  # B's rows, once
        else:
            assert (manifests, rows) == ([], [])

        # A resumes: the fenced SUCCESS refuses its commit, and A removes what it wrote.
        stale.process.send_signal(signal.SIGCONT)
        report = stale.wait(120)
    assert documents_tally(report["messages"]) == {"lease lost": 1}
    assert report["materialized"] == []
    assert orders_row(pipeline) == row  # A changed nothing in the ledger
    # Bronze holds exactly the committed files of SUCCESS versions, and every version is in one end state.
    assert_nothing_lost_or_doubled(pipeline.ledger, instance, s3_client, bronze_bucket, also={"QUARANTINED"})
    # B's files are exactly what its commit recorded (size and sha256): nothing of A's reached them.
    integrity = verify_bronze(pipeline.ledger, pipeline.resources["ingestion"], repair=False)
    assert (integrity.checked, integrity.findings) == (1 + (max_attempts > 1), [])

    # Later builds, incremental and full refresh, still show B's rows only.
    for full_refresh in (False, True):
        again = warehouse(
            ledger_resource, bronze_bucket, tmp_path / "warehouse.duckdb", monkeypatch, full_refresh=full_refresh
        )
        assert staged(again) == (manifests, rows)
