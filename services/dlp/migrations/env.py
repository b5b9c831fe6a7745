from schleuse_common.db import alembic_env
from schleuse_dlp.store import metadata

alembic_env(metadata)
