"""leases, pinned versions, hand-backs, lost runs; dead letters written row first

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_PROCESSED_FILES = [
    sa.Column("version_id", sa.Text),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    sa.Column("not_before", sa.DateTime(timezone=True)),
    sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lost_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("request_key", sa.Text),
    sa.Column("request_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_traceback", sa.Text),
]
_DEAD_LETTERS = [
    sa.Column("stored_key", sa.Text),
    sa.Column("error_traceback", sa.Text),
    sa.Column("attempts", sa.Integer),
    sa.Column("job_name", sa.String(255)),
]


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as batch:
        for column in _PROCESSED_FILES:
            batch.add_column(column)
    op.create_index("ix_processed_files_status_lease", "processed_files", ["status", "lease_expires_at"])
    op.create_index("ix_processed_files_request_key", "processed_files", ["request_key"])
    with op.batch_alter_table("dead_letters") as batch:
        for column in _DEAD_LETTERS:
            batch.add_column(column)
        # A Content-Type can be longer than 255 characters; the record must never be lost over it.
        batch.alter_column("content_type", type_=sa.Text, existing_type=sa.String(255))
    # Records written before 0002 were written object first: they are where their key says.
    letters = sa.table("dead_letters", sa.column("dlq_key", sa.Text), sa.column("stored_key", sa.Text))
    op.execute(letters.update().values(stored_key=letters.c.dlq_key))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("content_type", type_=sa.String(255), existing_type=sa.Text)
        for column in reversed(_DEAD_LETTERS):
            batch.drop_column(column.name)
    op.drop_index("ix_processed_files_request_key", "processed_files")
    op.drop_index("ix_processed_files_status_lease", "processed_files")
    with op.batch_alter_table("processed_files") as batch:
        for column in reversed(_PROCESSED_FILES):
            batch.drop_column(column.name)
