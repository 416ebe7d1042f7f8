"""ingestion_ledger: the processed-files ledger and the dead-letter queue, snapshotted into the warehouse.

dbt reads the snapshot (sources ``ledger.processed_files``, ``ledger.dead_letters`` and ``ledger.schema_versions``)
for the failure, backlog and schema-change marts; the asset checks here hold the ledger to its promises on every build.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pyarrow as pa
import sqlalchemy as sa

from ingestion_project.config import Settings
from ingestion_project.core.automation import LEDGER_SNAPSHOT_CONDITION
from ingestion_project.core.keys import RAW_DOCUMENTS, WAREHOUSE_POOL, database_asset_keys
from ingestion_project.core.resources import LedgerResource
from ingestion_project.core.warehouse import ensure_warehouse_dir, warehouse_path
from ingestion_project.lib.ledger import Ledger, dead_letters, is_balanced, processed_files, schema_versions

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


# Rows whose change is older than the newest one copied, but which committed after it (a slow transaction, a
# writer's clock behind): read again on the next snapshot, which covers them if they are at most this late.
SNAPSHOT_OVERLAP = timedelta(minutes=10)


class LedgerSnapshotConfig(dg.Config):
    full: bool = False
    """Copy the whole ledger instead of what changed since the last snapshot (it is full by itself the first time
    and after the ledger's columns change)."""


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    query = (
        "select column_name from information_schema.columns where table_schema = 'ledger' and table_name = ? "
        "order by ordinal_position"
    )
    return [column for (column,) in con.execute(query, [name]).fetchall()]


def _replace(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register("snapshot", table)
    con.execute(f"create or replace table ledger.{name} as select * from snapshot")
    con.unregister("snapshot")


def _upsert(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register("changed", table)
    con.execute(f"delete from ledger.{name} where id in (select id from changed)")
    con.execute(f"insert into ledger.{name} select * from changed")
    con.unregister("changed")


def write_snapshot(con: duckdb.DuckDBPyConnection, book: Ledger, now: datetime, *, full: bool = False) -> dict:
    """Copy the ledger into the warehouse's `ledger` schema: only the versions changed since the last snapshot
    (``updated_at``, with an overlap) and the schema history recorded since, or all of it when ``full``, on the
    first snapshot, or when the ledger's columns changed. Dead letters (one per failure, not per document) are
    copied whole. Returns what was copied."""
    con.execute("create schema if not exists ledger")
    con.execute(
        "create table if not exists ledger.snapshot_log ("
        "snapshot_at timestamptz, mode varchar, versions bigint, schema_versions bigint, dead_letters bigint)"
    )
    incremental = not full and all(
        _columns(con, name) == [c.name for c in table.columns] + ["snapshot_at"]
        for name, table in (("processed_files", processed_files), ("schema_versions", schema_versions))
    )
    newest = (
        con.execute("select epoch_us(max(updated_at)) from ledger.processed_files").fetchone()[0]
        if (incremental)
        else None
    )
    incremental = incremental and newest is not None
    if incremental:
        since = datetime.fromtimestamp(newest / 1e6, UTC) - SNAPSHOT_OVERLAP
        files = snapshot_table(processed_files, book.versions_changed_since(since), now)
        [(last_schema,)] = con.execute("select coalesce(max(id), 0) from ledger.schema_versions").fetchall()
        schemas = snapshot_table(schema_versions, book.schema_versions_after(last_schema), now)
        _upsert(con, "processed_files", files)
        _upsert(con, "schema_versions", schemas)
    else:
        files = snapshot_table(processed_files, book.versions(), now)
        schemas = snapshot_table(schema_versions, book.schema_version_rows(), now)
        _replace(con, "processed_files", files)
        _replace(con, "schema_versions", schemas)
    letters = snapshot_table(
        dead_letters, book.dead_letter_rows(), now, is_resolved=(pa.bool_(), lambda r: r["state"] == "resolved")
    )
    _replace(con, "dead_letters", letters)
    mode = "incremental" if incremental else "full"
    con.execute(
        "insert into ledger.snapshot_log values (?, ?, ?, ?, ?)",
        [now, mode, files.num_rows, schemas.num_rows, letters.num_rows],
    )
    [(total,)] = con.execute("select count(*) from ledger.processed_files").fetchall()
    open_letters = sum(state == "open" for state in letters.column("state").to_pylist())
    return {
        "mode": mode,
        "copied": files.num_rows,
        "versions": total,
        "schema_versions": schemas.num_rows,
        "dead_letters": letters.num_rows,
        "open": open_letters,
    }


@dg.asset(
    group_name="ingestion",
    kinds={"sqlite", "duckdb"},
    owners=["team:data-platform"],
    deps=[RAW_DOCUMENTS],
    pool=WAREHOUSE_POOL,
    automation_condition=LEDGER_SNAPSHOT_CONDITION,
)
def ingestion_ledger(
    context: dg.AssetExecutionContext, config: LedgerSnapshotConfig, ledger: LedgerResource
) -> dg.MaterializeResult:
    """The processed-files ledger and the dead-letter queue, snapshotted into the warehouse for dbt."""
    book = ledger.ledger()
    ensure_warehouse_dir()
    with duckdb.connect(str(warehouse_path())) as con:
        copied = write_snapshot(con, book, datetime.now(UTC), full=config.full)
    context.log.info(
        f"Ledger snapshot ({copied['mode']}): {copied['copied']:,} changed version(s) copied, {copied['versions']:,} "
        "in the warehouse"
    )
    return dg.MaterializeResult(
        metadata={
            "mode": copied["mode"],
            "versions_copied": dg.MetadataValue.int(copied["copied"]),
            "versions": dg.MetadataValue.int(copied["versions"]),
            "dead_letters": dg.MetadataValue.int(copied["dead_letters"]),
            "open_dead_letters": dg.MetadataValue.int(copied["open"]),
            "by_source": dg.MetadataValue.json(book.conservation()),
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
    duplicates = book.duplicate_versions()
    return dg.AssetCheckResult(
        passed=not unbalanced and duplicates == 0,
        metadata={"by_source": dg.MetadataValue.json(figures), "duplicate_versions": duplicates},
    )


@dg.asset_check(
    asset=ingestion_ledger, description="Every FAILED version has an open dead-letter record (nothing lost silently)."
)
def failed_documents_are_dead_lettered(ledger: LedgerResource) -> dg.AssetCheckResult:
    count, missing = ledger.ledger().failed_without_open_letter(limit=50)
    return dg.AssetCheckResult(
        passed=not count,
        # A failure whose step is still retrying has no record yet: warn rather than fail the build.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed_without_dead_letter": dg.MetadataValue.json(missing), "count": count},
    )


def ledger_snapshot_defs(settings: Settings) -> dg.Definitions:
    """The ledger snapshot into the warehouse and its checks: in the warehouse code location."""
    return dg.Definitions(
        assets=[ingestion_ledger_for(settings)],
        asset_checks=[ledger_is_conserved, failed_documents_are_dead_lettered],
    )
