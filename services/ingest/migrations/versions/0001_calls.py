"""Calls, their history, notes, audit, dead letters, file offsets, data keys, retention runs, aggregates.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _trigram_available() -> bool:
    """pg_trgm is a trusted extension on PostgreSQL >= 13; fall back to btree lower() when absent."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        return False
    with bind.begin_nested():
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    return True


def upgrade() -> None:
    # name_key and topic_tsv are filled from search_key() (casefolded, umlauts folded) by the service,
    # so search does not depend on the database's locale.
    op.execute(
        """
        CREATE TABLE calls (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id      text NOT NULL UNIQUE,
            received_at   timestamptz NOT NULL,
            caller_number text NOT NULL,
            caller_name   text,
            name_key      text,
            dob_ct        bytea,
            topic         text NOT NULL,
            topic_tsv     tsvector NOT NULL,
            priority      text NOT NULL,
            priority_rank smallint NOT NULL,
            source        text NOT NULL,
            schema_version smallint NOT NULL DEFAULT 1,
            status        text NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW', 'IN_PROGRESS', 'DONE')),
            assignee      text,
            version       integer NOT NULL DEFAULT 1,
            key_id        text NOT NULL,
            raw_ct        bytea NOT NULL,
            content_hash  text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            done_at       timestamptz
        )
        """
    )
    op.execute("CREATE INDEX calls_received ON calls (received_at DESC, id DESC)")
    op.execute("CREATE INDEX calls_number_prefix ON calls (caller_number text_pattern_ops)")
    op.execute("CREATE INDEX calls_status ON calls (status, received_at DESC, id DESC)")
    op.execute("CREATE INDEX calls_assignee ON calls (assignee, received_at DESC, id DESC) WHERE assignee IS NOT NULL")
    op.execute("CREATE INDEX calls_priority ON calls (priority_rank DESC, received_at DESC, id DESC)")
    op.execute("CREATE INDEX calls_topic_fts ON calls USING gin (topic_tsv)")
    if _trigram_available():
        op.execute("CREATE INDEX calls_name_trgm ON calls USING gin (name_key public.gin_trgm_ops)")
    else:
        op.execute("CREATE INDEX calls_name_key ON calls (name_key text_pattern_ops)")

    op.execute(
        """
        CREATE TABLE call_status (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id     bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            from_status text,
            to_status   text NOT NULL,
            actor_id    text NOT NULL,
            at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX call_status_call ON call_status (call_id, at)")
    op.execute(
        """
        CREATE TABLE call_notes (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id    bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            author_id  text NOT NULL,
            key_id     text NOT NULL,
            body_ct    bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX call_notes_call ON call_notes (call_id, created_at)")
    # No foreign key: export/delete receipts outlive the call they were about.
    op.execute(
        """
        CREATE TABLE actions_audit (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id     bigint,
            action      text NOT NULL,
            actor_id    text NOT NULL,
            actor_roles text[] NOT NULL DEFAULT '{}',
            diff        jsonb NOT NULL DEFAULT '{}',
            at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX actions_audit_call ON actions_audit (call_id, at)")
    op.execute("CREATE INDEX actions_audit_at ON actions_audit (at)")
    op.execute(
        """
        CREATE TABLE dead_letters (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            source     text NOT NULL,
            origin     text NOT NULL,
            position   bigint,
            reason     text NOT NULL,
            key_id     text NOT NULL,
            raw_ct     bytea NOT NULL,
            line_hash  text NOT NULL,
            UNIQUE (origin, position, line_hash)
        )
        """
    )
    op.execute("CREATE INDEX dead_letters_created ON dead_letters (created_at)")
    op.execute(
        """
        CREATE TABLE file_offsets (
            file_name       text PRIMARY KEY,
            inode           bigint NOT NULL,
            byte_offset     bigint NOT NULL,
            fingerprint     text NOT NULL,
            fingerprint_len integer NOT NULL,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE data_keys (
            key_id     varchar(64) PRIMARY KEY,
            owner_id   varchar(128) NOT NULL UNIQUE,
            kek_id     varchar(128) NOT NULL,
            wrapped    bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE retention_runs (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at           timestamptz NOT NULL,
            finished_at          timestamptz,
            cutoff               timestamptz NOT NULL,
            calls_deleted        integer NOT NULL DEFAULT 0,
            dead_letters_deleted integer NOT NULL DEFAULT 0,
            files_deleted        integer NOT NULL DEFAULT 0,
            keys_shredded        integer NOT NULL DEFAULT 0,
            errors               jsonb NOT NULL DEFAULT '[]'
        )
        """
    )
    op.execute(
        """
        CREATE TABLE call_stats_daily (
            day                  date PRIMARY KEY,
            calls                integer NOT NULL DEFAULT 0,
            done                 integer NOT NULL DEFAULT 0,
            seconds_to_done_sum  double precision NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        """
        CREATE TABLE call_stats_topic (
            day   date NOT NULL,
            topic text NOT NULL,
            calls integer NOT NULL DEFAULT 0,
            PRIMARY KEY (day, topic)
        )
        """
    )
    op.execute("CREATE TABLE ingest_config (key text PRIMARY KEY, value jsonb NOT NULL)")


def downgrade() -> None:
    for table in (
        "ingest_config",
        "call_stats_topic",
        "call_stats_daily",
        "retention_runs",
        "data_keys",
        "file_offsets",
        "dead_letters",
        "actions_audit",
        "call_notes",
        "call_status",
        "calls",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
