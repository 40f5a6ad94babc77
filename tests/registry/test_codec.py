"""The JSON form of entities round-trips: what the server sends, the SDK rebuilds."""

from datetime import UTC, datetime

import orjson

from corral.registry.codec import from_jsonable, jsonable
from corral.registry.entities import (
    AliasAction,
    AliasEvent,
    ColumnSpec,
    Deprecation,
    FileEntry,
    ModelVersion,
    Page,
    Signature,
    VersionStatus,
)

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
VERSION = ModelVersion(
    model="churn",
    number=3,
    status=VersionStatus.READY,
    manifest_digest="ab" * 32,
    metrics={"auc": 0.9},
    tags={"team": "growth"},
    signature=Signature(inputs=[ColumnSpec("age", "int64", [-1])]),
    created_at=NOW,
    deprecation=Deprecation("use v4", "ann", NOW),
    files=[FileEntry("model.skops", 10, "cd" * 32)],
    parent_version=2,
)


def test_entities_round_trip_through_json() -> None:
    page = Page(items=[VERSION], total=1)
    for encoded in (orjson.dumps(page), orjson.dumps(jsonable(page))):
        assert from_jsonable(Page[ModelVersion], orjson.loads(encoded)) == page


def test_optional_fields_enums_and_numbers_are_rebuilt() -> None:
    event = AliasEvent(1, "churn", "champion", AliasAction.ROLLBACK, 3, None, at=NOW)
    back = from_jsonable(AliasEvent, orjson.loads(orjson.dumps(event)))
    assert back == event
    assert back.action is AliasAction.ROLLBACK
    loose = {**orjson.loads(orjson.dumps(VERSION)), "metrics": {"auc": 1}}
    assert from_jsonable(ModelVersion, loose).metrics == {"auc": 1.0}
    assert isinstance(from_jsonable(ModelVersion, loose).metrics["auc"], float)
