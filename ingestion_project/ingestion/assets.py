"""raw_documents: every discovered document, validated, parsed and landed as bronze Parquet."""

import dagster as dg

from ingestion_project.core.hooks import dead_letter_hook
from ingestion_project.core.partitions import documents_partitions
from ingestion_project.core.resources import IngestionResource, LedgerResource
from ingestion_project.ingestion.runs import IngestionRun, claimable_for
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.versions import DocumentVersion


class PinnedVersion(dg.Config):
    """One exact document version a run must process, as the discovery sensor requested it."""

    seq: int | None = None
    source: str
    bucket: str
    key: str
    etag: str
    version_id: str | None = None
    size: int | None = None

    def to_version(self) -> DocumentVersion:
        ref = DocumentRef(self.source, self.bucket, self.key)
        return DocumentVersion(ref, self.etag, self.version_id, self.size, seq=self.seq)


class IngestConfig(dg.Config):
    versions: list[PinnedVersion] = []
    """The versions to process (set by the discovery sensor). Empty: the run's partitions, at their current version."""
    force: bool = False
    """Re-ingest versions the ledger already has as succeeded, skipped, superseded or quarantined."""


@dg.asset(
    partitions_def=documents_partitions,
    group_name="ingestion",
    kinds={"s3", "parquet"},
    owners=["team:data-platform"],
    output_required=False,
    # On the asset, not only a job: runs of the implicit asset job ("Materialize", backfills) carry it too.
    hooks={dead_letter_hook},
)
def raw_documents(
    context: dg.AssetExecutionContext, config: IngestConfig, ingestion: IngestionResource, ledger: LedgerResource
):
    """Each discovered document, validated, hashed, parsed and written atomically as bronze Parquet."""
    run = IngestionRun(context, ingestion, ledger.ledger())
    if config.versions:
        versions, planned = [pinned.to_version() for pinned in config.versions], False
    elif context.has_partition_key or context.has_partition_key_range:
        versions, planned = run.pin_partitions(context.partition_keys), True
    else:
        raise dg.Failure("Nothing to ingest: give the run partitions, or versions in its config.", allow_retries=False)
    yield from run.land(versions, claimable=claimable_for(config.force, planned), planned=planned)
    run.finish()
