"""The warehouse code location: the ledger snapshot, the dbt models and their checks, and the automation that
builds them.

A code location of its own (see workspace.yaml), so that ingestion runs never import dbt: each run process loads
only the location of its job.
"""

import dagster as dg

from ingestion_project.config import default_settings
from ingestion_project.core.resources import platform_resources
from ingestion_project.failures.assets import ledger_snapshot_defs
from ingestion_project.transform import definitions as warehouse


@dg.definitions
def defs() -> dg.Definitions:
    settings = default_settings()
    return dg.Definitions.merge(
        ledger_snapshot_defs(settings),
        warehouse.build_defs(settings),
        dg.Definitions(resources=platform_resources()),
    )
