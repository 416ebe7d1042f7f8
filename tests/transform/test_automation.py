"""The warehouse's declarative automation: what warehouse_automation_sensor requests, tick by tick, on a real
instance (the conditions of ingestion_project/core/automation.py, evaluated as the daemon evaluates them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from devtools.workspace import workspace_definitions
from ingestion_project.core.keys import INGESTION_LEDGER, RAW_DOCUMENTS
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.transform.automation import WAREHOUSE_SELECTION

PARTITION = "orders:landing/orders/2026-11-01.csv"
FCT_ORDERS = dg.AssetKey("fct_orders")
FCT_FAILURES = dg.AssetKey("fct_ingestion_failures")
STG_ORDERS = dg.AssetKey("stg_bronze__orders")


class Ticks:
    """Successive evaluations of the warehouse's automation conditions, each from the previous one's cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None
        graph = defs.resolve_asset_graph()
        self.warehouse = WAREHOUSE_SELECTION.resolve(graph)
        self.build_order = [key for key in graph.toposorted_asset_keys if key in self.warehouse]

    def requested(self, at: datetime | None = None) -> set[dg.AssetKey]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            asset_selection=WAREHOUSE_SELECTION,
            cursor=self.cursor,
            evaluation_time=at,
        )
        self.cursor = result.cursor
        return {key for key in self.warehouse if result.get_num_requested(key)}

    def built(self) -> None:
        """The warehouse was built: every asset of the selection materialized, parents first."""
        for key in self.build_order:
            self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))

    def landed(self, partition: str = PARTITION) -> None:
        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=RAW_DOCUMENTS, partition=partition))

    def failed(self, key: dg.AssetKey, partition: str | None = None) -> None:
        """A run of ``key`` (one partition of it) that failed, as a run of the real asset fails."""

        @dg.asset(key=key, partitions_def=documents_partitions if partition else None)
        def failing() -> None:
            raise RuntimeError("the document could not be read")

        result = dg.materialize([failing], instance=self.instance, partition_key=partition, raise_on_error=False)
        assert not result.success


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return workspace_definitions()


@pytest.fixture
def ticks(defs: dg.Definitions):
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(documents_partitions.name, [PARTITION, "orders:landing/broken.csv"])
        yield Ticks(defs, instance)


def test_a_fresh_instance_builds_the_whole_warehouse_once(ticks: Ticks):
    assert ticks.requested() == ticks.warehouse
    ticks.built()
    assert ticks.requested() == set()
    assert ticks.requested() == set()


def test_a_document_that_lands_rebuilds_the_snapshot_and_the_models_in_one_tick(ticks: Ticks):
    ticks.requested()
    ticks.built()
    ticks.requested()

    ticks.landed()
    requested = ticks.requested()
    assert {INGESTION_LEDGER, STG_ORDERS, FCT_ORDERS, FCT_FAILURES} <= requested
    ticks.built()
    assert ticks.requested() == set()


def test_a_document_that_lands_while_the_build_finishes_is_not_lost(ticks: Ticks):
    # Between two ticks: the build ends, then a document lands. eager()'s since_last_handled() would drop it.
    ticks.requested()
    ticks.built()
    ticks.landed()
    # In one tick: the snapshot, and the staged manifests it orders (they keep only what its SUCCESS rows name).
    assert {INGESTION_LEDGER, dg.AssetKey("stg_bronze__documents"), FCT_ORDERS} <= ticks.requested()


def test_a_pass_of_failures_refreshes_the_ledger_and_failure_marts(ticks: Ticks):
    ticks.requested()
    ticks.built()
    ticks.requested()

    ticks.failed(RAW_DOCUMENTS, "orders:landing/broken.csv")  # nothing lands: the only news is the failure
    requested = ticks.requested()
    assert {INGESTION_LEDGER, FCT_FAILURES} <= requested
    assert STG_ORDERS not in requested  # no new bronze: the document staging has nothing to read
    # The staged manifests read the snapshot (which manifests are committed), yet a new snapshot alone is no news.
    assert dg.AssetKey("stg_bronze__documents") not in requested
    ticks.built()
    assert ticks.requested() == set()


def test_a_failed_build_waits_for_something_new_instead_of_looping(ticks: Ticks):
    ticks.requested()
    ticks.built()
    ticks.requested()
    ticks.landed()
    assert INGESTION_LEDGER in ticks.requested()

    ticks.failed(INGESTION_LEDGER)  # the snapshot's build failed (a blocking check, a locked warehouse)
    assert INGESTION_LEDGER not in ticks.requested()
    assert INGESTION_LEDGER not in ticks.requested()

    ticks.landed()  # the next document tries again
    assert INGESTION_LEDGER in ticks.requested()


def test_the_warehouse_is_rebuilt_hourly_even_without_news(ticks: Ticks):
    # The safety net for a document that lands while a model is built, after it read bronze: it looks older.
    now = datetime.now(UTC)
    next_hour = now.replace(minute=0, second=30, microsecond=0) + timedelta(hours=1)
    ticks.requested(now)
    ticks.built()
    assert ticks.requested(now + timedelta(seconds=30)) == set()
    assert {INGESTION_LEDGER, FCT_ORDERS} <= ticks.requested(next_hour)


def test_the_snapshot_and_the_models_write_the_warehouse_through_one_pool(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    pools = {frozenset(graph.get(key).pools) for key in WAREHOUSE_SELECTION.resolve(graph)}
    assert pools == {frozenset({"duckdb_warehouse"})}
