"""When the warehouse builds: declarative automation conditions on the ledger snapshot and the dbt models.

Not `AutomationCondition.eager()`, for two reasons:

- eager waits while any parent partition is missing or failed, and `raw_documents` keeps failed partitions on
  purpose (a dead-lettered document stays failed until replayed): eager would never build again;
- its `since_last_handled()` ORs the reset conditions together, which drops their timestamps, so a document that
  lands in the same tick window as a build finishes is taken as handled by that build and never built.

So each condition is "a dependency updated after this asset last updated", compared by timestamp (a dependency's
`newly_updated` against the asset's own), or a parent requested in the same tick (one run builds the snapshot and
the models), or — for a fresh instance or a new model — the asset newly missing. The ledger snapshot also builds
after a `raw_documents` partition newly fails: a pass of failures lands nothing, yet the failure marts must show it.
Nothing is requested while the asset's own build is in progress, and a failed build is not retried until something
new arrives, so a broken dbt test does not loop.
"""

import dagster as dg

from ingestion_project.core.keys import INGESTION_LEDGER

AC = dg.AutomationCondition

_SELF_UPDATED = AC.newly_updated()
_DEP_UPDATED = AC.any_deps_match(AC.newly_updated()).with_label("any_deps_newly_updated")
_DEP_REQUESTED = AC.any_deps_match(AC.will_be_requested()).with_label("any_deps_will_be_requested")
_DEP_NEWLY_FAILED = AC.any_deps_match(AC.execution_failed().newly_true()).with_label("any_deps_newly_failed")
# Timestamps compare materializations, which end a build: a document that lands while a model is being built, after
# it read bronze, looks older than the model. The next change picks it up, and at the latest this hourly rebuild
# (incremental: seconds when nothing is new), which also retries a failed build.
_HOURLY = AC.cron_tick_passed("0 * * * *").with_label("hourly")


def _after(*news: dg.AutomationCondition, requested: dg.AutomationCondition = _DEP_REQUESTED) -> dg.AutomationCondition:
    """True while any of ``news`` happened after the asset's last update (or a parent is ``requested`` now),
    unless its build is in progress, or its last build failed and nothing new arrived this tick."""
    outdated = AC.newly_missing().since(_SELF_UPDATED)
    for event in news:
        outdated = outdated | event.since(_SELF_UPDATED)
    anything_new = requested
    for event in news:
        anything_new = anything_new | event
    return (outdated | requested) & ~AC.in_progress() & (~AC.execution_failed() | anything_new)


LEDGER_SNAPSHOT_CONDITION = _after(_DEP_UPDATED, _DEP_NEWLY_FAILED, _HOURLY).with_label(
    "when missing, after documents land or fail, and hourly"
)

WAREHOUSE_MODEL_CONDITION = _after(_DEP_UPDATED, _HOURLY).with_label(
    "when missing, after its sources or parents update, and hourly"
)

# The staged manifests read the ledger snapshot only to know which manifests are committed: the snapshot orders
# their build (it runs first when both are requested) but does not start it — a pass of failures refreshes the
# snapshot and lands no bronze, so staging has nothing new to read.
_NOT_THE_SNAPSHOT = dg.AssetSelection.assets(INGESTION_LEDGER)
STAGED_MANIFESTS_CONDITION = _after(
    AC.any_deps_match(AC.newly_updated()).ignore(_NOT_THE_SNAPSHOT).with_label("any_bronze_deps_newly_updated"),
    _HOURLY,
    requested=AC.any_deps_match(AC.will_be_requested())
    .ignore(_NOT_THE_SNAPSHOT)
    .with_label("any_bronze_deps_will_be_requested"),
).with_label("when missing, after bronze lands, and hourly")
