"""batch isolation: versions released from a run that died are requested again in smaller batches

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_COLUMNS = [
    # At most this many versions in the run that next carries this version (NULL: the source's batch size).
    sa.Column("batch_limit", sa.Integer),
    # Runs that died holding this version with others (not counted toward max_attempts, unlike lost_count).
    sa.Column("shared_losses", sa.Integer, nullable=False, server_default="0"),
]


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        for column in _COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column.name)
