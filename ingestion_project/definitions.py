import dagster as dg

from ingestion_project.ingestion import definitions as ingestion
from ingestion_project.transform import definitions as transform

defs = dg.Definitions.merge(ingestion.defs, transform.defs)
