import dagster as dg

from ingestion_project.failures import definitions as failures
from ingestion_project.ingestion import definitions as ingestion
from ingestion_project.transform import definitions as transform

defs = dg.Definitions.merge(ingestion.defs, failures.defs, transform.defs)
