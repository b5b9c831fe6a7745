"""Data keys, threads, encrypted messages, inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from schleuse_common.db import create_platform_tables

revision = "0001"
down_revision = None
S = "chat"


def upgrade() -> None:
    create_platform_tables(op.get_bind(), S, data_keys=True, inbox=True)
    op.create_table(
        "threads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("assistant_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("thread_id", sa.String(64), sa.ForeignKey(f"{S}.threads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("turn_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("content_ct", sa.Text, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("provider", sa.String(100)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_index("ix_messages_thread", "messages", ["thread_id", "created_at"], schema=S)


def downgrade() -> None:
    for table in ("messages", "threads", "processed_messages", "data_keys"):
        op.drop_table(table, schema=S)
