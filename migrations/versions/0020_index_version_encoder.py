"""index_versions.encoder: the encoder variant (backend and quantisation) that computes a version's vectors

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("index_versions") as batch:
        batch.add_column(sa.Column("encoder", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_versions") as batch:
        batch.drop_column("encoder")
