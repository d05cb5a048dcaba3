"""monitor feature tables: reindex ledger, watchlist, sentiments, mentions, alerts; index version columns

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reindex_ledger",
        sa.Column("index_name", sa.String(length=128), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("spans", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("index_name", "document_id"),
    )
    op.create_table(
        "watch_entities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("ticker", sa.String(length=32), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("open_alert_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "ticker"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(length=32), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("negatives", sa.Integer(), nullable=False),
        sa.Column("negative_share", sa.Double(), nullable=False),
        sa.Column("baseline_mean", sa.Double(), nullable=False),
        sa.Column("baseline_std", sa.Double(), nullable=False),
        sa.Column("deviations", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["entity_id"], ["watch_entities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entity_id", "episode"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_tenant"), ["tenant"], unique=False)

    op.create_table(
        "document_sentiments",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("scorer", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("document_sentiments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_sentiments_tenant"), ["tenant"], unique=False)

    op.create_table(
        "entity_mentions",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("matched", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entity_id"], ["watch_entities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entity_id", "document_id"),
    )
    with op.batch_alter_table("entity_mentions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entity_mentions_document_id"), ["document_id"], unique=False)
        batch_op.create_index("ix_entity_mentions_entity_hour", ["entity_id", "hour"], unique=False)

    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "url"),
    )
    with op.batch_alter_table("index_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_path", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("chunk_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("chunk_overlap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_versions", schema=None) as batch_op:
        batch_op.drop_column("retired_at")
        batch_op.drop_column("job_id")
        batch_op.drop_column("chunk_overlap")
        batch_op.drop_column("chunk_tokens")
        batch_op.drop_column("model_path")

    op.drop_table("alert_deliveries")
    with op.batch_alter_table("entity_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_entity_mentions_entity_hour")
        batch_op.drop_index(batch_op.f("ix_entity_mentions_document_id"))

    op.drop_table("entity_mentions")
    with op.batch_alter_table("document_sentiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_sentiments_tenant"))

    op.drop_table("document_sentiments")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_tenant"))

    op.drop_table("alerts")
    op.drop_table("watch_entities")
    op.drop_table("reindex_ledger")
