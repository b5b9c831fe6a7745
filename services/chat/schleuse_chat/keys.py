"""Operator command: `python -m schleuse_chat.keys rewrap --new-key-file PATH` rotates the key-encryption key.

Every data key is re-wrapped under the new KEK; no message is re-encrypted. Point `SCHLEUSE_KEY_FILE`
at the new file afterwards (Vault/OpenBao: rotate the transit key instead, then run `rewrap` to
move every data key to the newest key version).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from schleuse_chat import store
from schleuse_chat.main import SPEC
from schleuse_chat.settings import ChatSettings
from schleuse_common.auth import load_or_create_key
from schleuse_common.crypto import DataKeyring, KeyEncryptionKey, LocalKek, load_kek
from schleuse_common.db import Database, run_migrations


async def rewrap(settings: ChatSettings, new_kek: KeyEncryptionKey) -> int:
    """Re-wrap every chat data key under `new_kek`; returns how many keys were re-wrapped."""
    infra = settings.infra
    assert SPEC.migrations is not None
    await asyncio.to_thread(run_migrations, infra.database_url, "chat", SPEC.migrations)
    db = Database(infra.database_url, "chat", pool_size=1)
    try:
        async with db.session() as session:
            return await DataKeyring(store.data_keys, load_kek(infra)).rewrap(session, new_kek)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="schleuse_chat.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("rewrap", help="re-wrap every data key under a new local key file")
    cmd.add_argument("--new-key-file", type=Path, required=True)
    args = parser.parse_args(argv)
    count = asyncio.run(rewrap(ChatSettings(), LocalKek(load_or_create_key(args.new_key_file))))
    sys.stdout.write(f"re-wrapped {count} data keys\n")


if __name__ == "__main__":
    main()
