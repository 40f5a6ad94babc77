"""Eight processes registering versions of one model at once get eight consecutive numbers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import Client
from corral.errors import NotFound
from tests.faults._corral import ServerProcess, cli_json, corral_env, finish, start_cli
from tests.fixtures.databases import _postgres_database

WRITERS = 8


def _artifacts(tmp_path: Path) -> list[Path]:
    files = []
    for i in range(WRITERS):
        path = tmp_path / f"model-{i}.bin"
        path.write_bytes(os.urandom(4096))
        files.append(path)
    return files


def _register_all_at_once(
    target: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> list[int]:
    """Start WRITERS ``corral register`` processes together; their version numbers."""
    procs = [
        start_cli([*target, "register", "m", str(path), "--json"], tmp_path, env)
        for path in _artifacts(tmp_path)
    ]
    results = [finish(proc) for proc in procs]
    failures = [err[-1500:] for code, _, err in results if code != 0]
    assert not failures, f"{len(failures)} register(s) failed: {failures}"
    return [json.loads(out)["number"] for _, out, _ in results]


def _listed_numbers(
    target: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> list[int]:
    page = cli_json([*target, "version", "list", "m"], tmp_path, env)
    assert page["total"] == WRITERS
    return sorted(v["number"] for v in page["items"])


def test_concurrent_local_registers_get_consecutive_versions(tmp_path: Path) -> None:
    target = ["--home", str(tmp_path / "home")]
    # Nothing exists yet: the 8 processes also race to migrate the home and create the model.
    numbers = _register_all_at_once(target, tmp_path)

    expected = list(range(1, WRITERS + 1))
    assert sorted(numbers) == expected
    assert _listed_numbers(target, tmp_path) == expected
    assert cli_json([*target, "version", "verify", "m", "latest"], tmp_path)["files_checked"] == 1


def test_concurrent_registers_through_a_server_get_consecutive_versions(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "home", tmp_path) as server:
        target = ["--server", server.url]

        numbers = _register_all_at_once(target, tmp_path)

        expected = list(range(1, WRITERS + 1))
        assert sorted(numbers) == expected
        assert _listed_numbers(target, tmp_path) == expected


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


@pytest.mark.postgres
def test_concurrent_registers_on_postgres_get_consecutive_versions(
    tmp_path: Path, postgres_url: str
) -> None:
    env = corral_env(tmp_path, CORRAL_DATABASE_URL=postgres_url)
    target = ["--home", str(tmp_path / "home")]
    numbers = _register_all_at_once(target, tmp_path, env)

    expected = list(range(1, WRITERS + 1))
    assert sorted(numbers) == expected
    assert _listed_numbers(target, tmp_path, env) == expected


def test_register_survives_the_model_being_created_concurrently(tmp_path: Path) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with Client(home=tmp_path / "home") as client, Client(home=tmp_path / "home") as other:
        # Force the losing interleaving of two first registrations: the other writer
        # creates the model right after this one found it missing.
        def get_model_then_lose_the_race(name: str) -> object:
            try:
                return client._backend.get_model(name)
            except NotFound:
                other.create_model(name)
                raise

        client.get_model = get_model_then_lose_the_race  # type: ignore[attr-defined]

        version = client.register("m", artifact)

    assert version.number == 1
