"""job_files ownership and delivery counts, worker_beats: fast reclaim of a dead worker's work, poison control

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_files") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deliveries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("index_deliveries", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_job_files_owner", ["owner"])
    op.create_table(
        "worker_beats",
        sa.Column("worker", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_beats_seen_at", "worker_beats", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_worker_beats_seen_at", table_name="worker_beats")
    op.drop_table("worker_beats")
    with op.batch_alter_table("job_files") as batch:
        batch.drop_index("ix_job_files_owner")
        batch.drop_column("index_deliveries")
        batch.drop_column("deliveries")
        batch.drop_column("claimed_at")
        batch.drop_column("owner")
