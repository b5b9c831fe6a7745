from schleuse_analytics.store import metadata
from schleuse_common.db import alembic_env

alembic_env(metadata)
