"""The ingestion code location: documents and database sources into bronze, with the operations around them.

It never imports dbt: the warehouse is the code location in ingestion_project/warehouse_definitions.py (both are in
workspace.yaml). Only this module and that one import more than one domain; each domain imports the shared core.
"""

import dagster as dg

from ingestion_project.config import default_settings
from ingestion_project.core.resources import platform_resources
from ingestion_project.databases import definitions as databases
from ingestion_project.failures import definitions as failures
from ingestion_project.ingestion import definitions as documents


@dg.definitions
def defs() -> dg.Definitions:
    # Validated here, as the location loads: a bad sources file fails naming the source and the field.
    settings = default_settings()
    return dg.Definitions.merge(
        documents.build_defs(settings),
        databases.build_defs(settings),
        failures.build_defs(),
        dg.Definitions(resources=platform_resources()),
    )
