"""A client killed mid-upload leaves no version, a consistent store, and staging gc removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.errors import NotFound
from tests.faults._corral import ServerProcess, cli_json, files_under, tree_size

# Streams at most 256 MiB, 64 KiB every 10 ms: slow enough to be killed mid-way.
_REMOTE_UPLOADER = textwrap.dedent(
    """
    import sys, time
    import httpx

    with httpx.Client(base_url=sys.argv[1], timeout=None) as http:
        upload_id = http.post("/api/v1/uploads").json()["upload_id"]
        print(upload_id, flush=True)

        def body():
            block = b"x" * 65536
            for _ in range(4096):
                yield block
                time.sleep(0.01)

        http.put(f"/api/v1/uploads/{upload_id}/files/big.bin", content=body())
    """
)

# Registers a 32 MiB file locally, sleeping 0.2 s per MiB: about 6 s to kill it in.
_LOCAL_UPLOADER = textwrap.dedent(
    """
    import sys, time
    from corral import Client

    def progress(label, total):
        return lambda n: time.sleep(0.2)

    with Client(home=sys.argv[1]) as client:
        client.register("m", sys.argv[2], progress=progress)
    """
)


def _kill_once_staged(proc: subprocess.Popen[str], staging: Path, at_least: int) -> int:
    """SIGKILL ``proc`` once ``staging`` holds ``at_least`` bytes; the bytes seen then."""
    deadline = time.monotonic() + 120
    try:
        while (staged := tree_size(staging)) < at_least:
            assert proc.poll() is None, f"the uploader ended early: {proc.stderr.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no upload bytes reached the staging area"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    return staged


def _wait_for_no_parts(staging: Path) -> None:
    deadline = time.monotonic() + 30
    while any(p.suffix == ".part" for p in files_under(staging)):
        assert time.monotonic() < deadline, "the server kept the part of a dead upload"
        time.sleep(0.1)


def _uploader(script: str, *args: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_client_killed_mid_upload_leaves_no_version_and_gc_cleans_staging(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    staging = home / "artifacts" / "staging"
    with ServerProcess(home, tmp_path) as server, Client(server.url) as client:
        client.create_model("m")
        uploader = _uploader(_REMOTE_UPLOADER, server.url, tmp_path=tmp_path)
        upload_id = uploader.stdout.readline().strip()  # type: ignore[union-attr]
        assert len(upload_id) == 32, uploader.stderr.read()  # type: ignore[union-attr]

        _kill_once_staged(uploader, staging, at_least=1 << 20)

        assert client.get_model("m").latest_version is None
        assert client.list_versions("m").total == 0
        assert (staging / upload_id).is_dir()
        _wait_for_no_parts(staging)  # the server noticed the disconnect and aborted the file
        with httpx.Client(base_url=server.url) as http:
            late = http.post("/api/v1/models/m/versions", json={"upload_id": upload_id})
        assert late.status_code == 400, late.text  # the aborted file was never published
        assert client.list_versions("m").total == 0

        report = cli_json(["--server", server.url, "gc", "--grace", "0"], tmp_path)

        assert report["staging_removed"] >= 1
        assert files_under(staging) == []
        assert not any(staging.iterdir())
        artifact = tmp_path / "model.bin"
        artifact.write_bytes(os.urandom(1000))
        assert client.register("m", artifact).number == 1
        assert client.verify_version("m", 1).files_checked == 1


def test_local_register_killed_mid_upload_leaves_no_version_and_gc_cleans_staging(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    staging = home / "artifacts" / "staging"
    big = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with big.open("wb") as fh:
        for _ in range(32):
            fh.write(block)
    uploader = _uploader(_LOCAL_UPLOADER, str(home), str(big), tmp_path=tmp_path)

    staged = _kill_once_staged(uploader, staging, at_least=2 << 20)

    with Client(home=home) as client:
        # A first registration creates its model only once the upload is published.
        with pytest.raises(NotFound, match="model 'm' does not exist"):
            client.get_model("m")
        assert tree_size(staging) >= staged
        assert files_under(home / "artifacts" / "blobs") == []

        report = cli_json(["--home", str(home), "gc", "--grace", "0"], tmp_path)

        assert report["staging_removed"] >= 1
        assert report["bytes_freed"] >= staged
        assert not any(staging.iterdir())
        assert client.register("m", big).number == 1
        assert client.verify_version("m", 1).bytes_checked == big.stat().st_size
        assert client.gc(0).staging_removed == 0
