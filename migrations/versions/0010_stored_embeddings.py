"""embeddings stored once per text and embedder, and the embedder each run was scored with

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.views import create_views, drop_views

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "embedding_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=400), nullable=False),
        sa.Column("backend", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("normalised", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding_identities")),
        sa.UniqueConstraint("label", name=op.f("uq_embedding_identities_label")),
    )
    op.create_table(
        "embedding_vectors",
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["embedding_identities.id"],
            name=op.f("fk_embedding_vectors_identity_id_embedding_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("identity_id", "text_sha256", name=op.f("pk_embedding_vectors")),
    )
    drop_views(op.execute)  # SQLite rebuilds runs in batch mode; the views reference it
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedding_identity_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_embedding_identity_id_embedding_identities"),
            "embedding_identities",
            ["embedding_identity_id"],
            ["id"],
        )
    create_views(op.execute)


def downgrade() -> None:
    drop_views(op.execute)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_runs_embedding_identity_id_embedding_identities"), type_="foreignkey"
        )
        batch_op.drop_column("embedding_identity_id")
    create_views(op.execute)
    op.drop_table("embedding_vectors")
    op.drop_table("embedding_identities")
