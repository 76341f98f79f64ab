"""alert history: every Alertmanager notification the collector receives

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 15:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.alerts import ALERT_HISTORY_SQL, ALERT_HISTORY_VIEW

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("receiver", sa.String(length=200), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.CheckConstraint("status IN ('firing','resolved')", name=op.f("ck_alert_notifications_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notifications")),
    )
    op.create_index(
        "ix_alert_notifications_model_received", "alert_notifications", ["model", "received_at"], unique=False
    )
    op.create_index(
        op.f("ix_alert_notifications_fingerprint"), "alert_notifications", ["fingerprint"], unique=False
    )
    op.execute(f"CREATE VIEW {ALERT_HISTORY_VIEW} AS {ALERT_HISTORY_SQL.strip()}")


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {ALERT_HISTORY_VIEW}")
    op.drop_index(op.f("ix_alert_notifications_fingerprint"), table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_model_received", table_name="alert_notifications")
    op.drop_table("alert_notifications")
