"""Data keys, encrypted placeholder mappings per thread, policies.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from schleuse_common.db import create_platform_tables

revision = "0001"
down_revision = None
S = "dlp"


def upgrade() -> None:
    create_platform_tables(op.get_bind(), S, data_keys=True)
    op.create_table(
        "placeholders",
        sa.Column("thread_id", sa.String(128), primary_key=True),
        sa.Column("placeholder", sa.String(48), primary_key=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("value_hmac", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("value_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("thread_id", "entity_type", "value_hmac", name="uq_placeholders_value"),
        schema=S,
    )
    op.create_table(
        "policies",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(128), primary_key=True),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("updated_by", sa.String(128)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    for table in ("policies", "placeholders", "data_keys"):
        op.drop_table(table, schema=S)
