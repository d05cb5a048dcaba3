"""job_documents (job_id, outcome): a job's counters and its pending documents counted from an index

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_documents_job_outcome", "job_documents", ["job_id", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_job_documents_job_outcome", table_name="job_documents")
