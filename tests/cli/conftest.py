"""The ``cli`` fixture: the ``corral`` command in a real process, local or against a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.config import Settings
from tests.fixtures.corral import ServerThread


class Cli:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.env = env

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "corral", *self.args, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"{args}: {done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture(params=["local", "server"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CORRAL_SERVER_URL", None)
    if request.param == "local":
        yield Cli([], env)
    else:
        with ServerThread(Settings(home=home)) as server:
            yield Cli(["--server", server.url], env)
