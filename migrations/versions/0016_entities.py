"""entities: named entities extracted from chunks

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("chunk_id", sa.String(length=48), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=512), nullable=False),
        sa.Column("norm", sa.String(length=512), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id", "char_start", "char_end", "type"),
    )
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entities_document_id"), ["document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entities_model_id"), ["model_id"], unique=False)
        batch_op.create_index("ix_entities_tenant_type_norm", ["tenant", "type", "norm"], unique=False)

    op.create_table(
        "entity_extractions",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("entities", sa.Integer(), nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("entity_extractions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entity_extractions_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entity_extractions_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entity_extractions_tenant"), ["tenant"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("entity_extractions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entity_extractions_tenant"))
        batch_op.drop_index(batch_op.f("ix_entity_extractions_model_id"))
        batch_op.drop_index(batch_op.f("ix_entity_extractions_job_id"))
    op.drop_table("entity_extractions")
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.drop_index("ix_entities_tenant_type_norm")
        batch_op.drop_index(batch_op.f("ix_entities_model_id"))
        batch_op.drop_index(batch_op.f("ix_entities_document_id"))
    op.drop_table("entities")
