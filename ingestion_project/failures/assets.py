"""ingestion_ledger: the processed-files ledger and the dead-letter queue, snapshotted into the warehouse.

dbt reads the snapshot (sources ``ledger.processed_files``, ``ledger.dead_letters`` and ``ledger.schema_versions``)
for the failure, backlog and schema-change marts; the asset checks here hold the ledger to its promises on every build.
"""

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow as pa
import sqlalchemy as sa

from ingestion_project.config import Settings
from ingestion_project.core.automation import LEDGER_SNAPSHOT_CONDITION
from ingestion_project.core.keys import RAW_DOCUMENTS, WAREHOUSE_POOL, database_asset_keys
from ingestion_project.core.resources import LedgerResource
from ingestion_project.core.warehouse import ensure_warehouse_dir, warehouse_path
from ingestion_project.lib.ledger import Status, dead_letters, is_balanced, processed_files, schema_versions

_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _arrow_type(column: sa.Column) -> pa.DataType:
    if isinstance(column.type, sa.Integer):
        return pa.int64()
    if isinstance(column.type, sa.Boolean):
        return pa.bool_()
    if "DateTime" in type(column.type).__name__ or isinstance(column.type, sa.DateTime):
        return _TIMESTAMP
    return pa.string()


def snapshot_table(table: sa.Table, rows: list[dict], snapshot_at: datetime, **extra: tuple) -> pa.Table:
    """The rows as Arrow, typed from the SQLAlchemy table (so an empty snapshot still has its columns)."""
    fields = [pa.field(c.name, _arrow_type(c)) for c in table.columns]
    fields += [pa.field(name, kind) for name, (kind, _) in extra.items()] + [pa.field("snapshot_at", _TIMESTAMP)]
    for row in rows:
        row.update({name: derive(row) for name, (_, derive) in extra.items()}, snapshot_at=snapshot_at)
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


@dg.asset(
    group_name="ingestion",
    kinds={"sqlite", "duckdb"},
    owners=["team:data-platform"],
    deps=[RAW_DOCUMENTS],
    pool=WAREHOUSE_POOL,
    automation_condition=LEDGER_SNAPSHOT_CONDITION,
)
def ingestion_ledger(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """The processed-files ledger and the dead-letter queue, snapshotted into the warehouse for dbt."""
    book = ledger.ledger()
    now = datetime.now(UTC)
    files = snapshot_table(processed_files, book.versions(), now)
    letters = snapshot_table(
        dead_letters, book.dead_letter_rows(), now, is_resolved=(pa.bool_(), lambda r: r["state"] == "resolved")
    )
    schemas = snapshot_table(schema_versions, book.schema_version_rows(), now)
    ensure_warehouse_dir()
    with duckdb.connect(str(warehouse_path())) as con:
        con.execute("create schema if not exists ledger")
        for name, table in (("processed_files", files), ("dead_letters", letters), ("schema_versions", schemas)):
            con.register("snapshot", table)
            con.execute(f"create or replace table ledger.{name} as select * from snapshot")
            con.unregister("snapshot")
    figures = book.conservation()
    return dg.MaterializeResult(
        metadata={
            "versions": dg.MetadataValue.int(files.num_rows),
            "dead_letters": dg.MetadataValue.int(letters.num_rows),
            "schema_versions": dg.MetadataValue.int(schemas.num_rows),
            "open_dead_letters": dg.MetadataValue.int(sum(r == "open" for r in letters.column("state").to_pylist())),
            "by_source": dg.MetadataValue.json(figures),
        }
    )


def ingestion_ledger_for(settings: Settings) -> dg.AssetsDefinition:
    """`ingestion_ledger` downstream of the database tables of ``settings`` as well: an extraction, landed or
    failed, is recorded in the ledger like a document version."""
    extra = database_asset_keys(settings)
    if not extra:
        return ingestion_ledger
    return ingestion_ledger.map_asset_specs(lambda spec: spec.replace_attributes(deps=[*spec.deps, *extra]))


@dg.asset_check(
    asset=ingestion_ledger,
    description=(
        "Every discovered version is in exactly one state, per source. Blocking: a ledger that lost count of a "
        "version does not feed the marts."
    ),
    blocking=True,
)
def ledger_is_conserved(ledger: LedgerResource) -> dg.AssetCheckResult:
    book = ledger.ledger()
    figures = book.conservation()
    unbalanced = {source: f for source, f in figures.items() if not is_balanced(f)}
    versions = book.versions()
    # One object is one key_hash (object_key is only its readable text, which two exotic names can share).
    duplicates = len(versions) - len({(r["key_hash"], r["etag"]) for r in versions})
    return dg.AssetCheckResult(
        passed=not unbalanced and duplicates == 0,
        metadata={"by_source": dg.MetadataValue.json(figures), "duplicate_versions": duplicates},
    )


@dg.asset_check(
    asset=ingestion_ledger, description="Every FAILED version has an open dead-letter record (nothing lost silently)."
)
def failed_documents_are_dead_lettered(ledger: LedgerResource) -> dg.AssetCheckResult:
    book = ledger.ledger()
    open_letters = {(r["key_hash"], r["etag"]) for r in book.dead_letter_rows() if r["state"] == "open"}
    missing = [
        r["partition_key"]
        for r in book.versions()
        if r["status"] == Status.FAILED and (r["key_hash"], r["etag"]) not in open_letters
    ]
    return dg.AssetCheckResult(
        passed=not missing,
        # A failure whose step is still retrying has no record yet: warn rather than fail the build.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed_without_dead_letter": dg.MetadataValue.json(missing[:50]), "count": len(missing)},
    )


def ledger_snapshot_defs(settings: Settings) -> dg.Definitions:
    """The ledger snapshot into the warehouse and its checks: in the warehouse code location."""
    return dg.Definitions(
        assets=[ingestion_ledger_for(settings)],
        asset_checks=[ledger_is_conserved, failed_documents_are_dead_lettered],
    )
