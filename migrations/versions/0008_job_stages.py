"""job_stages: per-stage accounts of every job (seconds, items in and out, drops by reason)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_stages",
        sa.Column("job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stage", sa.String(length=16), primary_key=True),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("items_in", sa.Integer(), nullable=False),
        sa.Column("items_out", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_stages")
