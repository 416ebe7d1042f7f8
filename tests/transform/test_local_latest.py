"""How "latest" is decided for local folders: by the ledger's discovery order, not by mtimes a writer can set.
Real local files with set mtimes are ingested by the real sensor and runs, then the warehouse is built over the
local bronze: a version written under a clock a day ahead, and a corrected file copied with `cp -p` (an older
mtime), each replace the version before them in fct_document_versions, fct_orders and the ledger."""

from __future__ import annotations

import os
import shutil
import time

import dagster as dg

from tests.ingestion.test_raw_documents import run_batch, sensor_requests
from tests.transform.conftest import build_warehouse

HEADER = "order_id,customer_id,order_date,status,amount,currency"
DAY = 86_400


def orders(status: str, amount: str, *ids: str) -> str:
    return "\n".join([HEADER, *(f"{i},C1,2026-11-02,{status},{amount},EUR" for i in ids)]) + "\n"


def ingest(resources, instance) -> None:
    """One discovery tick and every run it requests, each of which must land its documents."""
    requests = sensor_requests(resources, instance)
    assert requests
    for request in requests:
        assert run_batch(resources, instance, request).success


def test_local_latest_follows_discovery_order_where_mtimes_go_backwards(
    tmp_path, inbox, write_sources, resources_for, ledger_resource, monkeypatch
):
    people = tmp_path / "people"
    people.mkdir()
    (people / "customers.csv").write_text(
        "customer_id,name,email,country,signed_up_at\nC1,Ada,a@example.com,DE,2026-01-01\n"
    )
    sources = [
        {"name": "orders", "type": "local", "path": str(inbox)},
        {"name": "customers", "type": "local", "path": str(people)},
    ]
    resources = resources_for(write_sources(sources))
    ahead, copied = inbox / "ahead.csv", inbox / "copied.csv"
    now = time.time()
    with dg.DagsterInstance.ephemeral() as instance:
        ahead.write_text(orders("placed", "10.00", "ORD-A"))
        os.utime(ahead, (now + DAY, now + DAY))  # written under a clock a day ahead
        copied.write_text(orders("placed", "20.00", "ORD-C"))
        ingest(resources, instance)

        ahead.write_text(orders("shipped", "11.00", "ORD-A"))
        os.utime(ahead, (now, now))  # the clock put right: the new version's mtime is before the old one's
        corrected = tmp_path / "corrected.csv"
        corrected.write_text(orders("cancelled", "21.00", "ORD-C"))
        os.utime(corrected, (now - DAY, now - DAY))  # fixed yesterday, elsewhere
        shutil.copy2(corrected, copied)  # `cp -p`: the copy keeps the older mtime
        ingest(resources, instance)

    book = ledger_resource.ledger()
    versions = book.versions("orders")
    assert sorted((r["object_key"], r["status"]) for r in versions) == [
        ("ahead.csv", "SUCCESS"),
        ("ahead.csv", "SUCCESS"),
        ("copied.csv", "SUCCESS"),
        ("copied.csv", "SUCCESS"),
    ]
    newest = {key: max(r["id"] for r in versions if r["object_key"] == key) for key in ("ahead.csv", "copied.csv")}
    for key, row_id in newest.items():
        older, newer = sorted((r for r in versions if r["object_key"] == key), key=lambda r: r["id"])
        assert newer["modified_at"] < older["modified_at"]  # the mtimes really go backwards
        assert book.latest_version("orders", "", key)["id"] == row_id

    build = build_warehouse([str(tmp_path / "bronze")], tmp_path / "warehouse.duckdb", monkeypatch)
    assert build.result.success
    latest = build.query(
        "select object_key, discovery_seq from fct_document_versions where source = 'orders' and is_latest_version"
    )
    assert dict(latest) == newest
    assert build.query("select customer_id, order_count from dim_customers") == [("C1", 2)]
    served = build.query("select order_id, status, amount from fct_orders order by order_id")
    assert [(o, s, float(a)) for o, s, a in served] == [("ORD-A", "shipped", 11.0), ("ORD-C", "cancelled", 21.0)]
