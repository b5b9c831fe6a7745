from schleuse_common.db import alembic_env
from schleuse_gateway.store import metadata

alembic_env(metadata)
