"""Asset keys of database tables, shared by the ingestion location (the assets) and the warehouse (dbt sources and
the sensor that builds after extractions) without either importing the other."""

import dagster as dg

from ingestion_project.config import Settings

# dbt sources `database_<source>` are the tables of the database source <source>.
DBT_SOURCE_PREFIX = "database_"


def table_asset_key(source: str, table: str) -> dg.AssetKey:
    return dg.AssetKey(["database", source, table])


def database_asset_keys(settings: Settings) -> list[dg.AssetKey]:
    return [table_asset_key(s.name, t.name) for s in settings.databases for t in s.tables]
