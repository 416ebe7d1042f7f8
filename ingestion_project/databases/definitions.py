"""The database domain: one asset, job and schedule per table of each database source in the sources file."""

import dagster as dg

from ingestion_project.config import Settings
from ingestion_project.databases.assets import database_assets, database_jobs, database_schedules


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=database_assets(settings),
        jobs=database_jobs(settings),
        schedules=database_schedules(settings),
    )
