"""contracts: what the source's schema contract did to each landed version

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("schema_versions") as table:
        table.add_column(sa.Column("contract_json", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("schema_versions") as table:
        table.drop_column("contract_json")
