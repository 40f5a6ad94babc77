"""One registry suite, through the SDK in every mode: local/REST × SQLite/PostgreSQL × local/S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import Client
from corral.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from corral.registry.entities import AliasAction, VersionStatus


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights v1")
    return path


def _register(client: Client, model: str, tmp_path: Path, content: bytes, **kw: object):  # type: ignore[no-untyped-def]
    folder = tmp_path / f"src-{content.hex()[:16]}"
    folder.mkdir(exist_ok=True)
    (folder / "model.bin").write_bytes(content)
    return client.register(model, folder, **kw)


def test_create_get_and_list_models(client: Client) -> None:
    client.create_model("churn", description="churn risk", tags={"team": "growth"}, task="cls")
    client.create_model("fraud", source="third-party")
    assert client.get_model("churn").tags == {"team": "growth"}
    assert client.get_model("fraud").source.value == "third-party"
    assert [m.name for m in client.list_models().items] == ["churn", "fraud"]
    assert [m.name for m in client.list_models(query="risk").items] == ["churn"]
    assert [m.name for m in client.list_models(tags={"team": "growth"}).items] == ["churn"]


def test_duplicate_model_is_refused(client: Client) -> None:
    client.create_model("churn")
    with pytest.raises(AlreadyExists, match="model 'churn' already exists"):
        client.create_model("churn")


@pytest.mark.parametrize(
    "name", ["../etc", "/abs", "a\x00b", "tab\there", "x" * 10_000, "Upper", "", "-lead"]
)
def test_bad_model_names_are_refused(client: Client, name: str) -> None:
    with pytest.raises(InvalidArgument, match="model name"):
        client.create_model(name)
    assert client.list_models().total == 0


def test_unknown_things_are_named(client: Client) -> None:
    with pytest.raises(NotFound, match="model 'ghost' does not exist"):
        client.get_model("ghost")
    client.create_model("churn")
    with pytest.raises(NotFound, match="model 'churn' has no version 7"):
        client.get_version("churn", 7)
    with pytest.raises(NotFound, match="model 'churn' has no alias 'prod'"):
        client.get_version("churn", "prod")


def test_register_assigns_consecutive_immutable_versions(client: Client, tmp_path: Path) -> None:
    v1 = _register(client, "churn", tmp_path, b"one", metrics={"auc": 0.81}, tags={"run": "a"})
    v2 = _register(client, "churn", tmp_path, b"two", params={"C": 1}, parent_version=1)
    assert (v1.number, v2.number) == (1, 2)
    assert v1.status is VersionStatus.READY
    again = client.get_version("churn", 1)
    assert again.metrics == {"auc": 0.81}
    assert again.files == v1.files
    assert v2.params == {"C": "1"}
    assert v2.parent_version == 1
    assert client.get_model("churn").latest_version == 2
    assert [v.number for v in client.list_versions("churn").items] == [2, 1]


def test_signature_is_inferred_from_the_example(client: Client, tmp_path: Path) -> None:
    example = [{"age": 31, "income": 52000.5, "plan": "pro"}, {"age": 45, "income": 1.0}]
    version = _register(client, "churn", tmp_path, b"m", example=example)
    assert version.signature is not None
    specs = {c.name: c.dtype for c in version.signature.inputs}
    assert specs == {"age": "int64", "income": "float64", "plan": "string"}
    assert "input_example.json" in {f.path for f in version.files}


def test_upload_paths_that_escape_the_version_are_refused(client: Client) -> None:
    upload = client.begin_upload()
    for bad in ["../escape.bin", "/etc/passwd", "a/../../b", "nul\x00.bin", "c:\\win"]:
        with pytest.raises(InvalidArgument, match="file path"):
            client.upload_file(upload, bad, iter([b"x"]))
    client.discard_upload(upload)


def test_fetch_and_download_give_verified_files(client: Client, tmp_path: Path) -> None:
    _register(client, "churn", tmp_path, b"the weights", alias="champion")
    folder = client.fetch("churn", "champion")
    assert (folder / "model.bin").read_bytes() == b"the weights"
    target = client.download("churn", 1, tmp_path / "out")
    assert (target / "model.bin").read_bytes() == b"the weights"
    report = client.verify_version("churn", "champion")
    assert report.files_checked == 1


def test_search_versions_by_tag_and_by_name(client: Client, tmp_path: Path) -> None:
    _register(client, "churn-a", tmp_path, b"1", tags={"stage": "prod"})
    _register(client, "churn-a", tmp_path, b"2", tags={"stage": "dev"})
    _register(client, "fraud", tmp_path, b"3", tags={"stage": "prod"})
    by_tag = client.search_versions(tags={"stage": "prod"})
    assert {(v.model, v.number) for v in by_tag.items} == {("churn-a", 1), ("fraud", 1)}
    by_name = client.search_versions(name_contains="churn")
    assert {(v.model, v.number) for v in by_name.items} == {("churn-a", 1), ("churn-a", 2)}
    both = client.search_versions(name_contains="churn", tags={"stage": "prod"})
    assert [(v.model, v.number) for v in both.items] == [("churn-a", 1)]


def test_alias_moves_are_recorded_and_rollback_walks_back(client: Client, tmp_path: Path) -> None:
    for content in (b"1", b"2", b"3"):
        _register(client, "churn", tmp_path, content)
    client.set_alias("churn", "champion", 1, reason="first")
    client.set_alias("churn", "champion", 2, reason="better")
    client.set_alias("churn", "champion", 3, reason="newest")
    assert client.rollback_alias("churn", "champion", reason="bad").version == 2
    assert client.rollback_alias("churn", "champion").version == 1
    with pytest.raises(Conflict, match="no earlier target"):
        client.rollback_alias("churn", "champion")
    events = client.alias_history("churn", "champion").items
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        (AliasAction.ROLLBACK, 2, 1),
        (AliasAction.ROLLBACK, 3, 2),
        (AliasAction.SET, 2, 3),
        (AliasAction.SET, 1, 2),
        (AliasAction.SET, None, 1),
    ]
    assert events[1].reason == "bad"
    assert events[1].actor == "tester"
    assert events[0].at is not None
    assert client.get_version("churn", "champion").number == 1


def test_deleting_an_alias_is_recorded_and_can_be_rolled_back(
    client: Client, tmp_path: Path
) -> None:
    _register(client, "churn", tmp_path, b"1", alias="champion")
    client.delete_alias("churn", "champion", reason="retired")
    with pytest.raises(NotFound):
        client.get_alias("churn", "champion")
    assert client.alias_history("churn", "champion").items[0].action is AliasAction.DELETE
    assert client.rollback_alias("churn", "champion").version == 1


def test_config_revisions_are_immutable_and_rollback_restores_them(
    client: Client, tmp_path: Path
) -> None:
    _register(client, "churn", tmp_path, b"1")
    _register(client, "churn", tmp_path, b"2")
    r1 = client.create_config("churn", "serving", {"batch_size": 64, "canary": 0.0})
    r2 = client.create_config("churn", "serving", {"batch_size": 32, "canary": 0.1})
    assert (r1.revision, r2.revision) == (1, 2)
    assert client.get_config("churn", "serving", 1).values == {"batch_size": 64, "canary": 0.0}
    assert client.get_config("churn", "serving").revision == 2
    client.set_alias("churn", "champion", 1, config="serving", config_revision=1)
    client.set_alias("churn", "champion", 2, config="serving")
    moved = client.resolve("churn", "champion")
    assert (moved.version, moved.config_revision) == (2, 2)
    assert moved.config_values == {"batch_size": 32, "canary": 0.1}
    client.rollback_alias("churn", "champion")
    back = client.resolve("churn", "champion")
    assert (back.version, back.config, back.config_revision) == (1, "serving", 1)
    assert back.config_values == {"batch_size": 64, "canary": 0.0}


def test_pinned_consumers_never_move_with_an_alias(client: Client, tmp_path: Path) -> None:
    _register(client, "churn", tmp_path, b"1", alias="champion")
    _register(client, "churn", tmp_path, b"2")
    client.create_consumer("billing", "churn", version=1)
    client.create_consumer("web", "churn", alias="champion")
    client.set_alias("churn", "champion", 2)
    pinned = client.resolve_consumer("billing", "churn")
    assert (pinned.version, pinned.pinned) == (1, True)
    following = client.resolve_consumer("web", "churn")
    assert (following.version, following.alias, following.pinned) == (2, "champion", False)
    client.update_consumer("billing", "churn", version=2)
    assert client.resolve_consumer("billing", "churn").version == 2
    with pytest.raises(AlreadyExists):
        client.create_consumer("web", "churn", version=1)
    with pytest.raises(InvalidArgument, match="exactly one"):
        client.create_consumer("both", "churn", version=1, alias="champion")
    assert {c.name for c in client.list_consumers("churn")} == {"billing", "web"}


def test_deprecation_is_visible_to_those_who_pin_the_version(
    client: Client, tmp_path: Path
) -> None:
    _register(client, "churn", tmp_path, b"1")
    client.create_consumer("billing", "churn", version=1)
    client.deprecate_version("churn", 1, "move to version 2 before June")
    resolved = client.resolve_consumer("billing", "churn")
    assert resolved.deprecation is not None
    assert resolved.deprecation.message == "move to version 2 before June"
    assert client.fetch("churn", 1).is_dir()  # a deprecated version still loads
    client.undeprecate_version("churn", 1)
    assert client.get_version("churn", 1).deprecation is None


def test_delete_model_removes_everything_and_gc_frees_the_bytes(
    client: Client, tmp_path: Path
) -> None:
    _register(client, "churn", tmp_path, b"only copy", alias="champion")
    client.create_consumer("web", "churn", alias="champion")
    client.delete_model("churn")
    with pytest.raises(NotFound):
        client.get_model("churn")
    assert client.list_consumers() == []
    report = client.gc(0)
    assert report.blobs_removed == 1
    assert report.manifests_removed == 1


def test_search_versions_by_several_tags_and_a_model(client: Client, tmp_path: Path) -> None:
    for i, (team, stage) in enumerate([("a", "prod"), ("a", "dev"), ("b", "prod"), ("a", "prod")]):
        _register(client, "churn" if i < 3 else "fraud", tmp_path, bytes([i]),
                  tags={"team": team, "stage": stage})  # fmt: skip
    both = client.search_versions(tags={"team": "a", "stage": "prod"})
    assert [(v.model, v.number) for v in both.items] == [("fraud", 1), ("churn", 1)]
    assert both.total == 2
    one_model = client.search_versions(model="churn", tags={"team": "a", "stage": "prod"})
    assert [(v.model, v.number) for v in one_model.items] == [("churn", 1)]
    assert client.search_versions(name_contains="zzz").total == 0
    paged = client.search_versions(tags={"team": "a"}, limit=1, offset=1)
    assert (paged.total, [(v.model, v.number) for v in paged.items]) == (3, [("churn", 2)])
