"""Sessions and lookups shared by the parts of ``SqlRegistryStore``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import override

from corral.registry.audit import GENESIS, AuditDraft, event_hash
from corral.registry.errors import ModelNotFound, VersionNotFound
from corral.registry.ports import RegistryStore
from corral.store.sql.engine import WRITE_OPTION
from corral.store.sql.tables import AuditEventRow, ModelRow, RegistryStateRow, VersionRow

_BUMP_GENERATION = (
    update(RegistryStateRow)
    .values(generation=RegistryStateRow.generation + 1)
    .execution_options(synchronize_session=False)
)
_READ_GENERATION = select(RegistryStateRow.generation).where(RegistryStateRow.id == 1)
_LAST_HASH = select(AuditEventRow.hash).order_by(AuditEventRow.id.desc()).limit(1)


class SessionBase(RegistryStore):
    """Short transactions on one engine: a read one, or a write one (IMMEDIATE on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # The session of the ``audited()`` transaction this thread or task is inside, if any.
        self._joined: ContextVar[Session | None] = ContextVar(
            f"corral_write_{id(self)}", default=None
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _reading_rows(self) -> Iterator[Connection]:
        """A read transaction for Core statements: no ORM session to set up on hot paths."""
        with self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction, or the ``audited()`` one this call is inside of."""
        joined = self._joined.get()
        if joined is not None:
            yield joined
            return
        with self._transaction([]) as session:
            yield session

    @contextmanager
    def audited(self) -> Iterator[list[AuditDraft]]:
        drafts: list[AuditDraft] = []
        with self._transaction(drafts) as session:
            token = self._joined.set(session)
            try:
                yield drafts
            finally:
                self._joined.reset(token)

    @contextmanager
    def _transaction(self, drafts: list[AuditDraft]) -> Iterator[Session]:
        """A write transaction; when its body succeeds, it bumps the generation and appends
        the audit drafts."""
        with self._sessions() as session, session.begin():
            # Procuring the connection with this option is what makes SQLite BEGIN IMMEDIATE.
            session.connection(execution_options={WRITE_OPTION: True})
            yield session
            # Last, so that on PostgreSQL the one row every writer updates stays locked only
            # from here to the commit, and no writer waits for it while holding other locks.
            # A row (not a sequence) because a reader then never sees a generation before
            # the writes that made it are visible too.
            session.execute(_BUMP_GENERATION)
            # After the bump: holding that row's lock (or SQLite's write lock), no other
            # writer can append, so the last hash read here stays the last until commit.
            if drafts:
                self._append_audit(session, drafts)

    @staticmethod
    def _append_audit(session: Session, drafts: list[AuditDraft]) -> None:
        prev_hash = session.scalar(_LAST_HASH) or GENESIS
        for draft in drafts:
            digest = event_hash(draft, prev_hash)
            session.add(
                AuditEventRow(
                    at=draft.at,
                    actor=draft.actor,
                    action=draft.action,
                    target=draft.target,
                    before=draft.before,
                    after=draft.after,
                    origin=draft.origin,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
            prev_hash = digest
        session.flush()

    @override
    def generation(self) -> int:
        with self._reading_rows() as connection:
            return int(connection.execute(_READ_GENERATION).scalar_one())

    @staticmethod
    def _model_row(session: Session, name: str, lock: bool = False) -> ModelRow:
        """The model's row, locked ``FOR UPDATE`` on PostgreSQL to serialise its writers."""
        statement = select(ModelRow).where(ModelRow.name == name)
        if lock:
            statement = statement.with_for_update()
        row = session.scalars(statement).one_or_none()
        if row is None:
            raise ModelNotFound(name)
        return row

    @staticmethod
    def _model_id(session: Session | Connection, name: str) -> int:
        model_id = session.scalar(select(ModelRow.id).where(ModelRow.name == name))
        if model_id is None:
            raise ModelNotFound(name)
        return model_id

    @staticmethod
    def _version_row(session: Session, model_id: int, model: str, number: int) -> VersionRow:
        row = session.scalars(
            select(VersionRow).where(VersionRow.model_id == model_id, VersionRow.number == number)
        ).one_or_none()
        if row is None:
            raise VersionNotFound(model, number)
        return row
