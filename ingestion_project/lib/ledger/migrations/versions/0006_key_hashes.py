"""key hashes: index objects by a hash of source, bucket and key, so any key S3 or a file system allows fits

A btree index row on PostgreSQL holds at most 2,704 bytes: an index on (source, bucket, object_key, etag) made
every insert of a longer local key fail. ``key_hash`` (sha256 hex of source, bucket and the key's raw bytes)
replaces ``object_key`` in every unique constraint and index; ``object_key`` stays as the readable text.

Revision ID: 0006
Revises: 0005
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

# (table, primary key, old constraint or index, is it a unique constraint, new one, its columns)
_TABLES = [
    ("processed_files", "id", "uq_processed_files_version", True, "uq_processed_files_key_hash", ["key_hash", "etag"]),
    ("dead_letters", "dlq_key", "ix_dead_letters_version", False, "ix_dead_letters_key_hash", ["key_hash", "etag"]),
    ("schema_versions", "id", "uq_schema_versions_version", True, "uq_schema_versions_key_hash", ["key_hash", "etag"]),
]
_OLD_COLUMNS = ["source", "bucket", "object_key", "etag"]


def _hash(source: str, bucket: str, key: str) -> str:
    # As lib/keys.key_hash; rows written before 0006 hold valid UTF-8 keys, so their text is their bytes.
    return hashlib.sha256(
        b"\0".join((source.encode(), bucket.encode(), key.encode("utf-8", "surrogateescape")))
    ).hexdigest()


def _fill(name: str, primary_key: str) -> None:
    table = sa.table(
        name,
        sa.column(primary_key),
        sa.column("source", sa.String),
        sa.column("bucket", sa.String),
        sa.column("object_key", sa.Text),
        sa.column("key_hash", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(table.c[primary_key], table.c.source, table.c.bucket, table.c.object_key)).all()
    update = table.update().where(table.c[primary_key] == sa.bindparam("pk")).values(key_hash=sa.bindparam("hash"))
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        conn.execute(update, [{"pk": row[0], "hash": _hash(row[1], row[2], row[3])} for row in chunk])


def upgrade() -> None:
    for name, primary_key, old, unique, new, columns in _TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("key_hash", sa.String(64)))
        _fill(name, primary_key)
        with op.batch_alter_table(name) as batch:
            batch.alter_column("key_hash", existing_type=sa.String(64), nullable=False)
            if unique:
                batch.drop_constraint(old, type_="unique")
                batch.create_unique_constraint(new, columns)
            else:
                batch.drop_index(old)
                batch.create_index(new, columns)
    # Lookups of an object's versions use the unique constraint's leading key_hash.
    op.drop_index("ix_processed_files_source_key", "processed_files")


def downgrade() -> None:
    op.create_index("ix_processed_files_source_key", "processed_files", ["source", "bucket", "object_key"])
    for name, _primary_key, old, unique, new, _columns in reversed(_TABLES):
        with op.batch_alter_table(name) as batch:
            if unique:
                batch.drop_constraint(new, type_="unique")
                batch.create_unique_constraint(old, _OLD_COLUMNS)
            else:
                batch.drop_index(new)
                batch.create_index(old, _OLD_COLUMNS)
            batch.drop_column("key_hash")
