"""The ingestion code location: discovery, ingestion runs, dead letters and replay. It never imports dbt; the
warehouse is the code location in ingestion_project/transform/definitions.py (both are in workspace.yaml)."""

import dagster as dg

from ingestion_project.failures import definitions as failures
from ingestion_project.ingestion import definitions as ingestion

defs = dg.Definitions.merge(ingestion.defs, failures.defs)
