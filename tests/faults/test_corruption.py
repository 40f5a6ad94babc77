"""Corrupted stored bytes are refused by verify, download and fetch, naming file and digest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.config import Settings
from corral.errors import IntegrityError
from corral.registry.entities import FileEntry
from tests.faults._corral import files_under, run_cli
from tests.fixtures.corral import ServerThread


@dataclass
class Corrupted:
    home: Path
    entry: FileEntry
    blob: Path


def _blob(home: Path, sha256: str) -> Path:
    return home / "artifacts" / "blobs" / "sha256" / sha256[:2] / sha256


def _corrupt(tmp_path: Path, how: str) -> Corrupted:
    """Version 1 of 'm' (one 3 MiB file) whose stored blob was then damaged on disk."""
    home = tmp_path / "home"
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(os.urandom(3 << 20))
    with Client(home=home) as client:
        (entry,) = client.register("m", artifact).files
    blob = _blob(home, entry.sha256)
    with blob.open("r+b") as fh:
        if how == "flipped":
            fh.seek(2 << 20)
            byte = fh.read(1)
            fh.seek(2 << 20)
            fh.write(bytes([byte[0] ^ 0xFF]))
        else:
            fh.truncate(1 << 20)
    return Corrupted(home, entry, blob)


@pytest.fixture(params=["flipped", "truncated"])
def corrupted(request: pytest.FixtureRequest, tmp_path: Path) -> Corrupted:
    return _corrupt(tmp_path, request.param)


def _names_file_and_digest(message: str, entry: FileEntry) -> None:
    assert f"'{entry.path}'" in message
    assert f"expected sha256 {entry.sha256}" in message


def test_cli_verify_refuses_a_corrupted_blob(corrupted: Corrupted, tmp_path: Path) -> None:
    code, _, err = run_cli(["--home", str(corrupted.home), "version", "verify", "m", "1"], tmp_path)

    assert code != 0
    _names_file_and_digest(err, corrupted.entry)


def test_cli_download_refuses_a_corrupted_blob_and_leaves_no_file(
    corrupted: Corrupted, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    args = ["--home", str(corrupted.home), "version", "download", "m", "1", "--dest", str(dest)]

    code, _, err = run_cli(args, tmp_path)

    assert code != 0
    _names_file_and_digest(err, corrupted.entry)
    assert files_under(dest) == []


def test_sdk_fetch_refuses_a_corrupted_blob(corrupted: Corrupted, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with Client(home=corrupted.home, cache_dir=cache) as client:
        with pytest.raises(IntegrityError) as raised:
            client.fetch("m", 1)
        _names_file_and_digest(str(raised.value), corrupted.entry)
        with pytest.raises(IntegrityError):
            client.verify_version("m", 1)
    assert files_under(cache) == []


def test_server_refuses_to_serve_or_verify_a_corrupted_blob(
    corrupted: Corrupted, tmp_path: Path
) -> None:
    with ServerThread(Settings(home=corrupted.home)) as server:
        with httpx.Client(base_url=server.url) as http:
            download = http.get("/api/v1/models/m/versions/1/files/model.bin")
            verify = http.post("/api/v1/models/m/versions/1/verify")
        for response in (download, verify):
            assert response.status_code == 409
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "integrity_error"
            _names_file_and_digest(response.json()["detail"], corrupted.entry)
        with Client(server.url, cache_dir=tmp_path / "cache") as client:
            with pytest.raises(IntegrityError) as raised:
                client.fetch("m", 1)
            _names_file_and_digest(str(raised.value), corrupted.entry)
        assert files_under(tmp_path / "cache") == []


@pytest.mark.parametrize("verb", ["verify", "download"])
def test_cli_through_a_server_refuses_a_corrupted_blob(tmp_path: Path, verb: str) -> None:
    corrupted = _corrupt(tmp_path, "flipped")
    dest = tmp_path / "dest"
    with ServerThread(Settings(home=corrupted.home)) as server:
        args = ["--server", server.url, "version", verb, "m", "1"]
        code, _, err = run_cli(
            [*args, "--dest", str(dest)] if verb == "download" else args, tmp_path
        )

    assert code != 0
    _names_file_and_digest(err, corrupted.entry)
    assert files_under(dest) == []


def test_verify_refuses_a_swapped_manifest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(os.urandom(1000))
    second.write_bytes(os.urandom(1000))
    with Client(home=home) as client:
        one = client.register("m", first)
        two = client.register("m", second, create_model=False)
    manifests = home / "artifacts" / "manifests" / "sha256"
    victim = manifests / f"{one.manifest_digest}.json"
    victim.write_bytes((manifests / f"{two.manifest_digest}.json").read_bytes())

    code, _, err = run_cli(["--home", str(home), "version", "verify", "m", "1"], tmp_path)

    assert code != 0
    assert one.manifest_digest in err
    with Client(home=home) as client:
        with pytest.raises(IntegrityError, match=one.manifest_digest):
            client.verify_version("m", 1)
        assert client.verify_version("m", 2).files_checked == 1  # untouched
