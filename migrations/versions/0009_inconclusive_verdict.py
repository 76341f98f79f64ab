"""verdicts may be 'inconclusive' (the gate says when the data cannot support a decision)

Revision ID: 0009
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('ok','watch','collapse_suspected')"
NEW = "status IN ('ok','watch','collapse_suspected','inconclusive')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_verdicts_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_verdicts_status"), condition)


def upgrade() -> None:
    _replace_check(NEW)


def downgrade() -> None:
    # An 'inconclusive' verdict has no older equivalent: it is removed with its run's assessment
    # (the run, its samples and metric values stay; the next assessment recomputes the verdict).
    op.execute("DELETE FROM verdicts WHERE status = 'inconclusive'")
    _replace_check(OLD)
