"""``corral version scan``, run as a user runs it: a real process, locally and against a server."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

from tests.cli.conftest import Cli


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def test_scan_passes_a_clean_version_and_fails_a_pickle_payload(cli: Cli, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "model.json").write_text('{"trees": []}')
    (clean / "weights.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    cli.run("register", "churn", str(clean))
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.bin").write_bytes(pickle.dumps(_Payload()))
    cli.run("register", "churn", str(evil))

    passed = cli.run("version", "scan", "churn", "1")
    failed = cli.run("version", "scan", "churn", "latest", ok=False)
    report = json.loads(cli.run("version", "scan", "churn", "2", "--json", ok=False).stdout)

    assert "churn@1: safe" in passed.stdout
    assert failed.returncode == 1
    assert "error: churn@latest is unsafe" in failed.stderr
    assert ".system is not on the allow-list" in failed.stdout
    assert report["verdict"] == "unsafe"
    [finding] = report["findings"]
    assert (finding["path"], finding["format"], finding["verdict"]) == (
        "model.bin",
        "pickle",
        "unsafe",
    )
