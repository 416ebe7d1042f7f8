"""The health checks of `make health` as an asset check on raw_documents, so the UI shows them too."""

import dagster as dg

from ingestion_project.core.keys import RAW_DOCUMENTS
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.failures.health import run_checks


@dg.asset_check(
    asset=RAW_DOCUMENTS,
    name="platform_is_healthy",
    description=(
        "The checks of `make health` that this code location can run where it runs: S3 per source and bronze, the "
        "ledger, a sample of bronze's integrity, the sensor daemon and sensor ticks, the oldest document in flight. "
        "Not the warehouse, which only the warehouse location's pods mount. Fails (a warning) naming what is wrong."
    ),
)
def platform_is_healthy(
    context: dg.AssetCheckExecutionContext, ingestion: IngestionResource, ledger: LedgerResource
) -> dg.AssetCheckResult:
    # The warehouse is mounted only where it is built (the warehouse location's pods): checking it from here would
    # always warn in a deployment where this location's pods do not mount it.
    checks = run_checks(
        settings=ingestion.settings(), ledger=ledger, instance=context.instance, ingestion=ingestion, warehouse=False
    )
    failed = [check for check in checks if not check.ok]
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{c.name}: {c.detail}" for c in failed) if failed else "All healthy.",
        metadata={check.name: ("ok: " if check.ok else "FAIL: ") + check.detail for check in checks},
    )
