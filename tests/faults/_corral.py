"""Real Corral processes for fault tests: the ``corral`` command and ``corral server``.

Everything runs as a separate process so that faults (SIGKILL, concurrent writers) hit the
same code paths users do. The command is started as ``python -c "...main()"`` with the test's
interpreter: the installed ``corral`` script may belong to another environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.corral import free_port

CORRAL = [sys.executable, "-c", "from corral.cli.main import main; main()"]
# The machine is shared and loaded: a CLI start alone can take several seconds.
CLI_TIMEOUT = 180.0


def corral_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment minus the caller's CORRAL_* settings, with a private SDK cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env["CORRAL_CACHE_DIR"] = str(tmp_path / "sdk-cache")
    # These suites are about faults, not access (tests/security covers that): their servers
    # let anonymous callers act as admins, as tests/conftest.py does for in-process servers.
    env["CORRAL_ANONYMOUS_ROLE"] = "admin"
    env.update(extra)
    return env


def start_cli(
    args: Sequence[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CORRAL, *args],
        cwd=tmp_path,  # no stray corral.toml from the repository
        env=env or corral_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = CLI_TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"corral timed out after {timeout}s: {err[-2000:]}") from None
    return proc.returncode, out, err


def run_cli(
    args: Sequence[str], tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``corral ARGS``: (exit code, stdout, stderr)."""
    return finish(start_cli(args, tmp_path, env))


def cli_json(args: Sequence[str], tmp_path: Path, env: dict[str, str] | None = None) -> Any:
    """Run ``corral ARGS --json``, which must succeed, and parse its output."""
    code, out, err = run_cli([*args, "--json"], tmp_path, env)
    assert code == 0, f"corral {' '.join(args)} failed ({code}): {err[-2000:]}"
    return json.loads(out)


class ServerProcess:
    """``corral --home HOME server`` on a free loopback port, in its own process."""

    def __init__(
        self,
        home: Path,
        tmp_path: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.home = home
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp_path = tmp_path
        self._env = env or corral_env(tmp_path)
        self._log = tmp_path / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        args = ["--home", str(self.home), "server", "--host", "127.0.0.1", "--port"]
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*CORRAL, *args, str(self.port), *self.args],
                cwd=self._tmp_path,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"corral server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"corral server did not start: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


def tree_size(folder: Path) -> int:
    """Bytes in the regular files under ``folder`` (files may vanish while we look)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
