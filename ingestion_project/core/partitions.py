import dagster as dg

# One partition per document (source + bucket + key); see ingestion_project.lib.keys for the key format.
documents_partitions = dg.DynamicPartitionsDefinition(name="documents")
