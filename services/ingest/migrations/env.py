"""Alembic environment of the ingest schema (run through schleuse_common.db.run_migrations)."""

from schleuse_common.db import alembic_env

alembic_env()
