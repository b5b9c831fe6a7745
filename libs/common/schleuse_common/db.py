"""One database access path: SQLAlchemy 2 async on psycopg 3, one Postgres schema per service, Alembic per service."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq-style URL into the psycopg 3 dialect URL SQLAlchemy expects."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


class Database:
    """An async engine and session factory bound to one service's schema."""

    def __init__(self, url: str, schema: str, *, pool_size: int = 10) -> None:
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"options": f"-c search_path={schema},public"},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


@contextlib.contextmanager
def _maintenance(url: str) -> Iterator[tuple[sa.Connection, str]]:
    """An autocommit connection to the server's `postgres` database, and the database `url` names."""
    target = make_url(sqlalchemy_url(url))
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn, str(target.database)
    finally:
        engine.dispose()


def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist yet (dev stack and tests)."""
    with _maintenance(url) as (conn, name):
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            with contextlib.suppress(sa.exc.ProgrammingError):  # created concurrently
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))


def drop_database(url: str) -> None:
    """Drop the database named in `url`, closing its connections (test sessions clean up after themselves)."""
    with _maintenance(url) as (conn, name):
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server (keeps host, port and query)."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def run_migrations(url: str, schema: str, migrations_dir: Path) -> None:
    """Apply a service's Alembic migrations to head, serialised by an advisory lock per schema."""
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": zlib.crc32(schema.encode())})
            try:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                conn.commit()
                cfg = Config()
                cfg.set_main_option("script_location", str(migrations_dir))
                cfg.attributes["connection"] = conn
                cfg.attributes["schema"] = schema
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": zlib.crc32(schema.encode())})
                conn.commit()
    finally:
        engine.dispose()


def alembic_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's migrations/env.py: migrate inside the connection run_migrations holds."""
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]
    schema = config.attributes["schema"]
    connection.execute(sa.text(f'SET search_path TO "{schema}", public'))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def create_platform_tables(bind: Connection, schema: str, *, data_keys: bool = False, inbox: bool = False) -> None:
    """For a service's first migration: the tables libs/common works on (data keys, inbox) in `schema`."""
    from schleuse_common.crypto import data_keys_table

    metadata = MetaData(schema=schema)
    if data_keys:
        data_keys_table(metadata)
    if inbox:
        inbox_table(metadata)
    metadata.create_all(bind)


def inbox_table(metadata: MetaData) -> Table:
    """The table of envelope ids a service has processed: consumers stay idempotent across redeliveries."""
    return Table(
        "processed_messages",
        metadata,
        Column("envelope_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    )


async def first_delivery(session: AsyncSession, inbox: Table, envelope_id: str) -> bool:
    """Record `envelope_id` in the inbox; False when it was processed before (in the same transaction)."""
    stmt = insert(inbox).values(envelope_id=envelope_id).on_conflict_do_nothing().returning(inbox.c.envelope_id)
    return (await session.execute(stmt)).first() is not None


async def first_deliveries(session: AsyncSession, inbox: Table, envelope_ids: list[str]) -> set[str]:
    """Record many envelope ids at once; returns those not processed before (batch consumers)."""
    if not envelope_ids:
        return set()
    stmt = insert(inbox).on_conflict_do_nothing().returning(inbox.c.envelope_id)  # compiled once, cached
    return set((await session.execute(stmt, [{"envelope_id": i} for i in dict.fromkeys(envelope_ids)])).scalars())
