"""The processed-files ledger: one row per document version (source, bucket, key, ETag) and its fate.

SQLite by default (a file under DAGSTER_HOME); PostgreSQL in production, in its own schema. Alembic creates and
migrates the tables whenever an engine is opened.
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from ingestion_project.lib.ledger.schema import (
    IN_FLIGHT,
    POSTGRES_SCHEMA,
    TERMINAL,
    Status,
    dead_letters,
    processed_files,
    schema_versions,
    watermarks,
)
from ingestion_project.lib.ledger.store import (
    BRONZE_LOST,
    END_FIGURES,
    LANDED,
    SOURCE_REMOVED,
    Failure,
    Lease,
    Ledger,
    RetirablePartition,
    Watermark,
    closed_key,
    is_balanced,
)

__all__ = [
    "BRONZE_LOST",
    "END_FIGURES",
    "LANDED",
    "RetirablePartition",
    "IN_FLIGHT",
    "SOURCE_REMOVED",
    "TERMINAL",
    "Failure",
    "Lease",
    "Ledger",
    "Status",
    "closed_key",
    "create_ledger_engine",
    "is_balanced",
    "dead_letters",
    "processed_files",
    "schema_versions",
    "Watermark",
    "watermarks",
]

_MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _current_revision(engine: Engine, schema: str | None) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table_schema": schema}).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the ledger schema to the newest revision; a no-op (one query) when it is there already."""
    schema = POSTGRES_SCHEMA if engine.dialect.name == "postgresql" else None
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    if _current_revision(engine, schema) == head:
        return
    try:
        with engine.begin() as conn:
            if schema:
                # Serialise concurrent first starts (sensor and runs) on one server.
                conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('ingestion_ledger_migrations'))"))
                conn.execute(sa.text(f'create schema if not exists "{schema}"'))
            config.attributes.update(connection=conn, schema=schema)
            command.upgrade(config, "head")
    except sa.exc.OperationalError:
        # SQLite: another process created the tables between our check and our upgrade.
        if _current_revision(engine, schema) != head:
            raise


def create_ledger_engine(url: str) -> Engine:
    """An engine for ``url`` with the ledger migrated; PostgreSQL tables live in the ``ingestion`` schema."""
    is_sqlite = url.startswith("sqlite")
    engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=not is_sqlite)
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    elif engine.dialect.name == "postgresql":
        engine = engine.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
    migrate(engine)
    return engine
