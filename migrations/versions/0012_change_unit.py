"""comparisons keep the change in the one change unit (vocabulary.CHANGE_UNIT), what /metrics exports

Revision ID: 0012
Revises: 0011

Three columns on ``comparisons``: ``change``, ``change_ci_low``, ``change_ci_high``, on the
metric's scale and diversity-oriented (negative = less diverse): for a rate bounded in [0, 1] the
difference ``candidate - reference`` (0.05 = 5 percentage points), for any other metric the
relative change ``candidate / reference - 1``.

Backfill of the rows already stored:

* ratio-scale metrics: their ``diversity_change`` and its interval (the same number: the relative
  change, diversity-oriented).
* difference-scale metrics (``DIFFERENCE_METRICS``, the rates bounded in [0, 1] when this
  migration was written): the difference of the two runs' stored values of the same metric and
  scope (``metric_values`` of the candidate run and of the reference run), oriented by the metric's
  ``higher_is_diverse``; NULL where either value is missing (pruned, unscorable).  The interval of a
  difference cannot be recovered from the stored relative interval, so it is left NULL (the
  ``_ci_lower``/``_ci_upper`` series of those old rows are not exported); the run's next assessment
  writes all three.  The stored values are the means over each run's own prompts, the assessment's
  over the prompts both runs share: the same when the probe set did not change.

Downgrade drops the three columns (the relative columns were kept all along).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy (a migration must not change with the code): collector.trends.change.METRIC_RANGES'
# metrics bounded in [0, 1], compared on the difference scale.
DIFFERENCE_METRICS = (
    *(f"distinct_{n}" for n in range(1, 5)),
    *(f"ngram_entropy_{n}" for n in range(1, 5)),
    "self_bleu",
    "repetition_rate",
    "duplicate_rate",
)
COLUMNS = ("change", "change_ci_low", "change_ci_high")


def _in_list() -> str:
    return ", ".join(f"'{name}'" for name in DIFFERENCE_METRICS)


def upgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    names = _in_list()
    op.execute(
        "UPDATE comparisons SET change = diversity_change, change_ci_low = diversity_ci_low, "
        f"change_ci_high = diversity_ci_high WHERE metric NOT IN ({names})"
    )
    op.execute(
        "UPDATE comparisons SET change = ("
        "SELECT CASE WHEN c.higher_is_diverse THEN c.value - r.value ELSE r.value - c.value END "
        "FROM metric_values c JOIN metric_values r ON r.metric = c.metric AND r.scope = c.scope "
        "WHERE c.run_id = comparisons.run_id AND r.run_id = comparisons.reference_run_id "
        "AND c.metric = comparisons.metric AND c.scope = comparisons.scope) "
        f"WHERE metric IN ({names})"
    )


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
