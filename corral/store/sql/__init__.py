"""The SQL metadata store: SQLAlchemy 2 on SQLite (default, WAL) or PostgreSQL.

Owns the engine setup (``make_engine``), the schema (Alembic migrations, applied by
``upgrade_database``) and ``SqlRegistryStore``, which implements
``corral.registry.ports.RegistryStore``, and ``SqlMonitoringStore``, which implements
``corral.monitoring.ports.MonitoringStore``.
"""

from corral.store.sql._monitoring import SqlMonitoringStore
from corral.store.sql.engine import make_engine
from corral.store.sql.migrate import upgrade_database
from corral.store.sql.store import SqlRegistryStore

__all__ = ["SqlMonitoringStore", "SqlRegistryStore", "make_engine", "upgrade_database"]
