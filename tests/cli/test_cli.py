"""The ``corral`` command, run as a user runs it: a real process, locally and against a server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 5000)
    (folder / "sub" / "config.json").write_text('{"layers": 2}')
    return folder


def test_register_then_show_list_download_and_verify(
    cli: Cli, model_dir: Path, tmp_path: Path
) -> None:
    example = tmp_path / "rows.csv"
    example.write_text("age,income\n31,5.5\n40,7.25\n")
    created = cli.json(
        "register", "churn", str(model_dir), "--metric", "auc=0.91", "--tag", "team=growth",
        "--param", "C=1", "--alias", "champion", "--example", str(example),
    )  # fmt: skip
    assert created["number"] == 1
    assert created["metrics"] == {"auc": 0.91}
    assert {c["name"] for c in created["signature"]["inputs"]} == {"age", "income"}
    paths = {f["path"] for f in created["files"]}
    assert paths == {"weights.bin", "sub/config.json", "input_example.json"}
    shown = cli.json("version", "show", "churn", "champion")
    assert shown["number"] == 1
    listed = cli.json("version", "list", "churn")
    assert [v["number"] for v in listed["items"]] == [1]
    assert cli.json("model", "list")["items"][0]["name"] == "churn"
    out = tmp_path / "out"
    cli.run("version", "download", "churn", "1", "--dest", str(out))
    assert (out / "sub" / "config.json").read_text() == '{"layers": 2}'
    assert cli.json("version", "verify", "churn", "1")["files_checked"] == 3


def test_register_shows_progress_on_stderr(cli: Cli, model_dir: Path) -> None:
    done = cli.run("register", "churn", str(model_dir))
    assert "weights.bin" in done.stderr
    assert "registered 'churn' version 1" in done.stdout


def test_alias_rollback_and_history(cli: Cli, model_dir: Path) -> None:
    for _ in range(3):
        cli.run("register", "churn", str(model_dir))
    cli.run("alias", "set", "churn", "champion", "1")
    cli.run("alias", "set", "churn", "champion", "3", "--reason", "newest")
    back = cli.json("alias", "rollback", "churn", "champion", "--reason", "bad")
    assert back["version"] == 1
    history = cli.json("alias", "history", "churn", "champion")["items"]
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("rollback", 3, 1),
        ("set", 1, 3),
        ("set", None, 1),
    ]
    assert history[0]["reason"] == "bad"
    aliases = cli.json("alias", "list", "churn")
    assert [(a["name"], a["version"]) for a in aliases] == [("champion", 1)]
    table = cli.run("alias", "history", "churn", "champion").stdout
    assert "rollback" in table


def test_consumers_config_and_deprecation(cli: Cli, model_dir: Path) -> None:
    cli.run("register", "churn", str(model_dir), "--alias", "champion")
    cli.run("register", "churn", str(model_dir))
    revision = cli.json("config", "create", "churn", "serving", '{"batch_size": 8}')
    assert revision["revision"] == 1
    cli.run("alias", "set", "churn", "champion", "2", "--config", "serving")
    cli.run("consumer", "create", "billing", "churn", "--version", "1")
    cli.run("consumer", "create", "web", "churn", "--alias", "champion")
    cli.run("version", "deprecate", "churn", "1", "-m", "move to v2")
    pinned = cli.json("consumer", "resolve", "billing", "churn")
    assert (pinned["version"], pinned["pinned"]) == (1, True)
    assert pinned["deprecation"]["message"] == "move to v2"
    warned = cli.run("consumer", "resolve", "billing", "churn")
    assert "deprecated: move to v2" in warned.stderr
    following = cli.json("consumer", "resolve", "web", "churn")
    assert (following["version"], following["config_values"]) == (2, {"batch_size": 8})
    assert {c["name"] for c in cli.json("consumer", "list")} == {"billing", "web"}


def test_errors_go_to_stderr_with_a_nonzero_exit(cli: Cli, model_dir: Path) -> None:
    missing = cli.run("model", "show", "ghost", ok=False)
    assert missing.returncode == 1
    assert "model 'ghost' does not exist" in missing.stderr
    assert missing.stdout == ""
    bad = cli.run("model", "create", "../etc", ok=False)
    assert bad.returncode == 1
    assert "model name" in bad.stderr
    cli.run("model", "create", "churn")
    dup = cli.run("model", "create", "churn", ok=False)
    assert "already exists" in dup.stderr
    nofile = cli.run("register", "churn", str(model_dir / "nope.bin"), ok=False)
    assert "does not exist" in nofile.stderr
    metric = cli.run("register", "churn", str(model_dir), "--metric", "auc=high", ok=False)
    assert "not a number" in metric.stderr


def test_delete_model_and_gc(cli: Cli, model_dir: Path) -> None:
    cli.run("register", "churn", str(model_dir))
    cli.run("model", "delete", "churn", "--yes")
    report = cli.json("gc", "--grace", "0")
    assert report["blobs_removed"] == 2
    assert cli.json("model", "list")["total"] == 0


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home")}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "corral", "db", "upgrade"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "corral.db").exists()


def test_an_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CORRAL_HOME": str(tmp_path),
        "CORRAL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "corral", "model", "list"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: unexpected OperationalError")
    assert "Traceback" not in done.stderr


def test_gc_keeps_young_data_by_default(cli: Cli, model_dir: Path) -> None:
    cli.run("register", "churn", str(model_dir))
    cli.run("model", "delete", "churn", "--yes")
    assert cli.json("gc")["blobs_removed"] == 0  # within the default grace period
    assert cli.json("gc", "--grace", "0")["blobs_removed"] == 2
