"""reliability: run owner, blank/quarantined counts, status no_data, pull offsets, source keys, quarantine

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 15:40:00

Issue #11. The runs CHECK constraint gains 'no_data'; SQLite cannot alter a constraint in place, so
the table is rebuilt in batch mode with the views dropped around it (they reference runs).
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from collector.store.views import create_views, drop_views

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD = "status IN ('running','succeeded','partial','failed','interrupted')"
NEW = "status IN ('running','succeeded','partial','failed','interrupted','no_data')"


def upgrade() -> None:
    drop_views(op.execute)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("n_blank", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("n_quarantined", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_runs_status"), NEW)
    create_views(op.execute)

    op.create_table(
        "pull_offsets",
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("position", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_pull_offsets")),
    )
    op.create_table(
        "source_records",
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_source_records_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("source", "source_key", name=op.f("pk_source_records")),
    )
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_records_run_id"), ["run_id"], unique=False)
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_quarantine_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_model_created", ["model", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_run_id"))
        batch_op.drop_index("ix_quarantine_model_created")
    op.drop_table("quarantine")
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_records_run_id"))
    op.drop_table("source_records")
    op.drop_table("pull_offsets")
    drop_views(op.execute)
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'no_data'")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_runs_status"), OLD)
        batch_op.drop_column("n_quarantined")
        batch_op.drop_column("n_blank")
        batch_op.drop_column("owner")
    create_views(op.execute)
