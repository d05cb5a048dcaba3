"""topics: per-topic sentiment series and alerts (an alert is an entity's or a topic's)

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("open_alert_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "document_topics",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("classifier", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["topic_id"], ["topics.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("document_topics", schema=None) as batch_op:
        batch_op.create_index("ix_document_topics_topic_hour", ["topic_id", "hour"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_topics_tenant"), ["tenant"], unique=False)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("entity_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("ticker", existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column("topic_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("topic", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key("fk_alerts_topic_id_topics", "topics", ["topic_id"], ["id"], ondelete="CASCADE")
        batch_op.create_unique_constraint("uq_alerts_topic_id_episode", ["topic_id", "episode"])


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_alerts_topic_id_episode", type_="unique")
        batch_op.drop_constraint("fk_alerts_topic_id_topics", type_="foreignkey")
        batch_op.drop_column("topic")
        batch_op.drop_column("topic_id")
    # topic alerts have no entity: they cannot stay once entity_id is required again
    op.execute("DELETE FROM alerts WHERE entity_id IS NULL")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("ticker", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("entity_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("document_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_topics_tenant"))
        batch_op.drop_index("ix_document_topics_topic_hour")
    op.drop_table("document_topics")
    op.drop_table("topics")
