"""Run tags that name a batch of pinned versions: set by the discovery sensor, read by the reconciler."""

BATCH_TAG = "ingestion/batch"
SOURCE_TAG = "ingestion/source"
DOCUMENTS_TAG = "ingestion/documents"
