"""``RegistryStore`` on SQLAlchemy: models and versions here, the rest in ``_deploy``."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typing_extensions import override

from corral.errors import InvalidArgument
from corral.registry.entities import (
    Deprecation,
    Model,
    ModelSource,
    ModelVersion,
    Page,
    VersionStatus,
)
from corral.registry.errors import ModelAlreadyExists, ModelNotFound
from corral.registry.ports import VersionQuery
from corral.store.sql._audit import AuditMethods
from corral.store.sql._convert import (
    files_to_json,
    model_from_row,
    signature_to_json,
    version_from_row,
)
from corral.store.sql._deploy import DeploymentMethods
from corral.store.sql._identity import IdentityMethods
from corral.store.sql._quarantine import QuarantineMethods
from corral.store.sql._trust import TrustMethods
from corral.store.sql.tables import (
    GrantRow,
    ModelRow,
    ModelTagRow,
    VersionRow,
    VersionTagRow,
    utcnow,
)

__all__ = ["SqlRegistryStore"]

_UPDATABLE = frozenset({"description", "owner", "tags", "task", "framework", "license", "source"})


_LISTED_COLUMNS = [c for c in VersionRow.__table__.c if c.key != "files"]


@functools.cache
def _search_statements(
    *, has_models: bool, has_status: bool, driven: bool, other_tags: int, by_number: bool
) -> tuple[Select[Any], Select[Any]]:
    """The count and page statements of one shape of version search, built once.

    Values come as bound parameters, so a search costs no statement building: listing is
    the hot path of search.
    """
    conditions: list[ColumnElement[bool]] = []
    if has_models:
        conditions.append(VersionRow.model_id.in_(bindparam("model_ids", expanding=True)))
    if has_status:
        conditions.append(VersionRow.status == bindparam("status"))
    versions = VersionRow.__table__
    if not driven:
        source: Any = versions
        id_column: Any = VersionRow.id
        count_source = source
    else:
        # The rarest tag drives: its index yields matching ids already in order; each other
        # tag is a join on the covering (key, value, version_id) index.
        tags = VersionTagRow.__table__
        tagged: Any = tags
        for n in range(other_tags):
            other = tags.alias(f"tag_{n}")
            tagged = tagged.join(
                other,
                and_(
                    other.c.version_id == tags.c.version_id,
                    other.c.key == bindparam(f"key_{n}"),
                    other.c.value == bindparam(f"value_{n}"),
                ),
            )
        source = tagged.join(versions, tags.c.version_id == VersionRow.id)
        id_column = tags.c.version_id
        # Tag rows exist only for live versions: without other filters, skip the join.
        count_source = source if conditions else tagged
        conditions += [
            tags.c.key == bindparam("driver_key"),
            tags.c.value == bindparam("driver_value"),
        ]
    # Within one model, newest is the highest number; across models, the last inserted.
    newest_first = VersionRow.number.desc() if by_number else id_column.desc()
    count = select(func.count()).select_from(count_source).where(*conditions)
    page = (
        select(*_LISTED_COLUMNS, ModelRow.name.label("model_name"))
        .select_from(source.join(ModelRow.__table__, ModelRow.id == VersionRow.model_id))
        .where(*conditions)
        .order_by(newest_first)
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )
    return count, page


class SqlRegistryStore(
    AuditMethods, TrustMethods, QuarantineMethods, DeploymentMethods, IdentityMethods
):
    """The registry's metadata in SQLite or PostgreSQL; the schema must be migrated first.

    It keeps identities too (``corral.accounts.IdentityStore``): users, teams, grants, tokens.
    """

    @override
    def create_model(self, model: Model) -> Model:
        now = utcnow()
        try:
            with self._writing() as session:
                row = ModelRow(
                    name=model.name,
                    description=model.description,
                    owner=model.owner,
                    tags=dict(model.tags),
                    task=model.task,
                    framework=model.framework,
                    license=model.license,
                    source=model.source.value,
                    next_version=1,
                    created_at=model.created_at or now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                _write_model_tags(session, row.id, model.tags)
                return model_from_row(row)
        except IntegrityError as exc:
            raise ModelAlreadyExists(model.name) from exc

    @override
    def find_model(self, name: str) -> Model | None:
        with self._reading_rows() as connection:
            row = connection.execute(
                select(ModelRow.__table__).where(ModelRow.name == name)
            ).one_or_none()
            return None if row is None else model_from_row(row)

    @override
    def list_models(
        self, query: str | None, tags: dict[str, str], offset: int, limit: int
    ) -> Page[Model]:
        conditions: list[ColumnElement[bool]] = []
        if query:
            conditions.append(
                or_(
                    ModelRow.name.icontains(query, autoescape=True),
                    ModelRow.description.icontains(query, autoescape=True),
                )
            )
        for key, value in tags.items():
            conditions.append(
                ModelRow.id.in_(
                    select(ModelTagRow.model_id).where(
                        ModelTagRow.key == key, ModelTagRow.value == value
                    )
                )
            )
        with self._reading() as session:
            total = session.scalar(select(func.count()).select_from(ModelRow).where(*conditions))
            rows = session.scalars(
                select(ModelRow)
                .where(*conditions)
                .order_by(ModelRow.name)
                .offset(offset)
                .limit(limit)
            )
            items = [model_from_row(row) for row in rows]
        return Page(items=items, total=total or 0, offset=offset, limit=limit)

    @override
    def update_model(self, name: str, changes: dict[str, Any]) -> Model:
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidArgument(
                f"cannot change {', '.join(unknown)} of model '{name}'; "
                f"changeable: {', '.join(sorted(_UPDATABLE))}"
            )
        with self._writing() as session:
            row = self._model_row(session, name, lock=True)
            for key, value in changes.items():
                if key == "tags":
                    row.tags = dict(value)
                    session.execute(delete(ModelTagRow).where(ModelTagRow.model_id == row.id))
                    _write_model_tags(session, row.id, value)
                elif key == "source":
                    row.source = _source(value)
                else:
                    setattr(row, key, value)
            row.updated_at = utcnow()
            session.flush()
            return model_from_row(row)

    @override
    def delete_model(self, name: str) -> None:
        with self._writing() as session:
            # ON DELETE CASCADE in the schema removes everything that hangs off the model.
            deleted = session.execute(
                delete(ModelRow).where(ModelRow.name == name).returning(ModelRow.id)
            ).all()
            if not deleted:
                raise ModelNotFound(name)
            # Grants name their model rather than reference it: without this, a model made
            # later under the same name would inherit them.
            session.execute(delete(GrantRow).where(GrantRow.model == name))

    @override
    def create_version(self, draft: ModelVersion) -> ModelVersion:
        now = utcnow()
        with self._writing() as session:
            # One atomic statement finds the model and takes its next number; the row stays
            # locked until commit, so concurrent writers queue and get consecutive numbers.
            bumped = session.execute(
                update(ModelRow)
                .where(ModelRow.name == draft.model)
                .values(next_version=ModelRow.next_version + 1, updated_at=now)
                .returning(ModelRow.id, ModelRow.next_version)
            ).one_or_none()
            if bumped is None:
                raise ModelNotFound(draft.model)
            model_id, next_version = bumped
            row = VersionRow(
                model_id=model_id,
                number=next_version - 1,
                status=draft.status.value,
                manifest_digest=draft.manifest_digest,
                flavor=draft.flavor,
                description=draft.description,
                metrics=dict(draft.metrics),
                params=dict(draft.params),
                tags=dict(draft.tags),
                signature=signature_to_json(draft.signature),
                source_uri=draft.source_uri,
                parent_version=draft.parent_version,
                created_by=draft.created_by,
                created_at=draft.created_at or now,
                deprecation_message=draft.deprecation.message if draft.deprecation else None,
                deprecated_by=draft.deprecation.by if draft.deprecation else None,
                deprecated_at=draft.deprecation.at if draft.deprecation else None,
                files=files_to_json(draft.files),
                size=draft.size or sum(f.size for f in draft.files),
                trusted=False,  # granted only by set_trust, which records who and why
                quarantined=draft.quarantined,
                scan_report=draft.scan,
            )
            session.add(row)
            session.flush()
            session.add_all(
                VersionTagRow(version_id=row.id, key=k, value=v) for k, v in draft.tags.items()
            )
            return version_from_row(row, draft.model)

    @override
    def find_version(self, model: str, number: int) -> ModelVersion | None:
        with self._reading_rows() as session:
            row = session.execute(
                select(VersionRow.__table__)
                .join(ModelRow.__table__, ModelRow.id == VersionRow.model_id)
                .where(ModelRow.name == model, VersionRow.number == number)
            ).one_or_none()
            if row is None:
                self._model_id(session, model)
                return None
            return version_from_row(row, model)

    @override
    def list_versions(self, query: VersionQuery) -> Page[ModelVersion]:
        with self._reading_rows() as session:
            model_ids: list[int] | None = None
            if query.model is not None:
                model_ids = [self._model_id(session, query.model)]
            if query.name_contains:
                # The models table is small: resolve the names first, then use the
                # (model_id, number) index instead of joining every version to its model.
                matching = (
                    session.execute(
                        select(ModelRow.id).where(
                            ModelRow.name.icontains(query.name_contains, autoescape=True)
                        )
                    )
                    .scalars()
                    .all()
                )
                model_ids = [i for i in matching if model_ids is None or i in model_ids]
            if model_ids == []:
                return Page(items=[], total=0, offset=query.offset, limit=query.limit)
            driver = self._tag_driver(session, query.tags)
            others = [pair for pair in query.tags.items() if pair != driver]
            count, page = _search_statements(
                has_models=model_ids is not None,
                has_status=query.status is not None,
                driven=driver is not None,
                other_tags=len(others),
                by_number=model_ids is not None and len(model_ids) == 1 and driver is None,
            )
            values: dict[str, Any] = {"offset": query.offset, "limit": query.limit}
            if model_ids is not None:
                values["model_ids"] = model_ids
            if query.status is not None:
                values["status"] = query.status.value
            if driver is not None:
                values["driver_key"], values["driver_value"] = driver
            for n, (key, value) in enumerate(others):
                values[f"key_{n}"], values[f"value_{n}"] = key, value
            total = session.scalar(count, values)
            rows = session.execute(page, values).all()
            items = [version_from_row(row, row.model_name, with_files=False) for row in rows]
        return Page(items=items, total=total or 0, offset=query.offset, limit=query.limit)

    @staticmethod
    def _tag_driver(session: Connection, tags: dict[str, str]) -> tuple[str, str] | None:
        """The (key, value) with the fewest versions, counted on the tag index."""
        if len(tags) <= 1:
            return next(iter(tags.items()), None)
        counts = {
            (key, value): session.scalar(
                select(func.count())
                .select_from(VersionTagRow)
                .where(VersionTagRow.key == key, VersionTagRow.value == value)
            )
            or 0
            for key, value in tags.items()
        }
        return min(counts, key=lambda pair: counts[pair])

    @override
    def set_deprecation(
        self, model: str, number: int, deprecation: Deprecation | None
    ) -> ModelVersion:
        with self._writing() as session:
            row = self._version_row(session, self._model_id(session, model), model, number)
            row.deprecation_message = deprecation.message if deprecation else None
            row.deprecated_by = deprecation.by if deprecation else None
            row.deprecated_at = deprecation.at if deprecation else None
            session.flush()
            return version_from_row(row, model)

    @override
    def set_status(self, model: str, number: int, status: VersionStatus) -> ModelVersion:
        with self._writing() as session:
            row = self._version_row(session, self._model_id(session, model), model, number)
            row.status = status.value
            session.flush()
            return version_from_row(row, model)

    @override
    def referenced_manifests(self) -> set[str]:
        with self._reading() as session:
            return set(session.scalars(select(VersionRow.manifest_digest).distinct()))


def _source(value: Any) -> str:
    try:
        return ModelSource(value).value
    except ValueError:
        choices = ", ".join(s.value for s in ModelSource)
        raise InvalidArgument(f"model source {value!r} is not one of {choices}") from None


def _write_model_tags(session: Session, model_id: int, tags: dict[str, str]) -> None:
    session.add_all(ModelTagRow(model_id=model_id, key=k, value=v) for k, v in tags.items())
