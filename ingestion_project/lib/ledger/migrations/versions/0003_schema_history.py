"""schema history: the schema of every document version that landed

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "schema_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("columns_json", sa.Text, nullable=False),
        sa.Column("previous_fingerprint", sa.String(64)),
        sa.Column("columns_added", sa.Text, nullable=False),
        sa.Column("columns_removed", sa.Text, nullable=False),
        sa.Column("columns_retyped", sa.Text, nullable=False),
        sa.UniqueConstraint("source", "bucket", "object_key", "etag", name="uq_schema_versions_version"),
    )
    op.create_index("ix_schema_versions_source", "schema_versions", ["source", "id"])


def downgrade() -> None:
    op.drop_index("ix_schema_versions_source", "schema_versions")
    op.drop_table("schema_versions")
