"""The SQL metadata store: SQLAlchemy 2 on SQLite (default, WAL) or PostgreSQL.

Owns the engine setup (``make_engine``), the schema (Alembic migrations, applied by
``upgrade_database``) and ``SqlRegistryStore``, which implements
``corral.registry.ports.RegistryStore``.
"""

from corral.store.sql.engine import make_engine
from corral.store.sql.migrate import upgrade_database
from corral.store.sql.store import SqlRegistryStore

__all__ = ["SqlRegistryStore", "make_engine", "upgrade_database"]
