"""per-prompt findings of each assessment (which prompts collapsed) and the v_prompt_findings view

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.views import LATER_VIEWS

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("reference_run_id", sa.Integer(), nullable=False),
        sa.Column("prompt_key", sa.String(length=200), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("baseline_value", sa.Float(), nullable=True),
        sa.Column("candidate_value", sa.Float(), nullable=True),
        sa.Column("change", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("adjusted_p", sa.Float(), nullable=True),
        sa.Column("collapsed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_prompt_findings_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reference_run_id"],
            ["runs.id"],
            name=op.f("fk_prompt_findings_reference_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name=op.f("fk_prompt_findings_version_id_model_versions")
        ),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_prompt_findings_prompt_id_prompts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_findings")),
        sa.UniqueConstraint(
            "run_id", "prompt_key", "metric", name="uq_prompt_findings_run_prompt_metric"
        ),
    )
    op.create_index(op.f("ix_prompt_findings_version_id"), "prompt_findings", ["version_id"], unique=False)
    op.create_index(
        op.f("ix_prompt_findings_reference_run_id"), "prompt_findings", ["reference_run_id"], unique=False
    )
    for name, sql in LATER_VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    for name in reversed(list(LATER_VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index(op.f("ix_prompt_findings_reference_run_id"), table_name="prompt_findings")
    op.drop_index(op.f("ix_prompt_findings_version_id"), table_name="prompt_findings")
    op.drop_table("prompt_findings")
