"""``corral version trust`` / ``untrust``, run as a user runs them: a real process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def registered(cli: Cli, tmp_path: Path) -> Cli:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickled")
    cli.run("register", "churn", str(model))
    return cli


def test_trust_needs_a_reason_and_show_tells_whether_trusted(registered: Cli) -> None:
    refused = registered.run("version", "trust", "churn", "1", ok=False)
    assert refused.returncode == 1
    assert "give a reason" in refused.stderr
    assert registered.json("version", "show", "churn", "1")["trusted"] is False

    done = registered.run("version", "trust", "churn", "1", "--reason", "reviewed the code")

    assert done.stdout.strip() == "churn version 1 trusted"
    assert registered.json("version", "show", "churn", "1")["trusted"] is True
    shown = registered.run("version", "show", "churn", "1").stdout
    assert any(line.split() == ["│", "trusted", "│", "True", "│"] for line in shown.splitlines())


def test_untrust_withdraws_it_without_a_reason(registered: Cli) -> None:
    registered.run("version", "trust", "churn", "latest", "-r", "reviewed")

    untrusted = registered.json("version", "untrust", "churn", "1")

    assert (untrusted["number"], untrusted["trusted"]) == (1, False)
    assert registered.json("version", "show", "churn", "1")["trusted"] is False
