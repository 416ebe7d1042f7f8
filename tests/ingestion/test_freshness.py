"""Sources that stop sending are noticed: the sources_are_fresh check, run by its own job on a schedule."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.definitions import defs
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.freshness import (
    check_source_freshness_job,
    late_sources,
    source_freshness_schedule,
    sources_are_fresh,
)
from ingestion_project.ingestion.quality_checks import quality_checks
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion
from tests.ingestion.test_raw_documents import run_batch, sensor_requests

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def ingestion_defs() -> dg.Definitions:
    return defs()


def test_a_source_is_late_past_its_window_or_when_nothing_ever_came():
    expected = {"hourly": 3600.0, "daily": 86400.0, "never": 3600.0}
    last = {"hourly": NOW - timedelta(hours=2), "daily": NOW - timedelta(hours=2)}
    late = late_sources(expected, last, NOW)
    assert set(late) == {"hourly", "never"}
    assert "2:00:00 ago (expected within 1:00:00)" in late["hourly"]
    assert late["never"] == "no document yet (expected within 1:00:00)"


def test_the_check_fails_naming_the_silent_source_and_passes_once_it_sends(
    tmp_path, inbox, write_sources, resources_for
):
    sources = [
        {"name": "orders", "type": "local", "path": str(inbox), "expect_new_documents_within": "1h"},
        {"name": "invoices", "type": "local", "path": str(inbox), "expect_new_documents_within": "1d"},
        {"name": "archive", "type": "local", "path": str(inbox)},  # no expectation: never late
    ]
    resources = resources_for(write_sources(sources))
    book = resources["ledger"].ledger()
    book.record_discovered([DocumentVersion(DocumentRef("orders", "", "a.csv"), "e1", None, 1, None)])
    defs = dg.Definitions(
        assets=[raw_documents], asset_checks=[sources_are_fresh], jobs=[check_source_freshness_job], resources=resources
    )

    def evaluate() -> dg.AssetCheckEvaluation:
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def("check_source_freshness").execute_in_process(instance=instance)
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    late = evaluate()
    assert not late.passed and late.severity == dg.AssetCheckSeverity.WARN
    assert set(late.metadata["late_sources"].value) == {"invoices"}
    book.record_discovered([DocumentVersion(DocumentRef("invoices", "", "b.csv"), "e1", None, 1, None)])
    assert evaluate().passed


def test_the_schedule_runs_the_check_hourly_in_the_ingestion_location():
    assert source_freshness_schedule.cron_schedule == "0 * * * *"
    assert source_freshness_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = ingestion_defs().resolve_job_def("check_source_freshness")
    assert job is not None
    assert ingestion_defs().resolve_schedule_def("source_freshness_schedule").job_name == "check_source_freshness"


def test_a_sources_quality_check_warns_while_documents_are_held_back_by_its_rules(
    inbox, write_sources, resources_for, ledger_resource
):
    quality = {"unique": ["order_id"], "ranges": {"amount": {"min": 0}}}
    sources = [
        {"name": "inbox", "type": "local", "path": str(inbox), "quality": quality},
        {"name": "plain", "type": "local", "path": str(inbox)},  # no rules: no check
    ]
    resources = resources_for(write_sources(sources))
    settings = resources["ingestion"].settings()
    checks = quality_checks(settings)
    assert [next(iter(c.check_specs)).name for c in checks] == ["inbox_meets_quality_rules"]
    defs = dg.Definitions(
        assets=[raw_documents],
        asset_checks=[sources_are_fresh, *checks],
        jobs=[check_source_freshness_job],
        resources=resources,
    )

    def evaluate() -> dg.AssetCheckEvaluation:
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def("check_source_freshness").execute_in_process(instance=instance)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}["inbox_meets_quality_rules"]

    assert evaluate().passed
    (inbox / "negative.csv").write_text("order_id,amount\nORD-1,10.50\nORD-2,-3.25\n")
    (inbox / "good.csv").write_text("order_id,amount\nORD-3,1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        for request in sensor_requests(resources, instance):
            run_batch(resources, instance, request)
    held = evaluate()
    assert not held.passed and held.severity == dg.AssetCheckSeverity.WARN
    assert held.metadata["by_rule"].value == {"ranges": 1}
    assert list(held.metadata["documents"].value) == [DocumentRef("inbox", "", "negative.csv").partition_key]
    # Fixed in place: the new version lands, the dead letter closes, and the check passes again.
    (inbox / "negative.csv").write_text("order_id,amount\nORD-1,10.50\nORD-2,3.25\n")
    with dg.DagsterInstance.ephemeral() as instance:
        for request in sensor_requests(resources, instance):
            run_batch(resources, instance, request)
    assert evaluate().passed
