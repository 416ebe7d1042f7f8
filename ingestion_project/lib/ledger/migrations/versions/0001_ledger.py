"""processed_files and dead_letters

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "processed_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
        sa.Column("partition_key", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("modified_at", sa.DateTime(timezone=True)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True)),
        sa.Column("processing_started_at", sa.DateTime(timezone=True)),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("records_ingested", sa.BigInteger),
        sa.Column("bytes_read", sa.BigInteger),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("error_class", sa.String(16)),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error_message", sa.Text),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_id", sa.String(64)),
        sa.UniqueConstraint("source", "bucket", "object_key", "etag", name="uq_processed_files_version"),
    )
    op.create_index("ix_processed_files_source_key", "processed_files", ["source", "bucket", "object_key"])
    op.create_index("ix_processed_files_status_requested", "processed_files", ["status", "requested_at"])
    op.create_index("ix_processed_files_status_started", "processed_files", ["status", "processing_started_at"])
    op.create_index("ix_processed_files_source_status", "processed_files", ["source", "status"])
    op.create_table(
        "dead_letters",
        sa.Column("dlq_key", sa.Text, primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
        sa.Column("partition_key", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("content_type", sa.String(255)),
        sa.Column("error_class", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(128), nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("retry_count", sa.Integer, nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_dead_letters_state", "dead_letters", ["state"])
    op.create_index("ix_dead_letters_version", "dead_letters", ["source", "bucket", "object_key", "etag"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("processed_files")
