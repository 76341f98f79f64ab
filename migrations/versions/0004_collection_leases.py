"""collection leases: the last scheduled tick claimed per model, by which replica

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29 15:35:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('collection_leases',
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('last_tick', sa.DateTime(timezone=True), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('model', name=op.f('pk_collection_leases'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('collection_leases')
