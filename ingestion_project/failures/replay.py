"""Replay of the dead-letter queue: a job launchable from the UI, and an hourly schedule (off by default).

The job does not ingest anything itself: it returns each replayable version to DISCOVERED in the ledger, and the
discovery sensor requests a run for it on its next tick (run key ``<partition>@<etag>#<retry>``), so a replay goes
through the same job, retries and dead-letter hook as any ingestion. Versions out of replays are quarantined.
Replay never touches a version that a run holds (a "Materialize" started on a FAILED partition): it is counted as
in flight, and that run's outcome decides the version and its dead letter.
"""

import dagster as dg

from ingestion_project.core.dead_letters import write_pending
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion


class ReplayConfig(dg.Config):
    source: str | None = None
    """Only this source's dead letters (all sources when empty)."""
    limit: int = 500
    """At most this many dead letters per run."""


@dg.op
def replay_dead_letters(
    context: dg.OpExecutionContext, config: ReplayConfig, ingestion: IngestionResource, ledger: LedgerResource
) -> dg.Output[dict]:
    """Request a replay of every open dead letter with retries left; quarantine the rest."""
    book, settings = ledger.ledger(), ingestion.settings()
    outcome: dict[str, list[str]] = {"requested": [], "quarantined": [], "in_flight": [], "source_removed": []}
    outcome["database"] = []
    for letter in book.open_dead_letters(config.limit, config.source):
        version = DocumentVersion(DocumentRef.of_row(letter), letter["etag"])
        if settings.has_database(letter["source"]):
            # Not replayed: the table's next extraction reads the same rows again and closes this dead letter.
            outcome["database"].append(letter["partition_key"])
        elif not settings.has_source(letter["source"]):
            # Kept open (FAILED) as it is: restoring the source makes it replayable again.
            context.log.warning(
                f"Not replaying {letter['partition_key']}: source '{letter['source']}' is not in the sources file"
            )
            outcome["source_removed"].append(letter["partition_key"])
        elif letter["retry_count"] >= letter["max_retries"]:
            # Guarded in the ledger: a version a run holds (a person's Materialize) is left to that run.
            quarantined = book.quarantine(version) is not None
            outcome["quarantined" if quarantined else "in_flight"].append(letter["partition_key"])
        elif book.request_replay(version):
            outcome["requested"].append(letter["partition_key"])
        else:
            outcome["in_flight"].append(letter["partition_key"])
    _written, problems = write_pending(book, ingestion.dead_letter_store)
    for problem in problems:
        context.log.error(f"Dead-letter record still pending (the discovery sensor retries it): {problem}")
    context.log.info(", ".join(f"{name}: {len(keys)}" for name, keys in outcome.items()))
    return dg.Output(
        outcome,
        metadata={
            "requested": dg.MetadataValue.int(len(outcome["requested"])),
            "quarantined": dg.MetadataValue.int(len(outcome["quarantined"])),
            "still_in_flight": dg.MetadataValue.int(len(outcome["in_flight"])),
            "source_removed": dg.MetadataValue.int(len(outcome["source_removed"])),
            "documents": dg.MetadataValue.json(outcome),
        },
    )


@dg.job(description="Re-ingest dead-lettered documents with replays left; quarantine those without.")
def replay_dead_letters_job():
    replay_dead_letters()


replay_dead_letters_schedule = dg.ScheduleDefinition(
    name="replay_dead_letters_schedule",  # the name the README and the UI share
    job=replay_dead_letters_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly replay of the dead-letter queue (turn on in Automation).",
)
