"""``corral monitor …`` run as a user runs it: a real process, locally and against a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import Client
from tests.cli.conftest import Cli

SPEC = """\
# clf's monitoring
objectives:
  - accuracy >= 0.9 over 2d, min 500
  - metric: p95_latency_ms
    threshold: 50
    window: 1h
drift:
  share_threshold: 0.4
reference: example
"""
SECRET = "0123456789abcdef-secret"
# The CLI's local mode is covered by the first test; over a server each process starts faster.
SERVER_ONLY = pytest.mark.parametrize("cli", ["server"], indirect=True)


@pytest.fixture
def with_model(cli: Cli, tmp_path: Path) -> Cli:
    """The CLI on a home holding model 'clf' (registered in-process: one process less)."""
    (tmp_path / "model.bin").write_bytes(b"weights")
    with Client(home=cli.env["CORRAL_HOME"], actor="tester") as client:
        client.register("clf", tmp_path / "model.bin")
    cli.env["COLUMNS"] = "200"  # Rich wraps tables to the terminal's width
    return cli


def test_objectives_apply_from_yaml_then_list_evaluate_and_history(
    with_model: Cli, tmp_path: Path
) -> None:
    spec = tmp_path / "monitoring.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    applied = with_model.run("monitor", "objectives", "apply", "clf", str(spec)).stdout
    assert "applied monitoring.yaml to clf: 2 objective(s)" in applied
    assert "p95_latency_ms <= 50 over 1h" in applied

    listed = with_model.json("monitor", "objectives", "list", "clf")
    assert [(o["expression"], o["state"]) for o in listed] == [
        ("accuracy >= 0.9 over 2d, min 500", "no_data"),
        ("p95_latency_ms <= 50 over 1h", "no_data"),
    ]
    evaluated = with_model.json("monitor", "evaluate", "clf")
    assert sorted(e["objective_id"] for e in evaluated) == sorted(o["id"] for o in listed)
    first = listed[0]["id"]
    history = with_model.json("monitor", "objectives", "history", "clf", str(first))
    assert [(e["objective_id"], e["state"]) for e in history] == [(first, "no_data")]

    status = with_model.run("monitor", "status", "clf").stdout
    assert "monitoring of clf" in status
    assert "open alerts" in status
    assert "accuracy >= 0.9 over 2d, min 500" in status


@SERVER_ONLY
def test_a_bad_yaml_objective_or_model_fails_on_stderr_naming_the_place(
    with_model: Cli, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("objectives:\n  - accuracy >= 0.9 over 7d\n bad: [\n", encoding="utf-8")
    done = with_model.run("monitor", "objectives", "apply", "clf", str(broken), ok=False)
    assert done.returncode == 1
    assert "line 3" in done.stderr
    assert done.stdout == ""

    typo = tmp_path / "typo.yaml"
    typo.write_text("objectives:\n  - acuracy >= 0.9 over 7d\n", encoding="utf-8")
    done = with_model.run("monitor", "objectives", "apply", "clf", str(typo), ok=False)
    assert done.returncode == 1
    assert "objectives[0]" in done.stderr
    assert "did you mean 'accuracy'" in done.stderr

    done = with_model.run("monitor", "status", "ghost", ok=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "ghost" in done.stderr


def test_feedback_from_a_csv_reports_received_matched_and_unknown(
    with_model: Cli, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nnever-1,1\nnever-2,0\n", encoding="utf-8")
    done = with_model.run("monitor", "feedback", "clf", str(labels))
    assert "received 2, matched 0, unknown 2" in done.stdout
    assert "never-1" in done.stderr  # the unknown ids are named, as a warning

    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,label\nr-1,1\nr-2\n", encoding="utf-8")
    done = with_model.run("monitor", "feedback", "clf", str(bad), ok=False)
    assert done.returncode == 1
    assert "line 3" in done.stderr


@SERVER_ONLY
def test_alerts_webhooks_objectives_and_performance_print_tables_or_json(
    with_model: Cli,
) -> None:
    assert with_model.json("monitor", "alerts", "--model", "clf", "--state", "open") == []

    hook = with_model.json(
        "monitor", "webhooks", "add", "http://93.184.215.14:9/hook", "--secret", SECRET
    )
    assert (hook["url"], hook["model"], hook["has_secret"]) == (
        "http://93.184.215.14:9/hook",
        None,
        True,
    )
    listed = with_model.run("monitor", "webhooks", "list").stdout
    assert "http://93.184.215.14:9/hook" in listed
    assert SECRET not in listed
    with_model.run("monitor", "webhooks", "delete", str(hook["id"]))

    added = with_model.json("monitor", "objectives", "add", "clf", "error_rate < 0.01 over 1d")
    assert added["expression"] == "error_rate < 0.01 over 1d"
    done = with_model.run("monitor", "objectives", "delete", "clf", str(added["id"]))
    assert f"deleted objective {added['id']} of clf" in done.stdout

    report = with_model.json("monitor", "performance", "clf", "--since", "3h", "--bucket", "1h")
    assert report["bucket_seconds"] == 3600
    assert sum(b["requests"] for b in report["buckets"]) == 0
    done = with_model.run("monitor", "performance", "clf", "--since", "yesterday", ok=False)
    assert "--since 'yesterday'" in done.stderr
