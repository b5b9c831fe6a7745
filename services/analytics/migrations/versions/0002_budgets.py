"""Budgets per department and assistant.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
S = "analytics"


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(16), nullable=False, server_default="monthly"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("soft_limit", sa.Numeric(14, 6)),
        sa.Column("hard_limit", sa.Numeric(14, 6)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("scope IN ('department', 'assistant')", name="ck_budgets_scope"),
        sa.CheckConstraint("period = 'monthly'", name="ck_budgets_period"),
        schema=S,
    )
    op.create_table(
        "budget_meta",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        schema=S,
    )
    op.create_index("ix_usage_assistant", "usage_events", ["assistant_id", "occurred_at"], schema=S)


def downgrade() -> None:
    op.drop_index("ix_usage_assistant", "usage_events", schema=S)
    op.drop_table("budget_meta", schema=S)
    op.drop_table("budgets", schema=S)
