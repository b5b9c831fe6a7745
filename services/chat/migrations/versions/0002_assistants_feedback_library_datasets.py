"""Assistants, thread titles, message findings, feedback, prompt library, dataset quarantine.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

revision = "0002"
down_revision = "0001"
S = "chat"


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "assistants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("departments", ARRAY(sa.String(128)), nullable=False, server_default="{}"),
        sa.Column("model", sa.String(200), nullable=False, server_default="default"),
        sa.Column("allow_escalation", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("system_prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("max_tokens", sa.Integer),
        sa.Column("context_window", sa.Integer),
        sa.Column("dlp_policy", sa.String(100)),
        sa.Column("external_assistant_id", sa.String(200)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.add_column("threads", sa.Column("title_key_id", sa.String(64)), schema=S)
    op.add_column("threads", sa.Column("title_ct", sa.Text), schema=S)
    op.create_index("ix_threads_owner_updated", "threads", ["owner_id", "updated_at"], schema=S)
    op.add_column("messages", sa.Column("findings", JSONB), schema=S)
    op.create_table(
        "feedback",
        sa.Column(
            "message_id",
            sa.String(64),
            sa.ForeignKey(f"{S}.messages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("thumbs", sa.String(8)),
        sa.Column("stars", sa.Integer),
        sa.Column("labels", ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("key_id", sa.String(64)),
        sa.Column("comment_ct", sa.Text),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=S,
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("title_ct", sa.Text, nullable=False),
        sa.Column("body_ct", sa.Text, nullable=False),
        sa.Column("variables", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        _now(),
        schema=S,
    )
    op.create_table(
        "library_prompts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), index=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("variables", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="candidate"),
        sa.Column("source_prompt_id", sa.String(64), unique=True),
        sa.Column("submitted_by", sa.String(64)),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("usage_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rating_sum", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "search",
            TSVECTOR,
            sa.Computed("to_tsvector('german', coalesce(title, '') || ' ' || coalesce(body, ''))", persisted=True),
        ),
        _now(),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_index("ix_library_search", "library_prompts", ["search"], postgresql_using="gin", schema=S)
    op.create_table(
        "library_ratings",
        sa.Column(
            "prompt_id",
            sa.String(64),
            sa.ForeignKey(f"{S}.library_prompts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("stars", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_table(
        "dataset_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source_message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("department", sa.String(128)),
        sa.Column("assistant_id", sa.String(64)),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("prompt_ct", sa.Text, nullable=False),
        sa.Column("answer_ct", sa.Text, nullable=False),
        sa.Column("findings", JSONB),
        sa.Column("status", sa.String(16), nullable=False, server_default="quarantine"),
        sa.Column("reason", sa.Text),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        _now(),
        schema=S,
    )
    op.create_index("ix_dataset_status", "dataset_items", ["status", "created_at"], schema=S)


def downgrade() -> None:
    for table in ("dataset_items", "library_ratings", "library_prompts", "prompts", "feedback", "assistants"):
        op.drop_table(table, schema=S)
    op.drop_column("messages", "findings", schema=S)
    op.drop_index("ix_threads_owner_updated", "threads", schema=S)
    op.drop_column("threads", "title_ct", schema=S)
    op.drop_column("threads", "title_key_id", schema=S)
