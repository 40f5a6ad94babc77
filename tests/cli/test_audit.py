"""``corral audit list`` / ``verify`` / ``export``, run as a user runs them: a real process."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from corral.registry.audit import event_hash
from corral.registry.codec import from_jsonable
from corral.registry.entities import AuditEvent
from tests.cli.conftest import Cli


@pytest.fixture
def registered(cli: Cli, tmp_path: Path) -> Cli:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickled")
    cli.run("register", "churn", str(model))
    cli.run("alias", "set", "churn", "champion", "1")
    cli.run("version", "deprecate", "churn", "1", "--message", "use version 2")
    return cli


def _database(cli: Cli) -> Path:
    return Path(cli.env["CORRAL_HOME"]) / "corral.db"


def test_list_shows_events_newest_first_and_filters(registered: Cli) -> None:
    page = registered.json("audit", "list")
    assert [e["action"] for e in page["items"]] == [
        "version.deprecate",
        "alias.set",
        "version.create",
        "model.create",
    ]
    assert {e["actor"] for e in page["items"]} == {page["items"][0]["actor"]}

    aliases = registered.json("audit", "list", "--action", "alias", "--target", "model:churn")
    assert [e["target"] for e in aliases["items"]] == ["model:churn/alias:champion"]
    assert registered.json("audit", "list", "--since", "2999-01-01")["total"] == 0
    table = registered.run("audit", "list").stdout
    assert "alias.set" in table
    assert table.startswith("audit events (4 of 4)")


def test_verify_passes_then_fails_naming_the_edited_event(registered: Cli) -> None:
    done = registered.run("audit", "verify")
    total = registered.json("audit", "list")["total"]
    assert done.stdout.strip() == f"audit log intact: {total} events verified"

    with sqlite3.connect(_database(registered)) as db:
        (edited,) = db.execute("SELECT id FROM audit_events WHERE action = 'alias.set'").fetchone()
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = ?", (edited,))

    broken = registered.run("audit", "verify", ok=False)
    assert broken.returncode == 1
    assert f"audit log broken at event {edited}" in broken.stderr
    assert "edited" in broken.stderr


def test_verify_fails_naming_the_event_after_a_deleted_one(registered: Cli) -> None:
    with sqlite3.connect(_database(registered)) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM audit_events ORDER BY id")]
        db.execute("DELETE FROM audit_events WHERE id = ?", (ids[1],))

    broken = registered.run("audit", "verify", ok=False)

    assert broken.returncode == 1
    assert f"audit log broken at event {ids[2]}" in broken.stderr
    assert "deleted" in broken.stderr


def test_export_writes_every_event_oldest_first_as_json_lines(
    registered: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "audit.jsonl"

    registered.run("audit", "export", "--output", str(target))
    to_stdout = registered.run("audit", "export").stdout

    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines == to_stdout.splitlines()
    events = [from_jsonable(AuditEvent, json.loads(line)) for line in lines]
    assert [e.action for e in events][:2] == ["model.create", "version.create"]
    assert events[-1].action == "version.deprecate"
    assert events[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert all(event_hash(e, e.prev_hash) == e.hash for e in events)
