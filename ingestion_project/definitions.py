import dagster as dg

from ingestion_project.ingestion.definitions import defs as ingestion_defs

defs = dg.Definitions.merge(ingestion_defs)
