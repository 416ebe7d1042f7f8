"""Alembic environment: the connection (and its schema map) is handed over by ``migrate()``."""

from alembic import context

from ingestion_project.lib.ledger.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=context.config.attributes.get("schema"),
)
with context.begin_transaction():
    context.run_migrations()
