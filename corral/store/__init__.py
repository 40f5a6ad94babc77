"""Storage implementations of the domain's protocols.

``sql`` (SQLAlchemy + Alembic: SQLite or PostgreSQL) implements ``RegistryStore``;
``artifacts`` (fsspec, content-addressed: a local folder or S3) implements ``ArtifactStore``.
"""

__all__: list[str] = []
