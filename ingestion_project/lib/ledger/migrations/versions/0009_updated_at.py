"""updated_at: when each processed_files row last changed, for the warehouse's incremental ledger snapshot

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True)))
    files = sa.table(
        "processed_files",
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("processed_at", sa.DateTime(timezone=True)),
        sa.column("discovered_at", sa.DateTime(timezone=True)),
    )
    op.execute(files.update().values(updated_at=sa.func.coalesce(files.c.processed_at, files.c.discovered_at)))
    op.create_index("ix_processed_files_updated", "processed_files", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_files_updated", table_name="processed_files")
    with op.batch_alter_table("processed_files") as batch:
        batch.drop_column("updated_at")
