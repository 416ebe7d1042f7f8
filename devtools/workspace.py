"""Both code locations as one Definitions, to run a whole pass in one process (the demo and the tests)."""

import dagster as dg


def workspace_definitions() -> dg.Definitions:
    """The ingestion and warehouse code locations of workspace.yaml, merged."""
    from ingestion_project.definitions import defs as ingestion
    from ingestion_project.warehouse_definitions import defs as warehouse

    return dg.Definitions.merge(ingestion(), warehouse())
