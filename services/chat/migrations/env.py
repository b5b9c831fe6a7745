from schleuse_chat.store import metadata
from schleuse_common.db import alembic_env

alembic_env(metadata)
