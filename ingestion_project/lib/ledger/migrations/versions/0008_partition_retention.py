"""partition retention: when a landed document's partition of raw_documents was retired from Dagster

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        batch.add_column(sa.Column("partition_retired_at", sa.DateTime(timezone=True)))
    # The retention pass reads only versions whose partition is live: a bounded set, however long the history.
    op.create_index(
        "ix_processed_files_live_partitions", "processed_files", ["source", "partition_retired_at", "processed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_processed_files_live_partitions", table_name="processed_files")
    with op.batch_alter_table("processed_files") as batch:
        batch.drop_column("partition_retired_at")
