"""Asset keys and the warehouse pool shared by the domains, so that no domain imports another's definitions.

The documents' `raw_documents` and the ledger snapshot `ingestion_ledger` are upstream of the dbt models; a
database table is the asset `database/<source>/<table>` and the dbt source `database_<source>`.
"""

import dagster as dg

from ingestion_project.config import Settings

RAW_DOCUMENTS = dg.AssetKey("raw_documents")
INGESTION_LEDGER = dg.AssetKey("ingestion_ledger")
# Every step that writes the DuckDB warehouse (the ledger snapshot, dbt build) runs in this pool: DuckDB allows one
# writer, so the instance limits the pool to one (dagster.yaml: concurrency > pools > default_limit).
WAREHOUSE_POOL = "duckdb_warehouse"

# dbt sources `database_<source>` are the tables of the database source <source>.
DBT_SOURCE_PREFIX = "database_"


def table_asset_key(source: str, table: str) -> dg.AssetKey:
    return dg.AssetKey(["database", source, table])


def database_asset_keys(settings: Settings) -> list[dg.AssetKey]:
    return [table_asset_key(s.name, t.name) for s in settings.databases for t in s.tables]
