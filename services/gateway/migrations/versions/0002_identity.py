"""Identity: local accounts (argon2id, lockout), departments, API key scopes, assistants and limits.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("users", sa.Column("kind", sa.String(16), nullable=False, server_default="local"), schema="gateway")
    op.add_column("users", sa.Column("login_name", sa.String(128)), schema="gateway")
    op.add_column("users", sa.Column("display_name", sa.String(200)), schema="gateway")
    op.add_column("users", sa.Column("email", sa.String(320)), schema="gateway")
    op.add_column("users", sa.Column("password_hash", sa.String(256)), schema="gateway")
    op.add_column("users", sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"), schema="gateway")
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True)), schema="gateway")
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(timezone=True)), schema="gateway")
    op.add_column("users", sa.Column("updated_at", sa.DateTime(timezone=True)), schema="gateway")
    op.create_index("ix_users_department", "users", ["department"], schema="gateway")

    op.add_column(
        "api_keys",
        sa.Column("allowed_assistants", sa.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        schema="gateway",
    )
    op.add_column("api_keys", sa.Column("rate_limit", sa.Integer), schema="gateway")
    op.add_column("api_keys", sa.Column("created_by", sa.String(64)), schema="gateway")

    op.create_table(
        "departments",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("departments", schema="gateway")
    for col in ("created_by", "rate_limit", "allowed_assistants"):
        op.drop_column("api_keys", col, schema="gateway")
    op.drop_index("ix_users_department", "users", schema="gateway")
    for col in (
        "updated_at",
        "last_login_at",
        "locked_until",
        "failed_logins",
        "password_hash",
        "email",
        "display_name",
        "login_name",
        "kind",
    ):
        op.drop_column("users", col, schema="gateway")
