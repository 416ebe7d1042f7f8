"""Source freshness: a source that declares ``expect_new_documents_within`` must have a new document version within
that window. An asset check on raw_documents says which sources are late; a schedule evaluates it every hour, since
a source that stops sending triggers nothing else."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.ingestion.assets import raw_documents

FRESHNESS_CHECK = "sources_are_fresh"


def late_sources(expected: dict[str, float], last: dict[str, datetime], now: datetime) -> dict[str, str]:
    """{source: why it is late} for the sources whose newest version is older than expected (or never came)."""
    late = {}
    for source, seconds in expected.items():
        window = timedelta(seconds=seconds)
        at = last.get(source)
        if at is None:
            late[source] = f"no document yet (expected within {window})"
        elif now - at > window:
            late[source] = (
                f"newest document discovered {at:%Y-%m-%d %H:%M} UTC, {now - at} ago (expected within {window})"
            )
    return late


@dg.asset_check(
    asset=raw_documents,
    name=FRESHNESS_CHECK,
    description="Every source with expect_new_documents_within had a new document version within that window.",
)
def sources_are_fresh(ingestion: IngestionResource, ledger: LedgerResource) -> dg.AssetCheckResult:
    expected = {
        source.name: source.expect_new_documents_within
        for source in ingestion.settings().sources
        if source.expect_new_documents_within is not None
    }
    now = datetime.now(UTC)
    last = ledger.ledger().last_discovered()
    late = late_sources(expected, last, now)
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        description=("Late: " + "; ".join(f"{s}: {why}" for s, why in late.items())) if late else "All on time.",
        metadata={
            "late_sources": dg.MetadataValue.json(late),
            "newest_discovery": dg.MetadataValue.json(
                {source: (last[source].isoformat() if source in last else None) for source in expected}
            ),
        },
    )


check_source_freshness_job = dg.define_asset_job(
    "check_source_freshness",
    selection=dg.AssetSelection.checks_for_assets(raw_documents),
    description=(
        "Evaluate the checks on raw_documents: the sources' freshness expectations (sources_are_fresh) and each "
        "source's quality rules (<source>_meets_quality_rules)."
    ),
)

source_freshness_schedule = dg.ScheduleDefinition(
    name="source_freshness_schedule",
    job=check_source_freshness_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: a source that stops sending triggers nothing else.",
)
