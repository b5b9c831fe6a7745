"""One search vector for name and topic words instead of a trigram index plus a topic vector.

`search_tsv` holds the caller's name words (`simple`, unstemmed, umlauts folded) and the topic's German
stems. One GIN index with about six entries per call replaces the trigram index (twenty and more
entries per name) and the topic index, which made ingest pay twice; search matches every typed word as
a prefix of a name word or a topic word.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE calls ADD COLUMN search_tsv tsvector")
    # Same words as the service computes (`\w+` of the folded name), from the columns of 0001.
    op.execute(
        "UPDATE calls SET search_tsv = "
        "to_tsvector('simple', coalesce(regexp_replace(name_key, '\\W+', ' ', 'g'), '')) || topic_tsv"
    )
    op.execute("ALTER TABLE calls ALTER COLUMN search_tsv SET NOT NULL")
    op.execute("DROP INDEX IF EXISTS calls_name_trgm")
    op.execute("DROP INDEX IF EXISTS calls_name_key")
    op.execute("DROP INDEX IF EXISTS calls_topic_fts")
    op.execute("ALTER TABLE calls DROP COLUMN topic_tsv, DROP COLUMN name_key")
    op.execute("CREATE INDEX calls_search ON calls USING gin (search_tsv)")


def downgrade() -> None:
    # lower() approximates the service's folding (umlauts stay); the service of 0001 rewrites rows it ingests.
    op.execute("ALTER TABLE calls ADD COLUMN name_key text, ADD COLUMN topic_tsv tsvector")
    op.execute("UPDATE calls SET name_key = lower(caller_name), topic_tsv = to_tsvector('german', lower(topic))")
    op.execute("ALTER TABLE calls ALTER COLUMN topic_tsv SET NOT NULL")
    op.execute("DROP INDEX IF EXISTS calls_search")
    op.execute("ALTER TABLE calls DROP COLUMN search_tsv")
    op.execute("CREATE INDEX calls_topic_fts ON calls USING gin (topic_tsv)")
    op.execute("CREATE INDEX calls_name_key ON calls (name_key text_pattern_ops)")
