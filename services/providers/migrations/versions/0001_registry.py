"""Provider registry: providers (secrets encrypted), models with prices, routing, data keys.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from schleuse_common.db import create_platform_tables

revision = "0001"
down_revision = None
S = "providers"


def upgrade() -> None:
    create_platform_tables(op.get_bind(), S, data_keys=True)
    op.create_table(
        "providers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("secrets", sa.Text),
        sa.Column("secrets_masked", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("provider", sa.String(100), nullable=False, index=True),
        sa.Column("upstream_model", sa.String(200), nullable=False),
        sa.Column("context_window", sa.Integer, nullable=False),
        sa.Column("input_per_1m", sa.Float, nullable=False),
        sa.Column("output_per_1m", sa.Float, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("capabilities", sa.JSON, nullable=False),
        sa.Column("max_output_tokens", sa.Integer),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_table(
        "routing",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        schema=S,
    )


def downgrade() -> None:
    for table in ("registry_meta", "routing", "models", "providers", "data_keys"):
        op.drop_table(table, schema=S)
