"""index predictions by time: a reindex build looks up the labels given since it began

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_predictions_created_at", table_name="predictions")
