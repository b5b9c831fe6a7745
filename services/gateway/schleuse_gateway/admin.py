"""Operator commands: `python -m schleuse_gateway.admin bootstrap` creates the first admin and an API key.

Output contract (used by `make run` and the e2e tests): the LAST line of stdout is the new admin API key.
When that admin login has no password yet (first run), a line before it carries the login and a random
password, shown this once (nobody ships with a default password).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from schleuse_common.auth import Actor, keyed_hash, load_or_create_key
from schleuse_common.bus import Bus
from schleuse_common.db import Database, run_migrations
from schleuse_gateway import store
from schleuse_gateway.domain.keys import mint_key
from schleuse_gateway.domain.passwords import hash_password, random_password
from schleuse_gateway.identity.accounts import LOCAL_ISSUER, normalise_login
from schleuse_gateway.identity.audit import Auditor
from schleuse_gateway.main import SPEC
from schleuse_gateway.settings import GatewaySettings


async def bootstrap(settings: GatewaySettings, login: str, department: str | None) -> tuple[str, str | None]:
    """Create (once) the first admin with a random password and mint a new admin API key.

    Returns the key and, only when the admin login was created now, its password; both shown once.
    """
    infra = settings.infra
    assert SPEC.migrations is not None
    await asyncio.to_thread(run_migrations, infra.database_url, "gateway", SPEC.migrations)
    actor_key = load_or_create_key(infra.internal_key_file)
    db = Database(infra.database_url, "gateway", pool_size=1)
    bus = await Bus.connect(infra.nats_url, "schleuse-gateway-admin", actor_key=actor_key)
    auditor = Auditor(bus)
    name = normalise_login(login)
    subject_hash = keyed_hash(actor_key, LOCAL_ISSUER, name)
    password: str | None = None
    try:
        await bus.ensure_streams()
        async with db.session() as session:
            user = await store.user_by_subject(session, subject_hash)
            if user is None:
                if department is not None:
                    await store.ensure_department(session, department)
                user_id = await store.create_user(
                    session, subject_hash=subject_hash, roles=["admin", "user"], department=department, login_name=name
                )
                await auditor.record(
                    "users", "created", target_type="user", target_id=user_id, actor=None, kind="local"
                )
            else:
                user_id = user.id
            if user is None or user.password_hash is None:
                password = random_password()
                digest = await asyncio.to_thread(hash_password, password)
                await store.update_user(session, user_id, password_hash=digest, failed_logins=0, locked_until=None)
                await auditor.record("users", "password_reset", target_type="user", target_id=user_id, actor=None)
            key = mint_key()
            key_id = await store.create_api_key(
                session, user_id=user_id, name="bootstrap", prefix=key.prefix, digest=key.digest, scopes=["*"]
            )
            actor = Actor(id=user_id, roles=["admin", "user"], department=department).signed(actor_key)
            await auditor.record("keys", "created", target_type="api_key", target_id=key_id, actor=actor, owner=user_id)
    finally:
        await bus.close()
        await db.dispose()
    return key.secret, password


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="schleuse_gateway.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="create the first admin (login + password once) and print a new API key")
    boot.add_argument("--login", "--subject", dest="login", default="admin")
    boot.add_argument("--department", default="IT")
    args = parser.parse_args(argv)
    secret, password = asyncio.run(bootstrap(GatewaySettings(), args.login, args.department))
    if password is not None:
        sys.stdout.write(f"admin login: {normalise_login(args.login)}  password (shown once): {password}\n")
    sys.stdout.write(secret + "\n")


if __name__ == "__main__":
    main()
