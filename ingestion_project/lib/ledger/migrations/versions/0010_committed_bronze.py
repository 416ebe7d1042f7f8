"""committed bronze: which attempt's manifest and data file are a SUCCESS version's, and their size and sha256

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

_PROCESSED_FILES = [
    sa.Column("bronze_manifest_key", sa.Text),
    sa.Column("bronze_manifest_bytes", sa.BigInteger),
    sa.Column("bronze_manifest_sha256", sa.String(64)),
    sa.Column("bronze_data_key", sa.Text),
    sa.Column("bronze_data_bytes", sa.BigInteger),
    sa.Column("bronze_data_sha256", sa.String(64)),
    sa.Column("bronze_verified_at", sa.DateTime(timezone=True)),
]


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        for column in _PROCESSED_FILES:
            batch.add_column(column)
    op.create_index("ix_processed_files_status_verified", "processed_files", ["status", "bronze_verified_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_files_status_verified", "processed_files")
    with op.batch_alter_table("processed_files") as batch:
        for column in reversed(_PROCESSED_FILES):
            batch.drop_column(column.name)
